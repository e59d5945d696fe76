/* Perezvon lead generators (docs/site-script.md): promotional pop-ups, each once per session and
   at most five per session; a cover, two curtains that slide over it (a form, a text
   with an image), and a timer screen, each in a working-hours and an off-hours variant. */
(function (w, d) {
  "use strict";
  var CSS = [
    ":host{all:initial}",
    ".ov{position:fixed;inset:0;background:rgba(2,6,23,.6);animation:pvf .2s ease-out}",
    ".box{position:fixed;top:50%;left:50%;transform:translate(-50%,-50%);width:720px;height:440px;max-width:calc(100vw - 16px);max-height:calc(100vh - 16px);",
    "overflow:hidden;border-radius:18px;font-family:var(--font);line-height:1.4;font-size:16px;box-shadow:0 24px 64px rgba(0,0,0,.35);animation:pvi .25s ease-out;text-align:left}",
    ".box *{box-sizing:border-box}.sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ".cover{position:absolute;inset:0;padding:48px;display:flex;flex-direction:column;justify-content:center;background:var(--cbg) center/cover no-repeat;cursor:default}",
    ".cover h2{margin:0 0 14px;font-size:var(--t1size);line-height:1.1;color:var(--t1);font-weight:900}",
    ".cover p{margin:0;font-size:19px;color:var(--t2);max-width:60%}",
    ".x{position:absolute;z-index:3;top:10px;right:10px;width:40px;height:40px;border:0;background:rgba(0,0,0,.25);color:var(--close);font-size:26px;line-height:1;cursor:pointer;border-radius:50%}",
    ".cur{position:absolute;top:0;bottom:0;width:50%;padding:32px 28px;overflow:auto;transition:transform .6s cubic-bezier(.2,.8,.2,1);z-index:2;visibility:hidden}",
    ".open .cur{visibility:visible}",
    ".info{left:0;transform:translateX(-101%);background:var(--ibg);color:var(--itext);display:flex;flex-direction:column;justify-content:center;font-size:22px;font-weight:700}",
    ".info img{max-width:100%;max-height:50%;object-fit:contain;margin-top:16px}",
    ".form{right:0;transform:translateX(101%);background:var(--fbg);color:var(--ftext)}",
    ".open .info,.open .form{transform:none}",
    ".form h3{margin:0 0 14px;font-size:22px;padding-right:36px}",
    ".fld{display:block;margin:0 0 10px}.lbl{display:block;font-size:12px;margin:0 0 3px;opacity:.8}",
    "input[type=tel],input[type=text],select{width:100%;height:46px;padding:0 12px;font:inherit;font-size:17px;border:1px solid #cbd5e1;border-radius:10px;background:#f8fafc;color:#0f172a}",
    "[aria-invalid=true]{border-color:#dc2626!important}",
    ".err{display:block;color:#dc2626;font-size:12px;margin-top:3px}.err:empty{display:none}",
    ".go{display:block;width:100%;min-height:50px;border:0;border-radius:12px;font:inherit;font-size:17px;font-weight:700;cursor:pointer;color:var(--btext);background:linear-gradient(180deg,var(--b1),var(--b2))}",
    ".go:hover,.go:focus-visible{background:linear-gradient(180deg,var(--h1),var(--h2))}.go[disabled]{opacity:.6}",
    ".ok{display:flex;gap:8px;align-items:flex-start;margin:10px 0 4px;font-size:12px}.ok input{width:16px;height:16px;margin:1px 0 0;flex:none}",
    ".dis{font-size:11px;opacity:.7;margin:4px 0 0}.dis a{color:inherit}.row{display:flex;gap:8px}.row .fld{flex:1}",
    ".timer{position:absolute;inset:0;padding:48px;display:flex;flex-direction:column;justify-content:center;align-items:center;text-align:center;background:var(--tbg);color:var(--ttext)}",
    ".timer h2{margin:0 0 12px;font-size:34px}.timer p{font-size:22px;margin:0}.timer .state{font-weight:700}.pv-live-timer,.when{color:var(--acc);font-weight:900;font-variant-numeric:tabular-nums;font-size:1.6em;display:block;margin-top:8px}",
    "@keyframes pvf{from{opacity:0}}@keyframes pvi{from{opacity:0;margin-top:16px}}",
    "@media (max-width:640px){.box{height:auto;min-height:min(560px,calc(100vh - 16px))}.cover{padding:56px 22px 22px;justify-content:flex-start}.cover p{max-width:none}",
    ".cover h2{font-size:min(var(--t1size),30px)}.cur{width:100%}.info{top:0;bottom:auto;height:38%;transform:translateY(-101%);font-size:17px;padding:56px 20px 16px}",
    ".form{top:auto;height:auto;max-height:100%;transform:translateY(101%)}.info img{display:none}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}"
  ].join("");

  w.Perezvon.define("leadgen", function (ctx) {
    var C = ctx.config, el = ctx.el, M = ctx.msg, S = ctx.session, PREFIX = "leadgen:";
    var mounted = null, current = null, waiting = [];

    function today() {
      var t = new Date();
      return t.getFullYear() + "-" + ("0" + (t.getMonth() + 1)).slice(-2) + "-" + ("0" + t.getDate()).slice(-2);
    }
    /* the active period; with auto-renewal a finished period starts again at once */
    function active(g) {
      var day = today();
      if (g.active_from && day < g.active_from) return false;
      return !g.active_to || day <= g.active_to || g.renew;
    }
    function allowed(g) {
      if (S.shown(PREFIX + g.id) || S.countShown(PREFIX) >= C.max_per_session) return false;
      if (!active(g) || g.channels.indexOf(S.channel) < 0) return false;
      for (var i = 0; i < g.filters.length; i++) if (!ctx.matches(g.filters[i])) return false;
      return true;
    }

    function root() {
      if (!mounted) { mounted = ctx.mount("leadgen"); mounted.root.appendChild(el("style", { text: CSS })); }
      return mounted.root;
    }
    function close() {
      if (!current) return;
      current.release();
      current.stops.forEach(function (f) { f(); });
      current.node.remove();
      current = null;
      var next = waiting.shift();
      if (next) fire(next[0], next[1]);
      else ctx.free();
    }

    function fire(g, trigger) {
      if (current) { waiting.push([g, trigger]); return; }
      ctx.whenFree(function () {
        if (current) { waiting.push([g, trigger]); return; }
        if (!allowed(g) || S.inGap()) { var next = waiting.shift(); return next ? fire(next[0], next[1]) : ctx.free(); }
        S.markShown(PREFIX + g.id);
        show(g, trigger);
      });
    }

    function show(g, trigger) {
      var off = !ctx.hours.isOpen(), V = off ? g.offhours : g.working, CO = V.cover, CA = V.call, T = V.timer;
      var box = el("div", { "class": "box", role: "dialog", "aria-modal": "true", "aria-labelledby": "pvl-" + g.id + "-t", "data-leadgen": g.id, "data-variant": off ? "offhours" : "working", tabindex: "-1" });
      var vars = { "--font": g.font_family, "--cbg": CO.background, "--t1": CO.text1_color, "--t1size": CO.text1_size + "px", "--t2": CO.text2_color,
        "--close": CO.close_color, "--ibg": CA.info_background, "--itext": CA.info_text_color, "--fbg": CA.form_background, "--ftext": CA.form_text_color,
        "--btext": CA.button_text_color, "--b1": CA.button_from, "--b2": CA.button_to, "--h1": CA.button_hover_from, "--h2": CA.button_hover_to,
        "--tbg": T.background, "--ttext": T.text_color, "--acc": T.accent_color };
      for (var k in vars) box.style.setProperty(k, String(vars[k]));
      var node = el("div", { "data-screen": "cover" }, [el("div", { "class": "ov", onclick: close }), box]);
      /* a rule matched only if it has URL/UTM filters */
      var detail = ctx.detail({ leadgen_id: g.id, trigger: trigger, format: "leadgen", rule: g.filters.length ? g.name : "" });
      current = { node: node, stops: [], release: function () {} };

      /* focusable, so a keyboard user opens the curtains with Tab as a mouse does by hovering */
      var cover = el("div", { "class": "cover", tabindex: "0" }, [ctx.text(el("h2", { id: "pvl-" + g.id + "-t" }), CO.text1), ctx.text(el("p"), CO.text2)]);
      var img = CO.background_image && ctx.safeUrl(CO.background_image);
      if (img) cover.style.setProperty("background-image", "url(" + JSON.stringify(img) + ")");
      var info = el("div", { "class": "cur info", "aria-hidden": "true" }, [ctx.text(el("div"), CA.info_text)]);
      var infoImg = CA.info_image && ctx.safeUrl(CA.info_image);
      if (infoImg) info.appendChild(el("img", { src: infoImg, alt: "" }));

      /* the form curtain */
      var id = "pvl-" + g.id, choice = ctx.choices(id), parts = [el("h3", { text: CA.form_title })].concat(choice.nodes), name = null;
      var tc = off ? ctx.timeChoice(CA, true, null) : null;
      if (tc) parts.push(tc.node);
      if (CA.name_field !== "hidden") {
        name = ctx.field(CA.name_placeholder, el("input", { type: "text", autocomplete: "name", maxlength: "200", placeholder: CA.name_placeholder, required: CA.name_field === "required" }), id + "-name");
        parts.push(name.node);
      }
      var phone = ctx.phoneInput(CA.phone_placeholder, CA.phone_mask, id + "-phone");
      parts.push(phone.node);
      var button = el("button", { type: "submit", "class": "go", text: CA.button_text });
      parts.push(button);
      var consent = el("input", { type: "checkbox", id: id + "-c" });
      consent.checked = true;
      var consentErr = el("span", { "class": "err" });
      parts.push(el("label", { "class": "ok", "for": id + "-c" }, [consent, el("span", {}, [CA.consent_text, consentErr])]));
      parts.push(ctx.disclaimer(CA.disclaimer, [{ text: CA.link1_text, url: CA.link1_url }, { text: CA.link2_text, url: CA.link2_url }]));
      var general = el("p", { "class": "err", role: "alert" });
      parts.push(general);
      var form = el("form", { "class": "cur form", novalidate: true }, parts);
      var curtains = el("div", { "class": "stage" }, [cover, info, form]);
      box.appendChild(el("button", { type: "button", "class": "x", "aria-label": M.close, text: "×", onclick: close }));
      box.appendChild(curtains);

      function openCurtains() {
        if (curtains.className.indexOf("open") >= 0) return;
        curtains.className = "stage open";
        node.setAttribute("data-screen", "call");
        info.removeAttribute("aria-hidden");
        setTimeout(function () { (tc || phone.control).focus ? (tc ? tc.focus() : phone.control.focus()) : null; }, 50);
      }
      if (CA.curtain_on === "time") {
        var tid = setTimeout(openCurtains, CA.curtain_delay_seconds * 1000);
        current.stops.push(function () { clearTimeout(tid); });
      }
      /* "hover" also means a tap, a click or a keyboard focus: phones have no hover */
      ["mouseenter", "click", "touchstart", "focusin"].forEach(function (ev) { cover.addEventListener(ev, openCurtains, { passive: true }); });
      box.addEventListener("mouseenter", function () { if (CA.curtain_on === "hover") openCurtains(); });

      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var ok = phone.check();
        ok = choice.check() && ok;
        if (name) ok = ctx.fail(name, CA.name_field === "required" && !name.control.value.trim() ? M.name : "") && ok;
        if (tc) ok = tc.check() && ok;
        consentErr.textContent = consent.checked ? "" : " — " + M.consent;
        ok = consent.checked && ok;
        general.textContent = "";
        if (!ok) return;
        var when = tc ? tc.value() : null;
        button.disabled = true;
        ctx.submit(choice.values({ phone: phone.value(), name: name ? name.control.value.trim() : "", consent: true, preferred_at: when }), detail)
          .then(function (res) { timer(res, when); }, function (err) {
            button.disabled = false;
            var errs = err.errors || {};
            if (errs.phone) ctx.fail(phone, errs.phone.join(" "));
            choice.errors(errs);
            var other = [].concat(errs._schema || [], errs.token || [], errs.origin || []);
            general.textContent = other.length ? other.join(" ") : (errs.phone || errs.office_id || errs.department_id ? "" : M.failed);
          });
      });

      function timer(res, when) {
        box.removeChild(curtains);
        node.setAttribute("data-screen", "timer");
        var text = ctx.text(el("p"), T.text), state = el("p", { "class": "state", "aria-live": "polite", hidden: true });
        var body = el("div", { "class": "timer", role: "status" }, [ctx.text(el("h2", { id: "pvl-" + g.id + "-t" }), T.title), text, state]);
        if (when) text.appendChild(el("span", { "class": "when", text: ctx.when(when) }));
        box.appendChild(body);
        /* as the widget's closing screen: the countdown while nobody is rung yet, then the call's live state */
        var show = function (key) {
          text.hidden = key !== "countdown";
          state.hidden = key === "countdown";
          state.textContent = T["state_" + key] || "";
          node.setAttribute("data-call", key);
        };
        if (!when && !off) {
          if (res.duplicate || !res.call_id) show("duplicate");
          else current.stops.push(ctx.callProgress(res.call_id, show));
        }
        box.querySelector(".x").focus();
      }

      root().appendChild(node);
      current.release = ctx.trapFocus(root(), box, close, box.querySelector(".x"));
      ctx.emit("shown", { leadgen_id: g.id, trigger: trigger, format: "leadgen" });
    }

    /* arm each generator's trigger; all of them obey the delay between sessions */
    if (!S.inGap()) {
      C.generators.forEach(function (g) {
        if (!allowed(g)) return;
        var t = g.trigger, th = t.kind === "time" ? { time_seconds: t.time_seconds, exit: false }
          : t.kind === "exit" ? { exit_after_seconds: t.exit_after_seconds } : { scroll_percent: t.scroll_percent, exit: false };
        ctx.watch(th, function (name) { fire(g, name); }, t.kind === "scroll" ? t.activation_delay_seconds : 0);
      });
    }
    ctx.ready();
  });
})(window, document);
