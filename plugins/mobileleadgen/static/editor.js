/* The mobile lead generator's part of the admin's visual editor (docs/admin.md, "The visual editor"):
   the generator chooser, each generator's sections, where a picked element's settings live (the
   chosen generator's sheet, or its working or off-hours variant), and a preview of that one generator
   at once. The elements and their fields are declared in plugins/mobileleadgen/app.py. */
(function (w, d) {
  "use strict";
  function index(api) { return +api.val("pv-generator") || 0; }
  function generator(api) { return (api.draft().generators || [])[index(api)] || null; }
  function button(id, text, onclick) {
    var b = d.createElement("button");
    b.type = "button"; b.className = "secondary"; b.id = id; b.textContent = text;
    b.addEventListener("click", onclick);
    return b;
  }

  w.PerezvonEditor.define("mobileleadgen", {
    sections: function (api, host) {
      var draft = api.draft(), T = api.texts, select = api.$("pv-generator"), at = index(api);
      select.textContent = "";
      (draft.generators || []).forEach(function (g, i) {
        var o = d.createElement("option");
        o.value = String(i);
        o.textContent = (g.name || "") + " (" + g.id + ")";
        select.appendChild(o);
      });
      select.value = String(Math.min(at, Math.max(0, (draft.generators || []).length - 1)));
      host.appendChild(button("add-generator", T["new-generator"], function () {
        draft.generators = draft.generators || [];
        draft.generators.push({ id: "mobile" + (draft.generators.length + 1), name: T["new-generator"] });
        api.sections();
        api.$("pv-generator").value = String(draft.generators.length - 1);
        api.changed();
      }));
      var g = generator(api), i = index(api);
      if (!g) return;
      host.appendChild(button("remove-generator", T.remove + ": " + (g.name || g.id), function () {
        draft.generators.splice(i, 1);
        api.$("pv-generator").value = "0";
        api.sections(); api.unpick(); api.panel(); api.changed();
      }));
      var G = api.schema.generators.fields;
      host.appendChild(api.groupBox(g.name || g.id, "generators." + i, G, draft));
      host.appendChild(api.groupBox(G.trigger.label, "generators." + i + ".trigger", G.trigger.fields, draft));
      host.appendChild(api.listBox(G.filters.label, "generators." + i + ".filters", G.filters, draft));
    },
    panel: function (api, element, host) {
      if (!element) return "";
      var draft = api.draft(), g = "generators." + index(api) + ".", base = g + (api.val("pv-hours") === "offhours" ? "offhours" : "working") + ".";
      var declared = (api.data.elements || []).filter(function (e) { return e.name === element; })[0];
      ((declared && declared.fields) || []).forEach(function (f) {
        var p = (f.indexOf("sheet.") === 0 ? g : base) + f, D = api.desc(p);
        if (D && api.scalar(D)) host.appendChild(api.input(p, D, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
      });
      return api.texts["generator-layer"];
    },
    option: function (api, name) { if (name === "generator") api.sections(); },
    /* the preview shows the chosen generator alone, at once; its form opens on a tap */
    previewSettings: function (api, s) {
      var g = s.generators && s.generators[index(api)];
      if (!g) return null;
      g.enabled = true; g.active_from = null; g.active_to = null; g.filters = []; g.channels = ["direct", "organic", "ads", "referral", "social"];
      g.trigger = { kind: "time", time_seconds: 1 };
      ["working", "offhours"].forEach(function (v) { if (g[v] && g[v].call) g[v].call.form_on = "tap"; });
      s.generators = [g];
      return s;
    }
  });
})(window, document);
