/* Perezvon -> Yandex Metrika: reaches a JS-event goal for each site event the page's apps declare
   (Perezvon.events, from the config; docs/integrations.md): the goal is the prefix and the event's name.
   Config (integrations.metrika): {counter: 12345678, prefix: "perezvon_"}.
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

  bus.on('*', function (detail, event) {
    var cfg = config();
    if (!cfg || typeof window.ym !== 'function' || (bus.events || []).indexOf(event) < 0) return;
    window.ym(cfg.counter, 'reachGoal', (cfg.prefix || '') + event);
  });
})();
