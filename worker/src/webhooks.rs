//! Signed webhook ingress (F13–F15): `POST /webhooks/{podium,shopify,stripe,chatwoot}`
//! and `/webhooks/standard/{source}`. Verify the raw bytes, claim the idempotency key in
//! its shard (which stores the event), answer 2xx — then the shard's alarm processes the
//! event (`events`). A route without a configured secret refuses everything.

use gateway_core::signature::{Headers as SignedHeaders, Scheme, SignatureError};
use gateway_core::webhook::{self, Action};
use gateway_core::Problem;
use serde_json::{json, Map, Value};
use worker::{Request, Response};

use crate::edge;
use crate::error::AppError;
use crate::events;
use crate::objects::idempotency::{self, Claim, Claimed};
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::{self, Settings};

/// Headers kept with a stored event: what replay and operators need, no signatures.
const KEPT_HEADERS: &[&str] = &[
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-shopify-triggered-at",
    "x-chatwoot-delivery",
    "webhook-id",
    "podium-timestamp",
];

/// The route's scheme and, for Standard Webhooks, its source.
pub fn scheme_of(segments: &[&str]) -> Option<(Scheme, Option<String>)> {
    match segments {
        ["podium"] => Some((Scheme::Podium, None)),
        ["shopify"] => Some((Scheme::Shopify, None)),
        ["stripe"] => Some((Scheme::Stripe, None)),
        ["chatwoot"] => Some((Scheme::Chatwoot, None)),
        ["standard", source] => Some((Scheme::Standard, Some((*source).to_owned()))),
        _ => None,
    }
}

/// The scheme a refused `/webhooks/{rest}` request is counted under: one of the
/// schemes, or `unknown` for any other first segment (a bounded set of counter names).
pub fn counter_scheme(rest: &str) -> &'static str {
    let first = rest.split('/').next().unwrap_or_default();
    webhook::SCHEMES
        .into_iter()
        .map(Scheme::as_str)
        .find(|name| *name == first)
        .unwrap_or("unknown")
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Keyword { .. } => "keyword",
        Action::PodiumOptState { .. } => "podium_opt_state",
        Action::MessageFailed { .. } => "message_failed",
        Action::Review(_) => "review",
        Action::InviteUpdated { .. } => "invite_updated",
        Action::Webchat { .. } => "webchat",
        Action::Store { .. } => "store",
        Action::RememberPhone { .. } => "remember_phone",
        Action::Ignore { .. } => "ignore",
    }
}

/// `POST /webhooks/…`.
pub async fn ingress(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
    scheme: Scheme,
    source: Option<&str>,
) -> Result<Response, AppError> {
    let config = &settings.config.webhooks;
    if let Some(source) = source {
        if !webhook::valid_source(source) {
            return Err(AppError::NotFound(
                "no such webhook source (1-32 of a-z 0-9 - _)",
            ));
        }
    }
    // Fail closed: no secret, no processing — and an operator is told in the log.
    let secret_name = webhook::secret_name(scheme, source);
    let secrets = settings::secret(ctx, &secret_name)
        .ok_or(SignatureError::NotConfigured)
        .and_then(|list| scheme.secrets(&list))
        .map_err(|e| {
            worker::console_error!(
                "{}",
                json!({"level": "error", "event": "webhook_not_configured", "secret": secret_name,
                       "error": e.to_string()})
            );
            AppError::Signature(e)
        })?;
    let body = edge::json_body(&mut req, config.max_body_bytes as usize).await?;
    let mut headers = SignedHeaders::new();
    for (name, value) in req.headers().entries() {
        headers.insert(&name, &value);
    }
    let now = now_ms();
    scheme
        .verify(&secrets, &headers, &body, now, config.tolerance(scheme))
        .map_err(AppError::Signature)?;

    // Verified: from here on the bytes are the provider's.
    let json: Value = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(Problem {
            code: "invalid_json",
            message: format!("the signed body is not valid JSON: {e}"),
            field: None,
        })
    })?;
    let interpreted = webhook::interpret(scheme, &headers, &json, now);
    let key = webhook::dedup_key(scheme, source, &headers, &body, &json);
    let shard = webhook::shard_of(&key, config.shards);
    let mut kept = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = headers.get(name) {
            kept.insert((*name).to_owned(), json!(v));
        }
    }
    if let Some(source) = source {
        kept.insert("source".into(), json!(source));
    }
    let claim = Claim {
        key,
        scheme: scheme.as_str().to_owned(),
        event_type: interpreted.event_type.clone(),
        action: interpreted.action,
        headers: Value::Object(kept),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_ms: now,
        expires_ms: now.saturating_add(config.retention.for_scheme(scheme)),
        process_at_ms: now.saturating_add(config.process_delay_ms),
    };
    let claimed: Claimed = rpc::call(
        ctx,
        idempotency::BINDING,
        &idempotency::shard_name(shard),
        "claim",
        &claim,
    )
    .await?;
    if !claimed.duplicate {
        // F6: a STOP closes the gate before we answer; processing applies it again
        // (idempotently) if this fails.
        if let Err(e) = events::apply_opt_out(ctx, &claim.action).await {
            worker::console_error!(
                "{}",
                json!({"level": "warn", "event": "opt_out_fast_path_failed", "error": e.to_string()})
            );
        }
    }
    Ok(Response::from_json(&json!({
        "ok": true,
        "duplicate": claimed.duplicate,
        "state": claimed.state,
        "event_type": claim.event_type,
        "action": action_name(&claim.action),
    }))?)
}

/// Ask every idempotency shard the same operation, all at once (one round trip, not 16).
async fn every_shard(
    ctx: &Ctx,
    settings: &Settings,
    op: &str,
    body: &Value,
) -> Result<Vec<Value>, AppError> {
    let names: Vec<String> = (0..settings.config.webhooks.shards)
        .map(idempotency::shard_name)
        .collect();
    futures_util::future::try_join_all(
        names
            .iter()
            .map(|name| rpc::call::<_, Value>(ctx, idempotency::BINDING, name, op, body)),
    )
    .await
}

/// Webhook counters summed over every shard: verified, duplicate, processed, retried,
/// failed and ignored per scheme, and what the shards hold.
pub async fn counters(ctx: &Ctx, settings: &Settings) -> Result<Value, AppError> {
    let mut totals: Map<String, Value> = Map::new();
    let mut stored: Map<String, Value> = Map::new();
    let add = |map: &mut Map<String, Value>, name: &str, n: i64| {
        let current = map.get(name).and_then(Value::as_i64).unwrap_or(0);
        map.insert(name.to_owned(), json!(current.saturating_add(n)));
    };
    for out in every_shard(ctx, settings, "counters", &json!({})).await? {
        let rows = |name: &str| {
            out.get(name)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let field = |row: &Value, name: &str| row.get(name).cloned().unwrap_or(Value::Null);
        for row in rows("counters") {
            if let (Some(name), Some(n)) = (field(&row, "name").as_str(), field(&row, "n").as_f64())
            {
                #[allow(clippy::cast_possible_truncation)]
                add(&mut totals, name, n as i64);
            }
        }
        for row in rows("stored") {
            if let (Some(state), Some(n)) =
                (field(&row, "state").as_str(), field(&row, "n").as_f64())
            {
                #[allow(clippy::cast_possible_truncation)]
                add(&mut stored, state, n as i64);
            }
        }
    }
    Ok(json!({"counters": totals, "stored": stored}))
}

/// Put a dead-lettered event back in its shard's queue (the admin replay route). The
/// stored job is the shard row: key, scheme, event type, action, headers, body, times.
pub async fn requeue(ctx: &Ctx, settings: &Settings, job: &Value) -> Result<u32, AppError> {
    let text = |name: &str| job.get(name).and_then(Value::as_str).unwrap_or_default();
    let number = |name: &str| {
        #[allow(clippy::cast_possible_truncation)]
        job.get(name).and_then(Value::as_f64).map(|n| n as i64)
    };
    let key = text("key").to_owned();
    if key.is_empty() {
        return Err(AppError::Internal(
            "dead letter without a webhook key".into(),
        ));
    }
    let now = now_ms();
    let claim = Claim {
        key: key.clone(),
        scheme: text("scheme").to_owned(),
        event_type: text("event_type").to_owned(),
        action: serde_json::from_str(text("action"))?,
        headers: serde_json::from_str(text("headers")).unwrap_or(Value::Null),
        body: text("body").to_owned(),
        received_ms: number("received_ms").unwrap_or(now),
        expires_ms: number("expires_ms").unwrap_or(now).max(now),
        process_at_ms: now,
    };
    let shard = webhook::shard_of(&key, settings.config.webhooks.shards);
    rpc::call::<_, Value>(
        ctx,
        idempotency::BINDING,
        &idempotency::shard_name(shard),
        "requeue",
        &claim,
    )
    .await?;
    Ok(shard)
}

/// `GET /admin/webhooks?limit=20`: the newest stored deliveries across shards.
pub async fn recent(ctx: &Ctx, settings: &Settings, req: &Request) -> Result<Response, AppError> {
    let limit = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 200);
    let mut all = Vec::new();
    for out in every_shard(ctx, settings, "recent", &json!({"limit": limit})).await? {
        if let Some(rows) = out.get("deliveries").and_then(Value::as_array) {
            all.extend(rows.iter().cloned());
        }
    }
    let received = |v: &Value| v.get("received_ms").and_then(Value::as_f64).unwrap_or(0.0);
    all.sort_by(|a, b| received(b).total_cmp(&received(a)));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    all.truncate(limit as usize);
    Ok(Response::from_json(&json!({"deliveries": all}))?)
}

/// `POST /admin/webhooks/replay {key, force?}`: run a stored delivery through processing
/// again. Dedup applies unless `force` (a dead-lettered one is always replayable).
pub async fn replay(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
) -> Result<Response, AppError> {
    let bytes = edge::read_limited(&mut req, 16 * 1024).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        AppError::bad_request(
            "invalid_json",
            "expected {\"key\": \"…\", \"force\": false}",
            None,
        )
    })?;
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
    if key.is_empty() {
        return Err(AppError::bad_request(
            "missing_key",
            "key is required (see GET /admin/webhooks)",
            Some("key"),
        ));
    }
    let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
    let shard = webhook::shard_of(key, settings.config.webhooks.shards);
    let out: Value = rpc::call(
        ctx,
        idempotency::BINDING,
        &idempotency::shard_name(shard),
        "replay",
        &json!({"key": key, "force": force}),
    )
    .await?;
    if out.get("found").and_then(Value::as_bool) != Some(true) {
        return Err(AppError::NotFound(
            "no stored delivery with this key (expired or never received)",
        ));
    }
    let status = if out.get("replayed").and_then(Value::as_bool) == Some(true) {
        202
    } else {
        200
    };
    Ok(Response::from_json(&out)?.with_status(status))
}
