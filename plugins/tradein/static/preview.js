/* The trade-in form in the admin editor's preview frame: the tab, or the form brought to the chosen
   step by filling the steps before it with sample answers. */
(function (w) {
  "use strict";
  w.PerezvonPreview.define("tradein", {
    show: function (api, msg) {
      api.waitFor(function () { var r = api.shadow(); return r && r.querySelector(".tab") && r; }, function (root) {
        var want = msg.screen || "tab";
        if (want === "tab") { api.shown(root, "tab"); return; }
        if (!root.querySelector(".box")) root.querySelector(".tab").click();
        (function advance(left) {
          var box = root.querySelector(".box"), at = box.getAttribute("data-step"), sel = box.querySelectorAll("select");
          if (at === want || at === "phone" || !left) { api.shown(root, at); return; }
          if (at === "car") { sel[0].value = "0"; sel[0].dispatchEvent(new Event("change")); sel[1].selectedIndex = 1; }
          if (at === "year") { box.querySelector("[name=year]").value = "2018"; box.querySelector("[name=mileage]").value = "60000"; }
          box.querySelector("form").dispatchEvent(new Event("submit", { cancelable: true }));
          setTimeout(function () { advance(left - 1); }, 30);
        })(4);
      });
    }
  });
})(window);
