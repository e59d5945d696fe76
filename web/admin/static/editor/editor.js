/* The visual editor of the widget and the lead generator (docs/admin.md, "The visual editor").
   Its inputs are built from the plugin's schema (described by the server in #editor-data);
   the preview frame runs the real site script with the draft, validated and turned into the
   site config by the server (.../draft). Saving posts the draft as JSON; the schema checks it. */
(function (d) {
  "use strict";
  var form = d.getElementById("editor-form");
  if (!form) return;
  var data = JSON.parse(d.getElementById("editor-data").textContent);
  var S = data.schema, draft = JSON.parse(JSON.stringify(data.settings || {})), original = JSON.stringify(draft);
  var T = {};
  d.getElementById("tpl-texts").content.querySelectorAll("[data-t]").forEach(function (n) { T[n.getAttribute("data-t")] = n.textContent; });
  var frame = d.getElementById("pv-frame"), csrf = form.querySelector("[name=csrf_token]").value;
  var TRIGGERS = ["time", "exit", "scroll", "hash", "button"];
  var picked = null, errors = data.errors || {};
  function $(id) { return d.getElementById(id); }
  function val(id) { var n = $(id); return n ? n.value : ""; }

  /* --- which settings an element of the preview has (the schema's per-element styling) --- */
  var LOOK = {
    box: ["format", "background", "background_image", "padding", "radius", "font_family"],
    overlay: ["overlay"], close: ["close_color"], title: ["title", "title_color", "title_size"], text: ["text", "text_color"],
    phone: ["phone_placeholder", "phone_mask", "field_background", "field_border", "field_text_color"],
    name: ["name_field", "name_placeholder", "field_background", "field_border", "field_text_color"],
    select: ["select_background", "select_border", "select_text_color"],
    button: ["button_text", "button_from", "button_to", "button_hover_from", "button_hover_to", "button_text_color"],
    time_link: ["time_link", "link_color"], consent: ["consent_text", "consent_checked"],
    disclaimer: ["disclaimer", "link1_text", "link1_url", "link2_text", "link2_url", "disclaimer_color"]
  };
  var LEADGEN = {
    cover: ["cover.background", "cover.background_image"], close: ["cover.close_color"],
    text1: ["cover.text1", "cover.text1_color", "cover.text1_size"], text2: ["cover.text2", "cover.text2_color"],
    info: ["call.info_text", "call.info_text_color", "call.info_background", "call.info_image"],
    form: ["call.form_background", "call.form_text_color", "call.curtain_on", "call.curtain_delay_seconds"],
    form_title: ["call.form_title", "call.form_text_color"],
    field: ["call.name_field", "call.name_placeholder", "call.phone_placeholder", "call.phone_mask", "call.day_label", "call.time_label"],
    button: ["call.button_text", "call.button_from", "call.button_to", "call.button_hover_from", "call.button_hover_to", "call.button_text_color"],
    consent: ["call.consent_text"], disclaimer: ["call.disclaimer", "call.link1_text", "call.link1_url", "call.link2_text", "call.link2_url"],
    timer: ["timer.background", "timer.text_color", "timer.accent_color", "timer.text"], timer_title: ["timer.title", "timer.text_color"]
  };

  function get(obj, path) { return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj); }
  function set(obj, path, value) {
    var keys = path.split("."), o = obj;
    for (var i = 0; i < keys.length - 1; i++) { if (o[keys[i]] == null || typeof o[keys[i]] !== "object") o[keys[i]] = {}; o = o[keys[i]]; }
    o[keys[keys.length - 1]] = value;
  }
  function desc(path) {
    var parts = path.split("."), node = { fields: S };
    for (var i = 0; i < parts.length; i++) {
      if (/^\d+$/.test(parts[i])) continue;
      node = node.fields && node.fields[parts[i]];
      if (!node) return null;
    }
    return node;
  }

  /* --- one input built from the schema's description ------------------------------ */
  function input(path, D, value, onChange) {
    var wrap = d.createElement("div"), id = "ed-" + path.replace(/\./g, "-"), control;
    wrap.className = "field field-" + D.kind;
    wrap.setAttribute("data-path", path);
    var label = d.createElement("label");
    label.textContent = D.label;
    label.htmlFor = id;
    if (D.kind === "checkbox") {
      control = d.createElement("input");
      control.type = "checkbox";
      control.checked = !!value;
      control.addEventListener("change", function () { onChange(control.checked); });
    } else if (D.kind === "select") {
      control = d.createElement("select");
      var opts = (D.nullable ? [""] : []).concat(D.choices);
      opts.forEach(function (c) { var o = d.createElement("option"); o.value = c; o.textContent = c || T.none; control.appendChild(o); });
      control.value = value == null ? "" : String(value);
      control.addEventListener("change", function () { onChange(control.value === "" ? null : control.value); });
    } else if (D.kind === "multi") {
      control = d.createElement("span");
      control.className = "multi";
      D.choices.forEach(function (c) {
        var l = d.createElement("label"), box = d.createElement("input");
        box.type = "checkbox";
        box.value = c;
        box.checked = (value || []).indexOf(c) >= 0;
        box.addEventListener("change", function () {
          onChange(Array.prototype.filter.call(control.querySelectorAll("input"), function (b) { return b.checked; }).map(function (b) { return b.value; }));
        });
        l.appendChild(box);
        l.appendChild(d.createTextNode(" " + c));
        control.appendChild(l);
      });
    } else {
      control = d.createElement(D.kind === "textarea" ? "textarea" : "input");
      if (D.kind === "number") { control.type = "number"; control.step = D.step === 1 ? "1" : "any"; }
      else if (control.tagName === "INPUT") control.type = "text";
      if (D.kind === "textarea") control.rows = 2;
      control.value = value == null ? "" : String(value);
      control.addEventListener("input", function () {
        var v = control.value;
        if (D.kind === "number") v = v.trim() === "" ? (D.nullable ? null : undefined) : Number(v);
        else if (D.kind === "color" && v.trim() === "" && D.nullable) v = null;
        if (v !== undefined) onChange(v);
        if (swatch) swatch.style.setProperty("background", control.value);
      });
    }
    control.id = id;
    var swatch = null;
    if (D.kind === "color") {
      swatch = d.createElement("span");
      swatch.className = "swatch";
      swatch.style.setProperty("background", control.value);
    }
    if (D.kind === "checkbox") { label.insertBefore(control, label.firstChild); wrap.appendChild(label); }
    else { wrap.appendChild(label); wrap.appendChild(control); if (swatch) wrap.appendChild(swatch); }
    if (D.help) { var h = d.createElement("span"); h.className = "help"; h.textContent = D.help; wrap.appendChild(h); }
    (errors[path] || []).forEach(function (e) { var s = d.createElement("span"); s.className = "error"; s.textContent = e; wrap.appendChild(s); });
    if (errors[path]) wrap.className += " has-error";
    return wrap;
  }
  function scalar(D) { return D && D.kind !== "group" && D.kind !== "list"; }

  /* a group's own fields (nested parts that are looks or thresholds overrides stay as they are) */
  function groupBox(title, path, fields, holder) {
    var box = d.createElement("fieldset");
    box.className = "group";
    var legend = d.createElement("legend");
    legend.textContent = title;
    box.appendChild(legend);
    Object.keys(fields).forEach(function (name) {
      var D = fields[name];
      if (D.kind === "group" && path.split(".").length < 2 && Object.keys(D.fields).some(function (k) { return scalar(D.fields[k]); }) && !/look|thresholds/.test(name)) {
        box.appendChild(groupBox(D.label, path + "." + name, D.fields, holder));
        return;
      }
      if (!scalar(D)) return;
      var p = path + "." + name;
      box.appendChild(input(p, D, get(holder, p), function (v) { set(holder, p, v); changed(); }));
    });
    return box;
  }
  /* a list of rules: a row each, add and remove */
  function listBox(title, path, D, holder) {
    var box = d.createElement("fieldset"), rows = d.createElement("div");
    box.className = "group rules";
    box.setAttribute("data-list", path);
    var legend = d.createElement("legend");
    legend.textContent = title;
    box.appendChild(legend);
    box.appendChild(rows);
    function draw() {
      rows.textContent = "";
      var items = get(holder, path) || [];
      items.forEach(function (item, i) {
        var row = d.createElement("div");
        row.className = "rule-row";
        Object.keys(D.fields).forEach(function (name) {
          var F = D.fields[name];
          if (!scalar(F)) return;
          var p = path + "." + i + "." + name;
          row.appendChild(input(p, F, item[name], function (v) { item[name] = v; changed(); }));
        });
        var rm = d.createElement("button");
        rm.type = "button";
        rm.className = "secondary remove-row";
        rm.textContent = T.remove;
        rm.addEventListener("click", function () { items.splice(i, 1); draw(); changed(); });
        row.appendChild(rm);
        rows.appendChild(row);
      });
    }
    var add = d.createElement("button");
    add.type = "button";
    add.className = "secondary add-row";
    add.textContent = T.add;
    add.addEventListener("click", function () {
      var items = get(holder, path);
      if (!Array.isArray(items)) { items = []; set(holder, path, items); }
      var item = {};
      Object.keys(D.fields).forEach(function (name) { var F = D.fields[name]; if ("default" in F) item[name] = F["default"]; else if (F.nullable) item[name] = null; });
      items.push(item);
      draw();
      changed();
    });
    box.appendChild(add);
    draw();
    return box;
  }

  /* --- the sections under the element editor ---------------------------------------- */
  function generator() { var g = (draft.generators || [])[+val("pv-generator") || 0]; return g || null; }
  function sections() {
    var host = $("sections");
    host.textContent = "";
    if (data.app === "widget") {
      ["thresholds", "offhours_thresholds", "launcher", "channels"].forEach(function (name) {
        host.appendChild(groupBox(S[name].label, name, S[name].fields, draft));
      });
      host.appendChild(listBox(S.rules.label, "rules", S.rules, draft));
      host.appendChild(listBox(S.hashes.label, "hashes", S.hashes, draft));
    } else {
      var select = $("pv-generator"), at = +select.value || 0;
      select.textContent = "";
      (draft.generators || []).forEach(function (g, i) {
        var o = d.createElement("option");
        o.value = String(i);
        o.textContent = (g.name || "") + " (" + g.id + ")";
        select.appendChild(o);
      });
      select.value = String(Math.min(at, Math.max(0, (draft.generators || []).length - 1)));
      var add = d.createElement("button");
      add.type = "button";
      add.className = "secondary";
      add.id = "add-generator";
      add.textContent = T["new-generator"];
      add.addEventListener("click", function () {
        draft.generators = draft.generators || [];
        draft.generators.push({ id: "promo" + (draft.generators.length + 1), name: T["new-generator"] });
        sections();
        $("pv-generator").value = String(draft.generators.length - 1);
        changed();
      });
      host.appendChild(add);
      var g = generator(), i = +select.value || 0;
      if (!g) return;
      var drop = d.createElement("button");
      drop.type = "button";
      drop.className = "secondary";
      drop.id = "remove-generator";
      drop.textContent = T.remove + ": " + (g.name || g.id);
      drop.addEventListener("click", function () {
        draft.generators.splice(i, 1);
        $("pv-generator").value = "0";
        sections(); picked = null; panel(); changed();
      });
      host.appendChild(drop);
      var G = S.generators.fields;
      host.appendChild(groupBox(g.name || g.id, "generators." + i, G, draft));
      host.appendChild(groupBox(G.trigger.label, "generators." + i + ".trigger", G.trigger.fields, draft));
      host.appendChild(listBox(G.filters.label, "generators." + i + ".filters", G.filters, draft));
    }
  }

  /* --- the element picked on the preview ---------------------------------------------- */
  function elementFields(element) {
    var screen = val("pv-screen"), off = val("pv-hours") === "offhours";
    if (data.app === "leadgen") {
      var i = +val("pv-generator") || 0, base = "generators." + i + "." + (off ? "offhours" : "working") + ".";
      return { layer: T["generator-layer"], paths: (LEADGEN[element] || []).map(function (p) { return base + p; }) };
    }
    if (element === "launcher") return { layer: T.settings, paths: Object.keys(S.launcher.fields).map(function (k) { return "launcher." + k; }) };
    if (screen === "time" && (element === "title" || element === "time_link" || element === "select" || element === "button")) {
      var ts = { title: ["title"], time_link: ["back_text"], select: ["day_label", "time_label"], button: ["button_text"] }[element];
      return { layer: T["screen-layer"], paths: ts.map(function (k) { return "time_screen." + k; }) };
    }
    if (screen === "closing" && (element === "title" || element === "text" || element === "state")) {
      var cl = element === "state" ? Object.keys(S.closing.fields).filter(function (k) { return k.indexOf("state_") === 0; })
        : [(off ? "offhours_" : "working_") + element];
      return { layer: T["screen-layer"], paths: cl.map(function (k) { return "closing." + k; }) };
    }
    return { look: true, layer: off ? T["offhours-layer"] : T["trigger-layer"], paths: LOOK[element] || [] };
  }
  function lookLayer() { return val("pv-hours") === "offhours" ? "offhours_look" : "trigger_looks." + val("pv-trigger"); }
  function effective(name) {
    var v = get(draft, "look." + name), t = get(draft, "trigger_looks." + val("pv-trigger") + "." + name);
    if (t != null) v = t;
    if (val("pv-hours") === "offhours") { var o = get(draft, "offhours_look." + name); if (o != null) v = o; }
    return v;
  }
  function panel() {
    var host = $("element-fields");
    host.textContent = "";
    var apply = $("apply-all");
    if (!picked) return;
    var spec = elementFields(picked);
    $("element-name").textContent = T["el-" + picked] || picked;
    $("element-name").setAttribute("data-element", picked);
    $("element-layer").textContent = spec.layer;
    spec.paths.forEach(function (p) {
      if (spec.look) {
        var D = S.look.fields[p], target = lookLayer() + "." + p;
        if (!D) return;
        host.appendChild(input(target, D, effective(p), function (v) {
          if (get(draft, lookLayer()) == null) set(draft, lookLayer(), {});
          set(draft, target, v);
          changed();
        }));
      } else {
        var D2 = desc(p);
        if (D2 && scalar(D2)) host.appendChild(input(p, D2, get(draft, p), function (v) { set(draft, p, v); changed(); }));
      }
    });
    if (apply) apply.disabled = !spec.look || val("pv-hours") === "offhours";
  }
  var applyAll = $("apply-all");
  if (applyAll) applyAll.addEventListener("click", function () {
    var spec = elementFields(picked);
    if (!spec.look) return;
    spec.paths.forEach(function (name) {
      var v = effective(name);
      if (v === undefined) return;
      set(draft, "look." + name, v);
      TRIGGERS.forEach(function (t) {
        if (get(draft, "trigger_looks." + t) == null) set(draft, "trigger_looks." + t, {});
        set(draft, "trigger_looks." + t + "." + name, v);
      });
    });
    $("element-layer").textContent = T.applied;
    changed();
  });

  /* --- the preview ---------------------------------------------------------------------- */
  var version = 0, timer = null, pending = null;
  function previewSettings() {
    var s = JSON.parse(JSON.stringify(draft));
    if (data.app === "leadgen") {
      var g = s.generators && s.generators[+val("pv-generator") || 0];
      if (!g) return null;
      g.enabled = true; g.active_from = null; g.active_to = null; g.filters = []; g.channels = ["direct", "organic", "ads", "referral", "social"];
      g.trigger = { kind: "time", time_seconds: 1 };
      ["working", "offhours"].forEach(function (v) { if (g[v] && g[v].call) { g[v].call.curtain_on = "hover"; } });
      s.generators = [g];
    }
    return s;
  }
  function configFor(config) {
    var C = config.apps[0].config;
    if (data.app === "widget") {
      var never = { time_seconds: null, exit: false, exit_after_seconds: 0, scroll_percent: null };
      C.thresholds = never; C.offhours_thresholds = never; C.rules = [];
      Object.keys(C.channels).forEach(function (k) { C.channels[k] = { show: true }; });
      C.trigger_looks.hash = C.trigger_looks[val("pv-trigger")];
      C.hashes = [{ name: "pv-preview", format: val("pv-format") || null, look: null }];
    }
    return config;
  }
  function refresh() {
    clearTimeout(timer);
    frame.setAttribute("data-state", "loading");
    timer = setTimeout(function () {
      var s = previewSettings();
      if (!s) return;
      fetch(data.draft, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ settings: s }) })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          showErrors(answer.errors || {});
          if (!answer.config) return;
          pending = { type: "render", config: configFor(answer.config), screen: val("pv-screen"), picked: picked, offhours: val("pv-hours") === "offhours" };
          frame.setAttribute("data-state", "loading");
          frame.src = frame.getAttribute("data-src") + "?v=" + (++version);
        });
    }, 250);
  }
  window.addEventListener("message", function (e) {
    if (e.source !== frame.contentWindow || !e.data) return;
    if (e.data.type === "ready" && pending) frame.contentWindow.postMessage(pending, "*");
    else if (e.data.type === "shown") frame.setAttribute("data-state", "shown:" + e.data.screen);
    else if (e.data.type === "pick") { picked = e.data.element; frame.setAttribute("data-picked", picked); panel(); }
  });
  ["pv-format", "pv-trigger", "pv-screen", "pv-hours", "pv-generator"].forEach(function (id) {
    var n = $(id);
    if (n) n.addEventListener("change", function () { if (id === "pv-generator") sections(); panel(); refresh(); });
  });

  /* --- errors, save and cancel ------------------------------------------------------------ */
  function showErrors(errs) {
    var list = $("editor-error-list"), keys = Object.keys(errs);
    list.textContent = "";
    $("editor-errors").hidden = !keys.length;
    keys.forEach(function (path) {
      var li = d.createElement("li"), D = desc(path);
      li.setAttribute("data-path", path);
      li.textContent = (D ? D.label + " (" + path + ")" : path) + ": " + [].concat(errs[path]).join(" ");
      list.appendChild(li);
    });
  }
  function changed() {
    var bar = $("editor-save");
    if (bar) bar.hidden = JSON.stringify(draft) === original;
    refresh();
  }
  form.addEventListener("submit", function () { $("settings-json").value = JSON.stringify(draft); });
  var cancel = $("editor-cancel");
  /* Cancel goes back to what is stored (after a refused save the page holds the refused draft) */
  if (cancel) cancel.addEventListener("click", function () { window.location.assign(window.location.pathname); });
  if (!data.can_edit) form.querySelectorAll("#sections, #element-fields").forEach(function (n) { n.setAttribute("inert", ""); });

  showErrors(errors);
  if (Object.keys(errors).length) original = "";  /* a refused draft is still unsaved */
  if ($("editor-save")) $("editor-save").hidden = JSON.stringify(draft) === original;
  sections();
  refresh();
})(document);
