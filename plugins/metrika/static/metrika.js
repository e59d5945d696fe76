/* Perezvon -> Yandex Metrika: reaches a JS-event goal for each site-script event.
   Config (integrations.metrika): {counter: 12345678, goals: {widget_shown: "perezvon_widget_shown", ...}}.
   Nothing happens when the page has no Metrika counter (no window.ym). ES2019. */
(function () {
  'use strict';
  var KEY = 'metrika';
  var bus = window.Perezvon;
  if (!bus || typeof bus.on !== 'function') return;

  function config() {
    var all = bus.integrations;  /* the runtime sets it from the config (docs/site-script.md) */
    return (all && all[KEY]) || null;
  }

  function subscribe(event) {
    bus.on(event, function () {
      var cfg = config();
      if (!cfg || typeof window.ym !== 'function') return;
      var goal = cfg.goals && cfg.goals[event];
      if (goal) window.ym(cfg.counter, 'reachGoal', goal);
    });
  }

  ['widget_shown', 'widget_opened', 'widget_lead', 'leadgen_shown', 'leadgen_lead', 'offhours_lead']
    .forEach(subscribe);
})();
