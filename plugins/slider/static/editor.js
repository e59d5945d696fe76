/* The slider's part of the admin's visual editor (docs/admin.md, "The visual editor"; docs/slider.md):
   the card chooser (add, move up, remove; at most 12), the chosen card's fields, the look, where it is
   shown, and a preview of the chosen card's details, form or closing screen.
   The elements and their fields are declared in plugins/slider/app.py (Slider.editor). */
(function (w, d) {
  "use strict";
  var MAX = 12;
  function index(api) { return +api.val("pv-card") || 0; }
  function button(id, text, onClick) {
    var b = d.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.id = id;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  /* a click on a card in the preview chooses that card (static/preview.js tells which) */
  var editorApi = null;
  w.addEventListener("message", function (e) {
    var frame = d.getElementById("pv-frame");
    if (!editorApi || !frame || e.source !== frame.contentWindow || !e.data || e.data.type !== "slider-card") return;
    var cards = editorApi.draft().cards || [];
    for (var i = 0; i < cards.length; i++) if (cards[i].id === e.data.card) break;
    if (i >= cards.length || i === index(editorApi)) return;
    editorApi.$("pv-card").value = String(i);
    editorApi.sections();
    editorApi.panel();
  });

  w.PerezvonEditor.define("slider", {
    sections: function (api, host) {
      editorApi = api;
      var draft = api.draft(), T = api.texts, S = api.schema, select = api.$("pv-card"), at = index(api);
      var cards = draft.cards = draft.cards || [];
      select.textContent = "";
      /* named by place and kind, in the page's language (a card's title is the site's own text) */
      var K = S.cards.fields.kind, name = function (c, n) { return (n + 1) + ". " + (K.labels[K.choices.indexOf(c.kind || "service")] || ""); };
      cards.forEach(function (c, n) {
        var o = d.createElement("option");
        o.value = String(n);
        o.textContent = name(c, n);
        select.appendChild(o);
      });
      var i = Math.min(at, Math.max(0, cards.length - 1));
      select.value = String(i);
      function redraw(to) { api.sections(); api.$("pv-card").value = String(to); api.sections(); api.unpick(); api.panel(); api.changed(); }
      var add = button("add-card", T["new-card"], function () {
        var F = S.cards.fields, card = {};
        Object.keys(F).forEach(function (k) { if ("default" in F[k]) card[k] = F[k]["default"]; });
        card.id = "card" + (cards.length + 1) + "-" + Date.now().toString(36).slice(-3);
        card.title = T["new-card"];
        cards.push(card);
        redraw(cards.length - 1);
      });
      add.disabled = cards.length >= MAX;
      if (add.disabled) add.title = T.limit;
      host.appendChild(add);
      var c = cards[i];
      if (c) {
        if (i > 0) host.appendChild(button("up-card", T.up, function () { cards.splice(i - 1, 0, cards.splice(i, 1)[0]); redraw(i - 1); }));
        host.appendChild(button("remove-card", T.remove + ": " + name(c, i), function () { cards.splice(i, 1); redraw(0); }));
        host.appendChild(api.groupBox(name(c, i), "cards." + i, S.cards.fields, draft));
      }
      host.appendChild(api.groupBox(S.look.label, "look", S.look.fields, draft));
      host.appendChild(api.groupBox(S.display.label, "display", S.display.fields, draft));
      host.appendChild(api.listBox(S.display.fields.rules.label, "display.rules", S.display.fields.rules, draft));
    },
    /* "card.x" is the chosen card's field; the others are paths in the settings */
    panel: function (api, element, host) {
      if (!element) return "";
      var draft = api.draft(), i = index(api);
      var declared = (api.data.elements || []).filter(function (e) { return e.name === element; })[0];
      ((declared && declared.fields) || []).forEach(function (f) {
        var mine = f.indexOf("card.") === 0, p = mine ? "cards." + i + "." + f.slice(5) : f, D = api.desc(p);
        if (mine && !(draft.cards || [])[i]) return;
        if (D && api.scalar(D)) host.appendChild(api.input(p, D, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
      });
      return api.texts["card-layer"];
    },
    option: function (api, name) { if (name === "card") api.sections(); },
    /* shown everywhere; on the details, form and closing screens the chosen card comes first, opening them */
    previewSettings: function (api, s) {
      s.display = { channels: ["direct", "organic", "ads", "referral", "social"], rules: [] };
      var screen = api.val("pv-screen"), i = index(api), c = s.cards && s.cards[i];
      if (c && /details|form|closing/.test(screen)) {
        c.enabled = true;
        c.action = screen === "details" ? "details" : "callback";
        s.cards.splice(i, 1);
        s.cards.unshift(c);
      }
      return s;
    }
  });
})(window, document);
