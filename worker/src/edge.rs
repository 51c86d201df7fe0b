//! Edge hygiene (F17): the browser origin allow-list with preflight, the optional CSRF
//! header, JSON body limits, and per-client rate limits.

use gateway_core::ratelimit::Limit;
use serde_json::{json, Value};
use worker::{Env, Request, Response};

use crate::error::AppError;
use crate::objects::limiter;
use crate::rpc;
use crate::settings::Settings;

/// The header the snippet sends when `require_csrf_header` is on.
pub const CSRF_HEADER: &str = "x-requested-with";
pub const CSRF_VALUE: &str = "podium-gateway";

/// The browser origin of a request, if it is a cross-origin browser request the
/// merchant allows. `Ok(None)`: no Origin (a server) or same-origin.
pub fn allowed_origin(req: &Request, settings: &Settings) -> Result<Option<String>, AppError> {
    let Some(origin) = req.headers().get("origin")? else {
        return Ok(None);
    };
    let own = req.url()?.origin().ascii_serialization();
    if origin.eq_ignore_ascii_case(&own) {
        return Ok(None);
    }
    if settings.config.origin_allowed(&origin) {
        return Ok(Some(origin));
    }
    Err(AppError::Forbidden {
        code: "origin_not_allowed",
        message: format!("the origin {origin} is not allowed to use this gateway"),
    })
}

/// Refuse browser requests without the CSRF header when the merchant asked for it.
pub fn check_csrf(req: &Request, settings: &Settings) -> Result<(), AppError> {
    if !settings.config.require_csrf_header || req.headers().get("origin")?.is_none() {
        return Ok(());
    }
    let ok = req
        .headers()
        .get(CSRF_HEADER)?
        .is_some_and(|v| v.eq_ignore_ascii_case(CSRF_VALUE));
    if ok {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            code: "csrf_header_missing",
            message: format!("browser requests must send {CSRF_HEADER}: {CSRF_VALUE}"),
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
pub fn preflight(req: &Request, settings: &Settings) -> Result<Response, AppError> {
    let origin = allowed_origin(req, settings)?;
    let mut response = Response::empty()?.with_status(204);
    let headers = response.headers_mut();
    headers.set("vary", "Origin")?;
    if let Some(origin) = origin {
        headers.set("access-control-allow-origin", &origin)?;
        headers.set("access-control-allow-methods", "GET, POST, OPTIONS")?;
        headers.set(
            "access-control-allow-headers",
            "content-type, x-filename, x-requested-with",
        )?;
        headers.set("access-control-max-age", "600")?;
    }
    Ok(response)
}

/// Read a JSON body of at most `limit` bytes: 415 for another type, 413 from
/// `Content-Length` before reading and again on the bytes actually read.
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
    let too_large = || AppError::PayloadTooLarge {
        code: "body_too_large",
        message: format!("the body is larger than {limit} bytes"),
    };
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = req.bytes().await?;
    if bytes.len() > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The client's IP (Cloudflare sets `CF-Connecting-IP`; locally it may be absent).
pub fn client_ip(req: &Request) -> String {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".into())
}

/// Take a token from the bucket for `key`, or refuse with `Retry-After`.
pub async fn rate_limit(
    env: &Env,
    scope: &'static str,
    key: &str,
    limit: Limit,
) -> Result<(), AppError> {
    let answer: Value = rpc::call(
        env,
        limiter::BINDING,
        &format!("{scope}:{key}"),
        "take",
        &json!(limit),
    )
    .await?;
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let wait_ms = answer
        .get("retry_after_ms")
        .and_then(Value::as_i64)
        .unwrap_or(1000);
    Err(AppError::RateLimited {
        scope,
        retry_after_secs: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
    })
}
