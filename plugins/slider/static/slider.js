/* Perezvon slider (docs/slider.md): a compact side tab that opens a vertical set of cards -- services,
   promotions, links and a callback form -- each with its target action; every card click is an event
   on the bus (slider_card_click, with the card's id). Text only: nothing from settings is parsed as HTML. */
(function (w) {
  "use strict";
  var CSS = [
    ":host{all:initial}.pv{font-family:var(--font);line-height:1.4;font-size:15px;color:var(--ctext)}.pv *{box-sizing:border-box}",
    ".tab{position:fixed;top:var(--top);z-index:1;border:0;cursor:pointer;background:var(--tbg);color:var(--ttext);font:700 15px/1.2 var(--font);",
    "padding:16px 11px;writing-mode:vertical-rl;max-height:60vh;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;box-shadow:0 6px 20px rgba(0,0,0,.22)}",
    ".right .tab{right:0;transform:translateY(-50%);border-radius:var(--r) 0 0 var(--r)}",
    ".left .tab{left:0;transform:translateY(-50%) rotate(180deg);border-radius:var(--r) 0 0 var(--r)}",
    ".tab:focus-visible,.card:focus-visible,.go:focus-visible,.back:focus-visible,.x:focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    ".ov{position:fixed;inset:0;z-index:2;background:var(--ov);animation:pvf .2s}",
    ".panel{position:fixed;top:0;bottom:0;z-index:3;width:min(var(--w),100vw);background:var(--pbg);display:flex;flex-direction:column;box-shadow:0 0 40px rgba(0,0,0,.25);animation:pvr .25s ease-out}",
    ".right .panel{right:0}.left .panel{left:0;animation-name:pvl}",
    ".head{display:flex;align-items:center;gap:8px;padding:14px 10px 8px 18px}",
    "h2{flex:1;margin:0;font-size:20px;line-height:1.25;color:var(--tcolor);font-weight:800}",
    ".x{width:44px;height:44px;flex:none;border:0;border-radius:50%;background:transparent;color:var(--close);font-size:28px;line-height:1;cursor:pointer}.x:hover{background:rgba(0,0,0,.06)}",
    ".body{flex:1;overflow:auto;padding:6px 14px 20px;overscroll-behavior:contain}",
    ".cards{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:10px}",
    ".card{display:flex;gap:12px;align-items:center;width:100%;padding:12px;text-align:left;font:inherit;color:var(--ctext);text-decoration:none;cursor:pointer;",
    "background:var(--cbg);border:1px solid var(--cborder);border-radius:var(--r);transition:transform .1s,box-shadow .1s}",
    ".card:hover{transform:translateY(-1px);box-shadow:0 6px 18px rgba(0,0,0,.1)}",
    ".card img{width:72px;height:72px;flex:none;object-fit:cover;border-radius:calc(var(--r) * .6)}.card .t{flex:1;min-width:0}",
    "h3{margin:0 0 4px;font-size:16px;line-height:1.25;color:var(--ctitle)}.card p{margin:0;font-size:14px}",
    ".arr{flex:none;color:var(--accent);font-size:24px;line-height:1}",
    ".badge{display:inline-block;margin:0 0 4px;padding:1px 8px;border-radius:99px;background:var(--accent);color:#fff;font-size:12px;font-weight:800}",
    ".back{margin:0 0 10px;padding:6px 0;border:0;background:none;color:var(--accent);font:inherit;font-weight:700;cursor:pointer}",
    ".pic{display:block;width:100%;max-height:200px;object-fit:cover;border-radius:var(--r);margin:0 0 12px}",
    ".details h3,.intro h3,.closing h3{font-size:19px}p{margin:0 0 12px}.for{color:var(--accent);font-weight:700}",
    ".fld{display:block;margin:0 0 10px}.lbl{display:block;margin:0 0 4px;font-size:13px}",
    ".sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "input[type=tel],input[type=text],select{width:100%;height:48px;padding:0 12px;font:inherit;font-size:17px;color:#0f172a;background:#fff;border:1px solid var(--cborder);border-radius:10px}",
    "input:focus,select:focus{outline:none;border-color:var(--accent);box-shadow:0 0 0 3px rgba(37,99,235,.2)}",
    "[aria-invalid=true]{border-color:#dc2626!important}.err{display:block;margin-top:4px;color:#dc2626;font-size:13px}.err:empty{display:none}",
    ".go{display:block;width:100%;min-height:50px;border:0;border-radius:12px;background:var(--bbg);color:var(--btext);font:inherit;font-size:17px;font-weight:700;cursor:pointer}",
    ".go:hover{filter:brightness(1.08)}.go[disabled]{opacity:.6;cursor:wait}",
    ".ok{display:flex;gap:8px;align-items:flex-start;margin:12px 0 6px;font-size:13px}.ok input{width:18px;height:18px;margin:1px 0 0;flex:none}",
    ".dis{margin:6px 0 0;font-size:12px;opacity:.8}.dis a{color:inherit}.row{display:flex;gap:8px}.row .fld{flex:1}",
    ".state{padding:12px 14px;border-radius:10px;background:rgba(34,197,94,.14)}.big{margin:8px 0;font-size:28px;font-weight:800;color:var(--ctitle)}",
    ".pv-live-timer{font-variant-numeric:tabular-nums}",
    "@keyframes pvf{from{opacity:0}}@keyframes pvr{from{transform:translateX(100%)}}@keyframes pvl{from{transform:translateX(-100%)}}",
    "@media (max-width:480px){.panel{width:100vw}.tab{padding:12px 8px;font-size:13px}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}"
  ].join("");

  w.Perezvon.define("slider", function (ctx) {
    var C = ctx.config, L = C.look, F = C.form, el = ctx.el, M = ctx.msg, S = ctx.session;
    /* the channel first, then the heaviest matching URL/UTM rule may forbid it */
    var rule = ctx.bestRule(C.display.rules), ruleName = (rule && rule.name) || "";
    if (C.display.channels.indexOf(S.channel) < 0 || (rule && rule.show === false) || !C.cards.length) return ctx.ready();
    var m = ctx.mount("slider"), root = m.root, open = null, held = false;
    var wrap = el("div", { "class": "pv " + L.side, style: {
      "--font": L.font_family, "--top": L.tab_top_percent + "%", "--tbg": L.tab_background, "--ttext": L.tab_text_color,
      "--r": L.radius + "px", "--ov": L.overlay, "--w": L.panel_width + "px", "--pbg": L.panel_background, "--tcolor": L.title_color,
      "--close": L.close_color, "--cbg": L.card_background, "--cborder": L.card_border, "--ctitle": L.card_title_color,
      "--ctext": L.card_text_color, "--accent": L.accent_color, "--bbg": L.button_background, "--btext": L.button_text_color
    } });
    var tab = el("button", { type: "button", "class": "tab", "aria-haspopup": "dialog", "aria-expanded": "false", text: L.tab_label, onclick: function () { show(); } });
    wrap.appendChild(tab);
    root.appendChild(el("style", { text: CSS }));
    root.appendChild(wrap);

    function detail(extra) { return Object.assign({ trigger: "button", rule: ruleName }, extra); }
    function about(card) { return { card: card.id, card_title: card.title, kind: card.kind, action: card.action }; }

    function close() {
      if (!open) return;
      open.release();
      open.stops.forEach(function (f) { f(); });
      open.ov.remove();
      open.panel.remove();
      open = null;
      tab.setAttribute("aria-expanded", "false");
      if (held) { held = false; ctx.free(); }
    }

    function show() {
      if (open) return;
      var id = "pvs" + Date.now().toString(36), body = el("div", { "class": "body" });
      var panel = el("div", { "class": "panel", role: "dialog", "aria-modal": "true", "aria-labelledby": id + "-t", "data-screen": "" }, [
        el("div", { "class": "head" }, [
          el("h2", { id: id + "-t", text: L.title }),
          el("button", { type: "button", "class": "x", "aria-label": M.close, text: "×", onclick: close })
        ]), body]);
      var ov = el("div", { "class": "ov", onclick: close });
      open = { panel: panel, ov: ov, stops: [], release: function () {} };
      wrap.appendChild(ov);
      wrap.appendChild(panel);
      tab.setAttribute("aria-expanded", "true");
      /* an automatic pop-up of another app waits while the visitor looks at the cards */
      ctx.whenFree(function () { if (open) held = true; else ctx.free(); });

      function screen(name, kids, backTo) {
        open.stops.forEach(function (f) { f(); });
        open.stops = [];
        body.textContent = "";
        panel.setAttribute("data-screen", name);
        if (backTo) body.appendChild(el("button", { type: "button", "class": "back", text: "‹ " + F.back_text, onclick: backTo }));
        kids.forEach(function (k) { if (k) body.appendChild(k); });
        var first = body.querySelector("button, a, input");
        if (first) first.focus();
      }
      function picture(url, cls) {
        var src = ctx.safeUrl(url);
        return src ? el("img", { src: src, alt: "", loading: "lazy", "class": cls || null }) : null;
      }

      function list() {
        screen("cards", [el("ul", { "class": "cards" }, C.cards.map(function (card) {
          var link = card.action === "link" && ctx.safeUrl(card.url);
          var node = el(link ? "a" : "button", {
            "class": "card", "data-card": card.id, "data-kind": card.kind,
            type: link ? null : "button", href: link || null,
            target: link && card.new_tab ? "_blank" : null, rel: link && card.new_tab ? "noopener noreferrer" : null,
            onclick: function () {
              ctx.emit("card_click", detail(about(card)));
              if (card.action === "details") details(card);
              else if (card.action === "callback") form(card);
            }
          }, [picture(card.image), el("span", { "class": "t" }, [
            card.badge ? el("span", { "class": "badge", text: card.badge }) : null,
            ctx.text(el("h3"), card.title),
            card.text ? ctx.text(el("p"), card.text) : null
          ]), el("span", { "class": "arr", "aria-hidden": "true", text: "›" })]);
          return el("li", {}, [node]);
        }))]);
      }

      function details(card) {
        screen("details", [el("div", { "class": "details" }, [
          picture(card.image, "pic"),
          card.badge ? el("span", { "class": "badge", text: card.badge }) : null,
          ctx.text(el("h3"), card.title),
          ctx.text(el("p"), card.details || card.text),
          el("button", { type: "button", "class": "go", text: card.details_button, onclick: function () { form(card); } })
        ])], list);
      }

      function form(card) {
        var off = !ctx.hours.isOpen(), fid = id + "-" + card.id, choice = ctx.choices(fid), name = null;
        var mine = card.kind === "callback";
        var intro = el("div", { "class": "intro" }, [
          ctx.text(el("h3"), off ? F.offhours_title : mine ? card.title : F.title),
          mine ? (card.text ? ctx.text(el("p"), card.text) : null) : el("p", { "class": "for", text: card.title }),
          !mine && F.text ? ctx.text(el("p"), F.text) : null
        ]);
        var parts = choice.nodes.slice(), tc = off ? ctx.timeChoice(F, true) : null;
        if (tc) parts.push(tc.node);
        if (F.name_field !== "hidden") {
          name = ctx.field(F.name_placeholder, el("input", { type: "text", name: "name", autocomplete: "name", maxlength: "200", placeholder: F.name_placeholder, required: F.name_field === "required" }), fid + "-name");
          parts.push(name.node);
        }
        var phone = ctx.phoneInput(F.phone_placeholder, F.phone_mask, fid + "-phone");
        var button = el("button", { type: "submit", "class": "go", text: F.button_text });
        var consent = el("input", { type: "checkbox", id: fid + "-c" });
        consent.checked = F.consent_checked !== false;
        var consentErr = el("span", { "class": "err", "aria-live": "polite" }), general = el("p", { "class": "err", role: "alert" });
        parts.push(phone.node, button, el("label", { "class": "ok", "for": fid + "-c" }, [consent, el("span", {}, [F.consent_text, consentErr])]),
          ctx.disclaimer(F.disclaimer, [{ text: F.link1_text, url: F.link1_url }, { text: F.link2_text, url: F.link2_url }]), general);
        var f = el("form", { novalidate: true }, parts);
        f.addEventListener("submit", function (e) {
          e.preventDefault();
          var ok = phone.check();
          if (name) ok = ctx.fail(name, F.name_field === "required" && !name.control.value.trim() ? M.name : "") && ok;
          ok = choice.check() && ok;
          if (tc) ok = tc.check() && ok;
          consentErr.textContent = consent.checked ? "" : " — " + M.consent;
          ok = consent.checked && ok;
          general.textContent = "";
          if (!ok) return;
          var when = tc ? tc.value() : null;
          button.disabled = true;
          ctx.submit(choice.values({
            phone: phone.value(), name: name ? name.control.value.trim() : "", consent: true, preferred_at: when,
            extra: { slider: { card: card.id, title: card.title, kind: card.kind } }
          }), detail(about(card))).then(function (res) { closing(res, when || off); }, function (err) {
            button.disabled = false;
            var errs = err.errors || {};
            if (errs.phone) ctx.fail(phone, errs.phone.join(" "));
            choice.errors(errs);
            if (errs.consent) consentErr.textContent = " — " + errs.consent.join(" ");
            general.textContent = errs.phone || errs.consent || errs.office_id || errs.department_id ? "" : [].concat(errs._schema || [], errs.token || [], errs.origin || []).join(" ") || M.failed;
          });
        });
        screen("form", [intro, f], card.action === "details" ? function () { details(card); } : list);
      }

      /* one truth at a time, from the call's live state (as the widget's closing screen) */
      function closing(res, when) {
        var CL = C.closing, box = el("div", { "class": "closing" });
        if (when) {
          box.appendChild(ctx.text(el("h3"), CL.offhours_title));
          box.appendChild(ctx.text(el("p"), CL.offhours_text));
          if (when !== true) box.appendChild(el("p", { "class": "big", text: ctx.when(when) }));
          screen("closing-offhours", [box]);
        } else {
          var countdown = ctx.text(el("p", { "class": "big" }), CL.working_text);
          var state = el("p", { "class": "state", "aria-live": "polite", role: "status", hidden: true });
          box.appendChild(ctx.text(el("h3"), CL.working_title));
          box.appendChild(countdown);
          box.appendChild(state);
          screen("closing", [box]);
          var showState = function (key) {
            countdown.hidden = key !== "countdown";
            state.hidden = key === "countdown";
            state.textContent = CL["state_" + key] || "";
            panel.setAttribute("data-call", key);
          };
          if (res.duplicate || !res.call_id) showState("duplicate");
          else open.stops.push(ctx.callProgress(res.call_id, showState));
        }
        panel.querySelector(".x").focus();
      }

      open.release = ctx.trapFocus(root, panel, close);  /* first: it remembers the tab to give focus back to */
      list();
      ctx.emit("opened", detail({}));
    }
    ctx.ready();
  });
})(window);
