//! What a verified webhook event does, performed behind the acknowledgement (F15) by the
//! idempotency shard's alarm: opt-outs (F6), review classification and alerts (F10),
//! Chatwoot messages through the webchat pipeline, and events kept for the
//! review-request flow. Every effect here is safe to repeat: an alarm is at-least-once.

use gateway_core::optout::Channel;
use gateway_core::phone;
use gateway_core::review::ReviewClass;
use gateway_core::webhook::{Action, ReviewEvent};
use serde_json::{json, Value};
use worker::{Headers, Method, Request, RequestInit};

use crate::error::AppError;
use crate::objects::phone as phone_object;
use crate::objects::session;
use crate::ops;
use crate::podium;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::Settings;
use crate::{reviews, webchat};

/// Timeout for posts to the merchant's alert and thank-you hooks.
const HOOK_TIMEOUT_MS: u32 = 5_000;

/// The phone an action is about, if any (for dead letters and logs).
pub fn phone_of(action: &Action) -> Option<String> {
    match action {
        Action::Keyword { phone, .. } | Action::PodiumOptState { phone, .. } => Some(phone.clone()),
        Action::MessageFailed { phone, .. } | Action::InviteUpdated { phone, .. } => phone.clone(),
        Action::Review(r) => r.phone.clone(),
        Action::Webchat { envelope } => envelope
            .pointer("/contact/phone")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Action::RememberPhone { phone, .. } => Some(phone.clone()),
        Action::Store { .. } | Action::Ignore { .. } => None,
    }
}

/// Whether retrying can help: a refused message stays refused.
pub fn is_permanent(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Invalid(_) | AppError::BadRequest(_) | AppError::NotFound(_)
    )
}

/// The opt-out part of an action, applied at once by the ingress route (so a STOP
/// webhook closes the gate before the acknowledgement) and again by processing.
pub async fn apply_opt_out(ctx: &Ctx, action: &Action) -> Result<Option<Value>, AppError> {
    match action {
        Action::Keyword {
            phone,
            opted_out,
            at_ms,
        } => {
            // A keyword texted from the phone itself: a verified channel (only an SMS
            // START lifts an SMS STOP; a webchat START never does).
            let change = json!({"phone": phone, "opted_out": opted_out, "at_ms": at_ms, "channel": Channel::Sms});
            let out: Value =
                rpc::call(ctx, phone_object::BINDING, phone, "optout.apply", &change).await?;
            Ok(Some(
                json!({"opt_out": {"opted_out": opted_out, "flipped": out.get("flipped"), "applied": out.get("applied")}}),
            ))
        }
        Action::PodiumOptState {
            phone,
            opted_out_at_ms,
            observed_ms,
        } => {
            let out: Value = rpc::call(
                ctx,
                phone_object::BINDING,
                phone,
                "optout.podium",
                &json!({"phone": phone, "opted_out_at_ms": opted_out_at_ms, "observed_ms": observed_ms}),
            )
            .await?;
            if let Some(drift) = out.get("drift").and_then(Value::as_str) {
                worker::console_error!(
                    "{}",
                    json!({"level": "warn", "event": "opt_out_drift", "phone": phone::mask(phone), "drift": drift})
                );
            }
            Ok(Some(
                json!({"podium_opt_state": out.get("outcome"), "drift": out.get("drift")}),
            ))
        }
        _ => Ok(None),
    }
}

/// A copy of a payload with phone numbers masked (alerts and hooks leave the gateway;
/// `webhooks.full_phone_in_hooks` keeps them for a merchant's own system that needs them).
pub fn masked_for_hooks(settings: &Settings, value: &Value) -> Value {
    if settings.config.webhooks.full_phone_in_hooks {
        return value.clone();
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let key = k.to_ascii_lowercase();
                    if key.contains("phone") {
                        if let Some(raw) = child.as_str() {
                            *child = json!(phone::mask(raw));
                            continue;
                        }
                    }
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut out = value.clone();
    walk(&mut out);
    out
}

/// POST JSON to a merchant hook; anything but a 2xx is an error (and so retried).
pub async fn post_hook(url: &str, payload: &Value) -> Result<u16, AppError> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(payload.to_string().into()));
    let request = Request::new_with_init(url, &init)?;
    let response = podium::send(request, HOOK_TIMEOUT_MS)
        .await
        .map_err(|a| AppError::Internal(format!("hook {a:?}")))?;
    let status = response.status_code();
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(AppError::Internal(format!("hook answered {status}")))
    }
}

fn stars(rating: Option<f64>) -> String {
    rating.map_or_else(|| "no rating".into(), |r| format!("{r}★"))
}

async fn review(settings: &Settings, review: &ReviewEvent) -> Result<Value, AppError> {
    let hooks = &settings.config.webhooks;
    let place = review
        .location_uid
        .as_deref()
        .unwrap_or("an unknown location");
    let site = review.site.as_deref().unwrap_or("a review site");
    match review.class {
        ReviewClass::Escalate => {
            let Some(url) = &hooks.alert_url else {
                worker::console_error!(
                    "{}",
                    json!({"level": "error", "event": "review_escalation_unsent",
                           "reason": "webhooks.alert_url is not configured", "review": review.uid})
                );
                return Ok(json!({"class": review.class, "alert": "not_configured"}));
            };
            // Slack-compatible incoming-webhook body: `text` plus the details.
            let payload = json!({
                "text": format!(":rotating_light: {} review on {site} for {place}{}. Reach out today.",
                    stars(review.rating),
                    review.author.as_deref().map(|a| format!(" from {a}")).unwrap_or_default()),
                "review": masked_for_hooks(settings, &json!(review)),
            });
            let status = post_hook(url, &payload).await?;
            Ok(json!({"class": review.class, "alert": status}))
        }
        ReviewClass::ThankYou => match &hooks.thank_you_url {
            Some(url) => {
                let status = post_hook(
                    url,
                    &json!({"review": masked_for_hooks(settings, &json!(review))}),
                )
                .await?;
                Ok(json!({"class": review.class, "thank_you": status}))
            }
            None => Ok(json!({"class": review.class, "thank_you": "not_configured"})),
        },
        ReviewClass::Log | ReviewClass::Unrated => {
            worker::console_log!(
                "{}",
                json!({"event": "review", "class": review.class, "rating": review.rating, "location_uid": review.location_uid})
            );
            Ok(json!({"class": review.class}))
        }
    }
}

/// Perform one event's action. `Err` is retried (or dead-lettered when permanent).
/// `key` is the delivery's idempotency key: whatever this queues is keyed on it, so a
/// re-run after a crash queues nothing twice.
pub async fn perform(
    ctx: &Ctx,
    settings: &Settings,
    scheme: &str,
    key: &str,
    action: &Action,
) -> Result<Value, AppError> {
    if let Some(done) = apply_opt_out(ctx, action).await? {
        return Ok(done);
    }
    let masked = |v: Value| masked_for_hooks(settings, &v);
    match action {
        Action::Keyword { .. } | Action::PodiumOptState { .. } => Ok(json!({})),
        Action::MessageFailed { at_ms, phone, .. } => {
            let shard_key = phone.clone().unwrap_or_else(|| key.to_owned());
            ops::add_event(
                ctx,
                settings,
                &shard_key,
                "podium.message_failed",
                *at_ms,
                masked(json!(action)),
            )
            .await?;
            Ok(json!({"recorded": "podium.message_failed"}))
        }
        Action::Review(r) => {
            // Kept first: the record survives even if the alert has to be retried.
            let shard_key = r.phone.clone().unwrap_or_else(|| key.to_owned());
            ops::add_event(
                ctx,
                settings,
                &shard_key,
                "podium.review",
                r.at_ms,
                masked(json!(r)),
            )
            .await?;
            let linked = reviews::link_review(ctx, settings, r).await?;
            let mut out = review(settings, r).await?;
            if let (Some(map), Some(linked)) = (out.as_object_mut(), linked) {
                map.insert("invite".into(), linked);
            }
            Ok(out)
        }
        Action::InviteUpdated {
            at_ms,
            invite_uid,
            status,
            phone,
        } => {
            let shard_key = phone.clone().unwrap_or_else(|| invite_uid.clone());
            ops::add_event(
                ctx,
                settings,
                &shard_key,
                "podium.invite_updated",
                *at_ms,
                masked(json!(action)),
            )
            .await?;
            let out =
                reviews::invite_status(ctx, settings, invite_uid, status, phone.as_deref()).await?;
            Ok(json!({"invite_status": out}))
        }
        Action::Webchat { envelope } => {
            let mut envelope = envelope.clone();
            if envelope.pointer("/contact/phone").is_none() {
                // Chatwoot without a phone: the conversation's session may know it.
                let session_id = envelope
                    .get("session_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let known: Value =
                    rpc::call(ctx, session::BINDING, &session_id, "phone", &json!({})).await?;
                match known.get("phone").and_then(Value::as_str) {
                    Some(phone) => {
                        rpc::set_json(&mut envelope, &["contact", "phone"], json!(phone))
                    }
                    None => {
                        return Ok(
                            json!({"ignored": "no phone for this conversation (neither the message nor conversation_created had one)"}),
                        )
                    }
                }
            }
            let accepted = webchat::pipeline_json(ctx, settings, &envelope, key).await?;
            Ok(json!({"webchat": accepted}))
        }
        Action::RememberPhone { session_id, phone } => {
            rpc::call::<_, Value>(
                ctx,
                session::BINDING,
                session_id,
                "remember_phone",
                &json!({"phone": phone}),
            )
            .await?;
            Ok(json!({"remembered_phone": phone::mask(phone)}))
        }
        Action::Store { kind, payload } => {
            ops::add_event(ctx, settings, key, kind, now_ms(), masked(payload.clone())).await?;
            let review = reviews::trigger(ctx, settings, kind, payload).await?;
            Ok(json!({"recorded": kind, "scheme": scheme, "review": review}))
        }
        Action::Ignore { reason } => Ok(json!({"ignored": reason})),
    }
}
