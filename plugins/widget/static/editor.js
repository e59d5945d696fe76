/* The widget's part of the admin's visual editor (docs/admin.md, "The visual editor"): which settings
   each picked element edits in which layer (a trigger's look, the off-hours look, a screen's texts),
   "Apply style to all triggers", the rule sections, and how the preview shows a trigger and format.
   The elements and their fields are declared in plugins/widget/app.py (Widget.editor). */
(function (w, d) {
  "use strict";
  var TRIGGERS = ["time", "exit", "scroll", "hash", "button"];
  var TIME_SCREEN = { title: ["title"], time_link: ["back_text"], select: ["day_label", "time_label"], button: ["button_text"] };

  function fieldsOf(api, element) {
    return (api.data.elements || []).filter(function (e) { return e.name === element; }).map(function (e) { return e.fields; })[0] || [];
  }
  function offhours(api) { return api.val("pv-hours") === "offhours"; }
  function lookLayer(api) { return offhours(api) ? "offhours_look" : "trigger_looks." + api.val("pv-trigger"); }
  function effective(api, name) {
    var draft = api.draft(), v = api.get(draft, "look." + name), t = api.get(draft, "trigger_looks." + api.val("pv-trigger") + "." + name);
    if (t != null) v = t;
    if (offhours(api)) { var o = api.get(draft, "offhours_look." + name); if (o != null) v = o; }
    return v;
  }
  /* the paths an element edits on the current screen; look: true for the styled look */
  function spec(api, element) {
    var screen = api.val("pv-screen"), S = api.schema, T = api.texts;
    if (element === "launcher") return { layer: T.settings, paths: Object.keys(S.launcher.fields).map(function (k) { return "launcher." + k; }) };
    if (screen === "time" && TIME_SCREEN[element]) {
      return { layer: T["screen-layer"], paths: TIME_SCREEN[element].map(function (k) { return "time_screen." + k; }) };
    }
    if (screen === "closing" && (element === "title" || element === "text" || element === "state")) {
      var cl = element === "state" ? Object.keys(S.closing.fields).filter(function (k) { return k.indexOf("state_") === 0; })
        : [(offhours(api) ? "offhours_" : "working_") + element];
      return { layer: T["screen-layer"], paths: cl.map(function (k) { return "closing." + k; }) };
    }
    return { look: true, layer: offhours(api) ? T["offhours-layer"] : T["trigger-layer"], paths: fieldsOf(api, element) };
  }
  function applyButton(api) {
    var button = d.getElementById("apply-all");
    if (button) return button;
    var p = d.createElement("p");
    button = d.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.id = "apply-all";
    button.disabled = true;
    button.textContent = api.texts["apply-all"];
    button.addEventListener("click", function () {
      var s = spec(api, api.picked()), draft = api.draft();
      if (!s.look) return;
      s.paths.forEach(function (name) {
        var v = effective(api, name);
        if (v === undefined) return;
        api.set(draft, "look." + name, v);
        TRIGGERS.forEach(function (t) {
          if (api.get(draft, "trigger_looks." + t) == null) api.set(draft, "trigger_looks." + t, {});
          api.set(draft, "trigger_looks." + t + "." + name, v);
        });
      });
      d.getElementById("element-layer").textContent = api.texts.applied;
      api.changed();
    });
    p.appendChild(button);
    var fields = d.getElementById("element-fields");
    fields.parentNode.insertBefore(p, fields.nextSibling);
    return button;
  }

  w.PerezvonEditor.define("widget", {
    sections: function (api, host) {
      var S = api.schema, draft = api.draft();
      applyButton(api);
      ["thresholds", "offhours_thresholds", "launcher", "channels"].forEach(function (name) {
        host.appendChild(api.groupBox(S[name].label, name, S[name].fields, draft));
      });
      host.appendChild(api.listBox(S.rules.label, "rules", S.rules, draft));
      host.appendChild(api.listBox(S.hashes.label, "hashes", S.hashes, draft));
    },
    panel: function (api, element, host) {
      var apply = applyButton(api);
      if (!element) return "";
      var s = spec(api, element), draft = api.draft(), S = api.schema;
      s.paths.forEach(function (p) {
        if (s.look) {
          var D = S.look.fields[p], target = lookLayer(api) + "." + p;
          if (!D) return;
          host.appendChild(api.input(target, D, effective(api, p), function (v) {
            if (api.get(draft, lookLayer(api)) == null) api.set(draft, lookLayer(api), {});
            api.set(draft, target, v);
            api.changed();
          }));
        } else {
          var D2 = api.desc(p);
          if (D2 && api.scalar(D2)) host.appendChild(api.input(p, D2, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
        }
      });
      apply.disabled = !s.look || offhours(api);
      return s.layer;
    },
    /* the preview opens the widget at once, through a HASH link, with the chosen trigger's look and format */
    previewConfig: function (api, config) {
      var C = config.apps[0].config;
      var never = { time_seconds: null, exit: false, exit_after_seconds: 0, scroll_percent: null };
      C.thresholds = never; C.offhours_thresholds = never; C.rules = [];
      Object.keys(C.channels).forEach(function (k) { C.channels[k] = { show: true }; });
      C.trigger_looks.hash = C.trigger_looks[api.val("pv-trigger")];
      C.hashes = [{ name: "pv-preview", format: api.val("pv-format") || null, look: null }];
      return config;
    }
  });
})(window, document);
