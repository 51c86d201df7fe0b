// gateway-widget.js — the one-tag embed for merchants' website chat → Podium.
//
// A merchant adds one tag, nothing else:
//   <script src="https://gateway.example/gateway-widget.js" async
//           data-location-uid="loc_sydney"             (the Podium location of the store)
//           data-region="AU"></script>                 (ISO alpha-2, for national numbers)
//
// Two modes:
//   drop-in  (no chat form on the page, or data-mode="dropin"): the snippet draws its own
//            launcher and chat panel inside an open Shadow DOM. Themed with data-title,
//            data-subtitle, data-launcher-label, data-color, data-position (right|left),
//            data-consent, and the CSS custom properties --podium-accent,
//            --podium-accent-text, --podium-font, --podium-radius, --podium-offset-x/-y,
//            --podium-z-index (set them on :root or on the podium-gateway-chat element).
//   enhance  (a form matching data-form, default form[data-podium-chat], is on the page or
//            in a <template>, or data-mode="enhance"): the merchant's own chat UI. Inside
//            the form: input[type=tel] / input[name=phone], textarea[name=message] (or the
//            first textarea), input[name=name] (optional), every input[type=file],
//            [data-podium-status] (optional; created if missing), [data-podium-turnstile]
//            (optional). Forms added later (a panel inserted on click) are picked up.
//
// Other attributes: data-endpoint (gateway base URL, default: this script's origin),
// data-turnstile-sitekey (turn on Cloudflare Turnstile), data-turnstile-src (its script).
//
// What it does: checks the phone number and files in the browser with the same Rust
// code the gateway runs (WebAssembly, loaded when the chat is first opened or focused),
// shows problems next to the fields, uploads accepted files to
// <endpoint>/v1/webchat/attachments and posts the message envelope to
// <endpoint>/v1/webchat/messages with an Idempotency-Key (one per message; a resend of the
// same message reuses it) and, with Turnstile, a single-use CF-Turnstile-Response token.
//
// Events, dispatched on the form (they bubble and cross the drop-in's shadow root, where
// their target is the podium-gateway-chat element; no phone numbers or texts in them):
//   podium-gateway:invalid  detail {problems:[{code,message,field}]}  nothing was sent
//   podium-gateway:sent     detail {sessionId}                         the gateway took it
//   podium-gateway:failed   detail {status, code}  (HTTP status, 0 = network error)
//   podium-gateway:session  detail {warning, expired}  "still there?" shown / chat timed out
//
// Global: window.PodiumGateway = {version, mode, ready, load, normalizePhone,
// checkAttachment, validateMessage, metadataVersion, open, close}. `ready` resolves true
// once the validator runs, false if it could not be loaded; the checks are async proxies
// that load it on first use. open()/close() drive the drop-in panel.
//
// If the validator cannot load (404, CSP, old browser), nothing breaks: files are only
// checked against the 25 MB limit, the phone is sent as typed, and the gateway (which
// validates everything anyway) answers with any problem.
(function () {
  'use strict';

  var VERSION = '0.1.0';
  var PODIUM_MAX_BYTES = 25000000; // Podium's limit; used only when the validator is missing
  var KEY = 'podium-gateway:'; // sessionStorage prefix (per tab: survives navigations)
  var TURNSTILE_SRC = 'https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit';
  // Automatic resends of a message whose fate is unknown (network error, 5xx): after these
  // delays, with the same Idempotency-Key, so the gateway answers a repeat with the first 202.
  var RETRY_DELAYS = [800, 2400];
  var HUMAN_WAIT_MS = 10000; // how long Send waits for a Turnstile token before asking
  var HUMAN_TEXT = 'Please confirm you’re human, then send again.';

  if (window.PodiumGateway && window.PodiumGateway.version) return; // embedded twice

  // Captured now: document.currentScript is null once this first run is over.
  var script = document.currentScript ||
    document.querySelector('script[src*="gateway-widget.js"]');
  var scriptUrl = new URL(script ? script.src : location.href, location.href);
  var data = (script && script.dataset) || {};
  var config = {
    endpoint: (data.endpoint || scriptUrl.origin).replace(/\/+$/, ''),
    locationUid: data.locationUid || '',
    region: (data.region || '').trim().toUpperCase() || undefined,
    form: data.form || 'form[data-podium-chat]',
    mode: (data.mode || (data.form ? 'enhance' : '')).toLowerCase().replace('-', ''),
    sitekey: data.turnstileSitekey || '',
    turnstileSrc: data.turnstileSrc || TURNSTILE_SRC,
  };
  var moduleUrl = new URL('pkg/widget.js', scriptUrl).href;

  var SEL = {
    phone: 'input[type=tel], input[name=phone]',
    message: 'textarea[name=message], textarea, input[name=message]',
    name: 'input[name=name]',
    file: 'input[type=file]',
  };

  // ---- The validator: loaded at most once, only when someone is about to chat. ----

  var wasm = null; // the module's exports once instantiated
  var metadata = null; // its phone metadata version, if it says
  var loading = null;
  var resolveReady;
  var ready = new Promise(function (resolve) { resolveReady = resolve; });

  function load() {
    if (!loading) {
      loading = import(moduleUrl)
        .then(function (mod) {
          return mod.default({ module_or_path: new URL('widget_bg.wasm', moduleUrl) })
            .then(function () { return mod; });
        })
        .then(function (mod) {
          wasm = mod;
          try {
            // Newer modules only; an older one simply has no such export.
            if (typeof mod.metadataVersion === 'function') metadata = String(mod.metadataVersion());
          } catch (e) { /* diagnostics only */ }
          // The whole-message check is a second, larger module: fetch it in the
          // background now, so Send does not wait for it.
          idle(function () { try { mod.warmUp(); } catch (e) { /* checks still work */ } });
          return true;
        }, function () {
          console.warn('podium-gateway: validator unavailable; the gateway will validate');
          return false;
        });
      loading.then(resolveReady);
    }
    return loading;
  }

  // A customer waiting on Send or a file should not wait on a stalled download: after
  // `ms` carry on without the validator (the gateway validates anyway).
  function loadWithin(ms) {
    return Promise.race([load(), new Promise(function (resolve) { setTimeout(resolve, ms, false); })]);
  }

  function idle(fn) {
    if (window.requestIdleCallback) requestIdleCallback(fn, { timeout: 2000 });
    else setTimeout(fn, 300);
  }

  var unavailable = {
    ok: false, code: 'validator_unavailable', message: 'the validator could not be loaded',
  };
  function proxy(name) {
    return function () {
      var args = arguments;
      return load().then(function (ok) { return ok ? wasm[name].apply(null, args) : unavailable; });
    };
  }

  // The whole-message verdict. Until the message module (loaded by warmUp) is in, the
  // module answers at once with what it can judge alone (a refusal of the phone, else
  // ok) marked `pending`, and that answer is also a promise of the full verdict: wait for
  // it up to `ms`, then settle for the early answer (the gateway validates anyway).
  function judge(envelope, region, ms) {
    var verdict = wasm && wasm.validateMessage(envelope, region);
    if (!verdict || !verdict.pending) return Promise.resolve(verdict);
    // A plain copy: resolving with the thenable itself would wait for it unbounded.
    var early = { ok: verdict.ok };
    ['code', 'message', 'field', 'problems'].forEach(function (k) {
      if (verdict[k] !== undefined) early[k] = verdict[k];
    });
    var full = new Promise(function (resolve) {
      verdict.then(resolve, function () { resolve(undefined); });
    });
    var late = new Promise(function (resolve) { setTimeout(resolve, ms, undefined); });
    return Promise.race([full, late]).then(function (v) { return v || early; });
  }

  var dropin = null; // the drop-in widget, once drawn
  var openWhenDrawn = false;

  var api = window.PodiumGateway = {
    version: VERSION,
    mode: null, // 'dropin' or 'enhance' once the page is read
    ready: ready,
    load: load,
    normalizePhone: proxy('normalizePhone'),
    checkAttachment: proxy('checkAttachment'),
    validateMessage: function (envelope, region) {
      return load().then(function (ok) { return ok ? judge(envelope, region, 8000) : unavailable; });
    },
    metadataVersion: function () { return load().then(function () { return metadata; }); },
    // Drop-in only (an own form is the merchant's to show): open or close the panel.
    open: function () {
      if (dropin) dropin.open(true);
      else openWhenDrawn = api.mode !== 'enhance';
      return api.mode !== 'enhance';
    },
    close: function () {
      openWhenDrawn = false;
      if (dropin) dropin.close(false);
    },
  };

  // ---- Small helpers. ----

  function stored(name) {
    try { return JSON.parse(sessionStorage.getItem(KEY + name)); } catch (e) { return null; }
  }
  function store(name, value) {
    try {
      if (value == null) sessionStorage.removeItem(KEY + name);
      else sessionStorage.setItem(KEY + name, JSON.stringify(value));
    } catch (e) { /* storage blocked: this page only */ }
  }

  var UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  var memorySession = null;
  function existingSessionId() {
    var id = memorySession;
    try { id = sessionStorage.getItem(KEY + 'session') || id; } catch (e) { /* blocked */ }
    return id && UUID_V4.test(id) ? id : null;
  }
  // One chat session per tab: it follows the customer from page to page.
  function sessionId() {
    var id = existingSessionId();
    if (!id) {
      id = memorySession = uuid4();
      try { sessionStorage.setItem(KEY + 'session', id); } catch (e) { /* per page then */ }
    }
    return id;
  }

  function uuid4() {
    if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // FNV-1a: tells "the same message again" from a new one without storing its text.
  function digest(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return (h >>> 0).toString(36) + '.' + text.length;
  }

  function sentence(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.') : '';
  }

  function mb(bytes) {
    return (Math.round(bytes / 100000) / 10) + ' MB';
  }

  function delay(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function whenParsed(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn, { once: true });
    else fn();
  }

  // ---- Idempotency: one key per message. ----
  //
  // The key is kept (in this tab, across pages) while the message's fate is unknown and
  // reused for the same message; any definite answer ends it. The stored fingerprint is a
  // hash, never the text.
  var pending = stored('pending'); // {key, fp}

  function keyFor(fp) {
    if (!pending || pending.fp !== fp || !UUID_V4.test(pending.key)) {
      pending = { key: uuid4(), fp: fp };
      store('pending', pending);
    }
    return pending.key;
  }

  // Unknown outcomes: the gateway may have taken it, so a resend must say it is the same.
  function unknownOutcome(status) {
    return status === 0 || status === 408 || status === 409 || status === 425 || status >= 500;
  }

  function settleKey(key, status) {
    if (unknownOutcome(status) || !pending || pending.key !== key) return;
    pending = null;
    store('pending', null);
  }

  // ---- Cloudflare Turnstile (only with data-turnstile-sitekey). ----

  var turnstileLoading = null;
  function loadTurnstile() {
    if (!turnstileLoading) {
      turnstileLoading = new Promise(function (resolve, reject) {
        if (window.turnstile) return resolve(window.turnstile);
        var s = document.createElement('script');
        s.src = config.turnstileSrc;
        s.async = true;
        s.onload = function () { if (window.turnstile) resolve(window.turnstile); else reject(new Error('no turnstile')); };
        s.onerror = function () { reject(new Error('turnstile unavailable')); };
        (document.head || document.documentElement).appendChild(s);
      });
      turnstileLoading.catch(function () {
        console.warn('podium-gateway: Turnstile could not be loaded; sending without it');
      });
    }
    return turnstileLoading;
  }

  // One Turnstile widget per chat form. A token is single-use: it is taken for one POST,
  // then the widget is reset and the next send waits for the fresh one it calls back with.
  // (Cloudflare's test site keys give the same dummy token every time, so "fresh" is
  // tracked by resets, not by the token's value.)
  function humanCheck(container) {
    var id = null;
    var token = null;
    var spent = false; // the current response was sent; wait for the reset's new one
    var waiting = [];
    var started = false;
    var broken = false;

    function give(value) {
      var w = waiting;
      waiting = [];
      w.forEach(function (fn) { fn(value); });
    }
    function start() {
      if (started || !config.sitekey) return;
      started = true;
      container.hidden = false;
      loadTurnstile().then(function (ts) {
        id = ts.render(container, {
          sitekey: config.sitekey,
          callback: function (t) {
            token = t;
            spent = false;
            if (waiting.length) give(t);
          },
          'expired-callback': function () { token = null; },
          'error-callback': function () { token = null; },
        });
      }).catch(function () {
        broken = true;
        container.hidden = true;
        container.style.setProperty('display', 'none', 'important');
        give(null);
      });
    }
    function fresh() {
      if (spent) return null;
      var t = token;
      if (!t && id != null && window.turnstile) {
        try { t = window.turnstile.getResponse(id) || null; } catch (e) { /* none yet */ }
      }
      return t;
    }
    function taken(t) {
      token = null;
      spent = !!t;
      return { token: t || null };
    }
    return {
      start: start,
      unavailable: function () { return broken; },
      // {token}: a fresh token, or null when Turnstile is off or could not load (the
      // gateway decides); {waited: true}: none came within `ms` (the customer must act).
      take: function (ms) {
        if (!config.sitekey || broken) return Promise.resolve({ token: null });
        start();
        var t = fresh();
        if (t) return Promise.resolve(taken(t));
        return new Promise(function (resolve) {
          function done(value) {
            clearTimeout(timer);
            resolve(taken(value));
          }
          var timer = setTimeout(function () {
            var i = waiting.indexOf(done);
            if (i >= 0) waiting.splice(i, 1);
            resolve({ token: null, waited: true });
          }, ms);
          waiting.push(done);
        });
      },
      reset: function () {
        token = null;
        spent = false;
        if (id != null && window.turnstile) {
          try { window.turnstile.reset(id); } catch (e) { /* re-rendered on the next open */ }
        }
      },
    };
  }

  // ---- "Still there?" (F3): one session clock per tab, shown by every chat UI. ----
  //
  // Podium closes an idle chat after ~30 min. The gateway says when to warn (server time,
  // relative); we remember that moment across page loads, ask the gateway then, and say
  // plainly when the chat has closed: the next message starts a new chat that carries
  // what the customer already said.

  var views = []; // functions(state) — state: 'warning' | 'expired' | 'clear'
  var sessionState = 'clear';
  var sessionTimer = 0;

  function tell(state) {
    sessionState = state;
    views.forEach(function (view) { view(state); });
  }

  function watchSession(session) {
    clearTimeout(sessionTimer);
    if (!session || typeof session.warn_in_ms !== 'number') return;
    var wait = Math.max(0, session.warn_in_ms);
    store('clock', { sid: sessionId(), warnAt: Date.now() + wait });
    sessionTimer = setTimeout(checkSession, wait + 50);
  }

  function checkSession() {
    fetch(config.endpoint + '/v1/webchat/sessions/' + sessionId(), { headers: { 'x-requested-with': 'podium-gateway' } })
      .then(function (res) {
        if (res.status === 404) store('clock', null); // nothing to watch
        return res.ok ? res.json() : null;
      })
      .then(function (body) {
        var session = body && body.session;
        if (!session) return;
        if (session.expired) {
          store('clock', null); // said once; not again on the next page
          return tell('expired');
        }
        if (session.warning) {
          tell('warning');
          sessionTimer = setTimeout(checkSession, Math.max(0, session.expires_in_ms) + 50);
        } else watchSession(session);
      })
      .catch(function () { /* offline: the server keeps the context anyway */ });
  }

  function keepAlive() {
    return fetch(config.endpoint + '/v1/webchat/sessions/' + sessionId() + '/keepalive', {
      method: 'POST', headers: { 'x-requested-with': 'podium-gateway' },
    }).then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) { tell('clear'); watchSession(body && body.session); })
      .catch(function () { /* the next message continues the chat anyway */ });
  }

  // A chat that was going on in an earlier page of this tab: pick up its clock.
  (function resume() {
    var clock = stored('clock');
    if (clock && clock.sid && clock.sid === existingSessionId() && typeof clock.warnAt === 'number') {
      sessionTimer = setTimeout(checkSession, Math.max(0, clock.warnAt - Date.now()) + 50);
    }
  })();

  // The prompt inside one chat UI: text plus an "I'm still here" button.
  function stillThereView(box, emitOn, after) {
    var last = 'clear';
    function view(state) {
      box.textContent = '';
      if (state === 'warning') {
        box.appendChild(document.createTextNode('Still there? This chat will close soon. '));
        var button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'I’m still here';
        button.addEventListener('click', keepAlive);
        box.appendChild(button);
      } else if (state === 'expired') {
        box.textContent = 'This chat timed out. Send another message and we’ll pick up where you left off.';
      }
      if (state !== last && state !== 'clear') {
        emit(emitOn, 'session', { warning: state === 'warning', expired: state === 'expired' });
      }
      last = state;
      if (after) after(state);
    }
    views.push(view);
    if (sessionState !== 'clear') view(sessionState);
  }

  function emit(target, name, detail) {
    target.dispatchEvent(new CustomEvent('podium-gateway:' + name, { bubbles: true, composed: true, detail: detail }));
  }

  // ---- Checks (validator when loaded, plain fallbacks otherwise). ----

  function checkPhone(raw) {
    return wasm ? wasm.normalizePhone(raw, config.region) : null; // null: unknown
  }

  // The phone as it travels: E.164 (with an RFC 3966 extension), or as typed.
  function phoneToSend(raw) {
    var r = checkPhone(raw);
    if (!r || !r.ok) return raw.trim();
    return r.extension ? r.e164 + ';ext=' + r.extension : r.e164;
  }

  function checkFile(file) {
    if (wasm) return wasm.checkAttachment(file);
    if (file.size === 0) return { ok: false, code: 'attachment_empty', message: 'the file is empty' };
    if (file.size > PODIUM_MAX_BYTES) {
      return {
        ok: false, code: 'attachment_too_large',
        message: 'the file is ' + mb(file.size) + ' and the limit is ' + mb(PODIUM_MAX_BYTES),
      };
    }
    return { ok: true, contentType: file.type || 'application/octet-stream' };
  }

  // ---- One chat form: checks, upload, send. Shared by both modes. ----
  //
  // `ui` is how the form talks to the customer:
  //   status(text, state)  the status line (state: sending | sent | invalid | failed)
  //   say(text)            a polite announcement (drop-in: its live region; enhance: none,
  //                        the merchant's field notes are role=alert themselves)
  //   fieldAlerts          per-field error notes get role=alert
  //   stillThere           the element for the "still there?" prompt
  //   turnstile            the element Turnstile renders into
  //   after(state)         called after the session prompt changes

  var bound = new WeakSet();
  var uid = 0;

  function bind(form, ui) {
    bound.add(form);
    var touched = false; // errors show while typing only after a blur or a send
    var timer = 0;
    var fileChecks = Promise.resolve();
    var sending = false;
    var human = humanCheck(ui.turnstile);

    // The customer is about to chat: load the validator (and Turnstile) now, not on every
    // page view.
    ['focusin', 'pointerdown', 'input'].forEach(function (type) {
      form.addEventListener(type, function () { load(); human.start(); }, { passive: true });
    });
    // A panel inserted on click usually takes focus at once, before the MutationObserver
    // that binds it runs: that focus counts too.
    if (form.contains(document.activeElement)) { load(); human.start(); }

    function $(selector) { return form.querySelector(selector); }
    function phoneField() { return $(SEL.phone); }

    // The message line under a field: created once, after the field.
    function note(field, kind) {
      var key = 'podiumGateway' + kind;
      var el = field[key];
      if (!el) {
        el = document.createElement(kind === 'Error' ? 'p' : 'small');
        el.id = 'podium-gateway-' + kind.toLowerCase() + '-' + (++uid);
        el.className = 'podium-gateway-' + kind.toLowerCase();
        if (kind !== 'Error') el.setAttribute('aria-live', 'polite');
        else if (ui.fieldAlerts) el.setAttribute('role', 'alert');
        el.hidden = true;
        field.insertAdjacentElement('afterend', el);
        field.setAttribute('aria-describedby',
          ((field.getAttribute('aria-describedby') || '') + ' ' + el.id).trim());
        field[key] = el;
      }
      return el;
    }

    function setError(field, text) {
      if (!field) return;
      var el = note(field, 'Error');
      el.textContent = text ? sentence(text) : '';
      el.hidden = !text;
      if (text) field.setAttribute('aria-invalid', 'true');
      else field.removeAttribute('aria-invalid');
    }

    function setHint(field, text) {
      var el = note(field, 'Hint');
      el.textContent = text || '';
      el.hidden = !text;
    }

    function showPhone(strict) {
      var field = phoneField();
      if (!field) return true;
      var r = checkPhone(field.value);
      if (!r) return true; // no validator: the gateway decides
      if (r.ok) {
        setError(field, '');
        setHint(field, 'Will text ' + r.e164 + (r.extension ? ' ext. ' + r.extension : ''));
        return true;
      }
      setHint(field, '');
      if (strict || touched) setError(field, r.message);
      else setError(field, '');
      return false;
    }

    form.addEventListener('input', function (e) {
      if (!e.target.matches || !e.target.matches(SEL.phone)) return;
      clearTimeout(timer);
      timer = setTimeout(function () { load().then(function () { showPhone(false); }); }, 300);
    });

    form.addEventListener('focusout', function (e) {
      // Kept now: an event that crossed a shadow root has no target once dispatched.
      var field = e.target;
      if (!field.matches || !field.matches(SEL.phone) || !field.value.trim()) return;
      clearTimeout(timer);
      touched = true;
      load().then(function () {
        if (!showPhone(true) && ui.say) ui.say(sentence(checkPhone(field.value).message));
      });
    });

    form.addEventListener('change', function (e) {
      if (e.target.matches && e.target.matches(SEL.file)) {
        var input = e.target;
        // Judge every file before a byte leaves; submit waits for this.
        fileChecks = fileChecks.then(function () { return loadWithin(8000); })
          .then(function () { screenFiles(input); })
          .catch(function () { /* submit re-checks every file anyway */ });
      }
    });

    // Keep only acceptable files in the input; say why the others were dropped.
    function screenFiles(input) {
      var keep = [];
      var refused = [];
      Array.prototype.forEach.call(input.files || [], function (file) {
        var r = checkFile(file);
        if (r.ok) keep.push(file);
        else refused.push(sentence(r.message).replace(/\.$/, '') + ' (' + file.name + ').');
      });
      if (refused.length) {
        try {
          var dt = new DataTransfer();
          keep.forEach(function (f) { dt.items.add(f); });
          input.files = dt.files;
        } catch (err) {
          input.value = ''; // old browsers: drop the whole selection
        }
        if (ui.say) ui.say(refused.join(' '));
      }
      setError(input, refused.join(' '));
    }

    // The files still selected, each with its checked content type.
    function acceptedFiles() {
      var out = [];
      form.querySelectorAll(SEL.file).forEach(function (input) {
        Array.prototype.forEach.call(input.files || [], function (file) {
          var r = checkFile(file);
          if (r.ok) out.push({ file: file, contentType: r.contentType, input: input });
        });
      });
      return out;
    }

    function envelope(files, ids) {
      var messageField = $(SEL.message);
      var nameField = $(SEL.name);
      var phone = phoneField();
      var text = messageField ? messageField.value : '';
      var kind = 'text';
      if (!text.trim() && files.length) {
        var families = files.map(function (f) { return f.contentType.split('/')[0]; });
        var same = families.every(function (x) { return x === families[0]; });
        kind = same && (families[0] === 'image' || families[0] === 'audio') ? families[0] : 'file';
      }
      var env = {
        session_id: sessionId(),
        message: { type: kind, value: text },
        contact: { phone: phone ? phoneToSend(phone.value) : '' },
      };
      if (files.length) {
        env.attachments = files.map(function (f, i) {
          return { file_id: ids[i], filename: f.file.name, content_type: f.contentType, size: f.file.size };
        });
      }
      var name = nameField && nameField.value.trim();
      if (name) env.contact.name = name;
      var where = {};
      if (config.locationUid) where.location_uid = config.locationUid;
      // The page, not what the customer searched or clicked: no query string or fragment.
      var pageUrl = location.origin + location.pathname;
      if (/^https?:/.test(pageUrl) && pageUrl.length <= 2048) where.page_url = pageUrl;
      if (Object.keys(where).length) env.location = where;
      var tz;
      try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* optional */ }
      env.client = { user_agent: navigator.userAgent.slice(0, 512), widget_version: VERSION };
      if (navigator.language) env.client.locale = navigator.language;
      if (tz) env.client.timezone = tz;
      return env;
    }

    // The same message (text, contact, store, files by name and size, session) → the same
    // key, also when it is resent from another page of the site. The phone counts as
    // typed, not as sent: whether the validator had loaded must not matter. (Erring
    // towards "different" only risks a duplicate; two messages sharing a key lose one.)
    function fingerprint(env, files) {
      var phone = phoneField();
      var contact = [env.contact.name || '', phone ? phone.value.trim() : ''];
      return digest(JSON.stringify([env.session_id, env.message, contact, config.locationUid,
        files.map(function (f) { return [f.file.name, f.file.size, f.contentType]; })]));
    }

    // Put each problem next to its field; anything else goes to the status line. Focus
    // moves to the first field that needs fixing.
    function showProblems(problems) {
      var fields = {
        'contact.phone': phoneField(),
        'contact.name': $(SEL.name),
        'message.value': $(SEL.message),
        'message.type': $(SEL.message),
      };
      var rest = [];
      var seen = [];
      problems.forEach(function (p) {
        var f = p.field || '';
        var field = fields[f] || (/^attachments/.test(f) ? $(SEL.file) : null);
        if (!field) rest.push(sentence(p.message));
        else if (seen.indexOf(field) < 0) { seen.push(field); setError(field, p.message); }
      });
      ui.status(rest.length ? rest.join(' ') : 'Please check the highlighted fields.', 'invalid');
      if (seen.length) seen[0].focus();
      emit(form, 'invalid', { problems: problems });
    }

    function clearErrors() {
      [phoneField(), $(SEL.name), $(SEL.message)].forEach(function (f) { if (f) setError(f, ''); });
    }

    // A retry after a failed send does not upload the same file twice.
    var uploaded = new WeakMap(); // File -> file_id

    function upload(item) {
      if (uploaded.has(item.file)) return Promise.resolve(uploaded.get(item.file));
      return fetch(config.endpoint + '/v1/webchat/attachments', {
        method: 'POST',
        body: item.file,
        // Header values must be ASCII: the name travels percent-encoded (UTF-8).
        headers: {
          'content-type': item.contentType,
          'x-filename': encodeURIComponent(item.file.name),
          'x-requested-with': 'podium-gateway',
        },
      }).then(function (res) {
        if (!res.ok) {
          return res.json().catch(function () { return null; })
            .then(function (body) { throw { status: res.status, body: body }; });
        }
        return res.json();
      }, function () { throw { status: 0 }; }).then(function (body) {
        if (!body || typeof body.file_id !== 'string') throw { status: 0 };
        uploaded.set(item.file, body.file_id);
        return body.file_id;
      });
    }

    function failed(statusCode, body) {
      var problems = body && body.problems;
      var code = body && body.error && body.error.code;
      if (statusCode === 422 && Array.isArray(problems) && problems.length) return showProblems(problems);
      if (/^turnstile_/.test(code || '')) {
        ui.status(human.unavailable()
          ? 'The security check could not be loaded. Please reload the page and try again.'
          : HUMAN_TEXT, 'failed');
      } else {
        ui.status('Sorry, your message could not be sent. Please try again.', 'failed');
      }
      emit(form, 'failed', { status: statusCode, code: code || null });
    }

    stillThereView(ui.stillThere, form, ui.after);

    form.addEventListener('submit', function (e) {
      e.preventDefault(); // we send it ourselves, with fetch
      if (sending) return; // a double click is one message
      sending = true;
      touched = true;
      form.setAttribute('aria-busy', 'true');
      ui.status('Sending…', 'sending');
      send().catch(function (err) {
        failed(err && typeof err.status === 'number' ? err.status : 0, err && err.body);
      }).then(function () {
        sending = false;
        form.removeAttribute('aria-busy');
      });
    });

    function send() {
      var files;
      return fileChecks.then(function () {
        return loadWithin(8000);
      }).then(function () {
        clearErrors();
        showPhone(true);
        files = acceptedFiles();
        // Judge the whole message before uploading anything (placeholder file ids).
        return judge(envelope(files, files.map(function () { return 'pending'; })), config.region, 3000);
      }).then(function (verdict) {
        if (verdict && !verdict.ok) return showProblems(verdict.problems || [verdict]);
        return Promise.all(files.map(upload)).then(function (ids) {
          var env = envelope(files, ids);
          return judge(env, config.region, 3000).then(function (final) { return [env, final]; });
        }).then(function (judged) {
          var env = judged[0];
          var final = judged[1];
          if (final && !final.ok) return showProblems(final.problems || [final]);
          var key = keyFor(fingerprint(env, files));
          return post(env, key, 0).then(function (res) {
            settleKey(key, res.status);
            if (!res.ok) throw { status: res.status, body: res.body };
            var messageField = $(SEL.message);
            if (messageField) messageField.value = '';
            form.querySelectorAll(SEL.file).forEach(function (input) { input.value = ''; setError(input, ''); });
            ui.status(confirmation(res.body), 'sent');
            if (ui.sent) ui.sent();
            emit(form, 'sent', { sessionId: env.session_id });
            tell('clear');
            watchSession(res.body && res.body.session);
          });
        });
      });
    }

    // What the customer reads once the gateway took the message. A STOP (or START) is
    // answered as such: "we'll text you back" would be wrong to someone who opted out.
    function confirmation(body) {
      var optOut = body && body.opt_out;
      if (optOut === 'opted_out') return 'Done: we won’t send you texts any more. Send START to get them again.';
      if (optOut === 'still_opted_out') {
        var said = body.opt_out_message;
        return typeof said === 'string' && said.length <= 300 ? said : 'You opted out of our texts, so we can’t text you back.';
      }
      if (optOut === 'opted_in') return 'You’ll get our texts again. We’ll text you back shortly.';
      return 'Sent! We’ll text you back shortly.';
    }

    // One message POST, resent on its own while the outcome is unknown; every attempt
    // carries the same Idempotency-Key and (with Turnstile) its own fresh token.
    // Resolves {ok, status, body}; rejects only when the customer must act.
    function post(env, key, attempt) {
      return human.take(HUMAN_WAIT_MS).then(function (check) {
        if (check.waited) throw { status: 0, body: { error: { code: 'turnstile_unsolved' } } };
        var headers = {
          'content-type': 'application/json',
          'x-requested-with': 'podium-gateway',
          'idempotency-key': key,
        };
        if (check.token) headers['cf-turnstile-response'] = check.token;
        return fetch(config.endpoint + '/v1/webchat/messages', {
          method: 'POST', headers: headers, body: JSON.stringify(env),
        }).then(function (res) {
          if (check.token) human.reset();
          return res.json().catch(function () { return null; }).then(function (body) {
            return { ok: res.ok, status: res.status, body: body };
          });
        }, function () {
          if (check.token) human.reset();
          return { ok: false, status: 0, body: null };
        });
      }).then(function (res) {
        if (res.ok || !unknownOutcome(res.status) || attempt >= RETRY_DELAYS.length) return res;
        return delay(RETRY_DELAYS[attempt]).then(function () { return post(env, key, attempt + 1); });
      });
    }

    return {
      form: form,
      human: human,
      refresh: function () { if (phoneField() && phoneField().value.trim()) showPhone(false); },
    };
  }

  // ---- Enhance mode: the merchant's own form(s). ----

  function enhance() {
    function statusLine(form) {
      var el = form.querySelector('[data-podium-status]');
      if (!el) {
        el = document.createElement('p');
        el.setAttribute('data-podium-status', '');
        el.className = 'podium-gateway-status';
        el.setAttribute('role', 'status');
        form.appendChild(el);
      }
      return el;
    }
    function part(form, attr, tag, cls, role) {
      var el = form.querySelector('[' + attr + ']');
      if (!el) {
        el = document.createElement(tag);
        el.setAttribute(attr, '');
        el.className = cls;
        if (role) el.setAttribute('role', role);
        var submit = form.querySelector('[type=submit]');
        if (attr === 'data-podium-turnstile' && submit) submit.insertAdjacentElement('beforebegin', el);
        else form.appendChild(el);
      }
      return el;
    }

    function bindOwn(form) {
      bind(form, {
        fieldAlerts: true,
        status: function (text, state) {
          var el = statusLine(form);
          el.textContent = text;
          el.setAttribute('data-state', state || '');
        },
        stillThere: part(form, 'data-podium-still-there', 'div', 'podium-gateway-still-there', 'status'),
        turnstile: config.sitekey ? part(form, 'data-podium-turnstile', 'div', 'podium-gateway-turnstile') : document.createElement('div'),
      });
    }
    // Bound as soon as they appear; nothing loads until the customer focuses or types in one.
    function scan() {
      var forms = document.querySelectorAll(config.form);
      for (var i = 0; i < forms.length; i++) if (!bound.has(forms[i])) bindOwn(forms[i]);
    }

    // Quiet defaults; :where() keeps them below any merchant style.
    try {
      var style = document.createElement('style');
      style.textContent =
        ':where(.podium-gateway-error){color:#b3261e;font-size:.875em;margin:.25em 0 0}' +
        ':where(.podium-gateway-hint){display:block;color:#5f6368;font-size:.8em;margin-top:.25em}' +
        ':where([data-podium-status][data-state=failed],[data-podium-status][data-state=invalid]){color:#b3261e}' +
        ':where([data-podium-status][data-state=sent]){color:#1e7b34}' +
        ':where(.podium-gateway-still-there){margin-top:.5em;font-size:.9em}' +
        ':where(.podium-gateway-still-there:empty){margin:0}' +
        ':where(.podium-gateway-still-there button){margin-left:.25em}';
      (document.head || document.documentElement).appendChild(style);
    } catch (e) { /* a strict CSP: unstyled but working */ }

    scan();
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        if (records[i].addedNodes.length) { scan(); return; }
      }
    }).observe(document.documentElement, { childList: true, subtree: true });
  }

  // ---- Drop-in mode: our own launcher and panel, in an open shadow root. ----

  var SVG = 'http://www.w3.org/2000/svg';
  function h(tag, attrs, kids) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] != null && attrs[k] !== false) el.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
    });
    (kids || []).forEach(function (kid) {
      if (kid != null) el.appendChild(typeof kid === 'string' ? document.createTextNode(kid) : kid);
    });
    return el;
  }
  function icon(d, stroke) {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    var path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    if (stroke) path.setAttribute('class', 'stroke');
    svg.appendChild(path);
    return svg;
  }

  // Example numbers in the store's own format.
  var EXAMPLES = { AU: '0412 345 678', US: '(415) 555-0123', CA: '(416) 555-0123', GB: '07400 123456', NZ: '021 123 4567', IE: '085 012 3456' };

  // Everything in px: the page's root font size must not resize the widget. `:host` rules
  // with !important win over any page rule for the host element (shadow context wins
  // for important declarations), and `all: initial` stops inherited page styles.
  function css(accent, accentText) {
    return ':host{all:initial!important;display:contents!important}' +
      '*,*::before,*::after{box-sizing:border-box}' +
      '.root{--a:var(--podium-accent,' + accent + ');--at:var(--podium-accent-text,' + accentText + ');' +
      '--f:var(--podium-font,system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif);' +
      '--r:var(--podium-radius,16px);--x:var(--podium-offset-x,20px);--y:var(--podium-offset-y,20px);' +
      '--z:var(--podium-z-index,2147483647);font:15px/1.45 var(--f);color:#1d2a33;text-align:left;direction:ltr}' +
      'button{font:inherit;color:inherit;margin:0;cursor:pointer;text-transform:none;letter-spacing:normal}' +
      ':focus-visible{outline:3px solid var(--a);outline-offset:2px}' +
      '.launcher{position:fixed;right:var(--x);bottom:var(--y);z-index:var(--z);display:inline-flex;align-items:center;' +
      'gap:8px;min-height:52px;padding:0 22px 0 16px;border:0;border-radius:999px;background:var(--a);color:var(--at);' +
      'font:600 16px/1 var(--f);box-shadow:0 6px 24px rgba(0,0,0,.24)}' +
      '.launcher:hover{filter:brightness(.93)}.launcher:focus-visible{outline-offset:3px}' +
      '.left .launcher,.left .panel{right:auto;left:var(--x)}' +
      'svg{width:24px;height:24px;fill:currentColor;flex:none}.stroke{fill:none;stroke:currentColor;stroke-width:2.2;stroke-linecap:round}' +
      '.badge{position:absolute;top:-3px;right:-3px;width:16px;height:16px;border-radius:50%;background:#d93025;border:2px solid #fff}' +
      '.badge[hidden],.panel[hidden],[hidden]{display:none}' +
      '.panel{position:fixed;right:var(--x);bottom:calc(var(--y) + 66px);z-index:var(--z);display:flex;flex-direction:column;' +
      'width:380px;max-width:calc(100vw - 2*var(--x));max-height:calc(100vh - var(--y) - 86px);background:#fff;' +
      'border-radius:var(--r);box-shadow:0 14px 48px rgba(0,0,0,.28);overflow:hidden}' +
      'header{display:flex;align-items:flex-start;gap:12px;padding:16px 12px 16px 20px;background:var(--a);color:var(--at)}' +
      'h2{margin:0;font:700 18px/1.3 var(--f)}header p{margin:3px 0 0;font-size:14px;opacity:.92}' +
      '.close{margin-left:auto;width:40px;height:40px;flex:none;display:grid;place-items:center;border:0;border-radius:50%;' +
      'background:transparent;color:inherit}.close:hover{background:rgba(127,127,127,.25)}' +
      '.close:focus-visible{outline-color:currentColor;outline-offset:-3px}' +
      'form{display:flex;flex-direction:column;gap:4px;margin:0;padding:16px 20px 18px;overflow-y:auto;overscroll-behavior:contain}' +
      'label{display:block;margin:10px 0 2px;font-weight:600;font-size:14px}label:first-of-type{margin-top:0}' +
      '.opt{font-weight:400;color:#55656e}' +
      'input,textarea{display:block;width:100%;margin:0;padding:10px 12px;font:16px/1.4 var(--f);color:#1d2a33;' +
      'background:#fff;border:1px solid #7b8b94;border-radius:10px}' +
      'textarea{min-height:96px;resize:vertical}' +
      'input[type=file]{padding:6px 0;border:0;font-size:14px;background:transparent}' +
      'input[type=file]::file-selector-button{margin-right:10px;padding:7px 14px;font:600 14px/1 var(--f);color:var(--a);' +
      'background:#fff;border:1px solid currentColor;border-radius:999px;cursor:pointer}' +
      'input:focus-visible,textarea:focus-visible{outline-offset:0;border-color:var(--a)}' +
      '[aria-invalid=true]{border-color:#b3261e;box-shadow:0 0 0 1px #b3261e}' +
      '.podium-gateway-error{margin:4px 0 0;color:#b3261e;font-size:14px}' +
      '.podium-gateway-hint{display:block;margin-top:4px;color:#3f6b4f;font-size:13px}' +
      '.still{margin:0 0 8px;padding:10px 12px;border-radius:10px;background:#fff4d6;font-size:14px}.still:empty{display:none}' +
      '.still button{margin-left:4px;padding:2px 10px;border:1px solid currentColor;border-radius:999px;background:#fff}' +
      '.turnstile{margin-top:10px}' +
      '.alert:empty,.status:empty{margin:0}.alert{margin:10px 0 0;color:#b3261e;font-size:14px;font-weight:600}' +
      '.status{margin:10px 0 0;font-size:14px}.status[data-state=sent]{color:#1e7b34;font-weight:600}' +
      '.send{margin-top:14px;min-height:48px;border:0;border-radius:999px;background:var(--a);color:var(--at);font:700 16px/1 var(--f)}' +
      '.send:hover{filter:brightness(.93)}.send[aria-disabled=true]{opacity:.6;cursor:progress}' +
      '.consent{margin:10px 0 0;font-size:12px;line-height:1.4;color:#55656e}' +
      '.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}' +
      '@media (max-width:480px){.panel,.left .panel{inset:0;width:auto;max-width:none;max-height:none;border-radius:0}' +
      '.open .launcher{display:none}form{padding-bottom:calc(18px + env(safe-area-inset-bottom,0px))}}' +
      '@media (prefers-reduced-motion:no-preference){.panel{animation:pg-in .18s ease-out}' +
      '@keyframes pg-in{from{opacity:0;transform:translateY(10px)}}}' +
      '@media (forced-colors:active){.launcher,.send,.close{border:1px solid ButtonText}}';
  }

  function drawDropIn() {
    var title = data.title || 'Chat with us';
    var position = /left/i.test(data.position || '') ? 'left' : 'right';
    var accent = data.color && window.CSS && CSS.supports('color', data.color) ? data.color : '#0f5e73';

    var host = document.createElement('podium-gateway-chat');
    var root = host.attachShadow({ mode: 'open' });
    // Turnstile renders into a light-DOM child, shown in the panel through a slot: its
    // script expects an element of the document (shadow roots have given it trouble).
    var turnstileBox = h('div', { slot: 'turnstile' });
    // Page CSS does reach this one: inline !important beats it (and CSSOM is CSP-safe).
    turnstileBox.style.setProperty('all', 'initial', 'important');
    turnstileBox.style.setProperty('display', 'block', 'important');

    var badge = h('span', { class: 'badge', hidden: true }, [h('span', { class: 'sr' }, ['(the chat needs your attention)'])]);
    var launcher = h('button', {
      class: 'launcher', type: 'button', 'aria-expanded': 'false', 'aria-controls': 'podium-panel',
    }, [icon('M4 3.5h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H10l-5.5 4.2v-4.2H4a2 2 0 0 1-2-2v-10a2 2 0 0 1 2-2z'),
      data.launcherLabel || 'Chat with us', badge]);
    var closeButton = h('button', { class: 'close', type: 'button', 'aria-label': 'Close chat' },
      [icon('M6 6l12 12M18 6L6 18', true)]);
    function label(id, text, extra) {
      return h('label', { for: id }, [text, extra ? h('span', { class: 'opt' }, [' ' + extra]) : null]);
    }
    var nameInput = h('input', { id: 'podium-name', name: 'name', type: 'text', autocomplete: 'name', maxlength: '100' });
    var phoneInput = h('input', {
      id: 'podium-phone', name: 'phone', type: 'tel', autocomplete: 'tel', inputmode: 'tel',
      required: true, 'aria-required': 'true', placeholder: EXAMPLES[config.region] || null,
    });
    var messageInput = h('textarea', { id: 'podium-message', name: 'message', rows: '4', maxlength: '4096' });
    var fileInput = h('input', { id: 'podium-file', name: 'attachments', type: 'file', multiple: true });
    var still = h('div', { class: 'still' });
    var alert = h('div', { class: 'alert', role: 'alert' });
    var status = h('p', { class: 'status', 'data-podium-status': '', role: 'status' });
    var say = h('div', { class: 'sr', 'aria-live': 'polite' });
    var send = h('button', { class: 'send', type: 'submit' }, ['Send']);
    var form = h('form', { novalidate: true, 'aria-labelledby': 'podium-title' }, [
      still,
      label('podium-name', 'Your name', '(optional)'), nameInput,
      label('podium-phone', 'Mobile number'), phoneInput,
      label('podium-message', 'Message'), messageInput,
      label('podium-file', 'Photo or file', '(optional, up to 25 MB)'), fileInput,
      h('div', { class: 'turnstile', hidden: !config.sitekey }, [h('slot', { name: 'turnstile' })]),
      alert, status, send,
      h('p', { class: 'consent' }, [data.consent ||
        'By sending, you agree to receive text messages about your enquiry. Message and data rates may apply. Reply STOP to opt out.']),
    ]);
    var panel = h('section', {
      id: 'podium-panel', class: 'panel', role: 'dialog', 'aria-modal': 'false',
      'aria-labelledby': 'podium-title', 'aria-describedby': 'podium-subtitle', hidden: true,
    }, [h('header', {}, [h('div', {}, [h('h2', { id: 'podium-title' }, [title]),
      h('p', { id: 'podium-subtitle' }, [data.subtitle || 'We’ll text you back.'])]), closeButton]), form]);
    var wrapper = h('div', { class: 'root ' + position }, [launcher, panel, say]);

    var sheet = css(accent, '#fff');
    root.appendChild(wrapper);
    host.appendChild(turnstileBox);
    document.documentElement.appendChild(host); // outside <body>: body transforms can't move it
    // Text on the accent: white or near-black, whichever reads better on data-color.
    if (data.color) sheet = css(accent, textOn(root, accent));
    try {
      var constructed = new CSSStyleSheet();
      constructed.replaceSync(sheet); // not subject to a CSP's style-src
      root.adoptedStyleSheets = [constructed];
    } catch (e) {
      root.insertBefore(h('style', {}, [sheet]), wrapper);
    }

    var lastSaid = '';
    function announce(region, text) {
      // The same words twice must still be read out: vary them invisibly.
      if (text && text === lastSaid) text += '\u00a0';
      lastSaid = text;
      region.textContent = text;
    }

    var chat = bind(form, {
      form: form,
      status: function (text, state) {
        var error = state === 'invalid' || state === 'failed';
        announce(alert, error ? text : '');
        status.textContent = error ? '' : text;
        status.setAttribute('data-state', state || '');
        if (state === 'sending') send.setAttribute('aria-disabled', 'true');
        else send.removeAttribute('aria-disabled');
      },
      say: function (text) { announce(say, text); },
      stillThere: still,
      turnstile: turnstileBox,
      after: function (state) {
        badge.hidden = state === 'clear' || !panel.hidden;
        if (state !== 'clear' && panel.hidden) announce(say, state === 'warning'
          ? 'Still there? The chat will close soon.' : 'The chat timed out.');
      },
      sent: function () {
        // The next page of this tab fills these in again.
        store('contact', { name: nameInput.value.trim(), phone: phoneInput.value.trim() });
      },
    });

    var contact = stored('contact');
    if (contact) {
      nameInput.value = contact.name || '';
      phoneInput.value = contact.phone || '';
    }

    var small = window.matchMedia ? matchMedia('(max-width: 480px)') : { matches: false };
    // Full-screen on a phone: the page behind is out of reach, as in a modal.
    function modal() { panel.setAttribute('aria-modal', String(small.matches)); }
    if (small.addEventListener) small.addEventListener('change', modal);
    var opener = null; // where focus goes back to: the launcher, or the merchant's button

    function open(byCustomer) {
      if (!panel.hidden) return;
      var active = document.activeElement;
      opener = active && active !== host && active !== document.body ? active : null;
      panel.hidden = false;
      wrapper.classList.add('open');
      launcher.setAttribute('aria-expanded', 'true');
      modal();
      badge.hidden = true;
      store('open', true);
      chat.human.start();
      if (byCustomer) {
        load().then(chat.refresh);
        // The first thing left to fill in (name and phone come back on later pages).
        (nameInput.value ? (phoneInput.value ? messageInput : phoneInput) : nameInput).focus();
      }
    }

    function close(returnFocus) {
      if (panel.hidden) return;
      var inside = root.activeElement && panel.contains(root.activeElement);
      panel.hidden = true;
      wrapper.classList.remove('open');
      launcher.setAttribute('aria-expanded', 'false');
      store('open', null);
      badge.hidden = sessionState === 'clear';
      if (returnFocus || inside) (opener && opener.isConnected ? opener : launcher).focus();
      opener = null;
    }

    // Fetch the validator as the pointer goes down, a moment before the click opens.
    launcher.addEventListener('pointerdown', function () { load(); }, { passive: true });
    launcher.addEventListener('click', function () {
      if (panel.hidden) open(true);
      else close(true);
    });
    closeButton.addEventListener('click', function () { close(true); });
    wrapper.addEventListener('keydown', function (e) {
      if (e.key === 'Escape' && !panel.hidden) {
        e.stopPropagation();
        close(true);
      } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && e.target === messageInput) {
        e.preventDefault();
        if (form.requestSubmit) form.requestSubmit(send);
      } else if (e.key === 'Tab' && small.matches && !panel.hidden) {
        // Full screen: keep Tab inside the panel.
        var stops = panel.querySelectorAll('button, input, textarea, [tabindex]');
        var first = stops[0];
        var last = stops[stops.length - 1];
        if (e.shiftKey && root.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && root.activeElement === last) { e.preventDefault(); first.focus(); }
      }
    });

    // Open on the earlier page of this tab: open here too (without taking focus).
    if (stored('open') || openWhenDrawn) open(openWhenDrawn);
    return { open: open, close: close, host: host };
  }

  function textOn(root, color) {
    var probe = document.createElement('i');
    probe.style.color = color;
    root.appendChild(probe);
    var rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || []).slice(0, 3).map(function (v) {
      v = v / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    root.removeChild(probe);
    if (rgb.length < 3) return '#fff';
    var lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? '#fff' : '#111';
  }

  // ---- Which mode: decided once the page's markup is in. ----

  function hasOwnForm() {
    if (document.querySelector(config.form)) return true;
    var templates = document.querySelectorAll('template');
    for (var i = 0; i < templates.length; i++) {
      if (templates[i].content.querySelector(config.form)) return true;
    }
    return false;
  }

  whenParsed(function () {
    var mode = config.mode === 'dropin' || config.mode === 'enhance' ? config.mode : (hasOwnForm() ? 'enhance' : 'dropin');
    api.mode = mode;
    if (mode === 'enhance') return enhance();
    if (!document.body || !document.documentElement.attachShadow) return; // nothing to draw on
    dropin = drawDropIn();
  });
})();
