/* Perezvon callback widget (docs/site-script.md#the-widget): four formats, triggers, rules, time choice,
   off-hours look, closing screens with a live timer. Text only: nothing from settings
   or visitors is ever parsed as HTML. */
(function (w, d) {
  "use strict";
  var CSS = [
    ":host{all:initial}",
    ".ov{position:fixed;inset:0;z-index:1;background:var(--overlay);animation:pvf .2s ease-out}",
    ".box{position:fixed;z-index:2;box-sizing:border-box;top:50%;left:50%;transform:translate(-50%,-50%);max-width:calc(100vw - 16px);max-height:100vh;overflow:auto;",
    "background:var(--bg) center/cover no-repeat;border-radius:var(--radius);padding:var(--pad);font-family:var(--font);color:var(--text);",
    "box-shadow:0 24px 64px rgba(0,0,0,.28);animation:pvi .25s ease-out;line-height:1.4;font-size:16px;text-align:left}",
    ".f-horizontal{width:800px;min-height:min(400px,100vh)}.f-square{width:600px;min-height:min(600px,100vh)}",
    ".f-vertical{width:340px;min-height:min(600px,100vh)}",
    ".f-edge{width:340px;height:100vh;top:0;left:auto;right:0;transform:none;border-radius:0;animation:pvs .3s ease-out}",
    ".f-horizontal .body{display:grid;grid-template-columns:1fr 1fr;gap:28px;align-items:center}",
    ".box,.box *{box-sizing:border-box}.box{display:flex;flex-direction:column}.inner{margin:auto 0;width:100%}",
    ".sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ".x{position:absolute;top:10px;right:10px;width:40px;height:40px;border:0;background:transparent;color:var(--close);font-size:28px;line-height:1;cursor:pointer;border-radius:50%}",
    ".x:hover,.x:focus-visible{background:rgba(0,0,0,.06)}",
    "h2{margin:8px 32px 12px 0;font-size:var(--tsize);line-height:1.2;color:var(--tcolor);font-weight:800}",
    "p{margin:0 0 18px}",
    ".fld{display:block;margin:0 0 12px}.lbl{display:block;font-size:13px;margin:0 0 4px;opacity:.85}",
    "input[type=tel],input[type=text],select{width:100%;height:50px;padding:0 14px;font:inherit;font-size:17px;color:var(--ftext);background:var(--fbg);border:1px solid var(--fborder);border-radius:10px;outline:none}",
    "select{background:var(--sbg,var(--fbg));border-color:var(--sborder,var(--fborder));color:var(--stext,var(--ftext))}",
    "input:focus,select:focus{border-color:var(--link);box-shadow:0 0 0 3px rgba(37,99,235,.2)}",
    "[aria-invalid=true]{border-color:#dc2626!important}",
    ".err{display:block;color:#dc2626;font-size:13px;margin-top:4px}.err:empty{display:none}",
    ".go{display:block;width:100%;min-height:54px;border:0;border-radius:12px;font:inherit;font-size:18px;font-weight:700;cursor:pointer;color:var(--btext);",
    "background:linear-gradient(180deg,var(--b1),var(--b2));box-shadow:0 6px 18px rgba(0,0,0,.15);transition:transform .1s}",
    ".go:hover,.go:focus-visible{background:linear-gradient(180deg,var(--h1),var(--h2));transform:translateY(-1px)}",
    ".go[disabled]{opacity:.6;cursor:wait}",
    ".lnk{border:0;background:none;padding:0;font:inherit;color:var(--link);text-decoration:underline;cursor:pointer}",
    ".tl{margin:12px 0 0;font-size:14px;text-align:center}",
    ".ok{display:flex;gap:8px;align-items:flex-start;margin:14px 0 6px;font-size:13px}.ok input{width:18px;height:18px;margin:1px 0 0;flex:none}",
    ".dis{font-size:12px;color:var(--dis);margin:6px 0 0}.dis a{color:inherit}",
    ".row{display:flex;gap:8px}.row .fld{flex:1}",
    ".chosen{font-size:14px;margin:0 0 10px;color:var(--link)}",
    ".state{margin-top:14px;padding:12px 14px;border-radius:10px;background:rgba(34,197,94,.12);font-size:15px}",
    ".pv-live-timer{font-variant-numeric:tabular-nums;font-weight:800}",
    ".big{font-size:calc(var(--tsize) * 1.6);font-weight:800;color:var(--tcolor);margin:8px 0}",
    ".btn{position:fixed;bottom:calc(24px + var(--perezvon-bottom,0px));width:64px;height:64px;border-radius:50%;border:0;cursor:pointer;background:var(--lc);",
    "box-shadow:0 8px 24px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;animation:pvp 2s infinite}",
    ".btn svg{width:30px;height:30px;fill:#fff}.btn.right{right:24px}.btn.left{left:24px}",
    "@keyframes pvf{from{opacity:0}}@keyframes pvi{from{opacity:0;margin-top:16px}}@keyframes pvs{from{transform:translateX(100%)}}",
    "@keyframes pvp{0%{box-shadow:0 0 0 0 rgba(34,197,94,.5)}70%{box-shadow:0 0 0 16px rgba(34,197,94,0)}100%{box-shadow:0 0 0 0 rgba(34,197,94,0)}}",
    "@media (max-width:700px){.f-horizontal .body{display:block}}",
    "@media (max-width:480px){.box{width:calc(100vw - 16px);min-height:0;padding:min(var(--pad),22px)}.f-edge{width:100vw;max-width:100vw}h2{font-size:min(var(--tsize),24px)}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important}}"
  ].join("");

  w.Perezvon.define("widget", function (ctx) {
    var C = ctx.config, el = ctx.el, M = ctx.msg, S = ctx.session;
    var mounted = null, openState = null, uid = 0;

    function merge() {
      var out = {};
      for (var i = 0; i < arguments.length; i++) {
        var a = arguments[i];
        if (a) for (var k in a) if (a[k] !== null && a[k] !== undefined) out[k] = a[k];
      }
      return out;
    }
    /* What applies on this page: channel rule, then the heaviest URL/UTM rule. */
    function plan() {
      var off = !ctx.hours.isOpen(), ch = C.channels[S.channel] || {}, rule = ctx.bestRule(C.rules);
      return {
        offhours: off, rule: rule,
        show: ch.show !== false && !(rule && rule.show === false),
        thresholds: merge(off ? C.offhours_thresholds : C.thresholds, off ? ch.offhours_thresholds : ch.thresholds,
          rule && (off ? rule.offhours_thresholds : rule.thresholds)),
        format: (rule && rule.format) || ch.format || null
      };
    }

    function root() {
      if (!mounted) {
        mounted = ctx.mount("widget");
        mounted.root.appendChild(el("style", { text: CSS }));
      }
      return mounted.root;
    }

    function close() {
      if (!openState) return;
      openState.release();
      openState.stops.forEach(function (f) { f(); });
      openState.node.remove();
      openState = null;
      ctx.free();
    }

    function setVars(node, box, L) {
      var v = {
        "--overlay": L.overlay, "--radius": L.radius + "px", "--pad": L.padding + "px", "--font": L.font_family,
        "--text": L.text_color, "--close": L.close_color, "--tsize": L.title_size + "px", "--tcolor": L.title_color,
        "--fbg": L.field_background, "--fborder": L.field_border, "--ftext": L.field_text_color, "--link": L.link_color,
        "--btext": L.button_text_color, "--b1": L.button_from, "--b2": L.button_to, "--h1": L.button_hover_from,
        "--h2": L.button_hover_to, "--dis": L.disclaimer_color, "--bg": L.background,
        "--sbg": L.select_background, "--sborder": L.select_border, "--stext": L.select_text_color
      };
      for (var k in v) if (v[k] !== undefined && v[k] !== null) node.style.setProperty(k, String(v[k]));
      var img = L.background_image && ctx.safeUrl(L.background_image);
      if (img) box.style.setProperty("background-image", "url(" + JSON.stringify(img) + ")");
    }

    /* "text <link> text": the part in angle brackets becomes a button */
    function linkText(value, onClick) {
      var m = /^(.*?)<([^>]+)>(.*)$/.exec(value || "");
      if (!m) return null;
      return el("p", { "class": "tl" }, [m[1], el("button", { type: "button", "class": "lnk", text: m[2], onclick: onClick }), m[3]]);
    }

    function disclaimer(L) {
      return ctx.disclaimer(L.disclaimer, [{ text: L.link1_text, url: L.link1_url }, { text: L.link2_text, url: L.link2_url }]);
    }
    var field = ctx.field, fail = ctx.fail, timeChoice = ctx.timeChoice;

    function open(trigger, p, extra) {
      if (openState) return;
      var L = merge(C.look, C.trigger_looks[trigger], p.offhours ? C.offhours_look : null, p.rule && p.rule.look, extra && extra.look);
      L.format = (extra && extra.format) || p.format || L.format;
      var r = root(), id = "pvw" + (++uid);
      var box = el("div", { "class": "box f-" + L.format, role: "dialog", "aria-modal": "true", "aria-labelledby": id + "-t", tabindex: "-1", "data-format": L.format });
      var ov = el("div", { "class": "ov", onclick: close });
      var node = el("div", { "data-screen": "" }, [ov, box]);
      setVars(node, box, L);
      var detail = { format: L.format, trigger: trigger, rule: (p.rule && p.rule.name) || "" };
      openState = { node: node, stops: [], release: function () {} };
      r.appendChild(node);
      var chosenTime = null;

      function screen(name, kids) {
        box.textContent = "";
        node.setAttribute("data-screen", name);
        box.appendChild(el("button", { type: "button", "class": "x", "aria-label": M.close, text: "×", onclick: close }));
        var inner = el("div", { "class": "inner" });
        kids.forEach(function (k) { if (k) inner.appendChild(k); });
        box.appendChild(inner);
      }
      function titled(t, vars) { return ctx.text(el("h2", { id: id + "-t" }), t, vars); }

      function form() {
        var intro = el("div", {}, [titled(L.title), L.text ? ctx.text(el("p"), L.text) : null]);
        var parts = [], choice = ctx.choices(id), name = null;
        parts = parts.concat(choice.nodes);
        var tc = p.offhours ? timeChoice(C.time_screen, true, chosenTime) : null;
        if (tc) parts.push(tc.node);
        if (L.name_field !== "hidden") {
          name = field(L.name_placeholder, el("input", { type: "text", name: "name", autocomplete: "name", maxlength: "200", placeholder: L.name_placeholder, required: L.name_field === "required" }), id + "-name");
          parts.push(name.node);
        }
        var phone = ctx.phoneInput(L.phone_placeholder, L.phone_mask, id + "-phone");
        parts.push(phone.node);
        if (chosenTime && !p.offhours) parts.push(el("p", { "class": "chosen", text: ctx.when(chosenTime) }));
        var button = el("button", { type: "submit", "class": "go", text: L.button_text });
        parts.push(button);
        if (!p.offhours && L.time_link) parts.push(linkText(L.time_link, function () { timeScreen(); }));
        var consent = el("input", { type: "checkbox", id: id + "-c" });
        consent.checked = L.consent_checked !== false;
        var consentErr = el("span", { "class": "err", "aria-live": "polite" });
        parts.push(el("label", { "class": "ok", "for": id + "-c" }, [consent, el("span", {}, [L.consent_text, consentErr])]));
        parts.push(disclaimer(L));
        var general = el("p", { "class": "err", role: "alert" });
        parts.push(general);
        var f = el("form", { novalidate: true }, parts);
        f.addEventListener("submit", function (e) {
          e.preventDefault();
          var ok = phone.check();
          if (name) ok = fail(name, L.name_field === "required" && !name.control.value.trim() ? M.name : "") && ok;
          ok = choice.check() && ok;
          if (tc) ok = tc.check() && ok;
          consentErr.textContent = consent.checked ? "" : " — " + M.consent;
          ok = consent.checked && ok;
          general.textContent = "";
          if (!ok) return;
          var when = tc ? tc.value() : chosenTime;
          button.disabled = true;
          ctx.submit(choice.values({
            phone: phone.value(), name: name ? name.control.value.trim() : "", consent: consent.checked, preferred_at: when
          }), ctx.detail(detail)).then(function (res) {
            closing(res, when);
          }, function (err) {
            button.disabled = false;
            var errs = err.errors || {};
            if (errs.phone) fail(phone, errs.phone.join(" "));
            choice.errors(errs);
            if (errs.consent) consentErr.textContent = " — " + errs.consent.join(" ");
            general.textContent = errs._schema || errs.token || errs.origin ? [].concat(errs._schema || [], errs.token || [], errs.origin || []).join(" ") : (errs.phone || errs.consent || errs.office_id || errs.department_id ? "" : M.failed);
          });
        });
        var body = el("div", { "class": "body" }, [intro, f]);
        screen("form", [body]);
      }

      function timeScreen() {
        var TS = C.time_screen, tc = timeChoice(TS, true, chosenTime);
        var go = el("button", { type: "button", "class": "go", text: TS.button_text, onclick: function () {
          if (!tc.check()) return;
          chosenTime = tc.value();
          form();
        } });
        screen("time", [titled(TS.title), tc.node, go, el("p", { "class": "tl" }, [el("button", { type: "button", "class": "lnk", text: TS.back_text, onclick: form })])]);
        tc.focus();
      }

      /* one truth at a time, from the call's live state: the countdown while nobody is rung yet,
         then what the call is doing, then how it ended (never a countdown beside "it is over") */
      function closing(res, when) {
        var CL = C.closing;
        if (when || p.offhours) {
          screen("closing-offhours", [titled(CL.offhours_title), ctx.text(el("p"), CL.offhours_text),
            el("p", { "class": "big", text: when ? ctx.when(when) : "" })]);
        } else {
          var countdown = ctx.text(el("p", { "class": "big" }), CL.working_text);
          var state = el("p", { "class": "state", "aria-live": "polite", role: "status", hidden: true });
          screen("closing", [titled(CL.working_title), countdown, state]);
          var show = function (key) {
            countdown.hidden = key !== "countdown";
            state.hidden = key === "countdown";
            state.textContent = CL["state_" + key] || "";
            node.setAttribute("data-call", key);
          };
          /* the same number again within the duplicate window: said as such (the answer need not carry the call) */
          if (res.duplicate || !res.call_id) show("duplicate");
          else openState.stops.push(ctx.callProgress(res.call_id, show));
        }
        box.querySelector(".x").focus();
      }

      form();
      openState.release = ctx.trapFocus(r, box, close);
      ctx.emit("shown", detail);
      if (trigger === "button" || trigger === "hash") ctx.emit("opened", detail);
    }

    var p = plan();
    function auto(trigger) {
      ctx.whenFree(function () {
        if (openState || S.shown("widget") || S.inGap()) return ctx.free();
        S.markShown("widget");
        open(trigger, plan());
      });
    }
    /* automatic triggers: once per session, never during the delay between sessions */
    if (p.show && !S.shown("widget") && !S.inGap()) ctx.watch(p.thresholds, auto);

    /* HASH links: <a href="#NAME"> opens the widget configured for NAME */
    function hashFor(href) {
      for (var i = 0; i < C.hashes.length; i++) if (href === "#" + C.hashes[i].name) return C.hashes[i];
      return null;
    }
    d.addEventListener("click", function (e) {
      var a = e.target && e.target.closest ? e.target.closest("a[href^='#']") : null, h = a && hashFor(a.getAttribute("href"));
      if (!h) return;
      e.preventDefault();
      open("hash", plan(), h);
    }, true);
    var initial = hashFor(w.location.hash);
    if (initial) open("hash", plan(), initial);

    if (C.launcher.show && p.show) {
      var svg = d.createElementNS("http://www.w3.org/2000/svg", "svg"), path = d.createElementNS("http://www.w3.org/2000/svg", "path");
      svg.setAttribute("viewBox", "0 0 24 24");
      svg.setAttribute("aria-hidden", "true");
      path.setAttribute("d", "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z");
      svg.appendChild(path);
      var btn = el("button", { type: "button", "class": "btn " + C.launcher.position, "aria-label": C.launcher.label_text, title: C.launcher.label_text, style: { "--lc": C.launcher.color }, onclick: function () { open("button", plan()); } }, [svg]);
      root().appendChild(btn);
    }
    ctx.ready();
  });
})(window, document);
