/* An integration's client script as the tests use it: reaches a goal for each event its
   client_events name (what the Metrika plugin does with ym(counter, 'reachGoal', id)),
   and puts what it saw into the lead before it is sent (what Calltouch does with its
   session id). */
(function (w) {
  "use strict";
  var P = w.Perezvon, goals = (P.integrations || {}).tracker || {};
  w.__goals = w.__goals || [];
  Object.keys(goals).forEach(function (event) {
    P.on(event, function () { w.__goals.push(goals[event]); });
  });
  P.on("lead_sending", function (payload) { payload.extra.tracker = { goals: w.__goals.slice() }; });
})(window);
