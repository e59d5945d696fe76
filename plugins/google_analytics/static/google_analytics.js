/* Perezvon -> Google Analytics: for each site event the page's apps declare (Perezvon.events, from the
   config; docs/integrations.md) an event (category PEREZVON, action = the event's name, optional label)
   through gtag when the page has it, else through analytics.js's ga. Before a lead is sent it adds the
   visitor's GA client id (from the _ga cookie) to payload.extra.google_analytics, so call results sent
   later from the server belong to the same visitor. ES2019. */
(function () {
  'use strict';
  var KEY = 'google_analytics';
  var bus = window.Perezvon;
  if (!bus || typeof bus.on !== 'function') return;

  function config() {
    var all = bus.integrations;  /* the runtime sets it from the config (docs/site-script.md) */
    return (all && all[KEY]) || null;
  }

  function send(event) {
    var cfg = config();
    if (!cfg) return;
    var action = event;
    var category = cfg.category || 'PEREZVON';
    if (typeof window.gtag === 'function') {
      var params = {event_category: category, send_to: cfg.measurement_id};
      if (cfg.label) params.event_label = cfg.label;
      window.gtag('event', action, params);
    } else if (typeof window.ga === 'function') {
      if (cfg.label) window.ga('send', 'event', category, action, cfg.label);
      else window.ga('send', 'event', category, action);
    }
  }

  function clientId() {
    var match = document.cookie.match(/(?:^|;\s*)_ga=GA\d+\.\d+\.(\d+\.\d+)/);
    return match ? match[1] : '';
  }

  bus.on('*', function (detail, event) {
    if ((bus.events || []).indexOf(event) >= 0) send(event);
  });

  bus.on('lead_sending', function (payload) {
    var id = config() && clientId();
    if (!id || !payload) return;
    payload.extra = payload.extra || {};
    payload.extra[KEY] = {client_id: id};
  });
})();
