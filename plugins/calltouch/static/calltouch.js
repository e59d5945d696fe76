/* Perezvon -> Calltouch: before a lead is sent, puts the visitor's Calltouch session id into
   payload.extra.calltouch = {session_id}, read from the page variable named in the settings
   (integrations.calltouch.session_variable, "call_value" by default; a dotted path is followed),
   else from Calltouch's _ct_session_id cookie. The server registers the lead with it. ES2019. */
(function () {
  'use strict';
  var KEY = 'calltouch';
  var bus = window.Perezvon;
  if (!bus || typeof bus.on !== 'function') return;

  function config() {
    var all = bus.integrations;  /* the runtime sets it from the config (docs/site-script.md) */
    return (all && all[KEY]) || null;
  }

  function fromPage(path) {
    var value = window;
    var parts = String(path || '').split('.');
    for (var i = 0; i < parts.length; i++) {
      if (value === null || value === undefined) return '';
      value = value[parts[i]];
    }
    return (typeof value === 'string' || typeof value === 'number') ? String(value) : '';
  }

  function fromCookie() {
    var match = document.cookie.match(/(?:^|;\s*)_ct_session_id=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : '';
  }

  bus.on('lead_sending', function (payload) {
    var cfg = config();
    if (!cfg || !payload) return;
    var session = fromPage(cfg.session_variable || 'call_value') || fromCookie();
    if (!session) return;
    payload.extra = payload.extra || {};
    payload.extra[KEY] = {session_id: session};
  });
})();
