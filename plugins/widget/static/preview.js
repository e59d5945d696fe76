/* The widget in the admin editor's preview frame: opened at once through a HASH link (the editor's
   config makes "#pv-preview" open it with the chosen trigger's look), then brought to the chosen
   screen: the time choice through its link, the closing screen by sending the form. */
(function (w, d) {
  "use strict";
  w.PerezvonPreview.define("widget", {
    ready: function (api) {
      var a = d.createElement("a");
      a.href = "#pv-preview";
      api.body.appendChild(a);
      a.click();
      a.remove();
    },
    show: function (api, msg) {
      var root = api.shadow();
      if (!root) return;
      if (msg.screen === "time") {
        var link = root.querySelector(".tl .lnk");
        if (link) link.click();
      } else if (msg.screen === "closing") {
        api.fillAndSend(root);
      }
      api.waitFor(function () {
        var n = root.querySelector("[data-screen]");
        return n && n.getAttribute("data-screen").indexOf(msg.screen === "closing" ? "closing" : "") === 0 && n;
      }, function (n) { api.shown(root, n.getAttribute("data-screen")); });
    }
  });
})(window, document);
