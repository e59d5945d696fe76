// The redial preview follows the form as it is typed: the server's engine computes it (no second copy here).
(function () {
  "use strict";
  var box = document.getElementById("redial-preview");
  var form = document.getElementById("telephony-form");
  if (!box || !form) { return; }
  var timer = null;
  var latest = 0;
  var refresh = function () {
    var asked = ++latest;
    fetch(box.getAttribute("data-url"), { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && asked === latest) { box.innerHTML = data.html; box.setAttribute("data-updated", String(asked)); }
      })
      .catch(function () { /* the preview of the saved rules stays */ });
  };
  var soon = function () { clearTimeout(timer); timer = setTimeout(refresh, 250); };
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  form.addEventListener("reset", function () { setTimeout(refresh, 0); });
})();
