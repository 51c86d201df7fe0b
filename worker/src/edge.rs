//! Edge hygiene (F17): who is calling (a browser on an allowed origin, or a script),
//! the browser origin allow-list with preflight, the optional CSRF header, Turnstile,
//! bounded body reads, and the per-client limits of Cloudflare's Rate Limiting bindings.

use gateway_core::Problem;
use serde_json::{json, Value};
use wasm_bindgen::JsCast;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Url};

use crate::error::AppError;
use crate::settings::{self, Settings};

/// The header the snippet sends when `require_csrf_header` is on.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_VALUE: &str = "podium-gateway";
/// The header plain chat widgets send their CSRF token in (any custom header forces a
/// CORS preflight, which is what stops a cross-site form post).
pub const CSRF_TOKEN_HEADER: &str = "x-csrftoken";
/// The client's idempotency key for a message.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Where the snippet puts its Turnstile token.
pub const TURNSTILE_HEADER: &str = "cf-turnstile-response";

/// Rate Limiting bindings (`[[ratelimits]]` in `wrangler.toml`), keyed by client IP:
/// every request to a public route, new sessions, new phones.
pub const RL_CLIENT: &str = "RL_CLIENT";
pub const RL_NEW_SESSION: &str = "RL_NEW_SESSION";
pub const RL_NEW_PHONE: &str = "RL_NEW_PHONE";
/// The bindings' period (`[[ratelimits]] simple.period`): how long a refused client waits.
const RL_PERIOD_SECS: u64 = 60;

/// Who is calling a browser route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No `Origin` header: curl, a script, a server. Served, but never trusted to
    /// trigger an automatic text.
    Script,
    /// A page served by the gateway itself (the demo).
    SameOrigin,
    /// A page on one of the merchant's allowed origins (CORS answers name it).
    CrossOrigin(String),
}

impl Caller {
    /// The origin to echo in CORS headers.
    pub fn cors_origin(&self) -> Option<&str> {
        match self {
            Caller::CrossOrigin(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_browser(&self) -> bool {
        !matches!(self, Caller::Script)
    }
}

/// Classify the caller; a browser origin that is not allowed is refused (403).
pub fn caller(req: &Request, url: &Url, settings: &Settings) -> Result<Caller, AppError> {
    let Some(origin) = req.headers().get("origin")? else {
        return Ok(Caller::Script);
    };
    let own = url.origin().ascii_serialization();
    if origin.eq_ignore_ascii_case(&own) {
        return Ok(Caller::SameOrigin);
    }
    if settings.config.origin_allowed(&origin) {
        return Ok(Caller::CrossOrigin(origin));
    }
    Err(AppError::Forbidden {
        code: "origin_not_allowed",
        message: "this origin is not allowed to use this gateway".into(),
    })
}

/// Refuse browser requests without a CSRF header when the merchant asked for it: the
/// snippet's `X-Requested-With: podium-gateway`, or a plain widget's `X-CSRFToken`.
pub fn check_csrf(req: &Request, settings: &Settings) -> Result<(), AppError> {
    if !settings.config.require_csrf_header || req.headers().get("origin")?.is_none() {
        return Ok(());
    }
    let snippet = req
        .headers()
        .get(CSRF_HEADER)?
        .is_some_and(|v| v.eq_ignore_ascii_case(CSRF_VALUE));
    let token = req
        .headers()
        .get(CSRF_TOKEN_HEADER)?
        .is_some_and(|v| !v.trim().is_empty());
    if snippet || token {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: "csrf_header_missing",
            message: format!(
                "browser requests must send {CSRF_HEADER}: {CSRF_VALUE} (or an X-CSRFToken)"
            ),
        })
    }
}

/// Add CORS headers for an allowed cross-origin caller; `Vary: Origin` always, so a
/// cache never hands one origin's answer to another.
pub fn with_cors(mut response: Response, origin: Option<&str>) -> worker::Result<Response> {
    let headers = response.headers_mut();
    headers.set("vary", "Origin")?;
    if let Some(origin) = origin {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("access-control-expose-headers", "Retry-After")?;
    }
    Ok(response)
}

/// `OPTIONS` preflight: 204 with the allowed methods and headers for an allowed origin;
/// a refused origin gets no CORS headers at all.
pub fn preflight(caller: &Caller) -> Result<Response, AppError> {
    let mut response = Response::empty()?.with_status(204);
    let headers = response.headers_mut();
    headers.set("vary", "Origin")?;
    if let Some(origin) = caller.cors_origin() {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("access-control-allow-methods", "GET, POST, OPTIONS")?;
        headers.set(
            "access-control-allow-headers",
            "Content-Type, X-Filename, X-Requested-With, X-CSRFToken, Idempotency-Key, CF-Turnstile-Response",
        )?;
        headers.set("access-control-max-age", "600")?;
    }
    Ok(response)
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge {
        code: "body_too_large",
        message: format!("the body is larger than {limit} bytes"),
    }
}

/// Read a body of at most `limit` bytes, counting while it streams: 413 from
/// `Content-Length` before reading, and 413 once a chunked (or lying) body passes the
/// limit — nothing past it is kept, so memory stays bounded.
pub async fn read_limited(req: &mut Request, limit: usize) -> Result<Vec<u8>, AppError> {
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body: Vec<u8> = Vec::new();
    let Some(raw) = req.inner().body() else {
        return Ok(body); // no body at all
    };
    let mut stream = wasm_streams::ReadableStream::from_raw(raw.unchecked_into());
    let mut reader = stream.get_reader();
    loop {
        let chunk = reader
            .read()
            .await
            .map_err(|e| AppError::Internal(format!("reading the body: {e:?}")))?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        let bytes = js_sys::Uint8Array::new(&chunk);
        let len = bytes.length() as usize;
        if body.len().saturating_add(len) > limit {
            drop(body);
            discard_rest(&mut reader, len).await;
            return Err(too_large(limit));
        }
        let start = body.len();
        body.resize(start + len, 0);
        if let Some(dst) = body.get_mut(start..) {
            bytes.copy_to(dst);
        }
    }
}

/// How much of an oversized chunked body is read and thrown away before answering.
const DRAIN_BYTES: usize = 1024 * 1024;

/// After a body passed its limit: read (and drop) what is left of a slightly oversized
/// body, so the connection ends cleanly and stays usable — cancelling a body mid-stream
/// leaves wrangler dev's local proxy stuck on the next request — and cancel a large one
/// once `DRAIN_BYTES` have gone by (memory stays bounded either way).
async fn discard_rest(
    reader: &mut wasm_streams::readable::ReadableStreamDefaultReader<'_>,
    mut seen: usize,
) {
    while seen <= DRAIN_BYTES {
        match reader.read().await {
            Ok(Some(chunk)) => {
                seen = seen.saturating_add(js_sys::Uint8Array::new(&chunk).length() as usize);
            }
            Ok(None) | Err(_) => return,
        }
    }
    let _ = reader.cancel().await;
}

/// Read a JSON body of at most `limit` bytes: 415 for another type, 413 as above.
pub async fn json_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, AppError> {
    let is_json = req
        .headers()
        .get("content-type")?
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(AppError::UnsupportedMediaType {
            code: "unsupported_media_type",
            message: "expected Content-Type: application/json".into(),
        });
    }
    read_limited(req, limit).await
}

/// Decode `%XX` escapes (a malformed escape stays as typed); the caller decides how to
/// read the bytes as text (header values and path segments are ASCII; UTF-8 inside).
pub fn percent_decode_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The client's IP (Cloudflare sets `CF-Connecting-IP`; locally it may be absent).
pub fn client_ip(req: &Request) -> String {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .map(|ip| ip.trim().chars().take(64).collect())
        .unwrap_or_else(|| "local".into())
}

/// Whether `key` is within the Rate Limiting binding's limit. A missing or failing
/// binding lets the request through (and says so in the log): a limit, not a gate.
pub async fn within_binding(env: &Env, binding: &str, key: &str) -> bool {
    let limiter = match env.rate_limiter(binding) {
        Ok(l) => l,
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "event": "rate_limit_binding_missing", "binding": binding, "error": e.to_string()})
            );
            return true;
        }
    };
    match limiter.limit(key.to_owned()).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "event": "rate_limit_failed", "binding": binding, "error": e.to_string()})
            );
            true
        }
    }
}

/// Requests per client IP on the public routes (`RL_CLIENT`): 429 with `Retry-After`.
pub async fn limit_client(env: &Env, req: &Request, scope: &'static str) -> Result<(), AppError> {
    if within_binding(env, RL_CLIENT, &format!("ip:{}", client_ip(req))).await {
        Ok(())
    } else {
        Err(AppError::RateLimited {
            scope,
            retry_after_secs: RL_PERIOD_SECS,
        })
    }
}

/// A refusal answered by an object that owns an exact limit (`{refused, retry_after_ms}`).
pub fn refused_by_object(answer: &Value) -> Option<AppError> {
    let what = answer.get("refused")?.as_str()?;
    let wait_ms = answer
        .get("retry_after_ms")
        .and_then(Value::as_i64)
        .unwrap_or(60_000);
    let scope = match what {
        "session" => "session",
        "new_sessions" => "new_sessions",
        "new_phones" => "new_phones",
        _ => "client",
    };
    Some(AppError::RateLimited {
        scope,
        retry_after_secs: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
    })
}

/// What the caller has proven: whether this request may trigger an automatic text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A browser on an allowed origin (with a valid Turnstile token when configured).
    Browser,
    /// Served, but never triggers automatic texts (a script, or Turnstile could not be
    /// asked).
    Untrusted,
}

/// Turnstile, when the `TURNSTILE_SECRET_KEY` secret is set: a message without a valid
/// token is refused (403 `turnstile_required` / `turnstile_failed`). Without the secret,
/// a browser on an allowed origin is trusted and a script is not.
pub async fn trust(
    env: &Env,
    req: &Request,
    settings: &Settings,
    caller: &Caller,
    enforce_turnstile: bool,
) -> Result<Trust, AppError> {
    let secret = settings::secret(env, "TURNSTILE_SECRET_KEY");
    let Some(secret) = secret.filter(|_| enforce_turnstile) else {
        return Ok(if caller.is_browser() {
            Trust::Browser
        } else {
            Trust::Untrusted
        });
    };
    let token = req
        .headers()
        .get(TURNSTILE_HEADER)?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t.len() <= 2048);
    let Some(token) = token else {
        return Err(AppError::Forbidden {
            code: "turnstile_required",
            message: "confirm you are human (Turnstile) and send again".into(),
        });
    };
    match verify_turnstile(settings, &secret, &token, &client_ip(req)).await {
        Ok(()) if caller.is_browser() => Ok(Trust::Browser),
        Ok(()) => Ok(Trust::Untrusted),
        Err(TurnstileOutcome::Refused(codes)) => {
            worker::console_log!(
                "{}",
                json!({"event": "turnstile_refused", "error_codes": codes})
            );
            Err(AppError::Forbidden {
                code: "turnstile_failed",
                message: "the human check did not pass; try it again and send".into(),
            })
        }
        Err(TurnstileOutcome::Unavailable(why)) => {
            // Cloudflare's check could not be asked: the customer's message still goes
            // through, but it triggers no automatic text (errs towards silence).
            worker::console_error!(
                "{}",
                json!({"level": "warn", "event": "turnstile_unavailable", "error": why})
            );
            Ok(Trust::Untrusted)
        }
    }
}

enum TurnstileOutcome {
    Refused(Value),
    Unavailable(String),
}

/// `POST siteverify` as Cloudflare documents it (JSON body: secret, response,
/// remoteip, idempotency_key).
async fn verify_turnstile(
    settings: &Settings,
    secret: &str,
    token: &str,
    ip: &str,
) -> Result<(), TurnstileOutcome> {
    let config = &settings.config.turnstile;
    let mut body = json!({
        "secret": secret,
        "response": token,
        "idempotency_key": crate::rpc::new_uuid(),
    });
    if ip != "local" {
        crate::rpc::set_json(&mut body, &["remoteip"], json!(ip));
    }
    let unavailable = |e: String| TurnstileOutcome::Unavailable(e);
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|e| unavailable(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.to_string().into()));
    let request = Request::new_with_init(&config.siteverify_url, &init)
        .map_err(|e| unavailable(e.to_string()))?;
    let mut response = crate::podium::send(request, config.timeout_ms)
        .await
        .map_err(|a| unavailable(format!("{a:?}")))?;
    if response.status_code() >= 500 {
        return Err(unavailable(format!(
            "siteverify answered {}",
            response.status_code()
        )));
    }
    let answer: Value = response
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let success = answer.get("success").and_then(Value::as_bool) == Some(true);
    let hostname_ok = config.hostnames.is_empty()
        || answer
            .get("hostname")
            .and_then(Value::as_str)
            .is_some_and(|h| {
                config
                    .hostnames
                    .iter()
                    .any(|want| want.eq_ignore_ascii_case(h))
            });
    if success && hostname_ok {
        Ok(())
    } else {
        let mut codes = answer.get("error-codes").cloned().unwrap_or(json!([]));
        if success && !hostname_ok {
            codes = json!(["hostname-mismatch"]);
        }
        Err(TurnstileOutcome::Refused(codes))
    }
}

/// A problem at `field` as a 400.
pub fn bad_field(code: &'static str, message: impl Into<String>, field: &str) -> AppError {
    AppError::BadRequest(Problem {
        code,
        message: message.into(),
        field: Some(field.to_owned()),
    })
}
