/* An integration's client script as the tests use it: reaches a goal for each event its
   client_events name (what the Metrika plugin does with ym(counter, 'reachGoal', id)). */
(function (w) {
  "use strict";
  var P = w.Perezvon, goals = (P.integrations || {}).tracker || {};
  Object.keys(goals).forEach(function (event) {
    P.on(event, function () { (w.__goals = w.__goals || []).push(goals[event]); });
  });
})(window);
