/* The lead generator in the admin editor's preview frame: the cover, the call screen (the curtains,
   opened by a click on the cover) or the timer (the form sent). */
(function (w) {
  "use strict";
  w.PerezvonPreview.define("leadgen", {
    show: function (api, msg) {
      api.waitFor(function () { var r = api.shadow(); return r && r.querySelector(".box") && r; }, function (root) {
        if (msg.screen === "call" || msg.screen === "timer") {
          var cover = root.querySelector(".cover");
          if (cover) cover.click();
        }
        if (msg.screen === "timer") {
          api.waitFor(function () { return root.querySelector(".open form"); }, function () {
            api.fillAndSend(root);
            api.waitFor(function () { return root.querySelector(".timer"); }, function () { api.shown(root, "timer"); });
          });
        } else {
          api.waitFor(function () { return msg.screen === "call" ? root.querySelector(".open form") : root.querySelector(".box"); },
            function () { api.shown(root, msg.screen); });
        }
      });
    }
  });
})(window);
