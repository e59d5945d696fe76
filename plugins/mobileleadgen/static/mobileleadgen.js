/* Perezvon mobile lead generators (docs/mobileleadgen.md): the lead generator's promotions as a
   full-width bottom sheet on phones, swiped down or × to close. Each once per session, and at most
   five per session together with the desktop lead generator's (both mark "leadgen:…" in the
   session); a cover, the form, and a timer following the call, in a working-hours and an
   off-hours variant. Loaded only on viewports of 768 px or less (max_viewport_px). */
(function (w, d) {
  "use strict";
  var CSS = [
    ":host{all:initial}",
    ".ov{position:fixed;inset:0;background:var(--ov);animation:pvf .2s ease-out}",
    ".box{position:fixed;left:0;right:0;bottom:0;margin:0 auto;width:100%;max-width:600px;max-height:88vh;overflow:auto;overscroll-behavior:contain;",
    "border-radius:var(--r) var(--r) 0 0;font-family:var(--font);line-height:1.4;font-size:16px;box-shadow:0 -12px 40px rgba(0,0,0,.3);",
    "animation:pvu .28s cubic-bezier(.2,.8,.2,1);text-align:left;background:var(--fbg);padding-bottom:env(safe-area-inset-bottom)}",
    ".box.drag{transition:none}.box.back{transition:transform .2s ease-out}",
    ".box *{box-sizing:border-box}.sr{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ".grip{position:absolute;z-index:3;top:8px;left:50%;width:44px;height:5px;margin-left:-22px;border-radius:3px;background:var(--grip)}",
    ".x{position:absolute;z-index:3;top:10px;right:10px;width:40px;height:40px;border:0;background:rgba(0,0,0,.25);color:var(--close);font-size:26px;line-height:1;cursor:pointer;border-radius:50%}",
    ".cover{padding:40px 22px 22px;min-height:min(300px,60vh);display:flex;flex-direction:column;justify-content:flex-end;background:var(--cbg) center/cover no-repeat}",
    ".cover h2{margin:0 0 10px;font-size:var(--t1size);line-height:1.1;color:var(--t1);font-weight:900}",
    ".cover p{margin:0 0 18px;font-size:17px;color:var(--t2)}",
    ".go,.cta{display:block;width:100%;min-height:50px;border:0;border-radius:12px;font:inherit;font-size:17px;font-weight:700;cursor:pointer;color:var(--btext);background:linear-gradient(180deg,var(--b1),var(--b2))}",
    ".go[disabled]{opacity:.6}",
    ".info{padding:40px 56px 14px 22px;background:var(--ibg);color:var(--itext);font-size:17px;font-weight:700}",
    ".form{padding:16px 22px 20px;background:var(--fbg);color:var(--ftext)}.form h3{margin:0 0 12px;font-size:20px}",
    ".fld{display:block;margin:0 0 10px}.lbl{display:block;font-size:12px;margin:0 0 3px;opacity:.8}",
    "input[type=tel],input[type=text],select{width:100%;height:48px;padding:0 12px;font:inherit;font-size:17px;border:1px solid #cbd5e1;border-radius:10px;background:#f8fafc;color:#0f172a}",
    "[aria-invalid=true]{border-color:#dc2626!important}",
    ".err{display:block;color:#dc2626;font-size:12px;margin-top:3px}.err:empty{display:none}",
    ".ok{display:flex;gap:8px;align-items:flex-start;margin:10px 0 4px;font-size:12px}.ok input{width:18px;height:18px;margin:0;flex:none}",
    ".dis{font-size:11px;opacity:.7;margin:4px 0 0}.dis a{color:inherit}.row{display:flex;gap:8px}.row .fld{flex:1}",
    ".timer{padding:48px 22px 36px;min-height:min(300px,60vh);display:flex;flex-direction:column;justify-content:center;align-items:center;text-align:center;background:var(--tbg);color:var(--ttext)}",
    ".timer h2{margin:0 0 12px;font-size:26px}.timer p{font-size:19px;margin:0}.timer .state{font-weight:700}",
    ".pv-live-timer,.when{color:var(--acc);font-weight:900;font-variant-numeric:tabular-nums;font-size:1.6em;display:block;margin-top:8px}",
    "@keyframes pvf{from{opacity:0}}@keyframes pvu{from{transform:translateY(100%)}}",
    "@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}"
  ].join("");

  w.Perezvon.define("mobileleadgen", function (ctx) {
    var C = ctx.config, el = ctx.el, M = ctx.msg, S = ctx.session;
    /* the desktop lead generator's prefix: its count and ours are one (five per session at most) */
    var PREFIX = "leadgen:", OWN = PREFIX + "mobile:";
    var mounted = null, current = null, waiting = [];

    function today() {
      var t = new Date();
      return t.getFullYear() + "-" + ("0" + (t.getMonth() + 1)).slice(-2) + "-" + ("0" + t.getDate()).slice(-2);
    }
    function active(g) {
      var day = today();
      if (g.active_from && day < g.active_from) return false;
      return !g.active_to || day <= g.active_to || g.renew;
    }
    function allowed(g) {
      if (S.shown(OWN + g.id) || S.countShown(PREFIX) >= C.max_per_session) return false;
      if (!active(g) || g.channels.indexOf(S.channel) < 0) return false;
      for (var i = 0; i < g.filters.length; i++) if (!ctx.matches(g.filters[i])) return false;
      return true;
    }
    function root() {
      if (!mounted) { mounted = ctx.mount("mobileleadgen"); mounted.root.appendChild(el("style", { text: CSS })); }
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
        S.markShown(OWN + g.id);
        show(g, trigger);
      });
    }

    /* swipe down to close: the sheet follows the finger while it is scrolled to its top */
    function swipe(box) {
      var y0 = null, dy = 0;
      box.addEventListener("touchstart", function (e) {
        y0 = box.scrollTop <= 0 && e.touches.length === 1 ? e.touches[0].clientY : null;
        dy = 0;
      }, { passive: true });
      box.addEventListener("touchmove", function (e) {
        if (y0 === null) return;
        dy = e.touches[0].clientY - y0;
        if (dy <= 0) { dy = 0; box.style.removeProperty("transform"); return; }
        if (e.cancelable) e.preventDefault();
        box.className = "box drag";
        box.style.setProperty("transform", "translateY(" + dy + "px)");
      }, { passive: false });
      box.addEventListener("touchend", function () {
        if (y0 === null) return;
        y0 = null;
        if (dy > Math.min(120, box.offsetHeight / 4)) { close(); return; }
        box.className = "box back";
        box.style.removeProperty("transform");
      });
    }

    function show(g, trigger) {
      var off = !ctx.hours.isOpen(), V = off ? g.offhours : g.working, CO = V.cover, CA = V.call, T = V.timer, SH = g.sheet;
      var id = "pvm-" + g.id;
      var box = el("div", { "class": "box", role: "dialog", "aria-modal": "true", "aria-labelledby": id + "-t", "data-leadgen": g.id, "data-variant": off ? "offhours" : "working", tabindex: "-1" });
      var vars = { "--font": g.font_family, "--ov": SH.overlay, "--r": SH.radius + "px", "--grip": SH.handle_color, "--cbg": CO.background, "--t1": CO.text1_color,
        "--t1size": CO.text1_size + "px", "--t2": CO.text2_color, "--close": CO.close_color, "--ibg": CA.info_background, "--itext": CA.info_text_color,
        "--fbg": CA.form_background, "--ftext": CA.form_text_color, "--btext": CA.button_text_color, "--b1": CA.button_from, "--b2": CA.button_to,
        "--tbg": T.background, "--ttext": T.text_color, "--acc": T.accent_color };
      var node = el("div", { "data-screen": "cover" }, [el("div", { "class": "ov", onclick: close }), box]);
      for (var k in vars) node.style.setProperty(k, String(vars[k]));
      var detail = ctx.detail({ leadgen_id: g.id, trigger: trigger, format: "mobileleadgen", rule: g.filters.length ? g.name : "" });
      current = { node: node, stops: [], release: function () {} };

      var cta = el("button", { type: "button", "class": "cta", text: CO.cta_text });
      var cover = el("div", { "class": "cover" }, [ctx.text(el("h2", { id: id + "-t" }), CO.text1), ctx.text(el("p"), CO.text2), cta]);
      var img = CO.background_image && ctx.safeUrl(CO.background_image);
      if (img) cover.style.setProperty("background-image", "url(" + JSON.stringify(img) + ")");
      box.appendChild(el("div", { "class": "grip", "aria-hidden": "true" }));
      box.appendChild(el("button", { type: "button", "class": "x", "aria-label": M.close, text: "×", onclick: close }));
      box.appendChild(cover);

      /* the form screen */
      var choice = ctx.choices(id), parts = [el("h3", { text: CA.form_title })].concat(choice.nodes), name = null;
      var tc = off ? ctx.timeChoice(CA, true, null) : null;
      if (tc) parts.push(tc.node);
      if (CA.name_field !== "hidden") {
        name = ctx.field(CA.name_placeholder, el("input", { type: "text", autocomplete: "name", maxlength: "200", placeholder: CA.name_placeholder, required: CA.name_field === "required" }), id + "-name");
        parts.push(name.node);
      }
      var phone = ctx.phoneInput(CA.phone_placeholder, CA.phone_mask, id + "-phone");
      var button = el("button", { type: "submit", "class": "go", text: CA.button_text });
      var consent = el("input", { type: "checkbox", id: id + "-c" }), consentErr = el("span", { "class": "err" });
      consent.checked = true;
      var general = el("p", { "class": "err", role: "alert" });
      parts.push(phone.node, button, el("label", { "class": "ok", "for": id + "-c" }, [consent, el("span", {}, [CA.consent_text, consentErr])]),
        ctx.disclaimer(CA.disclaimer, [{ text: CA.link1_text, url: CA.link1_url }, { text: CA.link2_text, url: CA.link2_url }]), general);
      var form = el("form", { "class": "form", novalidate: true }, parts);
      var info = ctx.text(el("div", { "class": "info" }), CA.info_text);

      /* the keyboard comes up only when the visitor asked for the form (a tap), not by itself */
      function openForm(e) {
        if (node.getAttribute("data-screen") !== "cover") return;
        box.removeChild(cover);
        box.appendChild(info);
        box.appendChild(form);
        node.setAttribute("data-screen", "call");
        if (e) (tc || phone.control).focus();
        else box.focus();
      }
      if (CA.form_on === "time") {
        var tid = setTimeout(function () { openForm(null); }, CA.form_delay_seconds * 1000);
        current.stops.push(function () { clearTimeout(tid); });
      }
      cover.addEventListener("click", openForm);

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
        box.removeChild(info);
        box.removeChild(form);
        node.setAttribute("data-screen", "timer");
        var text = ctx.text(el("p"), T.text), state = el("p", { "class": "state", "aria-live": "polite", hidden: true });
        box.appendChild(el("div", { "class": "timer", role: "status" }, [ctx.text(el("h2", { id: id + "-t" }), T.title), text, state]));
        if (when) text.appendChild(el("span", { "class": "when", text: ctx.when(when) }));
        /* as the widget's closing screen: the countdown while nobody is rung yet, then the call's live state */
        var say = function (key) {
          text.hidden = key !== "countdown";
          state.hidden = key === "countdown";
          state.textContent = T["state_" + key] || "";
          node.setAttribute("data-call", key);
        };
        if (!when && !off) {
          if (res.duplicate || !res.call_id) say("duplicate");
          else current.stops.push(ctx.callProgress(res.call_id, say));
        }
      }

      swipe(box);
      root().appendChild(node);
      current.release = ctx.trapFocus(root(), box, close, box.querySelector(".x"));
      ctx.emit("shown", { leadgen_id: g.id, trigger: trigger, format: "mobileleadgen" });
    }

    /* exit intent on a phone: a quick scroll back up (towards the address bar) of a third of the screen */
    function scrollBack(after, go) {
      var last = [], at = Date.now() + after * 1000;
      function sc() {
        var t = Date.now(), y = w.scrollY || w.pageYOffset;
        last.push([t, y]);
        while (last.length > 2 && t - last[1][0] > 400) last.shift();
        var top = Math.max.apply(null, last.map(function (s) { return s[1]; }));
        if (t >= at && top - y >= w.innerHeight / 3) { w.removeEventListener("scroll", sc); go(); }
      }
      w.addEventListener("scroll", sc, { passive: true });
    }

    if (!S.inGap()) {
      C.generators.forEach(function (g) {
        if (!allowed(g)) return;
        var t = g.trigger, done = false, go = function (name) { if (!done) { done = true; fire(g, name); } };
        if (t.kind === "exit") {
          scrollBack(t.exit_after_seconds, function () { go("exit"); });
          ctx.watch({ exit_after_seconds: t.exit_after_seconds }, go, 0);  /* a tablet's mouse */
        } else {
          ctx.watch(t.kind === "time" ? { time_seconds: t.time_seconds, exit: false } : { scroll_percent: t.scroll_percent, exit: false }, go,
            t.kind === "scroll" ? t.activation_delay_seconds : 0);
        }
      });
    }
    ctx.ready();
  });
})(window, document);
