//! Operator routes (F19), behind a bearer token compared in constant time: a phone's
//! state across flows, dead letters and their replay, fallback-routed chats and their
//! re-routing, counters.

use gateway_core::envelope::LocationContext;
use gateway_core::optout::{self as optout_core, OptOutRecord};
use gateway_core::{phone, routing};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use worker::{Env, Method, Request, Response};

use crate::error::AppError;
use crate::objects::contact::{self, JobKind};
use crate::objects::ledger::{self, DeadLetter, Fallback};
use crate::objects::{optout, token};
use crate::podium::{self, Body};
use crate::reviews;
use crate::rpc;
use crate::settings::Settings;
use crate::webhooks;

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
    env: &Env,
    settings: &Settings,
    req: &Request,
    raw_phone: &str,
) -> Result<Response, AppError> {
    let phone = e164(raw_phone)?;
    let record: OptOutRecord = rpc::call(env, optout::BINDING, &phone, "get", &json!({})).await?;
    let outbox: Value = rpc::call(env, contact::BINDING, &phone, "status", &json!({})).await?;
    let reviews_state = reviews::status(env, &phone).await?;
    // Reading Podium spends its request budget (300/min), so only when asked: the CLI
    // asks; dashboards polling this route don't.
    let live = req
        .url()?
        .query_pairs()
        .any(|(k, v)| k == "live" && matches!(v.as_ref(), "true" | "1"));
    let podium_view = if live {
        podium_contact(env, settings, &phone).await
    } else {
        json!({"read": false, "hint": "add ?live=true to read Podium's contact now"})
    };
    let mut drift = Vec::new();
    if let Some(podium_out) = podium_view.get("opted_out").and_then(Value::as_bool) {
        if let Some(reason) = optout_core::drift_between(record.opted_out, podium_out) {
            drift.push(json!({"source": "podium_contact_now", "reason": reason}));
        }
    }
    if let Some(reason) = record.drift() {
        drift.push(json!({"source": "last_podium_webhook", "reason": reason}));
    }
    let last = record.last_change();
    Ok(Response::from_json(&json!({
        "phone": phone,
        "opt_out": {
            "opted_out": record.opted_out,
            "changed_at_ms": last.map(|c| c.at_ms),
            "channel": last.map(|c| c.channel),
            "by_channel": record.by_channel(),
            "history": record.history,
            "podium_last_webhook": record.podium,
        },
        "podium": podium_view,
        "drift": drift,
        "reviews": reviews_state,
        "contact": outbox.get("contact"),
        "outbox": outbox.get("pending"),
    }))?)
}

/// Podium's contact for a phone, read now: `transactionalOptedOutAt` on its phone channel.
async fn podium_contact(env: &Env, settings: &Settings, phone: &str) -> Value {
    let config = &settings.config.podium;
    let url = podium::url(config, &format!("/v4/contacts/{}", podium::segment(phone)));
    match podium::call_authorized(env, config, Method::Get, &url, Body::None).await {
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

/// `GET /admin/dead-letters`.
pub async fn dead_letters(env: &Env) -> Result<Response, AppError> {
    let list: Value = rpc::call(
        env,
        ledger::BINDING,
        ledger::NAME,
        "dead_letter.list",
        &json!({}),
    )
    .await?;
    Ok(Response::from_json(&list)?)
}

/// `POST /admin/dead-letters/{id}/replay`: back into the phone's outbox; the letter is
/// removed only once the job is queued again.
pub async fn replay(env: &Env, settings: &Settings, id: &str) -> Result<Response, AppError> {
    let letter: Option<DeadLetter> = rpc::call(
        env,
        ledger::BINDING,
        ledger::NAME,
        "dead_letter.get",
        &json!({"id": id}),
    )
    .await?;
    let Some(letter) = letter else {
        return Err(AppError::NotFound("no such dead letter"));
    };
    // A webhook event goes back to its idempotency shard, a chat job to its phone's
    // outbox; the letter is removed only once it is queued again.
    let queued = if letter.job.get("kind").and_then(Value::as_str) == Some("webhook") {
        json!({"webhook_shard": webhooks::requeue(env, settings, &letter.job).await?})
    } else {
        let out: Value = rpc::call(
            env,
            contact::BINDING,
            &letter.phone,
            "requeue",
            &json!({"phone": letter.phone, "kind": letter.job}),
        )
        .await?;
        json!({"job_ids": out.get("job_ids")})
    };
    rpc::call::<_, Value>(
        env,
        ledger::BINDING,
        ledger::NAME,
        "dead_letter.delete",
        &json!({"id": id}),
    )
    .await?;
    let mut answer = json!({"replayed": id});
    if let (Some(map), Some(extra)) = (answer.as_object_mut(), queued.as_object()) {
        map.extend(extra.clone());
    }
    Ok(Response::from_json(&answer)?.with_status(202))
}

/// `GET /admin/routing/fallbacks?since=<ms>`.
pub async fn fallbacks(env: &Env, req: &Request) -> Result<Response, AppError> {
    let since = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "since")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .unwrap_or(0);
    let list: Value = rpc::call(
        env,
        ledger::BINDING,
        ledger::NAME,
        "fallback.list",
        &json!({"since": since}),
    )
    .await?;
    Ok(Response::from_json(&list)?)
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
    env: &Env,
    settings: &Settings,
) -> Result<Response, AppError> {
    let body: Reroute = serde_json::from_slice(&req.bytes().await?)
        .map_err(|e| AppError::bad_request("invalid_json", e.to_string(), None))?;
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
    let list: Value = rpc::call(
        env,
        ledger::BINDING,
        ledger::NAME,
        "fallback.list",
        &json!({"since": body.since.unwrap_or(0)}),
    )
    .await?;
    let fallbacks: Vec<Fallback> = rpc::args(list.get("fallbacks").cloned().unwrap_or(json!([])))?;
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
        rpc::call::<_, Value>(
            env,
            contact::BINDING,
            &f.phone,
            "enqueue",
            &contact::Enqueue {
                phone: f.phone.clone(),
                jobs: vec![job],
            },
        )
        .await?;
        rpc::call::<_, Value>(
            env,
            ledger::BINDING,
            ledger::NAME,
            "fallback.mark",
            &json!({"id": f.id, "at_ms": f.at_ms, "to": target}),
        )
        .await?;
        rerouted.push(json!({"id": f.id, "from": f.location_uid, "to": target}));
    }
    Ok(Response::from_json(
        &json!({"rerouted": rerouted, "skipped": skipped}),
    )?)
}

/// `GET /admin/metrics`: counters and the token holder's state.
pub async fn metrics(env: &Env, settings: &Settings) -> Result<Response, AppError> {
    let counters: Value =
        rpc::call(env, ledger::BINDING, ledger::NAME, "counters", &json!({})).await?;
    let token: Value = rpc::call(env, token::BINDING, token::NAME, "status", &json!({})).await?;
    let webhooks = webhooks::counters(env, settings).await?;
    Ok(Response::from_json(&json!({
        "counters": counters.get("counters"),
        "webhooks": webhook_summary(counters.get("counters"), &webhooks),
        "podium_token": token,
    }))?)
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
