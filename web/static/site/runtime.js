/* Perezvon site runtime (docs/site-script.md): event bus, visitor session, channel,
   working hours, lead submission, and the helpers apps build on. Plain ES2019, one
   global (window.Perezvon); every app draws inside its own Shadow DOM. */
(function (w, d) {
  "use strict";
  var P = w.Perezvon;
  if (!P || !P.boot || P.started) return;
  P.started = true;
  var boot = P.boot, handlers = {}, factories = {}, apps = {}, cfg = null;
  var now = function () { return Date.now(); };
  var perfNow = function () { return w.performance && performance.now ? performance.now() : 0; };
  var lang = /^en/i.test(d.documentElement.lang || "") ? "en" : "ru";
  var MSG = {
    ru: { phone: "Введите номер телефона полностью", invalid: "Неверный номер телефона.", letters: "В номере телефона не может быть букв.", extension: "Добавочный номер указать нельзя: введите номер без него.", required: "Выберите значение", consent: "Нужно согласие на обработку персональных данных", failed: "Не удалось отправить заявку, попробуйте ещё раз", name: "Введите имя", time: "Выберите время звонка", office: "Офис", department: "Отдел", today: "Сегодня", tomorrow: "Завтра", close: "Закрыть" },
    en: { phone: "Enter the full phone number", invalid: "Not a valid phone number.", letters: "A phone number cannot contain letters.", extension: "Extension numbers are not supported: enter the number without one.", required: "Choose a value", consent: "Consent to personal data processing is required", failed: "Could not send, please try again", name: "Enter your name", time: "Choose a time for the call", office: "Office", department: "Department", today: "Today", tomorrow: "Tomorrow", close: "Close" }
  }[lang];

  /* --- event bus: handlers that throw never break the apps ------------------------ */
  function on(name, fn) { (handlers[name] = handlers[name] || []).push(fn); }
  function off(name, fn) {
    var list = handlers[name] || [];
    for (var i = list.length - 1; i >= 0; i--) if (list[i] === fn || !fn) list.splice(i, 1);
  }
  function emit(name, detail) {
    var list = (handlers[name] || []).concat(handlers["*"] || []);
    for (var i = 0; i < list.length; i++) {
      try { list[i](detail, name); } catch (e) { if (w.console) console.warn("Perezvon handler for " + name + " failed", e); }
    }
  }
  var queued = P.q || [];
  P.on = on; P.off = off; P.emit = emit; P.q = [];
  for (var qi = 0; qi < queued.length; qi++) on(queued[qi][0], queued[qi][1]);

  /* --- storage and the visitor session (docs/site-script.md) ----------------------------- */
  var KEY = "perezvon:" + boot.t.slice(0, 10);
  function load() { try { return JSON.parse(w.localStorage.getItem(KEY)) || {}; } catch (e) { return {}; } }
  function save() { try { w.localStorage.setItem(KEY, JSON.stringify(S)); } catch (e) { /* private mode */ } }
  function rid() {
    var a = new Uint8Array(12), out = "";
    (w.crypto || w.msCrypto).getRandomValues(a);
    for (var i = 0; i < a.length; i++) out += ("0" + a[i].toString(16)).slice(-2);
    return out;
  }
  var query = new URLSearchParams(w.location.search);
  var UTM = ["source", "medium", "campaign", "content", "term"];
  function utmFromUrl() {
    var u = {}, any = false;
    for (var i = 0; i < UTM.length; i++) { u[UTM[i]] = (query.get("utm_" + UTM[i]) || "").slice(0, 256); any = any || !!u[UTM[i]]; }
    return any ? u : null;
  }
  var PAID = ["cpc", "ppc", "cpm", "cpa", "cpv", "paid", "paidsearch", "display", "banner", "ads", "retargeting"];
  var SEARCH = ["google.", "yandex.", "bing.", "mail.ru", "duckduckgo.", "yahoo.", "rambler.", "ya.ru"];
  var SOCIAL = ["vk.com", "vk.ru", "ok.ru", "facebook.", "instagram.", "t.me", "telegram.", "twitter.", "x.com", "youtube.", "tiktok.", "dzen.ru", "linkedin.", "pinterest."];
  function has(list, text) { for (var i = 0; i < list.length; i++) if (text.indexOf(list[i]) >= 0) return true; return false; }
  function own(host) {
    for (var i = 0; i < boot.h.length; i++) if (host === boot.h[i] || host.slice(-boot.h[i].length - 1) === "." + boot.h[i]) return true;
    return false;
  }
  /* the same rule as core/channels.py, on the landing page */
  function detectChannel(utm, referrer) {
    var medium = ((utm && utm.medium) || "").toLowerCase(), host = "";
    if (query.has("gclid") || query.has("yclid") || PAID.indexOf(medium) >= 0) return "ads";
    if (["social", "smm", "social-network", "sm"].indexOf(medium) >= 0) return "social";
    try { host = referrer ? new URL(referrer).hostname.toLowerCase() : ""; } catch (e) { host = ""; }
    if (!host || own(host)) return "direct";
    if (has(SOCIAL, host)) return "social";
    if (medium === "organic" || has(SEARCH, host)) return "organic";
    return "referral";
  }
  var S = load(), site = {}, sessionMs = 45 * 6e4, gapMs = 15 * 6e4;
  function startSession() {
    var t = now(), utm = utmFromUrl(), clicked = query.has("gclid") || query.has("yclid");
    S.vid = S.vid || rid();
    if (!S.start || t >= S.start + sessionMs + gapMs) {
      S.start = t; S.pages = 0; S.shown = {}; S.ref = d.referrer || ""; S.landing = w.location.href;
      S.utm = utm || { source: "", medium: "", campaign: "", content: "", term: "" };
      S.channel = detectChannel(utm, d.referrer);
    } else if (utm || clicked) {  /* a new campaign click inside the session replaces the old UTM */
      S.utm = utm || S.utm; S.channel = detectChannel(utm, d.referrer);
    }
    S.shown = S.shown || {};
    S.pages = (S.pages || 0) + 1;
    S.last = t;
    save();
  }
  /* single-page sites change the URL without a page load: each new address counts as a page */
  function countNavigations() {
    var at = w.location.pathname + w.location.search, push = w.history.pushState;
    function moved() {
      var here = w.location.pathname + w.location.search;
      if (here === at) return;
      at = here; S.pages = (S.pages || 0) + 1; S.last = now(); save();
      /* the loader skipped apps that cannot show on the first page: fetch those that may show here */
      if (P.l) for (var k in apps) if (!factories[k] && !fetched(apps[k].script)) P.l(apps[k].script);  /* an older loader has no P.l */
    }
    function fetched(src) {
      for (var i = 0; i < d.scripts.length; i++) if (d.scripts[i].getAttribute("src") === boot.b + src) return true;
      return false;
    }
    w.history.pushState = function () { var r = push.apply(this, arguments); moved(); return r; };
    w.addEventListener("popstate", moved);
  }
  /* another tab of the same session may have shown something meanwhile */
  function sync() {
    var other = load();
    if (other.start === S.start && other.shown) for (var k in other.shown) if (!S.shown[k]) S.shown[k] = other.shown[k];
  }
  var session = {
    get visitorId() { return S.vid; },
    get channel() { return S.channel; },
    get utm() { return S.utm; },
    get pages() { return S.pages; },
    get start() { return S.start; },
    secondsOnSite: function () { return Math.max(0, Math.round((now() - S.start) / 1000)); },
    /* the delay between sessions: the session is over and the next has not begun */
    inGap: function () { return now() >= S.start + sessionMs; },
    shown: function (id) { sync(); return !!S.shown[id]; },
    countShown: function (prefix) { sync(); var n = 0; for (var k in S.shown) if (k.indexOf(prefix) === 0) n++; return n; },
    markShown: function (id) { sync(); S.shown[id] = now(); save(); }
  };

  /* --- working hours: windows [start, end) in ms, computed by the server ------------ */
  var hours = {
    isOpen: function (t) {
      var ws = (cfg && cfg.hours.windows) || [];
      t = t || now();
      if (!ws.length) return true;
      for (var i = 0; i < ws.length; i++) if (t >= ws[i][0] && t < ws[i][1]) return true;
      return false;
    },
    nextOpening: function (t) {
      var ws = (cfg && cfg.hours.windows) || [];
      t = t || now();
      for (var i = 0; i < ws.length; i++) { if (t < ws[i][1]) return Math.max(t, ws[i][0]); }
      return null;
    },
    /* call times are instants: the visitor reads them on their own clock; the site's
       "convenient time" is read on the site's clock (siteTime) */
    format: function (t, opts, zone) {
      try { return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "ru-RU", zone ? Object.assign({ timeZone: zone }, opts) : opts).format(new Date(t)); }
      catch (e) { return new Date(t).toLocaleString(); }
    },
    /* call-time choices: the next working days, every `step` minutes, from half an hour ahead */
    slots: function (days, step) {
      var ws = (cfg && cfg.hours.windows) || [], out = [], from = now() + 30 * 6e4, stepMs = (step || 30) * 6e4;
      for (var i = 0; i < ws.length && out.length < (days || 3); i++) {
        var start = Math.max(ws[i][0], Math.ceil(from / stepMs) * stepMs), times = [];
        for (var t = start; t < ws[i][1]; t += stepMs) times.push(t);
        if (times.length) out.push({ day: this.dayLabel(times[0]), times: times });
      }
      return out;
    },
    dayLabel: function (t) {
      var key = function (x) { return hours.format(x, { year: "numeric", month: "2-digit", day: "2-digit" }); };
      if (key(t) === key(now())) return MSG.today;
      if (key(t) === key(now() + 864e5)) return MSG.tomorrow;
      return hours.format(t, { weekday: "short", day: "numeric", month: "long" });
    },
    time: function (t) { return hours.format(t, { hour: "2-digit", minute: "2-digit" }); },
    siteTime: function (t) { return hours.format(t, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }, site.timezone); }
  };

  /* --- DOM helpers: text only, never HTML from settings or visitors ------------------ */
  function el(tag, attrs, kids) {
    var node = d.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "style") for (var s in v) { if (v[s] !== null && v[s] !== undefined && v[s] !== "") node.style.setProperty(s, String(v[s])); }
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (var i = 0; kids && i < kids.length; i++) if (kids[i]) node.appendChild(typeof kids[i] === "string" ? d.createTextNode(kids[i]) : kids[i]);
    return node;
  }
  function safeUrl(url) {
    if (!url) return "";
    try { var u = new URL(url, w.location.href); return u.protocol === "https:" || u.protocol === "http:" ? u.href : ""; }
    catch (e) { return ""; }
  }
  /* A fixed, zero-size host with its own shadow root: no CSS in or out, no layout shift. */
  function mount(name) {
    var host = el("div", { "data-perezvon": name, style: { position: "fixed", top: "0", left: "0", width: "0", height: "0", "z-index": "2147483000" } });
    (d.body || d.documentElement).appendChild(host);
    return { host: host, root: host.attachShadow ? host.attachShadow({ mode: "open" }) : host };
  }
  var timers = [];
  /* Text with the variables [TIMER_TIME] and [LIVE_TIMER] (a live countdown) as DOM nodes. */
  function text(parent, value, vars) {
    var parts = String(value || "").split(/(\[LIVE_TIMER\]|\[TIMER_TIME\])/);
    vars = vars || {};
    for (var i = 0; i < parts.length; i++) {
      if (parts[i] === "[TIMER_TIME]") parent.appendChild(d.createTextNode(String(site.timer_seconds)));
      else if (parts[i] === "[LIVE_TIMER]") parent.appendChild(liveTimer(vars.startedAt));
      else if (parts[i]) parent.appendChild(d.createTextNode(parts[i]));
    }
    return parent;
  }
  function liveTimer(startedAt) {
    var span = el("span", { "class": "pv-live-timer", role: "timer" }), begin = startedAt || now();
    var tick = function () {
      var left = Math.max(0, site.timer_seconds - Math.floor((now() - begin) / 1000));
      span.textContent = ("0" + Math.floor(left / 60)).slice(-2) + ":" + ("0" + (left % 60)).slice(-2);
      return left;
    };
    tick();
    var id = setInterval(function () { if (!tick() || !span.isConnected && now() - begin > 2000) clearInterval(id); }, 250);
    timers.push(id);
    return span;
  }
  /* Keyboard: Tab stays inside the dialog, Esc closes it, focus returns where it was. */
  function trapFocus(root, box, onEscape, initial) {
    var before = d.activeElement;
    while (before && before.shadowRoot && before.shadowRoot.activeElement) before = before.shadowRoot.activeElement;
    function focusables() {
      return Array.prototype.filter.call(box.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])"),
        function (n) { return !n.disabled && n.offsetParent !== null && w.getComputedStyle(n).visibility !== "hidden"; });
    }
    function key(e) {
      if (e.key === "Escape") { e.preventDefault(); onEscape(); return; }
      if (e.key !== "Tab") return;
      var f = focusables(), active = root.activeElement;
      if (!f.length) return;
      if (e.shiftKey && (active === f[0] || !box.contains(active))) { e.preventDefault(); f[f.length - 1].focus(); }
      else if (!e.shiftKey && (active === f[f.length - 1] || !box.contains(active))) { e.preventDefault(); f[0].focus(); }
    }
    /* on the document: Esc and Tab work even before focus has moved into the dialog */
    d.addEventListener("keydown", key, true);
    var f0 = focusables();
    (initial || f0[1] || f0[0] || box).focus();
    return function release() { d.removeEventListener("keydown", key, true); try { if (before && before.focus) before.focus(); } catch (e) { /* gone */ } };
  }

  /* --- the phone input every app shares: a mask ("9" = a digit; "+7 (999) 999-99-99" by
     default) over what a person types key by key, pastes or has autofilled, read by the same
     rules as the server (core/phones.py; both tested against tests/phone_cases.json): the
     8…, +7…, 7… and bare ten-digit forms are one number; an entry the mask cannot hold
     (letters, an extension, too many digits) stays as entered and is refused, never cut. */
  function maskPhone(input, pattern) {
    var lead = pattern.split("9")[0], prefix = lead.replace(/[^0-9+]/g, ""), cc = prefix.replace(/\D/g, "");
    var slots = pattern.split("9").length - 1, national = "", problem = "", plus = false, last = "";
    /* a mask without a country code, or the "8 (999)…" form, is Russian as the server's default region */
    if (!cc || cc === "8" && prefix.charAt(0) !== "+") cc = "7";
    function count(text) { return text.replace(/\D/g, "").length; }
    function read(text, intl) {
      var t = text.trim(), x = t.replace(/\D/g, ""), err = "", letters = /\p{L}/u.test(t);
      intl = intl || t.charAt(0) === "+";
      if (intl && x.indexOf(cc) === 0) x = x.slice(cc.length);
      else if (intl) err = "invalid";  /* another country's code: not a number this mask dials */
      /* 8 is Russia's trunk prefix and 7 its country code; no area code starts with 79 or 89 */
      else if (cc === "7" && /^[78]/.test(x) && (x.length > slots || /^.9/.test(x))) x = x.slice(1);
      else if (x.length > slots && x.indexOf(cc) === 0) x = x.slice(cc.length);
      if (x.length > slots) err = letters || /[#;,]/.test(t) ? "extension" : "invalid";
      else if (letters) err = "letters";
      return { n: x, err: err };
    }
    function format(n) {
      var out = "", j = 0, first = pattern.indexOf("9");
      if (!n) return input.matches(":focus") ? lead : "";
      for (var i = 0; i < pattern.length; i++) {
        var c = pattern.charAt(i);
        if (c === "9") { if (j >= n.length) break; out += n.charAt(j++); }
        else if (i < first || j < n.length) out += c;
      }
      return out;
    }
    function set(v) { input.value = last = v; }
    function update(e) {
      var v = input.value, type = (e && e.inputType) || "", caret = input.selectionStart;
      /* one key at a time (or a deletion) is typing; a paste, a drop or autofill is an entry */
      var key = type === "insertText" && e.data && e.data.length === 1 || /^delete/.test(type);
      var ours = !!lead && v.indexOf(lead) === 0, from = ours ? lead.length : 0, tail = v.slice(from);
      if (key && /^\s*\+\s*$/.test(tail)) { plus = true; return set(lead); }  /* "+7 …" typed over the mask's own +7 */
      var r = read(tail, key && plus), n = r.n;
      if (/\d/.test(tail)) plus = false;
      if (key && !problem && n.length > slots) return set(last);  /* a key past the end is refused, as maxlength would */
      problem = !key || problem ? r.err : "";
      if (problem) { national = ""; return set(v); }
      var k = caret === null ? n.length : count(v.slice(from, caret)) - (count(tail) - n.length);
      /* Backspace just after a dash or bracket of the mask deletes the digit before it */
      if (type === "deleteContentBackward" && n === national && v.length < last.length && k > 0) n = n.slice(0, k - 1) + n.slice(k--);
      national = n;
      set(format(n));
      if (caret !== null && caret < v.length && input.matches(":focus")) {
        var at = lead.length;
        for (var seen = 0; at < last.length && seen < k; at++) if (/\d/.test(last.charAt(at))) seen++;
        input.setSelectionRange(at, at);
      }
    }
    input.addEventListener("input", update);
    input.addEventListener("change", function () { if (input.value !== last) update(); });  /* autofill that only says "change" */
    /* a paste onto the bare mask, or over all of it, is the whole entry: "+7 916 …" must not become "+7 (+7 916" */
    input.addEventListener("paste", function (e) {
      var text = e.clipboardData && e.clipboardData.getData("text");
      if (!text) return;
      e.preventDefault();
      var v = input.value, s = input.selectionStart || 0, t = input.selectionEnd || 0;
      input.value = !national && !problem || s <= lead.length && t >= v.length ? text : v.slice(0, s) + text + v.slice(t);
      update({ inputType: "insertFromPaste" });
    });
    input.addEventListener("focus", function () { if (!input.value) set(lead); });
    input.addEventListener("blur", function () { if (!national && !problem) set(""); });
    if (input.value) update();
    return {
      valid: function () { return !problem && national.length === slots; },
      error: function () { return problem ? MSG[problem] : national.length === slots ? "" : MSG.phone; },
      value: function () { return (prefix.charAt(0) === "+" ? "+" + cc : prefix) + national; }
    };
  }
  /* the labelled phone field with its mask: f.check() shows the error, f.value() is what to send */
  function phoneInput(placeholder, pattern, id) {
    var input = el("input", { type: "tel", name: "phone", autocomplete: "tel", inputmode: "tel", placeholder: placeholder, required: true, "aria-required": "true" });
    var f = field(placeholder, input, id), mask = maskPhone(input, pattern);
    f.value = mask.value;
    f.check = function () { return fail(f, mask.error()); };
    return f;
  }

  /* --- rules: a condition on the URL or one UTM field (5 operators), a period --------- */
  function matches(rule) {
    var target = rule.target === "url" || !rule.target ? w.location.href : (S.utm[rule.target.replace(/^utm_/, "")] || "");
    var value = String(rule.value || ""), t = target.toLowerCase(), v = value.toLowerCase();
    var eq = t === v || (rule.target === "url" && t.replace(/\/$/, "") === v.replace(/\/$/, ""));
    var ok = { contains: t.indexOf(v) >= 0, not_contains: t.indexOf(v) < 0, equals: eq, not_equals: !eq, starts_with: t.indexOf(v) === 0 }[rule.operator || "contains"];
    return !!ok && inPeriod(rule);
  }
  function inPeriod(rule) {
    var t = now();
    if (rule.date_from && t < Date.parse(rule.date_from + "T00:00:00")) return false;
    if (rule.date_to && t >= Date.parse(rule.date_to + "T00:00:00") + 864e5) return false;
    return true;
  }
  /* the highest weight wins; among equals the first listed */
  function bestRule(rules) {
    var best = null;
    for (var i = 0; i < (rules || []).length; i++) if (matches(rules[i]) && (!best || (rules[i].weight || 0) > (best.weight || 0))) best = rules[i];
    return best;
  }

  /* --- triggers: time on page, exit intent, scroll depth ------------------------------- */
  var pageStart = now() - perfNow();  /* time on the page counts from the navigation, not from this script */
  function watch(th, fire, extraDelay) {
    var done = false, cleanups = [];
    function go(name) { if (done) return; done = true; stop(); fire(name); }
    function stop() { done = true; for (var i = 0; i < cleanups.length; i++) cleanups[i](); cleanups = []; }
    if (th.time_seconds) { var tid = setTimeout(function () { go("time"); }, Math.max(0, th.time_seconds * 1000 - (now() - pageStart))); cleanups.push(function () { clearTimeout(tid); }); }
    if (th.exit_after_seconds !== null && th.exit_after_seconds !== undefined && th.exit !== false) {
      var out = function (e) { if (!e.relatedTarget && e.clientY <= 0 && now() - pageStart >= th.exit_after_seconds * 1000) go("exit"); };
      d.addEventListener("mouseout", out);
      cleanups.push(function () { d.removeEventListener("mouseout", out); });
    }
    if (th.scroll_percent) {
      var armed = now() + (extraDelay || 0) * 1000;
      var sc = function () {
        var h = Math.max(d.documentElement.scrollHeight, d.body ? d.body.scrollHeight : 0) - w.innerHeight;
        /* a page that cannot scroll never fires a scroll trigger */
        if (h > 0 && (w.scrollY || w.pageYOffset) / h * 100 >= th.scroll_percent && now() >= armed) go("scroll");
      };
      w.addEventListener("scroll", sc, { passive: true });
      /* scrolled far enough before the activation delay was over: look again when it is */
      var again = extraDelay ? setTimeout(sc, Math.max(0, armed - now()) + 20) : null;
      cleanups.push(function () { w.removeEventListener("scroll", sc); clearTimeout(again); });
    }
    return stop;
  }

  /* --- the displayed site phone, read through the office's CSS selector ---------------- */
  function displayedPhone(officeId) {
    var items = (cfg.offices && cfg.offices.items) || [];
    var pick = null;
    for (var i = 0; i < items.length; i++) if (items[i].phone_selector && (items[i].id === officeId || (!pick && !officeId))) pick = items[i].id === officeId ? items[i] : (pick || items[i]);
    if (!pick) for (i = 0; i < items.length; i++) if (items[i].phone_selector) { pick = items[i]; break; }
    if (!pick) return "";
    try { var n = d.querySelector(pick.phone_selector); return n ? n.textContent.replace(/\s+/g, " ").trim().slice(0, 40) : ""; }
    catch (e) { return ""; }
  }

  /* --- leads and the live call state ---------------------------------------------------- */
  function submit(app, fields, detail) {
    var payload = {
      token: boot.t, source: app.source, phone: fields.phone, name: fields.name || "", consent: fields.consent === true,
      office_id: fields.office_id || null, department_id: fields.department_id || null,
      preferred_at: fields.preferred_at ? new Date(fields.preferred_at).toISOString() : null,
      page_url: w.location.href.slice(0, 2048), referrer: (S.ref || "").slice(0, 2048), utm: S.utm, channel: S.channel,
      visitor_id: S.vid, visit: { pages: S.pages, seconds_on_site: session.secondsOnSite(), trigger: detail.trigger || "", rule: detail.rule || "" },
      displayed_phone: displayedPhone(fields.office_id || null), extra: fields.extra || {}
    };
    emit("lead_sending", payload);  /* synchronously: integrations add payload.extra[key] */
    return fetch(cfg.api + "/api/v1/leads", {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json", "Accept-Language": lang },
      body: JSON.stringify(payload)
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { var err = new Error("lead refused"); err.errors = body.errors || {}; throw err; }
        var ev = Object.assign({}, detail, { lead_id: body.lead_id });
        emit(app.key + "_lead", ev);
        if (detail.offhours) emit("offhours_lead", ev);
        return body;
      });
    });
  }
  /* Polls the public call state until it is finished; calls back with each answer. */
  function followCall(callId, onState) {
    /* "already requested" (a duplicate within a minute) carries no call id: nothing to follow */
    if (!callId) return function () {};
    var stopped = false, delay = 1500;
    function poll() {
      if (stopped) return;
      fetch(cfg.api + "/api/v1/calls/" + encodeURIComponent(callId) + "/state?token=" + encodeURIComponent(boot.t), { credentials: "omit" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (st) { if (st) { try { onState(st); } catch (e) { /* app bug */ } if (st.finished) stopped = true; } if (!stopped) setTimeout(poll, delay); })
        ["catch"](function () { if (!stopped) setTimeout(poll, delay * 2); });
    }
    poll();
    return function () { stopped = true; };
  }

  /* One truth at a time for a closing screen: what the call is doing now, as a key --
     "countdown" (the connection's timer is still running and nobody is rung yet), "waiting",
     "calling", "calling_operator", "calling_client", "failed" (an attempt failed, another is
     due), "successful", "notified" (people were e-mailed instead) or "gave_up". show(key, state)
     is called each time the key changes. */
  function callProgress(callId, show) {
    var since = now(), st = null, last = "", id;
    function judge() {
      var key = !st || st.phase === "waiting" && !st.attempts ? (now() - since < site.timer_seconds * 1000 ? "countdown" : "waiting")
        : st.finished ? (st.status === "successful" || st.status === "notified" ? st.status : "gave_up")
        : st.phase === "calling" ? (st.leg ? "calling_" + st.leg : "calling") : "failed";
      if (key !== last) { last = key; show(key, st); }
      if (key !== "countdown") clearInterval(id);
    }
    id = setInterval(judge, 250);
    var stop = followCall(callId, function (state) { st = state; judge(); });
    judge();
    return function () { stop(); clearInterval(id); };
  }

  /* the office and department drop-downs, as the connection has them (the intake requires what is marked required) */
  function choices(id) {
    var list = [];
    [["office", cfg.offices], ["department", cfg.departments]].forEach(function (c) {
      var o = c[1];
      if (!o || !o.enabled) return;
      var f = field(o.title || MSG[c[0]], select(o.items.map(function (it) { return { value: it.id, label: it.name }; }), o.required, "—"), id + "-" + c[0]);
      f.key = c[0] + "_id";
      f.required = o.required;
      list.push(f);
    });
    return {
      nodes: list.map(function (f) { return f.node; }),
      check: function () { return list.reduce(function (ok, f) { return fail(f, f.required && !f.control.value ? MSG.required : "") && ok; }, true); },
      values: function (into) { list.forEach(function (f) { into[f.key] = f.control.value ? +f.control.value : null; }); return into; },
      errors: function (errs) { list.forEach(function (f) { if (errs[f.key]) fail(f, errs[f.key].join(" ")); }); }
    };
  }

  /* --- form pieces both apps use: labelled fields with errors, drop-downs, call time -------- */
  var uid = 0;
  function disclaimer(value, links) {
    var p = el("p", { "class": "dis" }), parts = String(value || "").split(/(\[LINK1\]|\[LINK2\])/);
    parts.forEach(function (part) {
      var n = part === "[LINK1]" ? 1 : part === "[LINK2]" ? 2 : 0;
      if (!n) { if (part) p.appendChild(d.createTextNode(part)); return; }
      var link = links[n - 1] || {}, url = safeUrl(link.url || ""), label = link.text || "";
      p.appendChild(url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label }) : d.createTextNode(label));
    });
    return p;
  }
  function field(labelText, control, id) {
    var err = el("span", { "class": "err", id: id + "-err", "aria-live": "polite" });
    control.id = id;
    control.setAttribute("aria-describedby", id + "-err");
    /* an input whose placeholder says the same keeps its label for screen readers only */
    var same = control.getAttribute("placeholder") === labelText;
    return { node: el("label", { "class": "fld", "for": id }, [el("span", { "class": same ? "lbl sr" : "lbl", text: labelText }), control, err]), err: err, control: control };
  }
  function select(items, required, placeholder) {
    var s = el("select", { required: required, "aria-required": required ? "true" : null });
    s.appendChild(el("option", { value: "", text: placeholder }));
    items.forEach(function (it) { s.appendChild(el("option", { value: String(it.value), text: it.label })); });
    return s;
  }
  function fail(f, message) {
    f.err.textContent = message;
    f.control.setAttribute("aria-invalid", message ? "true" : "false");
    return !message;
  }
  /* Day and time drop-downs built from the working-hours windows; `labels` has day_label, time_label. */
  function timeChoice(labels, required, initial) {
    var slots = hours.slots(4, 30), wrap = el("div", { "class": "row" }), id = "pvt" + (++uid);
    var day = field(labels.day_label, select(slots.map(function (s, i) { return { value: i, label: s.day }; }), required, "—"), id + "d");
    var time = field(labels.time_label, el("select", { required: required }), id + "t");
    function fill() {
      time.control.textContent = "";
      var s = slots[+day.control.value];
      if (!s || day.control.value === "") { time.control.appendChild(el("option", { value: "", text: "—" })); return; }
      s.times.forEach(function (t) { time.control.appendChild(el("option", { value: String(t), text: hours.time(t) })); });
    }
    day.control.addEventListener("change", fill);
    if (slots.length && (required || initial)) {
      /* preselect the chosen time, else the first working day at the site's convenient time */
      var di = 0, want = initial, conv = site.convenient_time;
      if (initial) slots.forEach(function (s, i) { if (s.times.indexOf(initial) >= 0) di = i; });
      else {
        want = slots[0].times[0];
        for (var i = 0; i < slots[0].times.length; i++) if (hours.siteTime(slots[0].times[i]) >= conv) { want = slots[0].times[i]; break; }
      }
      day.control.value = String(di);
      fill();
      time.control.value = String(want);
    } else fill();
    wrap.appendChild(day.node);
    wrap.appendChild(time.node);
    return {
      node: wrap,
      value: function () { return +time.control.value || null; },
      check: function () { return fail(time, required && !time.control.value ? MSG.time : ""); },
      focus: function () { day.control.focus(); }
    };
  }
  function when(t) { return hours.dayLabel(t) + ", " + hours.time(t); }

  /* --- one pop-up at a time: an automatic trigger waits while another app's dialog is open -- */
  var modal = null, waiters = [];
  function whenFree(key, fn) { if (!modal || modal === key) { modal = key; fn(); } else waiters.push([key, fn]); }
  function free(key) {
    if (modal !== key) return;
    modal = null;
    var next = waiters.shift();
    if (next) whenFree(next[0], next[1]);
  }

  /* a phone-sized viewport (the width the mobile apps are made for) */
  function isPhone() { return !!(w.matchMedia && w.matchMedia("(max-width: 768px)").matches); }

  /* --- apps ---------------------------------------------------------------------------- */
  function context(app) {
    var base = { app: app.key, app_title: app.title };
    return {
      app: app, config: app.config, site: site, session: session, hours: hours, msg: MSG, lang: lang,
      offices: cfg.offices, departments: cfg.departments,
      api: cfg.api, /* the Perezvon address, for an app's own plugin routes (/p/<plugin>/...) */
      emit: function (event, detail) { emit(app.key + "_" + event, Object.assign({}, base, { offhours: !hours.isOpen() }, detail)); },
      detail: function (extra) { return Object.assign({}, base, { offhours: !hours.isOpen() }, extra); },
      submit: function (fields, detail) { return submit(app, fields, Object.assign({}, base, detail)); },
      isPhone: isPhone, followCall: followCall, callProgress: callProgress, el: el, text: text, mount: mount, trapFocus: trapFocus, maskPhone: maskPhone,
      phoneInput: phoneInput, choices: choices,
      matches: matches, bestRule: bestRule, disclaimer: disclaimer, field: field, select: select, fail: fail,
      timeChoice: timeChoice, when: when,
      whenFree: function (fn) { whenFree(app.key, fn); }, free: function () { free(app.key); }, inPeriod: inPeriod, watch: watch, safeUrl: safeUrl, displayedPhone: displayedPhone,
      ready: function () { P.readyAt = P.readyAt || {}; P.readyAt[app.key] = perfNow(); emit("ready", base); }
    };
  }
  function start(key) {
    var app = apps[key];
    if (!app || !factories[key] || app.started) return;
    app.started = true;
    try { factories[key](context(app)); } catch (e) { if (w.console) console.warn("Perezvon app " + key + " failed", e); }
  }
  /* app scripts call Perezvon.define(key, factory) when they load */
  P.define = function (key, factory) { factories[key] = factory; start(key); };
  var early = P.d || [];  /* app code that ran before the runtime (the loader fetched both at once) */
  for (var di = 0; di < early.length; di++) factories[early[di][0]] = early[di][1];
  P.d = [];
  function script(src) { var s = el("script", { src: cfg.api + src, async: true }); (d.head || d.documentElement).appendChild(s); }

  (P.config || Promise.resolve(null)).then(function (config) {
    if (!config || !config.apps) return;
    cfg = config;
    site = config.site;
    sessionMs = site.session_minutes * 6e4;
    gapMs = site.session_gap_minutes * 6e4;
    startSession();
    countNavigations();
    P.session = session;
    P.hours = hours;
    P.integrations = config.integrations || {};
    P.events = config.events || [];
    for (var i = 0; i < (config.integration_scripts || []).length; i++) script(config.integration_scripts[i]);
    for (i = 0; i < config.apps.length; i++) {
      if (config.apps[i].max_width && w.innerWidth > config.apps[i].max_width) continue; /* made for narrower screens */
      apps[config.apps[i].key] = config.apps[i];
      if (factories[config.apps[i].key]) start(config.apps[i].key);
      else if ((boot.a || []).indexOf(config.apps[i].script) < 0) script(config.apps[i].script);
    }
    emit("config", config);
  })["catch"](function (e) { if (w.console) console.warn("Perezvon could not start", e); });
})(window, document);
