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

  // Filters: each <select multiple class="js-chips"> becomes a search box with chips. The select stays in
  // the form (hidden) and keeps the choice, so the query string is the one the plain form sends.
  var chipsCount = 0;
  document.querySelectorAll("select.js-chips").forEach(function (select) {
    var form = select.form;
    var texts = {
      remove: form.getAttribute("data-remove") || "Remove",
      none: form.getAttribute("data-no-match") || "",
      search: form.getAttribute("data-search") || ""
    };
    var label = select.closest("label");
    var name = label ? label.firstChild.textContent.trim() : select.name;
    var id = "chips-" + (++chipsCount);
    var box = document.createElement("div");
    box.className = "chips";
    box.setAttribute("data-for", select.name);
    var input = document.createElement("input");
    input.type = "text";
    input.className = "chips-input";
    input.autocomplete = "off";
    input.placeholder = texts.search;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", id);
    input.setAttribute("aria-label", name);
    var list = document.createElement("ul");
    list.className = "chips-list";
    list.id = id;
    list.setAttribute("role", "listbox");
    list.hidden = true;
    var active = -1;

    var options = function () { return Array.prototype.slice.call(select.options); };
    var matches = function () {
      var needle = input.value.trim().toLowerCase();
      return options().filter(function (option) {
        return !option.selected && (!needle || option.text.toLowerCase().indexOf(needle) !== -1);
      });
    };
    var changed = function () { select.dispatchEvent(new Event("change", { bubbles: true })); };

    var drawChips = function () {
      box.querySelectorAll(".chip").forEach(function (chip) { chip.remove(); });
      options().forEach(function (option) {
        if (!option.selected) { return; }
        var chip = document.createElement("span");
        chip.className = "chip";
        var text = document.createElement("span");
        text.className = "chip-text";
        text.textContent = option.text;
        text.title = option.text;
        var remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "×";
        remove.setAttribute("aria-label", texts.remove + ": " + option.text);
        remove.addEventListener("click", function () {
          option.selected = false;
          changed();
          drawChips();
          input.focus();
        });
        chip.appendChild(text);
        chip.appendChild(remove);
        box.insertBefore(chip, input);
      });
    };
    var drawList = function () {
      list.innerHTML = "";
      var found = matches();
      if (active >= found.length) { active = found.length - 1; }
      found.forEach(function (option, index) {
        var item = document.createElement("li");
        item.setAttribute("role", "option");
        item.id = id + "-" + index;
        item.textContent = option.text;
        item.title = option.text;
        if (index === active) {
          item.className = "active";
          item.setAttribute("aria-selected", "true");
          input.setAttribute("aria-activedescendant", item.id);
        }
        // mousedown, not click: the input must not lose focus (which closes the list) first
        item.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(option);
        });
        list.appendChild(item);
      });
      if (!found.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = texts.none;
        list.appendChild(none);
      }
      if (active < 0) { input.removeAttribute("aria-activedescendant"); }
    };
    var open = function () {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      drawList();
    };
    var close = function () {
      list.hidden = true;
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    };
    var choose = function (option) {
      option.selected = true;
      input.value = "";
      active = -1;
      changed();
      drawChips();
      drawList();
    };

    input.addEventListener("focus", open);
    input.addEventListener("input", function () { active = matches().length ? 0 : -1; open(); });
    input.addEventListener("blur", close);
    input.addEventListener("keydown", function (event) {
      var found = matches();
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (list.hidden) { open(); }
        active = Math.min(active + 1, found.length - 1);
        drawList();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        active = Math.max(active - 1, 0);
        drawList();
      } else if (event.key === "Enter") {
        if (!list.hidden && active >= 0 && found[active]) {
          event.preventDefault();  // choosing an option does not submit the form; Enter on an empty search does
          choose(found[active]);
        }
      } else if (event.key === "Escape") {
        if (!list.hidden) { event.preventDefault(); close(); }
      } else if (event.key === "Backspace" && !input.value) {
        var chosen = options().filter(function (option) { return option.selected; });
        if (chosen.length) {
          chosen[chosen.length - 1].selected = false;
          changed();
          drawChips();
          drawList();
        }
      }
    });
    box.addEventListener("mousedown", function (event) {
      if (event.target === box) { event.preventDefault(); input.focus(); }
    });

    box.appendChild(input);
    box.appendChild(list);
    select.hidden = true;
    select.tabIndex = -1;
    select.parentNode.insertBefore(box, select.nextSibling);
    drawChips();
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
