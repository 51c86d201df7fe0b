//! Operator routes (F19), behind a bearer token compared in constant time: a phone's
//! state across flows, dead letters (paginated) and their replay, fallback-routed chats
//! and their re-routing, counters summed over the shards, the Podium token's reset, and
//! the one-time copy of the former single `Ledger` into the shards.

use gateway_core::envelope::LocationContext;
use gateway_core::optout as optout_core;
use gateway_core::outbox::JobKind;
use gateway_core::{phone, routing};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use worker::{Method, Request, Response};

use crate::edge;
use crate::error::AppError;
use crate::objects::ops::{DeadLetter, Fallback, PageArgs};
use crate::objects::phone as phone_object;
use crate::objects::{ledger, token};
use crate::ops;
use crate::podium::{self, Body};
use crate::reviews;
use crate::rpc::{self, Ctx};
use crate::settings::Settings;
use crate::webhooks;

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

async fn admin_json<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, AppError> {
    let bytes = edge::read_limited(req, MAX_ADMIN_BODY).await?;
    let bytes = if bytes.is_empty() {
        b"{}".to_vec()
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request("invalid_json", e.to_string(), None))
}

fn query(req: &Request, name: &str) -> Result<Option<String>, AppError> {
    Ok(req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned()))
}

/// Refuse unless `Authorization: Bearer <ADMIN_TOKEN>`; no token configured refuses all.
pub fn authorize(req: &Request, settings: &Settings) -> Result<(), AppError> {
    let Some(expected) = settings.admin_token.as_deref() else {
        return Err(AppError::Unauthorized);
    };
    let given = req.headers().get("authorization")?.unwrap_or_default();
    let given = given.strip_prefix("Bearer ").unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

pub fn e164(raw: &str) -> Result<String, AppError> {
    let decoded = raw.replace("%2B", "+").replace("%2b", "+");
    phone::normalize(&decoded, None)
        .map(|p| p.to_string())
        .map_err(|e| {
            AppError::bad_request(
                e.code(),
                format!("{e} (use the E.164 form, +61…)"),
                Some("phone"),
            )
        })
}

/// `GET /admin/contacts/{phone}[?live=true]`: the phone across flows (F19) — the opt-out
/// record per channel, what Podium's contact says right now (`live`) and any drift, the
/// review cooldown, scheduled requests and the last invite, and the chat outbox.
pub async fn contact(
    ctx: &Ctx,
    settings: &Settings,
    req: &Request,
    raw_phone: &str,
) -> Result<Response, AppError> {
    let phone = e164(raw_phone)?;
    let state: Value = rpc::call(
        ctx,
        phone_object::BINDING,
        &phone,
        "status",
        &json!({"phone": phone}),
    )
    .await?;
    let reviews_state = reviews::status(ctx, &phone).await?;
    // Reading Podium spends its request budget (300/min), so only when asked: the CLI
    // asks; dashboards polling this route don't.
    let live = query(req, "live")?.is_some_and(|v| matches!(v.as_str(), "true" | "1"));
    let podium_view = if live {
        podium_contact(ctx, settings, &phone).await
    } else {
        json!({"read": false, "hint": "add ?live=true to read Podium's contact now"})
    };
    let opted_out = state
        .pointer("/opt_out/opted_out")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut drift = Vec::new();
    if let Some(podium_out) = podium_view.get("opted_out").and_then(Value::as_bool) {
        if let Some(reason) = optout_core::drift_between(opted_out, podium_out) {
            drift.push(json!({"source": "podium_contact_now", "reason": reason}));
        }
    }
    if let Some(reason) = state.pointer("/opt_out/drift").and_then(Value::as_str) {
        drift.push(json!({"source": "last_podium_webhook", "reason": reason}));
    }
    Ok(Response::from_json(&json!({
        "phone": phone,
        "opt_out": state.get("opt_out"),
        "auto_text": state.get("auto_text"),
        "podium": podium_view,
        "drift": drift,
        "reviews": reviews_state,
        "contact": state.get("contact"),
        "outbox": state.get("pending"),
    }))?)
}

/// Podium's contact for a phone, read now: `transactionalOptedOutAt` on its phone channel.
async fn podium_contact(ctx: &Ctx, settings: &Settings, phone: &str) -> Value {
    let config = &settings.config.podium;
    let url = podium::url(config, &format!("/v4/contacts/{}", podium::segment(phone)));
    match podium::call_authorized(ctx, config, Method::Get, &url, Body::None).await {
        Ok(Ok(reply)) if reply.is_success() => {
            let data = reply.body.get("data").unwrap_or(&reply.body);
            let channel = data
                .get("channels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c.get("identifier").and_then(Value::as_str) == Some(phone));
            let at = channel
                .and_then(|c| c.get("transactionalOptedOutAt"))
                .cloned();
            json!({"read": true, "opted_out": at.as_ref().is_some_and(|v| !v.is_null()),
                   "transactional_opted_out_at": at})
        }
        Ok(Ok(reply)) if reply.status == 404 => {
            json!({"read": true, "exists": false, "opted_out": false})
        }
        Ok(Ok(reply)) => {
            json!({"read": false, "error": format!("Podium answered {}: {}", reply.status, reply.detail())})
        }
        Ok(Err(e)) => json!({"read": false, "error": format!("{e:?}")}),
        Err(e) => json!({"read": false, "error": e.to_string()}),
    }
}

/// `GET /admin/dead-letters?limit=100&cursor=…`: every shard asked at once, merged by
/// time; `next_cursor` until the list is exhausted (no silent cap).
pub async fn dead_letters(
    ctx: &Ctx,
    settings: &Settings,
    req: &Request,
) -> Result<Response, AppError> {
    let limit = query(req, "limit")?.and_then(|v| v.parse::<i64>().ok());
    let after = match query(req, "cursor")? {
        Some(c) => Some(ops::decode_cursor(&c).ok_or_else(|| {
            AppError::bad_request(
                "invalid_cursor",
                "cursor is the next_cursor of an earlier page",
                Some("cursor"),
            )
        })?),
        None => None,
    };
    let (letters, next) = ops::page(
        ctx,
        settings,
        "dead_letter.page",
        "dead_letters",
        &PageArgs {
            since: 0,
            after,
            limit,
            kind: None,
        },
    )
    .await?;
    // The admin API is the operator's (bearer token): numbers in full, to act on them.
    Ok(Response::from_json(&json!({
        "dead_letters": letters,
        "next_cursor": next.as_ref().map(ops::encode_cursor),
    }))?)
}

/// `POST /admin/dead-letters/{id}/replay`: back into the phone's outbox (or the webhook
/// shard); the letter is removed only once it is queued again.
pub async fn replay(ctx: &Ctx, settings: &Settings, id: &str) -> Result<Response, AppError> {
    let Some(shard) = ops::shard_in_id(settings, id) else {
        return Err(AppError::NotFound("no such dead letter"));
    };
    let letter: Option<DeadLetter> =
        ops::call(ctx, shard, "dead_letter.get", &json!({"id": id})).await?;
    let Some(letter) = letter else {
        return Err(AppError::NotFound("no such dead letter"));
    };
    let queued = if letter.job.get("kind").and_then(Value::as_str) == Some("webhook") {
        json!({"webhook_shard": webhooks::requeue(ctx, settings, &letter.job).await?})
    } else {
        let kind: JobKind = rpc::args(letter.job.clone())?;
        let out: Value = rpc::call(
            ctx,
            phone_object::BINDING,
            &letter.phone,
            "requeue",
            &json!({"phone": letter.phone, "kind": kind}),
        )
        .await?;
        json!({"job_ids": out.get("job_ids")})
    };
    ops::call::<Value>(ctx, shard, "dead_letter.delete", &json!({"id": id})).await?;
    let mut answer = json!({"replayed": id});
    if let (Some(map), Some(extra)) = (answer.as_object_mut(), queued.as_object()) {
        map.extend(extra.clone());
    }
    Ok(Response::from_json(&answer)?.with_status(202))
}

/// Every fallback since `since`, from every shard (all pages).
async fn all_fallbacks(ctx: &Ctx, settings: &Settings, since: i64) -> Result<Vec<Value>, AppError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = ops::page(
            ctx,
            settings,
            "fallback.page",
            "fallbacks",
            &PageArgs {
                since,
                after,
                limit: Some(crate::objects::ops::MAX_PAGE),
                kind: None,
            },
        )
        .await?;
        out.extend(page);
        match next {
            Some(cursor) => after = Some(cursor),
            None => return Ok(out),
        }
    }
}

/// `GET /admin/routing/fallbacks?since=<ms>`.
pub async fn fallbacks(
    ctx: &Ctx,
    settings: &Settings,
    req: &Request,
) -> Result<Response, AppError> {
    let since = query(req, "since")?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let list = all_fallbacks(ctx, settings, since).await?;
    Ok(Response::from_json(&json!({"fallbacks": list}))?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reroute {
    /// Which fallbacks (all not yet re-routed since `since` when absent).
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    since: Option<i64>,
    /// Where to: a configured location, or absent to resolve again with the current
    /// configuration (after the routing rules were fixed).
    #[serde(default)]
    location_uid: Option<String>,
}

/// `POST /admin/routing/reroute`: re-send fallback-routed chats to the right store, with
/// a note for the agent.
pub async fn reroute(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
) -> Result<Response, AppError> {
    let body: Reroute = admin_json(&mut req).await?;
    let config = &settings.config.routing;
    if let Some(uid) = &body.location_uid {
        if config.location(uid).is_none() {
            return Err(AppError::bad_request(
                "unknown_location",
                format!("{uid} is not configured"),
                Some("location_uid"),
            ));
        }
    }
    let list = all_fallbacks(ctx, settings, body.since.unwrap_or(0)).await?;
    let fallbacks: Vec<Fallback> = rpc::args(json!(list))?;
    let mut rerouted = Vec::new();
    let mut skipped = Vec::new();
    for f in fallbacks {
        if f.rerouted_to.is_some() || body.ids.as_ref().is_some_and(|ids| !ids.contains(&f.id)) {
            continue;
        }
        let target = match &body.location_uid {
            Some(uid) => Some(uid.clone()),
            None => routing::resolve(
                config,
                &LocationContext {
                    location_uid: None,
                    page_url: f.page_url.clone(),
                    postcode: f.postcode.clone(),
                },
            )
            .ok()
            .filter(|r| !r.is_fallback())
            .map(|r| r.location_uid),
        };
        let Some(target) = target.filter(|t| *t != f.location_uid) else {
            skipped.push(json!({"id": f.id, "reason": "no better location"}));
            continue;
        };
        let note = format!(
            "[Re-routed from {} — this chat reached the wrong store first, at {}]",
            f.location_uid,
            js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(f.at_ms as f64))
                .to_iso_string()
                .as_string()
                .unwrap_or_default()
        );
        let job = JobKind::Chat {
            location_uid: target.clone(),
            body: format!("{note}\n\n{}", f.body),
            contact_name: f.contact_name.clone(),
            webchat_url: f.page_url.clone().unwrap_or_else(|| "about:webchat".into()),
            session_id: f.session_id.clone(),
        };
        // Keyed on the fallback: a re-route repeated (or retried) queues it once.
        rpc::call::<_, Value>(
            ctx,
            phone_object::BINDING,
            &f.phone,
            "message",
            &phone_object::MessageIn {
                phone: f.phone.clone(),
                key: Some(format!("reroute:{}", f.id)),
                keyword: None,
                jobs: vec![job],
                held_key: None,
                held_jobs: Vec::new(),
                auto_text: None,
                fallback: None,
            },
        )
        .await?;
        let shard =
            ops::shard_in_id(settings, &f.id).unwrap_or_else(|| ops::shard_of(settings, &f.phone));
        ops::call::<Value>(
            ctx,
            shard,
            "fallback.mark",
            &json!({"id": f.id, "to": target}),
        )
        .await?;
        rerouted.push(json!({"id": f.id, "from": f.location_uid, "to": target}));
    }
    Ok(Response::from_json(
        &json!({"rerouted": rerouted, "skipped": skipped}),
    )?)
}

/// `GET /admin/metrics`: exact counters summed over the operations shards, the webhook
/// counters of the idempotency shards, and the token holder's state.
pub async fn metrics(ctx: &Ctx, settings: &Settings) -> Result<Response, AppError> {
    let (counters, webhooks, token) = futures_util::future::try_join3(
        ops::counters(ctx, settings),
        webhooks::counters(ctx, settings),
        rpc::call::<_, Value>(ctx, token::BINDING, token::NAME, "status", &json!({})),
    )
    .await?;
    let counters = Value::Object(counters);
    Ok(Response::from_json(&json!({
        "webhooks": webhook_summary(Some(&counters), &webhooks),
        "counters": counters,
        "podium_token": token,
    }))?)
}

/// `POST /admin/podium/token/reset`: drop the stored access token and any rotated
/// refresh token; the next Podium call refreshes with `PODIUM_REFRESH_TOKEN` as it is.
/// The request slots this isolate holds carry the old access token: they are dropped
/// too (slots another isolate holds are spent within their 2 s lifetime at most).
pub async fn reset_token(ctx: &Ctx) -> Result<Response, AppError> {
    let out: Value = rpc::call(ctx, token::BINDING, token::NAME, "reset", &json!({})).await?;
    ctx.permits().borrow_mut().drop_all();
    Ok(Response::from_json(&out)?)
}

/// `POST /admin/migrate/ledger`: copy what the former single `Ledger` object holds
/// (dead letters, fallbacks, indexes, events, counters) into the operations shards.
/// Idempotent (records keep their ids; counters go in as one batch), so it can be run
/// again after an interruption; `{"done": false}` asks to be called again.
pub async fn migrate_ledger(ctx: &Ctx, settings: &Settings) -> Result<Response, AppError> {
    let now = rpc::now_ms();
    let retention = &settings.config.retention;
    let mut copied = serde_json::Map::new();
    let mut done = true;
    for prefix in ["dl:", "fb:", "ix:", "ev:"] {
        let mut after: Option<String> = None;
        let mut n = 0_u32;
        for _ in 0..20 {
            let page: Value = rpc::call(
                ctx,
                ledger::BINDING,
                ledger::NAME,
                "export",
                &json!({"prefix": prefix, "after": after, "limit": 200}),
            )
            .await?;
            let entries = page
                .get("entries")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if entries.is_empty() {
                break;
            }
            for entry in &entries {
                let key = entry
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let value = entry.get("value").cloned().unwrap_or(Value::Null);
                match prefix {
                    "dl:" => {
                        if let Ok(mut letter) = serde_json::from_value::<DeadLetter>(value) {
                            let shard = ops::shard_of(settings, &letter.phone);
                            letter.id = format!("dl-{shard}-{}", letter.id);
                            ops::add_dead_letter(ctx, settings, letter).await?;
                        }
                    }
                    "fb:" => {
                        if let Ok(mut fallback) = serde_json::from_value::<Fallback>(value) {
                            let shard = ops::shard_of(settings, &fallback.phone);
                            fallback.id = format!("fb-{shard}-{}", fallback.id);
                            ops::add_fallback(ctx, settings, &fallback).await?;
                        }
                    }
                    "ix:" => {
                        let name = key.trim_start_matches("ix:");
                        ops::index_put(
                            ctx,
                            settings,
                            name,
                            value,
                            now.saturating_add(retention.events_ms),
                        )
                        .await?;
                    }
                    _ => {
                        let kind = value
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("legacy")
                            .to_owned();
                        let at = value.get("at_ms").and_then(Value::as_i64).unwrap_or(now);
                        let data = value.get("data").cloned().unwrap_or(Value::Null);
                        ops::add_event(ctx, settings, &key, &kind, at, data).await?;
                    }
                }
                n += 1;
                after = Some(key);
            }
        }
        if after.is_some() {
            // More may remain past the pages copied in this call.
            let more: Value = rpc::call(
                ctx,
                ledger::BINDING,
                ledger::NAME,
                "export",
                &json!({"prefix": prefix, "after": after, "limit": 1}),
            )
            .await?;
            if more
                .get("entries")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty())
            {
                done = false;
            }
        }
        copied.insert(prefix.trim_end_matches(':').to_owned(), json!(n));
    }
    let counters: Value =
        rpc::call(ctx, ledger::BINDING, ledger::NAME, "counters", &json!({})).await?;
    if let Some(map) = counters.get("counters").and_then(Value::as_object) {
        ops::call::<Value>(
            ctx,
            0,
            "count.batch",
            &json!({"source": "legacy-ledger", "seq": 1, "counts": map}),
        )
        .await?;
    }
    Ok(Response::from_json(
        &json!({"copied": copied, "done": done}),
    )?)
}

/// Per scheme: received (= verified + duplicate + rejected), verified (new events),
/// duplicate, rejected by reason, processed, retried, failed, ignored.
fn webhook_summary(ledger_counters: Option<&Value>, shards: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for scheme in gateway_core::webhook::SCHEMES {
        let name = scheme.as_str();
        let shard = |what: &str| {
            shards
                .pointer(&format!("/counters/{name}.{what}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let prefix = format!("webhook:{name}:rejected:");
        let mut rejected = serde_json::Map::new();
        let mut rejected_total = 0_i64;
        if let Some(map) = ledger_counters.and_then(Value::as_object) {
            for (k, v) in map {
                if let Some(reason) = k.strip_prefix(&prefix) {
                    let n = v.as_i64().unwrap_or(0);
                    rejected_total = rejected_total.saturating_add(n);
                    rejected.insert(reason.to_owned(), json!(n));
                }
            }
        }
        let error_prefix = format!("webhook:{name}:error:");
        let errors: i64 = ledger_counters
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter(|(k, _)| k.starts_with(&error_prefix))
                    .filter_map(|(_, v)| v.as_i64())
                    .sum()
            })
            .unwrap_or(0);
        let (verified, duplicate) = (shard("verified"), shard("duplicate"));
        out.insert(
            name.to_owned(),
            json!({
                "received": verified + duplicate + rejected_total + errors,
                "errors": errors,
                "verified": verified,
                "duplicate": duplicate,
                "rejected": rejected_total,
                "rejected_by_reason": rejected,
                "processed": shard("processed"),
                "retried": shard("retried"),
                "failed": shard("failed"),
                "ignored": shard("ignored"),
            }),
        );
    }
    out.insert(
        "stored".into(),
        shards.get("stored").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}
