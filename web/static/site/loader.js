/* Perezvon site script loader: checks the domain, then fetches the config and the runtime in parallel. */
(function (w, d) {
  "use strict";
  var c = __BOOT__, P = w.Perezvon, h = (w.location.hostname || "").toLowerCase(), ok = false, i, m, s;
  if (P && P.boot) return;
  for (i = 0; i < c.h.length; i++) {
    m = c.h[i];
    if (h === m || h.slice(-m.length - 1) === "." + m) ok = true;
  }
  if (!ok || !w.fetch) return;
  P = w.Perezvon = P || {};
  P.boot = c;
  P.q = P.q || [];
  if (!P.on) P.on = function (n, f) { P.q.push([n, f]); };
  P.config = fetch(c.b + "/site/config?token=" + encodeURIComponent(c.t), { credentials: "omit" })
    .then(function (r) { return r.ok ? r.json() : null; })["catch"](function () { return null; });
  s = d.createElement("script");
  s.async = true;
  s.src = c.b + c.r;
  (d.head || d.documentElement).appendChild(s);
})(window, document);
