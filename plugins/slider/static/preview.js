/* The slider in the admin editor's preview frame: the tab alone, the open panel of cards, or the
   chosen card's details, callback form or closing screen (the editor puts that card first). */
(function (w) {
  "use strict";
  w.PerezvonPreview.define("slider", {
    show: function (api, msg) {
      var want = msg.screen || "cards";
      api.waitFor(function () { var r = api.shadow(); return r && r.querySelector(".tab") && r; }, function (root) {
        if (want !== "tab") root.querySelector(".tab").click();
        if (/details|form|closing/.test(want) && root.querySelector(".card")) root.querySelector(".card").click();
        if (want === "closing" && root.querySelector("form")) api.fillAndSend(root);
        api.waitFor(function () {
          var p = root.querySelector(".panel");
          return want === "tab" ? root : p && (p.getAttribute("data-screen") || "").indexOf(want) === 0 && p;
        }, function (p) {
          api.shown(root, want === "tab" ? "tab" : p.getAttribute("data-screen"));
          /* a click on a card chooses that card in the editor (after the core's "pick") */
          root.addEventListener("click", function (e) {
            var path = e.composedPath(), card = null;
            for (var i = 0; i < path.length && !card; i++) if (path[i].classList && path[i].classList.contains("card")) card = path[i];
            if (card) w.parent.postMessage({ type: "slider-card", card: card.getAttribute("data-card") }, "*");
          }, true);
        });
      });
    }
  });
})(window);
