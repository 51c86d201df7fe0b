// gateway-widget.js — the one-line embed for merchants' website chat → Podium.
//
// A merchant adds one tag, nothing else:
//   <script src="https://gateway.example/gateway-widget.js" async
//           data-endpoint="https://gateway.example"   (default: this script's origin)
//           data-location-uid="loc_sydney"             (the Podium location of the store)
//           data-region="AU"                           (ISO alpha-2, for national numbers)
//           data-form="#my-chat-form"></script>        (optional, see below)
//
// What it finds on the page (also when the chat form is added later, e.g. on a click):
//   form      data-form selector, default  form[data-podium-chat]
//   phone     input[type=tel], input[name=phone]   (inside the form)
//   message   textarea[name=message], textarea, input[name=message]
//   name      input[name=name]                      (optional)
//   files     input[type=file]                      (optional, any number)
//   status    [data-podium-status]                  (optional; created if missing)
//
// What it does: checks the phone number and files in the browser with the same Rust
// code the gateway runs (WebAssembly, loaded lazily), shows problems next to the
// fields, uploads accepted files to <endpoint>/v1/webchat/attachments and posts the
// message envelope to <endpoint>/v1/webchat/messages.
//
// Events, dispatched on the form (they bubble; no phone numbers or texts in them):
//   podium-gateway:invalid  detail {problems:[{code,message,field}]}  nothing was sent
//   podium-gateway:sent     detail {sessionId}                         the gateway took it
//   podium-gateway:failed   detail {status}  (HTTP status, 0 = network error)
//   podium-gateway:session  detail {warning, expired}  "still there?" shown / chat timed out
//
// Global: window.PodiumGateway = {version, ready, load, normalizePhone, checkAttachment,
// validateMessage}. `ready` resolves true once the validator runs, false if it could not
// be loaded; the three checks are async proxies that load it on first use.
//
// If the validator cannot load (404, CSP, old browser), nothing breaks: files are only
// checked against the 25 MB limit, the phone is sent as typed, and the gateway (which
// validates everything anyway) answers with any problem.
(function () {
  'use strict';

  var VERSION = '0.1.0';
  var PODIUM_MAX_BYTES = 25000000; // Podium's limit; used only when the validator is missing
  var SESSION_KEY = 'podium-gateway:session';

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
  };
  var moduleUrl = new URL('pkg/widget.js', scriptUrl).href;

  var SEL = {
    phone: 'input[type=tel], input[name=phone]',
    message: 'textarea[name=message], textarea, input[name=message]',
    name: 'input[name=name]',
    file: 'input[type=file]',
  };

  // ---- The validator: loaded at most once, never on the page's critical path. ----

  var wasm = null; // the module's exports once instantiated
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
          // Phone metadata takes ~200 ms to build: do it before the first keystroke.
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
    if (window.requestIdleCallback) requestIdleCallback(fn, { timeout: 3000 });
    else setTimeout(fn, 1500);
  }

  // Otherwise load when the browser is idle after `load` (the chat form's first
  // focus/pointerdown/input, below, is usually sooner).
  var pageLoaded = document.readyState === 'complete';
  if (pageLoaded) idle(load);
  else window.addEventListener('load', function () { pageLoaded = true; idle(load); }, { once: true });

  var unavailable = {
    ok: false, code: 'validator_unavailable', message: 'the validator could not be loaded',
  };
  function proxy(name) {
    return function () {
      var args = arguments;
      return load().then(function (ok) { return ok ? wasm[name].apply(null, args) : unavailable; });
    };
  }

  window.PodiumGateway = {
    version: VERSION,
    ready: ready,
    load: load,
    normalizePhone: proxy('normalizePhone'),
    checkAttachment: proxy('checkAttachment'),
    validateMessage: proxy('validateMessage'),
  };

  // ---- Small helpers. ----

  function sessionId() {
    var id;
    try { id = sessionStorage.getItem(SESSION_KEY); } catch (e) { /* storage blocked */ }
    if (!id || !/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)) {
      id = uuid4();
      try { sessionStorage.setItem(SESSION_KEY, id); } catch (e) { /* per page then */ }
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

  function sentence(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.') : '';
  }

  function mb(bytes) {
    return (Math.round(bytes / 100000) / 10) + ' MB';
  }

  var uid = 0;
  // The message line under a field: created once, after the field.
  function note(field, kind) {
    var key = 'podiumGateway' + kind;
    var el = field[key];
    if (!el) {
      el = document.createElement(kind === 'Error' ? 'p' : 'small');
      el.id = 'podium-gateway-' + kind.toLowerCase() + '-' + (++uid);
      el.className = 'podium-gateway-' + kind.toLowerCase();
      if (kind === 'Error') el.setAttribute('role', 'alert');
      else el.setAttribute('aria-live', 'polite');
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

  function status(form, text, state) {
    var el = form.querySelector('[data-podium-status]');
    if (!el) {
      el = document.createElement('p');
      el.setAttribute('data-podium-status', '');
      el.className = 'podium-gateway-status';
      el.setAttribute('role', 'status');
      form.appendChild(el);
    }
    el.textContent = text;
    el.setAttribute('data-state', state || '');
  }

  function emit(form, name, detail) {
    form.dispatchEvent(new CustomEvent('podium-gateway:' + name, { bubbles: true, detail: detail }));
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

  // ---- Binding forms. ----

  var bound = new WeakSet();

  // `opened`: the form was just added to the page, i.e. the customer opened the chat.
  function scan(opened) {
    var forms = document.querySelectorAll(config.form);
    for (var i = 0; i < forms.length; i++) bind(forms[i], opened);
  }

  function bind(form, opened) {
    if (bound.has(form)) return;
    bound.add(form);
    var touched = false; // errors show while typing only after a blur or a send
    var timer = 0;
    var fileChecks = Promise.resolve();
    var sending = false;

    // The customer is about to chat: load the validator now, off the critical path.
    ['focusin', 'pointerdown', 'input'].forEach(function (type) {
      form.addEventListener(type, function () { load(); }, { passive: true });
    });
    if (opened && pageLoaded) load();

    function phoneField() { return form.querySelector(SEL.phone); }

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
      if (!e.target.matches || !e.target.matches(SEL.phone) || !e.target.value.trim()) return;
      clearTimeout(timer);
      touched = true;
      load().then(function () { showPhone(true); });
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
      var messageField = form.querySelector(SEL.message);
      var nameField = form.querySelector(SEL.name);
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
      if (/^https?:/.test(location.href) && location.href.length <= 2048) where.page_url = location.href;
      if (Object.keys(where).length) env.location = where;
      var tz;
      try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* optional */ }
      env.client = { user_agent: navigator.userAgent.slice(0, 512), widget_version: VERSION };
      if (navigator.language) env.client.locale = navigator.language;
      if (tz) env.client.timezone = tz;
      return env;
    }

    // Put each problem next to its field; anything else goes to the status line.
    function showProblems(problems) {
      var fields = {
        'contact.phone': phoneField(),
        'contact.name': form.querySelector(SEL.name),
        'message.value': form.querySelector(SEL.message),
        'message.type': form.querySelector(SEL.message),
      };
      var rest = [];
      var seen = new Set();
      problems.forEach(function (p) {
        var f = p.field || '';
        var field = fields[f] || (/^attachments/.test(f) ? form.querySelector(SEL.file) : null);
        if (!field) rest.push(sentence(p.message));
        else if (!seen.has(field)) { seen.add(field); setError(field, p.message); }
      });
      status(form, rest.length ? rest.join(' ') : 'Please check the highlighted fields.', 'invalid');
      emit(form, 'invalid', { problems: problems });
    }

    function clearErrors() {
      [phoneField(), form.querySelector(SEL.name), form.querySelector(SEL.message)]
        .forEach(function (f) { if (f) setError(f, ''); });
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
        if (!res.ok) throw { status: res.status };
        return res.json();
      }).then(function (body) {
        if (!body || typeof body.file_id !== 'string') throw { status: 0 };
        uploaded.set(item.file, body.file_id);
        return body.file_id;
      });
    }

    function failed(statusCode, body) {
      var problems = body && body.problems;
      if (statusCode === 422 && Array.isArray(problems) && problems.length) return showProblems(problems);
      status(form, 'Sorry, your message could not be sent. Please try again.', 'failed');
      emit(form, 'failed', { status: statusCode });
    }

    // F3: Podium closes an idle chat after ~30 min. Ask "still there?" shortly before,
    // from the server's own clock (relative times), and say plainly when it has closed:
    // the next message starts a new chat that carries what the customer already said.
    var sessionTimer = null;
    function watchSession(session) {
      clearTimeout(sessionTimer);
      if (!session || typeof session.warn_in_ms !== 'number') return;
      sessionTimer = setTimeout(checkSession, Math.max(0, session.warn_in_ms) + 50);
    }
    function checkSession() {
      fetch(config.endpoint + '/v1/webchat/sessions/' + sessionId(), { headers: { 'x-requested-with': 'podium-gateway' } })
        .then(function (res) { return res.ok ? res.json() : null; })
        .then(function (body) {
          var session = body && body.session;
          if (!session) return;
          if (session.expired) return stillThere(false);
          if (session.warning) {
            stillThere(true);
            sessionTimer = setTimeout(checkSession, Math.max(0, session.expires_in_ms) + 50);
          } else watchSession(session);
        })
        .catch(function () { /* offline: the server keeps the context anyway */ });
    }
    function stillThere(open) {
      var box = form.querySelector('[data-podium-still-there]');
      if (!box) {
        box = document.createElement('div');
        box.setAttribute('data-podium-still-there', '');
        box.setAttribute('role', 'status');
        box.className = 'podium-gateway-still-there';
        form.appendChild(box);
      }
      box.textContent = '';
      if (open) {
        box.appendChild(document.createTextNode('Still there? This chat will close soon. '));
        var button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'I’m still here';
        button.addEventListener('click', function () {
          fetch(config.endpoint + '/v1/webchat/sessions/' + sessionId() + '/keepalive', {
            method: 'POST', headers: { 'x-requested-with': 'podium-gateway' },
          }).then(function (res) { return res.ok ? res.json() : null; })
            .then(function (body) { box.textContent = ''; watchSession(body && body.session); })
            .catch(function () { /* the next message continues the chat anyway */ });
        });
        box.appendChild(button);
      } else {
        box.textContent = 'This chat timed out. Send another message and we’ll pick up where you left off.';
      }
      emit(form, 'session', { warning: open, expired: !open });
    }

    form.addEventListener('submit', function (e) {
      e.preventDefault(); // we send it ourselves, with fetch
      if (sending) return;
      sending = true;
      touched = true;
      form.setAttribute('aria-busy', 'true');
      status(form, 'Sending…', 'sending');
      send().catch(function (err) {
        failed(err && typeof err.status === 'number' ? err.status : 0, err && err.body);
      }).then(function () {
        sending = false;
        form.removeAttribute('aria-busy');
      });
    });

    function send() {
      return fileChecks.then(function () {
        return loadWithin(8000);
      }).then(function () {
        clearErrors();
        showPhone(true);
        var files = acceptedFiles();
        // Judge the whole message before uploading anything (placeholder file ids).
        var verdict = wasm && wasm.validateMessage(envelope(files, files.map(function () { return 'pending'; })), config.region);
        if (verdict && !verdict.ok) return showProblems(verdict.problems || [verdict]);
        return Promise.all(files.map(upload)).then(function (ids) {
          var env = envelope(files, ids);
          var final = wasm && wasm.validateMessage(env, config.region);
          if (final && !final.ok) return showProblems(final.problems || [final]);
          return fetch(config.endpoint + '/v1/webchat/messages', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-requested-with': 'podium-gateway' },
            body: JSON.stringify(env),
          }).then(function (res) {
            if (!res.ok) {
              return res.json().catch(function () { return null; })
                .then(function (body) { throw { status: res.status, body: body }; });
            }
            var messageField = form.querySelector(SEL.message);
            if (messageField) messageField.value = '';
            form.querySelectorAll(SEL.file).forEach(function (input) { input.value = ''; setError(input, ''); });
            status(form, 'Sent! We’ll text you back shortly.', 'sent');
            emit(form, 'sent', { sessionId: env.session_id });
            return res.json().catch(function () { return null; }).then(function (body) {
              watchSession(body && body.session);
            });
          });
        });
      });
    }
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
      ':where(.podium-gateway-still-there button){margin-left:.25em}';
    (document.head || document.documentElement).appendChild(style);
  } catch (e) { /* a strict CSP: unstyled but working */ }

  // The chat form may be on the page now or be added when the chat opens.
  scan();
  new MutationObserver(function (records) {
    for (var i = 0; i < records.length; i++) {
      if (records[i].addedNodes.length) { scan(true); return; }
    }
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
