//! Cloudflare Turnstile's `POST /turnstile/v0/siteverify`, as Cloudflare documents it, for
//! its documented test secret keys (nothing beyond loopback is reachable here, so the
//! gateway's `TURNSTILE_SITEVERIFY_URL` points at this in tests and the run command):
//! `1x0000000000000000000000000000000AA` always passes, `2x…AA` always fails,
//! `3x…AA` answers "token already spent". Any other secret is `invalid-input-secret`.
//! The body is JSON or form-encoded: `secret`, `response`, optional `remoteip`,
//! `idempotency_key`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::state::Shared;
use crate::util::{iso, now_ms};

pub const PASS_SECRET: &str = "1x0000000000000000000000000000000AA";
pub const FAIL_SECRET: &str = "2x0000000000000000000000000000000AA";
pub const SPENT_SECRET: &str = "3x0000000000000000000000000000000AA";

fn fields(headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
    }
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

pub async fn siteverify(State(sb): State<Shared>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let f = fields(&headers, &body);
    let text = |k: &str| {
        f.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let (secret, response) = (text("secret"), text("response"));
    let (kind, errors): (&str, Vec<&str>) = if secret.is_empty() {
        ("none", vec!["missing-input-secret"])
    } else if response.is_empty() {
        ("given", vec!["missing-input-response"])
    } else if response.len() > 2048 {
        ("given", vec!["invalid-input-response"])
    } else {
        match secret.as_str() {
            PASS_SECRET => ("always_pass", vec![]),
            FAIL_SECRET => ("always_fail", vec!["invalid-input-response"]),
            SPENT_SECRET => ("token_spent", vec!["timeout-or-duplicate"]),
            _ => ("unknown", vec!["invalid-input-secret"]),
        }
    };
    let success = errors.is_empty();
    let answer = if success {
        json!({"success": true, "challenge_ts": iso(now_ms()), "hostname": "localhost",
               "error-codes": [], "action": "", "cdata": ""})
    } else {
        json!({"success": false, "error-codes": errors})
    };
    sb.lock().turnstile.push(json!({
        "secret_kind": kind,
        "success": success,
        "error_codes": errors,
        "remoteip": f.get("remoteip"),
        "has_idempotency_key": f.contains_key("idempotency_key"),
    }));
    Json(answer)
}
