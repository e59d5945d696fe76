/* The mobile lead generator in the admin editor's preview frame: the cover, the form (the cover
   tapped) or the timer (the form sent). */
(function (w) {
  "use strict";
  w.PerezvonPreview.define("mobileleadgen", {
    show: function (api, msg) {
      api.waitFor(function () { var r = api.shadow(); return r && r.querySelector(".box") && r; }, function (root) {
        if (msg.screen === "call" || msg.screen === "timer") {
          var cover = root.querySelector(".cover");
          if (cover) cover.click();
        }
        if (msg.screen === "timer") {
          api.waitFor(function () { return root.querySelector("form"); }, function () {
            api.fillAndSend(root);
            api.waitFor(function () { return root.querySelector(".timer"); }, function () { api.shown(root, "timer"); });
          });
        } else {
          api.waitFor(function () { return msg.screen === "call" ? root.querySelector("form") : root.querySelector(".cover"); },
            function () { api.shown(root, msg.screen); });
        }
      });
    }
  });
})(window);
