/* The mobile panel's part of the admin's visual editor (docs/admin.md, "The visual editor"): the
   settings each picked element edits, the rule sections, and a preview that runs the panel whatever
   the frame's width (the site skips it on screens wider than a phone). The elements and their
   fields are declared in plugins/mobilepanel/app.py (MobilePanel.editor). */
(function (w) {
  "use strict";
  w.PerezvonEditor.define("mobilepanel", {
    sections: function (api, host) {
      var S = api.schema, draft = api.draft();
      ["bar", "messengers", "channels"].forEach(function (name) {
        host.appendChild(api.groupBox(S[name].label, name, S[name].fields, draft));
      });
      host.appendChild(api.listBox(S.rules.label, "rules", S.rules, draft));
    },
    panel: function (api, element, host) {
      if (!element) return "";
      var draft = api.draft(), declared = (api.data.elements || []).filter(function (e) { return e.name === element; })[0];
      ((declared && declared.fields) || []).forEach(function (p) {
        var D = api.desc(p);
        if (D && api.scalar(D)) host.appendChild(api.input(p, D, api.get(draft, p), function (v) { api.set(draft, p, v); api.changed(); }));
      });
      return api.texts["settings-layer"];
    },
    /* shown on any page and width; a call button and a messenger to style even before they are set */
    previewConfig: function (api, config) {
      var app = config.apps[0], C = app.config;
      app.max_width = null;
      C.rules = [];
      Object.keys(C.channels).forEach(function (k) { C.channels[k] = { show: true }; });
      if (!C.call.phone) C.call.phone = "+7 900 000-00-00";
      if (!C.messengers.telegram && !C.messengers.whatsapp && !C.messengers.vk && !C.messengers.viber) C.messengers.telegram = "https://t.me/example";
      return config;
    }
  });
})(window);
