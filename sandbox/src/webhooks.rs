//! The signed webhook emitter (Podium → gateway): configure a target, emit any event on
//! demand, and the events the control routes emit by themselves. Every emission and its
//! answer (or failure) is recorded in `webhooks_sent`; none ever fails the sandbox.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::client::{self, HttpUrl};
use crate::error::{json_object, opt_str, req_str, ApiError};
use crate::state::{Shared, WebhookTarget};
use crate::util::{hex, now_ms};

/// `metadata.version` of every emitted body.
pub const PODIUM_WEBHOOK_VERSION: &str = "2021.04.01";
/// How long the receiver has to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How `podium-signature` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET.get((i & 63) as usize).copied().unwrap_or(b'='));
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

/// HMAC-SHA256(secret, `"{timestamp}.{body}"`), hex or base64.
pub fn sign(
    secret: &str,
    timestamp: &str,
    body: &str,
    encoding: Encoding,
) -> Result<String, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    Ok(match encoding {
        Encoding::Hex => hex(&tag),
        Encoding::Base64 => base64(&tag),
    })
}

/// One event to send.
#[derive(Debug, Clone)]
pub struct Emission {
    pub event_type: String,
    pub data: Value,
    /// `podium-timestamp` as sent (default: now in ms).
    pub timestamp: Option<String>,
    pub encoding: Encoding,
    /// Sign with this instead of the target's secret.
    pub secret: Option<String>,
    /// Send this `podium-signature` verbatim instead of computing one.
    pub signature: Option<String>,
    /// What caused it: `emit`, `invite_status`, `opt_out`, `opt_in`.
    pub trigger: &'static str,
}

impl Emission {
    pub fn new(event_type: &str, data: Value, trigger: &'static str) -> Self {
        Self {
            event_type: event_type.to_owned(),
            data,
            timestamp: None,
            encoding: Encoding::Hex,
            secret: None,
            signature: None,
            trigger,
        }
    }
}

fn answer_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Builds, signs and POSTs the event to `target`; records and returns
/// `{at_ms, trigger, event_type, url, status, body, error, sent:{url, headers, body}}`
/// (`status`/`body` are null and `error` says why when no HTTP answer came back).
/// Delivery runs in its own task: a caller that gives up does not cancel it.
pub async fn emit(sb: &Shared, target: &WebhookTarget, e: Emission) -> Value {
    let (sb2, target2) = (sb.clone(), target.clone());
    let (event_type, trigger) = (e.event_type.clone(), e.trigger);
    match tokio::spawn(async move { deliver(&sb2, &target2, e).await }).await {
        Ok(rec) => rec,
        Err(err) => {
            let rec = json!({
                "at_ms": now_ms(),
                "trigger": trigger,
                "event_type": event_type,
                "url": target.url,
                "status": null,
                "body": null,
                "error": format!("delivery task failed: {err}"),
                "sent": null,
            });
            sb.lock().record_webhook(rec.clone());
            rec
        }
    }
}

async fn deliver(sb: &Shared, target: &WebhookTarget, e: Emission) -> Value {
    let body = json!({
        "data": e.data,
        "metadata": { "event_type": e.event_type, "version": PODIUM_WEBHOOK_VERSION },
    })
    .to_string();
    let timestamp = e.timestamp.unwrap_or_else(|| now_ms().to_string());
    let secret = e.secret.as_deref().unwrap_or(&target.secret);
    let signature = match e.signature {
        Some(s) => Ok(s),
        None => sign(secret, &timestamp, &body, e.encoding),
    };
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "podium-sandbox".into()),
        ("podium-timestamp".into(), timestamp),
    ];
    if let Ok(s) = &signature {
        headers.push(("podium-signature".into(), s.clone()));
    }
    let sent = json!({
        "url": target.url,
        "headers": headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>(),
        "body": body,
    });
    let result = match (signature, HttpUrl::parse(&target.url)) {
        (Err(e), _) => Err(format!("signing failed: {e}")),
        (_, Err(e)) => Err(format!("webhook URL: {e}")),
        (Ok(_), Ok(url)) => client::post(&url, &headers, body.as_bytes(), DELIVERY_TIMEOUT).await,
    };
    let (status, answer, error) = match result {
        Ok(r) => (Some(r.status), answer_json(&r.body), None),
        Err(e) => (None, Value::Null, Some(e)),
    };
    let rec = json!({
        "at_ms": now_ms(),
        "trigger": e.trigger,
        "event_type": e.event_type,
        "url": target.url,
        "status": status,
        "body": answer,
        "error": error,
        "sent": sent,
    });
    sb.lock().record_webhook(rec.clone());
    rec
}

/// Emits to the configured target, if there is one.
pub async fn emit_if_configured(sb: &Shared, e: Emission) -> Option<Value> {
    let target = sb.lock().webhook.clone()?;
    Some(emit(sb, &target, e).await)
}

fn target_json(t: Option<&WebhookTarget>) -> Value {
    t.map_or(
        Value::Null,
        |t| json!({ "url": t.url, "secret_set": !t.secret.is_empty() }),
    )
}

/// A header value given by the caller: no control characters.
fn header_safe(key: &str, v: &str) -> Result<(), ApiError> {
    if v.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(format!(
            "`{key}` must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a `{url, secret}` pair.
pub fn parse_target(url: &str, secret: &str) -> Result<WebhookTarget, String> {
    HttpUrl::parse(url)?;
    if secret.is_empty() {
        return Err("`secret` must not be empty".into());
    }
    Ok(WebhookTarget {
        url: url.trim().to_owned(),
        secret: secret.to_owned(),
    })
}

/// `PUT /_sandbox/webhooks` `{"url": "http://127.0.0.1:8787/webhooks/podium", "secret": "…"}`.
pub async fn put_target(State(sb): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let obj = json_object(&body)?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "url" | "secret")) {
        return Err(ApiError::invalid_request(format!("unknown field `{k}`")));
    }
    let url = req_str(&obj, "url")?;
    let secret = req_str(&obj, "secret")?;
    let t = parse_target(url, secret).map_err(ApiError::invalid_request)?;
    let mut g = sb.lock();
    g.webhook = Some(t);
    Ok(Json(json!({ "target": target_json(g.webhook.as_ref()) })))
}

/// `GET /_sandbox/webhooks`: the target (without its secret) and what was sent.
pub async fn get_target(State(sb): State<Shared>) -> Json<Value> {
    let g = sb.lock();
    Json(json!({
        "target": target_json(g.webhook.as_ref()),
        "webhooks_sent": g.webhooks_sent,
    }))
}

/// `DELETE /_sandbox/webhooks`: no more webhooks (recorded ones stay).
pub async fn delete_target(State(sb): State<Shared>) -> Json<Value> {
    let had = sb.lock().webhook.take().is_some();
    Json(json!({ "target": null, "removed": had }))
}

const EMIT_FIELDS: [&str; 6] = [
    "event_type",
    "data",
    "timestamp_ms",
    "signature_encoding",
    "secret",
    "signature",
];

fn parse_emission(obj: &Map<String, Value>) -> Result<Emission, ApiError> {
    if let Some(k) = obj.keys().find(|k| !EMIT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid_request(format!(
            "unknown field `{k}` (known: {})",
            EMIT_FIELDS.join(", ")
        )));
    }
    let event_type = req_str(obj, "event_type")?;
    let data = obj
        .get("data")
        .cloned()
        .ok_or_else(|| ApiError::invalid_request("`data` is required"))?;
    let mut e = Emission::new(event_type, data, "emit");
    e.timestamp = match obj.get("timestamp_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        // Sent verbatim: lets a test send a malformed timestamp.
        Some(Value::String(s)) => {
            header_safe("timestamp_ms", s)?;
            Some(s.clone())
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`timestamp_ms` must be an integer (or a string sent verbatim)",
            ))
        }
    };
    e.encoding = match opt_str(obj, "signature_encoding")? {
        None | Some("hex") => Encoding::Hex,
        Some("base64") => Encoding::Base64,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`signature_encoding` must be \"hex\" or \"base64\"",
            ))
        }
    };
    e.secret = opt_str(obj, "secret")?.map(str::to_owned);
    if let Some(s) = opt_str(obj, "signature")? {
        header_safe("signature", s)?;
        e.signature = Some(s.to_owned());
    }
    Ok(e)
}

/// `POST /_sandbox/webhooks/emit` `{"event_type", "data", "timestamp_ms"?,
/// "signature_encoding"?: "hex"|"base64", "secret"?, "signature"?}`: 200 with the record
/// when the receiver answered (whatever its status), 502 with it when it did not.
pub async fn emit_route(State(sb): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let obj = json_object(&body)?;
    let e = parse_emission(&obj)?;
    let target = sb.lock().webhook.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_webhook_target",
            "no webhook target: PUT /_sandbox/webhooks {\"url\", \"secret\"} first",
        )
    })?;
    let rec = emit(&sb, &target, e).await;
    let status = if rec.get("status").is_some_and(Value::is_u64) {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((status, Json(rec)).into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn signature_over_timestamp_dot_body() {
        // Cross-checked with Python's hmac module.
        let body = r#"{"data":{},"metadata":{"event_type":"x","version":"2021.04.01"}}"#;
        assert_eq!(
            sign("Jefe", "1620771659663", body, Encoding::Hex).unwrap(),
            "9561f046f7fb552356582f010c62e70053d50e94ec978298be5d327505cfefff"
        );
        assert_eq!(
            sign("Jefe", "1620771659663", body, Encoding::Base64).unwrap(),
            "lWHwRvf7VSNWWC8BDGLnAFPVDpTsl4KYvl0ydQXP7/8="
        );
    }
}
