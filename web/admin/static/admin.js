// Progressive enhancement only: every page works without it. No inline scripts (CSP).
(function () {
  "use strict";

  // Save/Cancel appear only when a form has changed.
  document.querySelectorAll("form.js-dirty").forEach(function (form) {
    var initial = new URLSearchParams(new FormData(form)).toString();
    form.classList.add("clean");
    var check = function () {
      form.classList.toggle("clean", new URLSearchParams(new FormData(form)).toString() === initial);
    };
    form.addEventListener("input", check);
    form.addEventListener("change", check);
    form.addEventListener("reset", function () { setTimeout(check, 0); });
    // a form re-shown with errors is already changed
    if (form.querySelector(".error")) { form.classList.remove("clean"); }
  });

  // Copy buttons.
  document.querySelectorAll(".js-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "✓";
      });
    });
  });

  // A click anywhere on a row of the Calls table opens the call.
  document.querySelectorAll("tr.call[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, form")) { return; }
      var link = row.querySelector("a");
      window.location.href = link ? link.href : row.getAttribute("data-href");
    });
  });

  // Export progress.
  var box = document.querySelector(".export[data-status-url]");
  if (box) {
    var bar = document.getElementById("export-progress");
    var text = document.getElementById("export-text");
    var link = document.getElementById("export-download");
    var poll = function () {
      fetch(box.getAttribute("data-status-url"), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (state) {
          if (state.total !== null) { bar.max = Math.max(state.total, 1); }
          bar.value = state.done;
          // the server words the progress in the page's language (the same sentence a reload shows)
          text.textContent = state.text;
          if (state.state === "ready") {
            link.hidden = false;
          } else if (state.state === "running") {
            setTimeout(poll, 700);
          }
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    if (link.hidden) { setTimeout(poll, 300); }
  }
})();
