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
  /* may an app show on this page? g: alternatives, each a list of URL conditions [operator
     (0 contains, 1 equals, 2 starts with), lower-cased value, negated] that must all hold */
  P.g = function (g) {
    var t = w.location.href.toLowerCase();
    return !g || g.some(function (a) {
      return a.every(function (r) {
        var x = r[0] > 1 ? !t.indexOf(r[1]) : r[0] ? t.replace(/\/$/, "") == r[1] : t.indexOf(r[1]) >= 0;
        return r[2] ? !x : x;
      });
    });
  };
  /* fetch an app's code (the runtime calls it too, when a single-page site moves to a page the app may show on) */
  P.l = function (k) {
    if (c.w && c.w[k] < w.innerWidth || !P.g(c.g && c.g[k])) return; /* an app for narrower screens, other pages */
    s = d.createElement("script");
    s.async = true;
    s.src = c.b + k;
    (d.head || d.documentElement).appendChild(s);
  };
  P.l(c.r);
  for (i = 0; i < c.a.length; i++) P.l(c.a[i]);
})(window, document);
