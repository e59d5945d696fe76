/* Perezvon -> CoMagic: before a lead is sent, puts the visitor's CoMagic session id
   (Comagic.getSessionId(), from CoMagic's own script on the page) into payload.extra.comagic,
   so the server can tie the lead to the visit. Nothing of the settings reaches the page. ES2019. */
(function () {
  'use strict';
  var KEY = 'comagic';
  var bus = window.Perezvon;
  if (!bus || typeof bus.on !== 'function') return;

  bus.on('lead_sending', function (payload) {
    var comagic = window.Comagic;
    if (!payload || !comagic || typeof comagic.getSessionId !== 'function') return;
    var session;
    try { session = comagic.getSessionId(); } catch (e) { return; }
    if (session === undefined || session === null || session === '') return;
    payload.extra = payload.extra || {};
    payload.extra[KEY] = {session_id: String(session)};
  });
})();
