//! Control routes under `/_sandbox` (no auth): inspect state, inject faults, reset, expire
//! tokens, flip opt-outs (optionally emitting `contact.updated`), change settings, and
//! receive alerts / hooks. Invites, Shopify orders and webhooks have their own modules.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, MORE_INFO};
use crate::state::{DeliveryStatus, FaultResponse, FaultRule, Shared};
use crate::util::{now_ms, phone_from_param};
use crate::webhooks::{emit_if_configured, Emission};

/// Most responses one fault spec may queue.
const MAX_FAULT_COUNT: u32 = 10_000;

fn contacts_json(sb: &Shared, filter: impl Fn(&crate::state::Contact) -> bool) -> Vec<Value> {
    sb.lock()
        .contacts
        .iter()
        .filter(|c| filter(c))
        .map(crate::state::Contact::to_json)
        .collect()
}

/// The string at `path` inside `v`.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// `GET /_sandbox/health`.
pub async fn health() -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// `GET /_sandbox/state`.
pub async fn state(State(sb): State<Shared>) -> Json<Value> {
    let now = Instant::now();
    let g = sb.lock();
    Json(json!({
        "contacts": g.contacts.iter().map(crate::state::Contact::to_json).collect::<Vec<_>>(),
        "contact_creates": g.contact_creates,
        "messages": g.messages,
        "attachments": g.attachments,
        "token_refreshes": g.token_refreshes,
        "refreshes_presented": g.refreshes_presented,
        "tokens_valid": g.tokens.values().filter(|exp| now < **exp).count(),
        "requests": g.requests,
        "faults_pending": g.faults,
        "alerts": g.alerts,
        "hooks": g.hooks,
        "invites": g.invites.iter().map(crate::state::Invite::to_json).collect::<Vec<_>>(),
        "turnstile": g.turnstile,
        "shopify_orders": g.orders,
        "webhook_target": g.webhook.as_ref().map(|t| json!({ "url": t.url })),
        "webhooks_sent": g.webhooks_sent,
        "settings": g.settings,
        "locations": sb.seeds.locations,
    }))
}

/// `GET /_sandbox/messages?locationUid=&phone=&email=`.
pub async fn messages(
    State(sb): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let loc = q.get("locationUid").map(|s| s.trim().to_owned());
    let phone = q.get("phone").map(|s| phone_from_param(s));
    let email = q.get("email").map(|s| s.trim().to_owned());
    let g = sb.lock();
    let data: Vec<&Value> = g
        .messages
        .iter()
        .filter(|m| {
            loc.as_ref()
                .is_none_or(|l| str_at(m, &["locationUid"]) == Some(l.as_str()))
        })
        .filter(|m| {
            phone.as_ref().is_none_or(|p| {
                str_at(m, &["channel", "type"]) == Some("phone")
                    && str_at(m, &["channel", "identifier"]) == Some(p.as_str())
            })
        })
        .filter(|m| {
            email.as_ref().is_none_or(|e| {
                str_at(m, &["channel", "type"]) == Some("email")
                    && str_at(m, &["channel", "identifier"])
                        .is_some_and(|i| i.eq_ignore_ascii_case(e))
            })
        })
        .collect();
    Json(json!({ "data": data }))
}

/// `GET /_sandbox/contacts?phone=&email=` (every match, so duplicates show).
pub async fn contacts(
    State(sb): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let phone = q.get("phone").map(|s| phone_from_param(s));
    let email = q.get("email").map(|s| s.trim().to_owned());
    let data = contacts_json(&sb, |c| {
        phone.as_ref().is_none_or(|p| c.phone.as_ref() == Some(p))
            && email.as_ref().is_none_or(|e| c.has_email(e))
    });
    Json(json!({ "data": data }))
}

/// One fault spec: `responses: [...]`, or the shorthand `status` (+ `count`, …).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    responses: Option<Vec<FaultResponse>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    retry_after: Option<Value>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    body: Option<Value>,
}

fn to_rule(spec: FaultSpec) -> Result<FaultRule, ApiError> {
    let responses: VecDeque<FaultResponse> = match (spec.responses, spec.status) {
        (Some(r), None) => r.into(),
        (None, Some(status)) => {
            let count = spec.count.unwrap_or(1);
            if count == 0 || count > MAX_FAULT_COUNT {
                return Err(ApiError::invalid_request(format!(
                    "`count` must be in 1..={MAX_FAULT_COUNT}"
                )));
            }
            let one = FaultResponse {
                status,
                code: spec.code,
                message: spec.message,
                retry_after: spec.retry_after,
                delay_ms: spec.delay_ms,
                body: spec.body,
            };
            std::iter::repeat_n(one, count as usize).collect()
        }
        _ => {
            return Err(ApiError::invalid_request(
                "give either `responses` or `status` (with optional `count`)",
            ))
        }
    };
    if responses.is_empty() {
        return Err(ApiError::invalid_request("`responses` must not be empty"));
    }
    if let Some(bad) = responses.iter().find(|r| !(200..=599).contains(&r.status)) {
        return Err(ApiError::invalid_request(format!(
            "status {} is not in 200..=599",
            bad.status
        )));
    }
    if spec.path.is_empty() || !spec.path.starts_with('/') {
        return Err(ApiError::invalid_request("`path` must start with `/`"));
    }
    Ok(FaultRule {
        method: spec
            .method
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "*".into()),
        path: spec.path,
        responses,
    })
}

/// `POST /_sandbox/faults`: one spec or an array of specs; appended to the queue.
pub async fn add_faults(State(sb): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("body is not valid JSON: {e}")))?;
    let specs: Vec<Value> = match v {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut rules = Vec::with_capacity(specs.len());
    for s in specs {
        let spec: FaultSpec = serde_json::from_value(s)
            .map_err(|e| ApiError::invalid_request(format!("fault spec: {e}")))?;
        rules.push(to_rule(spec)?);
    }
    let queued: usize = rules.iter().map(|r| r.responses.len()).sum();
    let mut g = sb.lock();
    g.faults.extend(rules);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "queued": queued, "faults_pending": g.faults })),
    )
        .into_response())
}

/// `GET /_sandbox/faults`.
pub async fn list_faults(State(sb): State<Shared>) -> Json<Value> {
    Json(json!({ "faults_pending": sb.lock().faults }))
}

/// `DELETE /_sandbox/faults`.
pub async fn clear_faults(State(sb): State<Shared>) -> Json<Value> {
    let mut g = sb.lock();
    let cleared: usize = g.faults.iter().map(|r| r.responses.len()).sum();
    g.faults.clear();
    Json(json!({ "cleared": cleared }))
}

/// `POST /_sandbox/reset` with optional `{"revoke_tokens": true}`.
pub async fn reset(State(sb): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let revoke = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        crate::error::json_object(&body)?
            .get("revoke_tokens")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    sb.reset(revoke);
    Ok(Json(json!({ "reset": true, "tokens_revoked": revoke })))
}

/// `POST /_sandbox/expire-tokens`: every issued access token expires now.
pub async fn expire_tokens(State(sb): State<Shared>) -> Json<Value> {
    let now = Instant::now();
    let mut g = sb.lock();
    let mut expired = 0usize;
    for exp in g.tokens.values_mut() {
        if now < *exp {
            expired += 1;
        }
        *exp = now;
    }
    Json(json!({ "expired": expired }))
}

/// Sets or clears the opt-out of every contact with this phone; with `emit`, sends
/// `contact.updated` for the first of them (when a webhook target is configured).
async fn set_opt_out(
    sb: &Shared,
    raw: &str,
    out: bool,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let emit = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        crate::error::opt_bool(&crate::error::json_object(body)?, "emit")?.unwrap_or(false)
    };
    let phone = phone_from_param(raw);
    let stamp = crate::util::iso(now_ms());
    let touched = {
        let mut g = sb.lock();
        let mut touched = Vec::new();
        for c in g
            .contacts
            .iter_mut()
            .filter(|c| c.phone.as_ref() == Some(&phone))
        {
            c.opted_out_at = out.then(|| stamp.clone());
            c.updated_at_ms = now_ms();
            touched.push(c.to_json());
        }
        touched
    };
    let Some(first) = touched.first() else {
        return Err(ApiError::not_found("no contact with that phone"));
    };
    if !emit {
        return Ok(Json(json!({ "data": touched })));
    }
    let event = contact_updated(first, &phone, out.then_some(stamp.as_str()));
    let trigger = if out { "opt_out" } else { "opt_in" };
    let webhook =
        match emit_if_configured(sb, Emission::new("contact.updated", event, trigger)).await {
            Some(rec) => rec,
            None => json!({ "error": "no webhook target configured (PUT /_sandbox/webhooks)" }),
        };
    Ok(Json(json!({ "data": touched, "webhook": webhook })))
}

/// `contact.updated` data: the contact as the API shows it, with `phoneNumbers: [phone]`
/// and the phone channel first carrying `transactionalOptedOutAt`.
fn contact_updated(contact: &Value, phone: &str, opted_out_at: Option<&str>) -> Value {
    let mut data = match contact {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut channels = vec![json!({
        "type": "phone",
        "identifier": phone,
        "transactionalOptedOutAt": opted_out_at,
    })];
    if let Some(Value::Array(old)) = data.get("channels") {
        for ch in old {
            if ch.get("type").and_then(Value::as_str) == Some("phone")
                && ch.get("identifier").and_then(Value::as_str) == Some(phone)
            {
                // Keep the other fields (marketing opt-ins) of the phone channel.
                if let (Some(Value::Object(first)), Value::Object(rest)) =
                    (channels.first_mut(), ch)
                {
                    for (k, v) in rest {
                        first.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            } else {
                channels.push(ch.clone());
            }
        }
    }
    data.insert("phoneNumbers".into(), json!([phone]));
    data.insert("channels".into(), Value::Array(channels));
    Value::Object(data)
}

/// `POST /_sandbox/contacts/{phone}/opt-out`, optional body `{"emit": true}`.
pub async fn opt_out(
    State(sb): State<Shared>,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_opt_out(&sb, &phone, true, &body).await
}

/// `POST /_sandbox/contacts/{phone}/opt-in`, optional body `{"emit": true}`.
pub async fn opt_in(
    State(sb): State<Shared>,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_opt_out(&sb, &phone, false, &body).await
}

/// Settings that `POST /_sandbox/config` may change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    token_ttl_secs: Option<u64>,
    rate_limit_per_minute: Option<u32>,
    upsert_race_window_ms: Option<u64>,
    rotate_refresh_tokens: Option<bool>,
    invite_initial_status: Option<DeliveryStatus>,
    random_fault_percent: Option<u32>,
    random_fault_statuses: Option<Vec<u16>>,
}

/// `GET /_sandbox/config`.
pub async fn get_config(State(sb): State<Shared>) -> Json<Value> {
    Json(json!({ "settings": sb.lock().settings }))
}

/// `POST /_sandbox/config`: change settings until the next reset.
pub async fn set_config(State(sb): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let p: SettingsPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("settings: {e}")))?;
    let mut g = sb.lock();
    let s = &mut g.settings;
    if let Some(v) = p.token_ttl_secs {
        s.token_ttl_secs = v;
    }
    if let Some(v) = p.rate_limit_per_minute {
        s.rate_limit_per_minute = v;
    }
    if let Some(v) = p.upsert_race_window_ms {
        s.upsert_race_window_ms = v;
    }
    if let Some(v) = p.rotate_refresh_tokens {
        s.rotate_refresh_tokens = v;
    }
    if let Some(v) = p.invite_initial_status {
        s.invite_initial_status = v;
    }
    if let Some(v) = p.random_fault_percent {
        if v > 100 {
            return Err(ApiError::invalid_request(
                "random_fault_percent must be 0 to 100",
            ));
        }
        s.random_fault_percent = v;
    }
    if let Some(v) = p.random_fault_statuses {
        s.random_fault_statuses = v;
    }
    Ok(Json(json!({ "settings": g.settings })))
}

/// `POST /_sandbox/refresh-tokens`: a new valid refresh token, as a merchant's fresh
/// OAuth authorization would give (tests of replacing `PODIUM_REFRESH_TOKEN`).
pub async fn mint_refresh_token(State(sb): State<Shared>) -> Json<Value> {
    let token = format!("sandbox-refresh-{}", crate::util::random_hex(12));
    sb.lock().refresh_tokens.insert(token.clone(), None);
    Json(json!({ "refresh_token": token }))
}

/// Slack answers `ok` / `invalid_payload` as plain text; so do we.
fn slack_reply(ok: bool) -> Response {
    if ok {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
    } else {
        let body = json!({ "code": "invalid_payload", "message": "body must be JSON", "moreInfo": MORE_INFO });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION && *k != header::COOKIE)
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect()
}

/// `POST /_sandbox/alerts`: a Slack-compatible incoming-webhook receiver.
pub async fn alert(State(sb): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return slack_reply(false);
    };
    sb.lock().alerts.push(json!({
        "at_ms": now_ms(),
        "headers": headers_json(&headers),
        "body": v,
    }));
    slack_reply(true)
}

/// `POST /_sandbox/hooks/{name}`: records any JSON under `hooks`.
pub async fn hook(
    State(sb): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return slack_reply(false);
    };
    sb.lock().hooks.push(json!({
        "name": name,
        "at_ms": now_ms(),
        "headers": headers_json(&headers),
        "body": v,
    }));
    slack_reply(true)
}
