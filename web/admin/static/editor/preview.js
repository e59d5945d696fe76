/* The editor's preview frame (docs/admin.md, "The visual editor"): runs the real site runtime
   and the app's own script with the draft config the editor posts in, opens the chosen screen,
   and reports which element the user clicked. It lives in a sandboxed frame whose CSP allows
   no connection; fetch is answered here, so no lead can leave the preview. */
(function (w, d) {
  "use strict";
  var body = d.body, app = body.getAttribute("data-app"), started = false, current = null;
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

  /* which element a click landed on: the widget's and the lead generator's own classes */
  var PICK = {
    widget: [[".x", "close"], [".go", "button"], [".lnk", "time_link"], [".tl", "time_link"], ["h2", "title"],
      ["input[type=tel]", "phone"], ["input[name=name]", "name"], ["select", "select"], [".ok", "consent"],
      [".dis", "disclaimer"], [".state", "state"], [".big", "text"], ["p", "text"], [".btn", "launcher"],
      [".box", "box"], [".ov", "overlay"]],
    leadgen: [[".x", "close"], [".go", "button"], [".info", "info"], [".form h3", "form_title"],
      ["input", "field"], ["select", "field"], [".ok", "consent"], [".dis", "disclaimer"], [".form", "form"],
      [".timer h2", "timer_title"], [".timer", "timer"], [".cover h2", "text1"], [".cover p", "text2"],
      [".cover", "cover"], [".box", "cover"]]
  };
  var marked = null;
  function picked(e) {
    var path = e.composedPath ? e.composedPath() : [e.target], table = PICK[app] || [];
    for (var i = 0; i < path.length; i++) {
      var node = path[i];
      if (!node || !node.matches) continue;
      for (var j = 0; j < table.length; j++) {
        if (node.matches(table[j][0])) return { node: node, element: table[j][1] };
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
    var table = PICK[app] || [];
    for (var j = 0; j < table.length; j++) {
      if (table[j][1] !== element) continue;
      var node = root.querySelector(table[j][0]);
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
    /* hovering the cover must not slide the curtains in while the user picks elements */
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
    var host = d.querySelector("[data-perezvon=" + app + "]");
    return host && host.shadowRoot;
  }
  function waitFor(test, then, tries) {
    var found = test();
    if (found) { then(found); return; }
    if ((tries || 0) > 200) { post({ type: "failed", reason: "screen" }); return; }
    setTimeout(function () { waitFor(test, then, (tries || 0) + 1); }, 25);
  }
  function fillAndSend(root, done) {
    var tel = root.querySelector("input[type=tel]");
    tel.value = "9991234567";
    tel.dispatchEvent(new Event("input", { bubbles: true }));
    var selects = root.querySelectorAll("form select");
    for (var i = 0; i < selects.length; i++) if (!selects[i].value && selects[i].options.length > 1) {
      selects[i].value = selects[i].options[1].value;
      selects[i].dispatchEvent(new Event("change", { bubbles: true }));
    }
    var consent = root.querySelector(".ok input");
    if (consent) consent.checked = true;
    var form = root.querySelector("form");
    /* a sandboxed frame may not submit forms: the app's own submit handler gets the event */
    form.dispatchEvent(new Event("submit", { cancelable: true, bubbles: true }));
    done();
  }

  function show(msg) {
    var root = shadow();
    if (app === "widget") {
      if (!root) return;
      if (msg.screen === "time") {
        var link = root.querySelector(".tl .lnk");
        if (link) link.click();
      } else if (msg.screen === "closing") {
        fillAndSend(root, function () {});
      }
      waitFor(function () { var n = root.querySelector("[data-screen]"); return n && n.getAttribute("data-screen").indexOf(msg.screen === "closing" ? "closing" : "") === 0 && n; },
        function () { listen(root); post({ type: "shown", screen: root.querySelector("[data-screen]").getAttribute("data-screen") }); });
    } else {
      waitFor(function () { var r = shadow(); return r && r.querySelector(".box") && r; }, function (r) { showLeadgen(r, msg); });
    }
  }
  function showLeadgen(root, msg) {
    {
      if (msg.screen === "call" || msg.screen === "timer") {
        var cover = root.querySelector(".cover");
        if (cover) cover.click();
      }
      if (msg.screen === "timer") {
        waitFor(function () { return root.querySelector(".open form"); }, function () {
          fillAndSend(root, function () {});
          waitFor(function () { return root.querySelector(".timer"); }, function () { listen(root); post({ type: "shown", screen: "timer" }); });
        });
      } else {
        waitFor(function () { return msg.screen === "call" ? root.querySelector(".open form") : root.querySelector(".box"); },
          function () { listen(root); post({ type: "shown", screen: msg.screen }); });
      }
    }
  }

  function start(msg) {
    if (started) return;
    started = true;
    current = msg;
    var cfg = msg.config;
    cfg.hours = { windows: windows(msg.offhours) };
    var P = w.Perezvon = {
      boot: { t: "preview0000", b: "", h: [w.location.hostname], r: body.getAttribute("data-runtime"), a: [body.getAttribute("data-script")] },
      config: Promise.resolve(cfg), d: [],
      q: [["ready", function () {
        setTimeout(function () {
          if (app === "widget") {
            var a = d.createElement("a");
            a.href = "#pv-preview";
            body.appendChild(a);
            a.click();
            a.remove();
          }
          show(msg);
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
  post({ type: "ready" });
})(window, document);
