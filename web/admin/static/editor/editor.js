/* The visual editor's shell (docs/admin.md, "The visual editor"): the form, the inputs built from the
   plugin's schema (described by the server in #editor-data), the preview frame running the real site
   script with the draft (validated and turned into the site config by the server, .../draft), errors
   and saving. Everything that knows an app's markup or settings lives in the app's own editor script
   (declared by its Application.editor), which calls PerezvonEditor.define(key, hooks) with:
     sections(api, host)         the rule and settings sections under the element editor
     panel(api, element, host)   the inputs of the picked element; returns the text saying where edits go
     previewSettings(api, s)     the settings the preview runs (null: nothing to show)
     previewConfig(api, config)  the site config the preview frame gets
     option(api, name)           an option above the preview changed
   The app's editor scripts load after this one (all deferred), so the editor starts on DOMContentLoaded. */
(function (w, d) {
  "use strict";
  var apps = {};
  w.PerezvonEditor = { define: function (key, hooks) { apps[key] = hooks; } };
  d.addEventListener("DOMContentLoaded", function () { start(); });

  function start() {
  var form = d.getElementById("editor-form");
  if (!form) return;
  var data = JSON.parse(d.getElementById("editor-data").textContent);
  var app = apps[data.app] || {};
  var S = data.schema, draft = JSON.parse(JSON.stringify(data.settings || {})), original = JSON.stringify(draft);
  var T = Object.assign({}, data.texts || {});
  d.getElementById("tpl-texts").content.querySelectorAll("[data-t]").forEach(function (n) { T[n.getAttribute("data-t")] = n.textContent; });
  var LABELS = {};
  (data.elements || []).forEach(function (e) { LABELS[e.name] = e.label; });
  var frame = d.getElementById("pv-frame"), csrf = form.querySelector("[name=csrf_token]").value;
  var picked = null, errors = data.errors || {};
  function $(id) { return d.getElementById(id); }
  function val(id) { var n = $(id); return n ? n.value : ""; }
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

  /* a choice is stored as its code and read as its label, in the page's language */
  function choiceLabel(D, code) {
    var i = D.choices.indexOf(code);
    return (D.labels && i >= 0 && D.labels[i]) || code;
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
      opts.forEach(function (c) { var o = d.createElement("option"); o.value = c; o.textContent = c ? choiceLabel(D, c) : T.none; control.appendChild(o); });
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
        l.appendChild(d.createTextNode(" " + choiceLabel(D, c)));
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

  /* --- what the app's editor script gets ------------------------------------------------ */
  var api = {
    schema: S, texts: T, data: data, draft: function () { return draft; }, picked: function () { return picked; },
    get: get, set: set, desc: desc, input: input, scalar: scalar, groupBox: groupBox, listBox: listBox,
    val: val, $: $, changed: function () { changed(); }, panel: function () { panel(); }, sections: function () { sections(); },
    unpick: function () { picked = null; }
  };
  function sections() {
    var host = $("sections");
    host.textContent = "";
    if (app.sections) app.sections(api, host);
  }

  /* --- the element picked on the preview ---------------------------------------------- */
  function panel() {
    var host = $("element-fields");
    host.textContent = "";
    if (!picked) { if (app.panel) app.panel(api, null, host); return; }
    $("element-name").textContent = LABELS[picked] || picked;
    $("element-name").setAttribute("data-element", picked);
    $("element-layer").textContent = app.panel ? (app.panel(api, picked, host) || "") : "";
  }

  /* --- the preview ---------------------------------------------------------------------- */
  var version = 0, timer = null, pending = null;
  function previewSettings() {
    var s = JSON.parse(JSON.stringify(draft));
    return app.previewSettings ? app.previewSettings(api, s) : s;
  }
  function configFor(config) { return app.previewConfig ? app.previewConfig(api, config) : config; }
  function options() {
    var out = {};
    (data.options || []).forEach(function (o) { out[o.name] = val("pv-" + o.name); });
    return out;
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
          pending = { type: "render", config: configFor(answer.config), options: options(), screen: val("pv-screen"), picked: picked,
            offhours: val("pv-hours") === "offhours", elements: (data.elements || []).map(function (e) { return [e.selector, e.name]; }) };
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
  (data.options || []).map(function (o) { return o.name; }).concat(["hours"]).forEach(function (name) {
    var n = $("pv-" + name);
    if (n) n.addEventListener("change", function () { if (app.option) app.option(api, name); panel(); refresh(); });
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
  }
})(window, document);
