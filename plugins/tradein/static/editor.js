/* The trade-in form's part of the admin's visual editor: the picked element's settings (declared in
   plugins/tradein/app.py, Tradein.editor), all of one connection's form. */
(function (w) {
  "use strict";
  w.PerezvonEditor.define("tradein", {
    panel: function (api, element, host) {
      if (!element) return "";
      var draft = api.draft(), declared = (api.data.elements || []).filter(function (e) { return e.name === element; })[0];
      ((declared && declared.fields) || []).forEach(function (p) {
        var D = api.desc(p);
        if (D && api.scalar(D)) host.appendChild(api.input(p, D, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
      });
      return api.texts["form-layer"];
    }
  });
})(window);
