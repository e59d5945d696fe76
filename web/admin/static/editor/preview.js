/* The editor's preview frame (docs/admin.md, "The visual editor"): runs the real site runtime and the
   app's own script with the draft config the editor posts in, marks the element the user clicks and
   reports it. Which element a click lands on comes from the app's declared editor elements (selectors
   inside its shadow root, sent with the config); how to reach a screen is the app's preview script,
   which calls PerezvonPreview.define(key, {ready(api, msg), show(api, msg)}); show calls api.shown(root,
   screen) once the screen is up. The frame is sandboxed and its CSP allows no connection; fetch is
   answered here, so no lead can leave the preview. */
(function (w, d) {
  "use strict";
  var apps = {};
  w.PerezvonPreview = { define: function (key, hooks) { apps[key] = hooks; } };
  var body = d.body, key = body.getAttribute("data-app"), started = false, current = null;
  var FAKE_CALL = { lead_id: "preview", call_id: "00000000-0000-0000-0000-000000000000" };
  function reply(data) {
    return Promise.resolve(new Response(JSON.stringify(data), { status: 200, headers: { "Content-Type": "application/json" } }));
  }
  w.fetch = function (url) {
    url = String(url);
    if (url.indexOf("/api/v1/leads") >= 0) return reply(FAKE_CALL);
    if (url.indexOf("/state") >= 0) return reply({ phase: "calling", leg: "client", finished: false, status: "calling" });
    return Promise.reject(new Error("the preview sends nothing"));
  };
  function post(msg) { w.parent.postMessage(msg, "*"); }

  /* which declared element a click landed on: the innermost node matching, in declared order */
  var marked = null;
  function table() { return (current && current.elements) || []; }
  function picked(e) {
    var path = e.composedPath ? e.composedPath() : [e.target], elements = table();
    for (var i = 0; i < path.length; i++) {
      var node = path[i];
      if (!node || !node.matches) continue;
      for (var j = 0; j < elements.length; j++) {
        if (node.matches(elements[j][0])) return { node: node, element: elements[j][1] };
      }
    }
    return null;
  }
  function mark(node) {
    if (marked) marked.style.removeProperty("outline");
    marked = node;
    marked.style.setProperty("outline", "3px dashed #f43f5e");
    marked.style.setProperty("outline-offset", "2px");
  }
  /* the element picked before the preview was redrawn stays marked */
  function remark(root, element) {
    var elements = table();
    for (var j = 0; j < elements.length; j++) {
      if (elements[j][1] !== element) continue;
      var node = root.querySelector(elements[j][0]);
      if (node) { mark(node); return; }
    }
  }
  function listen(root) {
    if (current && current.picked) remark(root, current.picked);
    root.addEventListener("click", function (e) {
      var hit = picked(e);
      e.preventDefault();
      e.stopPropagation();
      if (!hit) return;
      mark(hit.node);
      post({ type: "pick", element: hit.element });
    }, true);
    /* hovering must not change the app (e.g. slide curtains in) while the user picks elements */
    ["mouseenter", "focusin", "touchstart"].forEach(function (name) {
      root.addEventListener(name, function (e) { e.stopPropagation(); }, true);
    });
  }

  function windows(offhours) {
    var t = Date.now(), out = [], day = 864e5;
    if (!offhours) return [[t - 3600e3, t + 8 * 3600e3]];
    var first = new Date(t + day);
    first.setHours(9, 0, 0, 0);
    for (var i = 0; i < 7; i++) out.push([first.getTime() + i * day, first.getTime() + i * day + 9 * 3600e3]);
    return out;
  }

  function shadow() {
    var host = d.querySelector("[data-perezvon=" + key + "]");
    return host && host.shadowRoot;
  }
  function waitFor(test, then, tries) {
    var found = test();
    if (found) { then(found); return; }
    if ((tries || 0) > 200) { post({ type: "failed", reason: "screen" }); return; }
    setTimeout(function () { waitFor(test, then, (tries || 0) + 1); }, 25);
  }
  /* fills the app's form with a number, ticks its checkboxes (consent) and submits it to the app's own handler */
  function fillAndSend(root) {
    var tel = root.querySelector("input[type=tel]");
    tel.value = "9991234567";
    tel.dispatchEvent(new Event("input", { bubbles: true }));
    var selects = root.querySelectorAll("form select");
    for (var i = 0; i < selects.length; i++) if (!selects[i].value && selects[i].options.length > 1) {
      selects[i].value = selects[i].options[1].value;
      selects[i].dispatchEvent(new Event("change", { bubbles: true }));
    }
    root.querySelectorAll("form input[type=checkbox]").forEach(function (box) { box.checked = true; });
    var form = root.querySelector("form");
    /* a sandboxed frame may not submit forms: the app's own submit handler gets the event */
    form.dispatchEvent(new Event("submit", { cancelable: true, bubbles: true }));
  }
  var api = {
    shadow: shadow, waitFor: waitFor, fillAndSend: fillAndSend, body: body,
    shown: function (root, screen) { listen(root); post({ type: "shown", screen: screen }); }
  };

  function start(msg) {
    if (started) return;
    started = true;
    current = msg;
    var hooks = apps[key] || {}, cfg = msg.config;
    cfg.hours = { windows: windows(msg.offhours) };
    var P = w.Perezvon = {
      boot: { t: "preview0000", b: "", h: [w.location.hostname], r: body.getAttribute("data-runtime"), a: [body.getAttribute("data-script")] },
      config: Promise.resolve(cfg), d: [],
      q: [["ready", function () {
        setTimeout(function () {
          if (hooks.ready) hooks.ready(api, msg);
          if (hooks.show) hooks.show(api, msg);
          else waitFor(shadow, function (root) { api.shown(root, msg.screen); });
        }, 0);
      }]]
    };
    P.define = function (k, f) { P.d.push([k, f]); };
    [P.boot.r, P.boot.a[0]].forEach(function (src) {
      var s = d.createElement("script");
      s.src = src;
      s.async = true;
      d.head.appendChild(s);
    });
  }

  w.addEventListener("message", function (e) {
    if (e.source !== w.parent || !e.data || e.data.type !== "render") return;
    start(e.data);
  });
  /* the app's preview scripts are deferred after this one: they have defined themselves by now */
  d.addEventListener("DOMContentLoaded", function () { post({ type: "ready" }); });
})(window, document);
