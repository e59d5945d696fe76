/* Perezvon trade-in form (docs/tradein.md): a tab (or a #tradein link) opens a form in steps -- make
   and model, year and mileage, photos, phone and consent. Photos go to the plugin's route first
   (checked there by their bytes); the lead then carries their ids with the car. Text only: nothing
   from settings or visitors is parsed as HTML. */
(function (w, d) {
  "use strict";
  var CSS = [
    ":host{all:initial}",
    ".tab{position:fixed;z-index:1;border:0;cursor:pointer;font:600 15px/1.2 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;padding:12px 16px;background:var(--tbg);color:var(--tfg);box-shadow:0 6px 20px rgba(0,0,0,.25)}",
    ".s-right{right:0;top:50%;transform:translateY(-50%) rotate(180deg);writing-mode:vertical-rl;border-radius:0 10px 10px 0}",
    ".s-left{left:0;top:50%;transform:translateY(-50%) rotate(180deg);writing-mode:vertical-rl;border-radius:0 10px 10px 0}",
    ".s-bottom{left:16px;bottom:calc(16px + env(safe-area-inset-bottom,0px));border-radius:10px}",
    ".ov{position:fixed;inset:0;background:rgba(15,23,42,.55)}",
    ".box{position:fixed;z-index:2;top:50%;left:50%;transform:translate(-50%,-50%);width:440px;max-width:calc(100vw - 16px);max-height:calc(100vh - 16px);overflow:auto;",
    "box-sizing:border-box;padding:28px;background:var(--bg);color:var(--fg);border-radius:var(--r);box-shadow:0 24px 64px rgba(0,0,0,.28);font:16px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}",
    ".box *{box-sizing:border-box}h2{margin:0 36px 6px 0;font-size:22px;line-height:1.2}h3{margin:0 0 14px;font-size:15px;font-weight:600;opacity:.75}",
    ".x{position:absolute;top:10px;right:10px;width:40px;height:40px;border:0;background:transparent;color:var(--fg);font-size:28px;cursor:pointer;border-radius:50%}",
    ".fld{display:block;margin:0 0 12px}.lbl{display:block;font-size:14px;margin:0 0 4px}.sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    "input,select{width:100%;font:inherit;padding:11px 12px;border:1px solid #cbd5e1;border-radius:10px;background:#f8fafc;color:#0f172a}",
    "input[aria-invalid=true],select[aria-invalid=true]{border-color:#dc2626}.err{display:block;color:#dc2626;font-size:13px;min-height:1em}",
    ".row{display:flex;gap:10px;margin-top:6px}.go,.back{flex:1;font:inherit;font-weight:600;padding:13px;border-radius:10px;cursor:pointer;border:0}",
    ".go{background:var(--acc);color:var(--afg)}.back{background:transparent;color:var(--fg);border:1px solid #cbd5e1}.go[disabled]{opacity:.6}",
    ".ok{display:flex;gap:8px;align-items:flex-start;font-size:13px;margin:0 0 4px}.ok input{width:auto;margin:2px 0 0}",
    ".pick{display:inline-block;padding:10px 14px;border:1px dashed var(--acc);border-radius:10px;cursor:pointer;font-weight:600}.sr:focus+.pick{outline:2px solid var(--acc)}",
    ".pics{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 8px}.pics img{width:64px;height:64px;object-fit:cover;border-radius:8px}",
    ".dots{display:flex;gap:6px;margin:0 0 12px}.dots i{flex:1;height:4px;border-radius:2px;background:#e2e8f0}.dots i.on{background:var(--acc)}",
    ".done{font-size:18px;margin:8px 0}"
  ].join("");
  var MSG = {
    ru: { make: "Выберите марку", model: "Выберите модель", year: "Год от {0} до {1}", mileage: "Пробег от 0 до {1} км", count: "Не больше {1} фото", type: "Только JPEG, PNG или WebP", size: "Фото до 5 МБ", upload: "Не удалось загрузить фото" },
    en: { make: "Choose a make", model: "Choose a model", year: "A year from {0} to {1}", mileage: "Mileage from 0 to {1} km", count: "At most {1} photos", type: "JPEG, PNG or WebP only", size: "Photos up to 5 MB", upload: "Could not upload the photos" }
  };
  var TYPES = ["image/jpeg", "image/png", "image/webp"], MB5 = 5 * 1048576;

  w.Perezvon.define("tradein", function (ctx) {
    var C = ctx.config, L = C.look, T = C.texts, el = ctx.el, M = MSG[ctx.lang] || MSG.ru;
    var href = w.location.href;
    function fmt(s, a, b) { return s.replace("{0}", a).replace("{1}", b); }
    var shown = (!C.pages.length || C.pages.some(function (p) { return href.indexOf(p) >= 0; })) && C.channels.indexOf(ctx.session.channel) >= 0;
    var m = ctx.mount("tradein"), root = m.root, open = null;
    m.host.style.cssText += ";--tbg:" + L.tab_background + ";--tfg:" + L.tab_text_color + ";--bg:" + L.background + ";--fg:" + L.text_color +
      ";--acc:" + L.accent + ";--afg:" + L.button_text_color + ";--r:" + L.radius + "px";
    root.appendChild(el("style", { text: CSS }));
    if (shown) {
      root.appendChild(el("button", { type: "button", "class": "tab s-" + L.tab_side, text: L.tab_text, onclick: function () { show("button"); } }));
      if (w.location.hash === "#tradein") show("hash");
    }
    w.addEventListener("hashchange", function () { if (w.location.hash === "#tradein") show("hash"); });

    function show(trigger) {
      if (open) return;
      var step = 0, files = [], year = new Date().getFullYear(), release, sending = false;
      var steps = [T.step_car, T.step_year].concat(C.photos ? [T.step_photos] : []).concat([T.step_phone]);
      var make = ctx.field(T.make_label, ctx.select(C.makes.map(function (x, i) { return { value: i, label: x.make }; }), true, "—"), "pvti-make");
      var model = ctx.field(T.model_label, ctx.select([], true, "—"), "pvti-model");
      var yr = ctx.field(T.year_label, el("input", { type: "number", inputmode: "numeric", name: "year", min: C.min_year, max: year, required: true }), "pvti-year");
      var km = ctx.field(T.mileage_label, el("input", { type: "number", inputmode: "numeric", name: "mileage", min: 0, max: C.max_mileage, required: true }), "pvti-km");
      var pic = ctx.field(T.photos_label, el("input", { type: "file", name: "photo", multiple: true, accept: TYPES.join(","), "class": "sr" }), "pvti-photo");
      var pick = el("span", { "class": "pick", text: T.photos_button });
      pic.node.insertBefore(pick, pic.err);
      var pics = el("div", { "class": "pics" });
      var phone = ctx.phoneInput(T.phone_label, C.phone_mask, "pvti-phone");
      var agree = el("input", { type: "checkbox", name: "consent", checked: true });
      var ok = el("label", { "class": "ok" }, [agree, el("span", { text: T.consent_text })]), okErr = el("span", { "class": "err", "aria-live": "polite" });
      make.control.addEventListener("change", function () {
        model.control.textContent = "";
        model.control.appendChild(el("option", { value: "", text: "—" }));
        var mk = C.makes[+make.control.value];
        (make.control.value !== "" && mk ? mk.models : []).forEach(function (x) { model.control.appendChild(el("option", { value: x, text: x })); });
      });
      pic.control.addEventListener("change", function () {
        var list = Array.prototype.slice.call(pic.control.files || []), bad = "";
        if (list.length > C.max_photos) bad = fmt(M.count, 0, C.max_photos);
        list.forEach(function (f) { if (!bad && TYPES.indexOf(f.type) < 0) bad = M.type; if (!bad && f.size > MB5) bad = M.size; });
        ctx.fail(pic, bad);
        files = bad ? [] : list;
        pics.textContent = "";
        pick.textContent = T.photos_button + (files.length ? " (" + files.length + ")" : "");
        files.forEach(function (f) { pics.appendChild(el("img", { src: w.URL.createObjectURL(f), alt: f.name })); });
      });
      var pages = [[make.node, model.node], [yr.node, km.node]].concat(C.photos ? [[pic.node, pics]] : []).concat([[phone.node, ok, okErr]]);
      var dots = el("div", { "class": "dots" }, steps.map(function () { return el("i"); }));
      var h3 = el("h3"), body = el("div"), back = el("button", { type: "button", "class": "back", text: T.back_text, onclick: function () { go(step - 1); } });
      var next = el("button", { type: "submit", "class": "go" });
      var form = el("form", { novalidate: true, onsubmit: submit }, [dots, h3, body, el("div", { "class": "row" }, [back, next])]);
      var box = el("div", { "class": "box", role: "dialog", "aria-modal": "true", "aria-label": T.title }, [
        el("button", { type: "button", "class": "x", "aria-label": ctx.msg.close, text: "×", onclick: close }), el("h2", { text: T.title }), form]);
      var ov = el("div", { "class": "ov", onclick: close });
      root.appendChild(ov);
      root.appendChild(box);
      open = box;
      ctx.emit("opened", { trigger: trigger });
      go(0);
      release = ctx.trapFocus(root, box, close, make.control);

      function go(n) {
        step = n;
        box.setAttribute("data-step", ["car", "year"].concat(C.photos ? ["photos"] : []).concat(["phone"])[n]);
        h3.textContent = steps[n];
        body.textContent = "";
        pages[n].forEach(function (x) { body.appendChild(x); });
        Array.prototype.forEach.call(dots.children, function (x, i) { x.className = i <= n ? "on" : ""; });
        back.style.display = n ? "" : "none";
        next.textContent = n === steps.length - 1 ? T.send_text : T.next_text;
        if (n) ctx.emit("step", { step: n + 1, trigger: trigger });
        var first = body.querySelector("input,select");
        if (first && n) first.focus();
      }
      function valid(n) {
        if (n === 0) return ctx.fail(make, make.control.value === "" ? M.make : "") & ctx.fail(model, model.control.value === "" ? M.model : "");
        if (n === 1) {
          var y = +yr.control.value, k = +km.control.value;
          return ctx.fail(yr, !/^\d{4}$/.test(yr.control.value) || y < C.min_year || y > year ? fmt(M.year, C.min_year, year) : "") &
            ctx.fail(km, !/^\d{1,7}$/.test(km.control.value) || k > C.max_mileage ? fmt(M.mileage, 0, C.max_mileage) : "");
        }
        if (n < steps.length - 1) return !pic.err.textContent;
        okErr.textContent = agree.checked ? "" : ctx.msg.consent;
        return phone.check() & agree.checked;
      }
      function submit(e) {
        e.preventDefault();
        if (sending || !valid(step)) return;
        if (step < steps.length - 1) { go(step + 1); return; }
        sending = next.disabled = true;
        var up = Promise.resolve({ photos: [] });
        if (files.length) {
          var data = new FormData();
          data.append("token", w.Perezvon.boot.t);
          pick.textContent = T.photos_button + (files.length ? " (" + files.length + ")" : "");
        files.forEach(function (f) { data.append("photo", f, f.name); });
          up = fetch(ctx.api + "/p/tradein/photos", { method: "POST", body: data, credentials: "omit" }).then(function (r) {
            if (!r.ok) { var x = new Error("photos"); x.errors = { phone: [r.status === 415 ? M.type : r.status === 413 ? M.size : M.upload] }; throw x; }
            return r.json();
          });
        }
        up.then(function (b) {
          var mk = C.makes[+make.control.value];
          return ctx.submit({ phone: phone.value(), consent: true, extra: { make: mk.make, model: model.control.value, year: +yr.control.value, mileage: +km.control.value, photos: b.photos } }, { trigger: trigger });
        }).then(function (res) {
          box.setAttribute("data-step", "done");
          form.textContent = "";
          form.appendChild(el("p", { "class": "done", text: T.done_text }));
          if (res && res.call_id) box.setAttribute("data-call", res.call_id);
        })["catch"](function (err) {
          sending = next.disabled = false;
          ctx.fail(phone, ((err.errors || {}).phone || [ctx.msg.failed]).join(" "));
        });
      }
      function close() {
        if (release) release();
        root.removeChild(ov);
        root.removeChild(box);
        open = null;
      }
    }
    ctx.ready();
  });
})(window, document);
