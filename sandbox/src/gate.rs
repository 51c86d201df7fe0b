//! The middleware every request passes: bearer auth on `/v4/*`, injected faults, the
//! per-token rate limit, the request log (state + one redacted stderr line) and the
//! guarantee that every error body is `{code, message, moreInfo}`.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{default_code, error_body, ApiError};
use crate::state::{FaultResponse, RequestRecord, Shared};
use crate::util::{iso, now_ms, redact_path};

/// What is known about a request before it is answered.
#[derive(Debug)]
struct Meta {
    started: Instant,
    at_ms: i64,
    method: String,
    path: String,
    podium_version: Option<String>,
    authorized: bool,
    faulted: bool,
    control: bool,
}

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Answer of an injected error fault.
fn fault_response(f: &FaultResponse) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = f
        .code
        .clone()
        .unwrap_or_else(|| Value::String(default_code(f.status).to_owned()));
    let message = f
        .message
        .clone()
        .unwrap_or_else(|| format!("injected fault ({})", f.status));
    let body = f.body.clone().unwrap_or_else(|| error_body(code, &message));
    let mut resp = (status, Json(body)).into_response();
    let retry_after = f.retry_after.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if let Some(v) = retry_after.and_then(|s| s.parse().ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Error answers that axum produced as plain text become `{code, message, moreInfo}`.
fn normalize(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let code = Value::String(default_code(status.as_u16()).to_owned());
    (status, Json(error_body(code, &message))).into_response()
}

/// Writes one line to stderr; a closed stderr is ignored (never panic over a log line).
pub fn log_line(line: &Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Records and logs the answer.
fn finish(sb: &Shared, meta: &Meta, resp: Response) -> Response {
    let resp = normalize(resp);
    let status = resp.status().as_u16();
    let seq = if meta.control {
        None
    } else {
        let mut g = sb.lock();
        g.next_seq += 1;
        let seq = g.next_seq;
        g.record(RequestRecord {
            seq,
            at_ms: meta.at_ms,
            method: meta.method.clone(),
            path: meta.path.clone(),
            status,
            podium_version: meta.podium_version.clone(),
            authorized: meta.authorized,
            faulted: meta.faulted,
        });
        Some(seq)
    };
    let line = json!({
        "t": iso(now_ms()),
        "seq": seq,
        "method": meta.method,
        "path": redact_path(&meta.path),
        "status": status,
        "ms": u64::try_from(meta.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "authorized": meta.authorized,
        "faulted": meta.faulted,
    });
    log_line(&line);
    resp
}

/// The middleware.
pub async fn gate(State(sb): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let now = Instant::now();
    let token = bearer_token(req.headers());
    let token_state = token
        .as_ref()
        .map(|t| sb.lock().tokens.get(t).map(|exp| now < *exp));
    let mut meta = Meta {
        started: now,
        at_ms: now_ms(),
        method: req.method().as_str().to_owned(),
        podium_version: req
            .headers()
            .get("podium-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        authorized: token_state == Some(Some(true)),
        faulted: false,
        control: path == "/_sandbox" || path.starts_with("/_sandbox/"),
        path,
    };
    if meta.control {
        let resp = next.run(req).await;
        return finish(&sb, &meta, resp);
    }
    let is_v4 = meta.path == "/v4" || meta.path.starts_with("/v4/");
    if is_v4 && !meta.authorized {
        let msg = match token_state {
            None => "missing bearer access token",
            Some(None) => "invalid access token",
            Some(Some(_)) => "access token expired",
        };
        return finish(&sb, &meta, ApiError::unauthorized(msg).into_response());
    }

    let fault = {
        let mut g = sb.lock();
        g.take_fault(&meta.method, &meta.path)
            .or_else(|| g.random_fault(&meta.path))
    };
    meta.faulted = fault.is_some();
    let delay = Duration::from_millis(fault.as_ref().map_or(0, |f| f.delay_ms));
    if let Some(f) = fault.filter(|f| !(200..300).contains(&f.status)) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return finish(&sb, &meta, fault_response(&f));
    }

    if is_v4 {
        let ok = match &token {
            Some(t) => sb.lock().rate_ok(t, Instant::now()),
            None => true,
        };
        if !ok {
            let err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit",
                "rate limit exceeded for this access token",
            );
            return finish(&sb, &meta, err.into_response());
        }
    }

    if delay.is_zero() {
        let resp = next.run(req).await;
        return finish(&sb, &meta, resp);
    }
    // A slow upstream still does the work when the caller gives up waiting: run it in its
    // own task so a dropped connection does not cancel it.
    let sb2 = sb.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let resp = next.run(req).await;
        finish(&sb2, &meta, resp)
    });
    match task.await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "handler task failed",
        )
        .into_response(),
    }
}
