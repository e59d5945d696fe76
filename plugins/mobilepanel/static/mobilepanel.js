/* Perezvon mobile panel (docs/mobilepanel.md): a bar at the bottom of phone screens with call,
   callback, route and messenger buttons. Started only on viewports of 768 px or less
   (Application.max_viewport_px). Text only: nothing from settings or visitors is parsed as HTML. */
(function (w, d) {
  "use strict";
  var CSS = [
    ":host{all:initial}*{box-sizing:border-box}",
    ".bar{position:fixed;left:0;right:0;bottom:var(--off);z-index:1;display:flex;gap:6px;padding:6px 6px calc(6px + env(safe-area-inset-bottom,0px));",
    "background:var(--bg);border-top:1px solid var(--bd);box-shadow:0 -4px 16px rgba(0,0,0,.08);font-family:var(--font);animation:pvu .25s ease-out}",
    ".b{flex:1;min-width:0;min-height:48px;display:flex;flex-direction:column;align-items:center;justify-content:center;gap:2px;border:0;border-radius:10px;",
    "background:var(--c);color:var(--t);font:600 12px/1.1 var(--font);text-decoration:none;cursor:pointer;padding:4px}",
    ".b svg{width:22px;height:22px;fill:currentColor}.b span{max-width:100%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".ov{position:fixed;inset:0;z-index:2;background:rgba(15,23,42,.5)}",
    ".sheet{position:fixed;left:0;right:0;bottom:0;z-index:3;max-height:90vh;overflow:auto;background:#fff;color:#0f172a;border-radius:16px 16px 0 0;",
    "padding:20px 18px calc(20px + env(safe-area-inset-bottom,0px));font:16px/1.4 var(--font);box-shadow:0 -12px 40px rgba(0,0,0,.25);animation:pvu .25s ease-out}",
    "h2{margin:0 40px 14px 0;font-size:20px;line-height:1.25}",
    ".x{position:absolute;top:8px;right:8px;width:40px;height:40px;border:0;background:transparent;font-size:28px;line-height:1;color:#64748b;cursor:pointer}",
    ".fld{display:block;margin:0 0 10px}.lbl{display:block;font-size:13px;margin:0 0 4px}",
    ".sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "input[type=tel],select{width:100%;height:50px;padding:0 14px;font:inherit;font-size:17px;border:1px solid #cbd5e1;border-radius:10px;background:#f8fafc;color:#0f172a}",
    "input:focus{outline:none;border-color:#2563eb;box-shadow:0 0 0 3px rgba(37,99,235,.2)}[aria-invalid=true]{border-color:#dc2626!important}.err{display:block;color:#dc2626;font-size:13px;margin-top:4px}.err:empty{display:none}",
    ".go{display:block;width:100%;min-height:52px;border:0;border-radius:12px;font:700 17px/1 var(--font);background:var(--c);color:var(--t);cursor:pointer}.go[disabled]{opacity:.6}",
    ".ok{display:flex;gap:8px;align-items:flex-start;margin:12px 0 4px;font-size:13px}.ok input{width:18px;height:18px;margin:1px 0 0;flex:none}",
    ".dis{font-size:12px;color:#94a3b8;margin:6px 0 0}.dis a{color:inherit}",
    ".state{margin:6px 0 0;padding:12px 14px;border-radius:10px;background:rgba(34,197,94,.12)}.pv-live-timer{font-variant-numeric:tabular-nums;font-weight:800}",
    ".list{list-style:none;margin:0;padding:0}.list a{display:block;padding:14px 12px;margin:0 0 8px;border-radius:10px;background:#f1f5f9;color:#0f172a;text-decoration:none;font-weight:600}",
    ".list small{display:block;font-weight:400;color:#475569}",
    "@keyframes pvu{from{transform:translateY(100%)}}@media (prefers-reduced-motion:reduce){*{animation:none!important}}"
  ].join("");
  var ICONS = {
    call: "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z",
    callback: "M20 15.5a11.4 11.4 0 0 1-3.6-.57 1 1 0 0 0-1 .25l-2.2 2.2a15.1 15.1 0 0 1-6.6-6.6l2.2-2.2a1 1 0 0 0 .25-1A11.4 11.4 0 0 1 8.5 4a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1 17 17 0 0 0 17 17 1 1 0 0 0 1-1v-3.5a1 1 0 0 0-1-1zM15 3v2h2.6l-4.3 4.3 1.4 1.4L19 6.4V9h2V3z",
    route: "M12 2a7 7 0 0 0-7 7c0 5.25 7 13 7 13s7-7.75 7-13a7 7 0 0 0-7-7zm0 9.5A2.5 2.5 0 1 1 12 6.5a2.5 2.5 0 0 1 0 5z",
    messengers: "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z"
  };
  var NAMES = { telegram: "Telegram", whatsapp: "WhatsApp", vk: "VK", viber: "Viber" };

  w.Perezvon.define("mobilepanel", function (ctx) {
    var C = ctx.config, el = ctx.el, S = ctx.session, M = ctx.msg, offices = (ctx.offices && ctx.offices.items) || [];
    var ch = C.channels[S.channel] || {}, rule = ctx.bestRule(C.rules);
    if (ch.show === false || (rule && rule.show === false)) return ctx.ready();

    /* the number the site shows (a call-tracking number substituted into it), else the one in the settings */
    function phone() {
      for (var i = 0; i < offices.length; i++) if (offices[i].phone_selector) {
        try { var n = d.querySelector(offices[i].phone_selector), t = n && n.textContent.replace(/[^\d+]/g, ""); if (t && t.length > 5) return t; } catch (e) { /* a bad selector */ }
      }
      return (C.call.phone || "").replace(/[^\d+]/g, "");
    }
    function tel(number) {
      var digits = number.replace(/\D/g, "");
      if (digits.length === 11 && digits[0] === "8") return "tel:+7" + digits.slice(1);
      return "tel:" + (number[0] === "+" ? "+" : "") + digits;
    }
    function mapUrl(o) {
      var geo = o.latitude != null && o.longitude != null;
      return "https://yandex.ru/maps/?" + (geo ? "rtext=~" + o.latitude + "," + o.longitude + "&rtt=auto&pt=" + o.longitude + "," + o.latitude + "&z=16"
        : "text=" + encodeURIComponent(o.address));
    }
    var places = offices.filter(function (o) { return (o.latitude != null && o.longitude != null) || o.address; });
    var links = [];
    ["telegram", "whatsapp", "vk", "viber"].forEach(function (k) {
      var v = C.messengers[k], url = k === "viber" ? (v ? "viber://chat?number=%2B" + v.replace(/\D/g, "") : "") : ctx.safeUrl(v);
      if (url) links.push({ kind: k, url: url });
    });

    var m = ctx.mount("mobilepanel"), root = m.root, sheet = null;
    root.appendChild(el("style", { text: CSS }));
    var B = C.bar, bar = el("nav", { "class": "bar", style: { "--bg": B.background, "--bd": B.border_color, "--font": B.font_family, "--off": B.bottom_offset + "px" } });

    function icon(name) {
      var ns = "http://www.w3.org/2000/svg", svg = d.createElementNS(ns, "svg"), path = d.createElementNS(ns, "path");
      svg.setAttribute("viewBox", "0 0 24 24");
      svg.setAttribute("aria-hidden", "true");
      path.setAttribute("d", ICONS[name]);
      svg.appendChild(path);
      return svg;
    }
    function vars(b) { return { "--c": b.background, "--t": b.text_color, "--font": B.font_family }; }
    function button(name, href, onclick) {
      var b = C[name], attrs = { "class": "b b-" + name, "data-button": name, "aria-label": b.label, style: vars(b), onclick: onclick };
      if (href) { attrs.href = href; } else attrs.type = "button";
      return el(href ? "a" : "button", attrs, [icon(name), B.show_labels ? el("span", { text: b.label }) : null]);
    }

    function closeSheet() {
      if (!sheet) return;
      sheet.release();
      sheet.stops.forEach(function (f) { f(); });
      sheet.node.remove();
      sheet = null;
      m.host.style.zIndex = "";
    }
    function openSheet(name, title, kids) {
      closeSheet();
      var box = el("div", { "class": "sheet", role: "dialog", "aria-modal": "true", "aria-label": title, "data-sheet": name, style: vars(C.callback) });
      box.appendChild(el("button", { type: "button", "class": "x", "aria-label": M.close, text: "×", onclick: closeSheet }));
      box.appendChild(ctx.text(el("h2"), title));
      kids.forEach(function (k) { if (k) box.appendChild(k); });
      var node = el("div", { style: { "--font": B.font_family } }, [el("div", { "class": "ov", onclick: closeSheet }), box]);
      root.appendChild(node);
      m.host.style.zIndex = "2147483001"; /* the open sheet above the other apps' buttons */
      sheet = { node: node, box: box, stops: [], release: ctx.trapFocus(root, box, closeSheet) };
      return box;
    }
    function list(name, title, items, event) {
      openSheet(name, title, [el("ul", { "class": "list" }, items.map(function (it) {
        return el("li", {}, [el("a", { href: it.url, target: it.url.indexOf("http") === 0 ? "_blank" : null, rel: "noopener noreferrer", "data-kind": it.kind || "",
          onclick: function () { ctx.emit(event, it.detail); } }, [it.title, it.sub ? el("small", { text: it.sub }) : null])]);
      }))]);
    }

    function callback() {
      var K = C.callback, phoneField = ctx.phoneInput(K.phone_placeholder, K.phone_mask, "pvm-phone");
      var consent = el("input", { type: "checkbox", id: "pvm-c" });
      consent.checked = K.consent_checked !== false;
      var consentErr = el("span", { "class": "err", "aria-live": "polite" }), general = el("p", { "class": "err", role: "alert" });
      var go = el("button", { type: "submit", "class": "go", text: K.button_text });
      var choice = ctx.choices("pvm");
      var form = el("form", { novalidate: true }, choice.nodes.concat([phoneField.node, go,
        el("label", { "class": "ok", "for": "pvm-c" }, [consent, el("span", {}, [K.consent_text, consentErr])]),
        ctx.disclaimer(K.disclaimer, [{ text: K.link1_text, url: K.link1_url }]), general]));
      var box = openSheet("callback", K.title, [form]);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var ok = phoneField.check();
        ok = choice.check() && ok;
        consentErr.textContent = consent.checked ? "" : " — " + M.consent;
        if (!ok || !consent.checked) return;
        go.disabled = true;
        ctx.submit(choice.values({ phone: phoneField.value(), consent: true }), ctx.detail({ trigger: "button" })).then(function (res) {
          var state = el("p", { "class": "state", role: "status", "aria-live": "polite" });
          form.replaceWith(state);
          var show = function (key) {
            state.textContent = "";
            if (key === "countdown") ctx.text(state, K.thanks); else state.textContent = K["state_" + key] || "";
            box.setAttribute("data-call", key);
          };
          if (res.duplicate || !res.call_id) show("duplicate");
          else if (sheet) sheet.stops.push(ctx.callProgress(res.call_id, show));
        }, function (err) {
          go.disabled = false;
          var errs = err.errors || {};
          if (errs.phone) ctx.fail(phoneField, errs.phone.join(" "));
          choice.errors(errs);
          general.textContent = errs.phone || errs.office_id || errs.department_id ? "" : M.failed;
        });
      });
    }

    var made = [], number = phone();
    if (C.call.enabled && number) made.push([C.call.position, button("call", tel(number), function () { ctx.emit("call_click", { phone: number }); })]);
    if (C.callback.enabled) made.push([C.callback.position, button("callback", null, callback)]);
    if (C.route.enabled && places.length) made.push([C.route.position, button("route", places.length === 1 ? mapUrl(places[0]) : null, function (e) {
      if (places.length === 1) { ctx.emit("route_click", { office: places[0].name }); return; }
      e.preventDefault();
      list("route", C.route.list_title, places.map(function (o) { return { url: mapUrl(o), title: o.name, sub: o.address, detail: { office: o.name } }; }), "route_click");
    })]);
    if (C.messengers.enabled && links.length) made.push([C.messengers.position, button("messengers", null, function () {
      list("messengers", C.messengers.list_title, links.map(function (l) { return { url: l.url, title: NAMES[l.kind], kind: l.kind, detail: { messenger: l.kind } }; }), "messenger_click");
    })]);
    made.sort(function (a, b) { return a[0] - b[0]; }).forEach(function (p) { bar.appendChild(p[1]); });
    /* the space the bar takes at the bottom: other apps' corner buttons (and the site, if it likes:
       body{padding-bottom:var(--perezvon-bottom)}) keep clear of it */
    function reserve() { d.documentElement.style.setProperty("--perezvon-bottom", (bar.offsetHeight + B.bottom_offset) + "px"); }
    if (made.length) {
      root.appendChild(bar);
      reserve();
      w.addEventListener("resize", reserve);
      ctx.emit("shown", { buttons: made.map(function (p) { return p[1].getAttribute("data-button"); }) });
    }
    var route = bar.querySelector(".b-route[href]");
    if (route) { route.target = "_blank"; route.rel = "noopener noreferrer"; }
    ctx.ready();
  });
})(window, document);
