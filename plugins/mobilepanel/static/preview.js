/* The mobile panel in the admin editor's preview frame: the bar, the callback form (its button
   pressed), the form sent, or the messenger list. */
(function (w) {
  "use strict";
  var OPENS = { callback: ".b-callback", closing: ".b-callback", messengers: ".b-messengers" };
  w.PerezvonPreview.define("mobilepanel", {
    show: function (api, msg) {
      api.waitFor(function () { var r = api.shadow(); return r && r.querySelector(".bar") && r; }, function (root) {
        var opener = OPENS[msg.screen] && root.querySelector(OPENS[msg.screen]);
        if (!opener) { api.shown(root, "bar"); return; }
        opener.click();
        api.waitFor(function () { return root.querySelector(".sheet"); }, function (sheet) {
          if (msg.screen === "closing") {
            api.fillAndSend(root);
            api.waitFor(function () { return root.querySelector(".sheet .state"); }, function () { api.shown(root, "closing"); });
          } else api.shown(root, sheet.getAttribute("data-sheet"));
        });
      });
    }
  });
})(window);
