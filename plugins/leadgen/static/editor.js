/* The lead generator's part of the admin's visual editor (docs/admin.md, "The visual editor"): the
   generator chooser, each generator's sections, where a picked element's settings live (the chosen
   generator, working or off-hours variant), and a preview of that one generator at once.
   The elements and their fields are declared in plugins/leadgen/app.py (Leadgen.editor). */
(function (w, d) {
  "use strict";
  function index(api) { return +api.val("pv-generator") || 0; }
  function generator(api) { return (api.draft().generators || [])[index(api)] || null; }

  w.PerezvonEditor.define("leadgen", {
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
      var add = d.createElement("button");
      add.type = "button";
      add.className = "secondary";
      add.id = "add-generator";
      add.textContent = T["new-generator"];
      add.addEventListener("click", function () {
        draft.generators = draft.generators || [];
        draft.generators.push({ id: "promo" + (draft.generators.length + 1), name: T["new-generator"] });
        api.sections();
        api.$("pv-generator").value = String(draft.generators.length - 1);
        api.changed();
      });
      host.appendChild(add);
      var g = generator(api), i = index(api);
      if (!g) return;
      var drop = d.createElement("button");
      drop.type = "button";
      drop.className = "secondary";
      drop.id = "remove-generator";
      drop.textContent = T.remove + ": " + (g.name || g.id);
      drop.addEventListener("click", function () {
        draft.generators.splice(i, 1);
        api.$("pv-generator").value = "0";
        api.sections(); api.unpick(); api.panel(); api.changed();
      });
      host.appendChild(drop);
      var G = api.schema.generators.fields;
      host.appendChild(api.groupBox(g.name || g.id, "generators." + i, G, draft));
      host.appendChild(api.groupBox(G.trigger.label, "generators." + i + ".trigger", G.trigger.fields, draft));
      host.appendChild(api.listBox(G.filters.label, "generators." + i + ".filters", G.filters, draft));
    },
    panel: function (api, element, host) {
      if (!element) return "";
      var draft = api.draft(), base = "generators." + index(api) + "." + (api.val("pv-hours") === "offhours" ? "offhours" : "working") + ".";
      var declared = (api.data.elements || []).filter(function (e) { return e.name === element; })[0];
      ((declared && declared.fields) || []).forEach(function (f) {
        var p = base + f, D = api.desc(p);
        if (D && api.scalar(D)) host.appendChild(api.input(p, D, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
      });
      return api.texts["generator-layer"];
    },
    option: function (api, name) { if (name === "generator") api.sections(); },
    /* the preview shows the chosen generator alone, at once, its curtains on hover */
    previewSettings: function (api, s) {
      var g = s.generators && s.generators[index(api)];
      if (!g) return null;
      g.enabled = true; g.active_from = null; g.active_to = null; g.filters = []; g.channels = ["direct", "organic", "ads", "referral", "social"];
      g.trigger = { kind: "time", time_seconds: 1 };
      ["working", "offhours"].forEach(function (v) { if (g[v] && g[v].call) { g[v].call.curtain_on = "hover"; } });
      s.generators = [g];
      return s;
    }
  });
})(window, document);
