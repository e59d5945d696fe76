/* Perezvon site script loader: checks the domain, then fetches the config, the runtime and the
   apps' code in parallel; apps that arrive before the runtime wait in P.d. */
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
  if (!P.off) P.off = function (n, f) { P.q = P.q.filter(function (x) { return x[0] !== n || (f && x[1] !== f); }); };
  P.config = fetch(c.b + "/site/config?token=" + encodeURIComponent(c.t), { credentials: "omit" })
    .then(function (r) { return r.ok ? r.json() : null; })["catch"](function () { return null; });
  P.d = [];
  P.define = function (k, f) { P.d.push([k, f]); };
  for (i = -1; i < c.a.length; i++) {
    s = d.createElement("script");
    s.async = true;
    s.src = c.b + (i < 0 ? c.r : c.a[i]);
    (d.head || d.documentElement).appendChild(s);
  }
})(window, document);
