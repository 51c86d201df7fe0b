//! Review requests at the edge (F7–F12, F19): a stored Shopify/Stripe trigger becomes a
//! candidate (core) and is scheduled in its phone's `ReviewSchedule`; invite status
//! webhooks reach the same object; operators list, inspect and cancel.

use gateway_core::review::candidate;
use gateway_core::webhook::ReviewEvent;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::error::AppError;
use crate::objects::ops::PageArgs;
use crate::objects::reviews as schedule;
use crate::ops;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::Settings;

/// The event kinds (Ledger) of request transitions operators list by.
pub const STATES: &[&str] = &[
    "scheduled",
    "skipped",
    "sent",
    "delivered",
    "failed",
    "cancelled",
    "unknown",
];

async fn log_skipped_trigger(
    ctx: &Ctx,
    settings: &Settings,
    kind: &str,
    payload: &Value,
    reason: &candidate::NoCandidate,
) -> Result<(), AppError> {
    let order_id = payload
        .pointer("/order/id")
        .or_else(|| payload.pointer("/data/object/id"))
        .cloned();
    let key = order_id
        .as_ref()
        .map_or_else(|| kind.to_owned(), Value::to_string);
    ops::add_event(
        ctx,
        settings,
        &key,
        "review.skipped",
        now_ms(),
        json!({"trigger": kind, "order_id": order_id,
               "request": {"state": "skipped", "reason": {"code": reason.code(), "message": reason.to_string()}}}),
    )
    .await?;
    ops::count(
        ctx,
        settings,
        &key,
        &format!("review:skipped:{}", reason.code()),
        1,
    )
    .await
}

/// A fulfilled order or completed checkout (already verified and deduplicated).
pub async fn trigger(
    ctx: &Ctx,
    settings: &Settings,
    kind: &str,
    payload: &Value,
) -> Result<Value, AppError> {
    let config = &settings.config;
    let now = now_ms();
    let candidate = match kind {
        "shopify.orders_fulfilled" => candidate::from_shopify(
            payload.get("order").unwrap_or(&Value::Null),
            payload.get("shop_domain").and_then(Value::as_str),
            &config.reviews,
            &config.routing,
            now,
        ),
        "stripe.checkout_completed" | "stripe.payment_succeeded" => {
            candidate::from_stripe(payload, &config.reviews, &config.routing, now)
        }
        _ => return Ok(json!({"review": "not a trigger"})),
    };
    let candidate = match candidate {
        Ok(c) => c,
        Err(reason) => {
            worker::console_log!(
                "{}",
                json!({"event": "review_trigger_skipped", "trigger": kind, "reason": reason.code()})
            );
            log_skipped_trigger(ctx, settings, kind, payload, &reason).await?;
            return Ok(json!({"review": "skipped", "reason": reason.code()}));
        }
    };
    let timing = config.reviews.timing(candidate.shop_domain.as_deref());
    let phone = candidate.phone.clone();
    let request: Value = rpc::call(
        ctx,
        schedule::BINDING,
        &phone,
        "schedule",
        &schedule::ScheduleIn {
            id: rpc::new_id("rr"),
            candidate,
            timing,
        },
    )
    .await?;
    Ok(
        json!({"review": request.get("state"), "request_id": request.get("id"), "reason": request.get("reason")}),
    )
}

async fn phone_of_invite(
    ctx: &Ctx,
    settings: &Settings,
    uid: &str,
) -> Result<Option<String>, AppError> {
    let found = ops::index_get(ctx, settings, &format!("invite:{uid}")).await?;
    Ok(found
        .get("phone")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// `review.invite_link_updated`: the invite's phone object records the status.
pub async fn invite_status(
    ctx: &Ctx,
    settings: &Settings,
    uid: &str,
    status: &str,
    phone: Option<&str>,
) -> Result<Value, AppError> {
    let phone = match phone {
        Some(p) => Some(p.to_owned()),
        None => phone_of_invite(ctx, settings, uid).await?,
    };
    let Some(phone) = phone else {
        return Ok(json!({"invite": uid, "known": false}));
    };
    rpc::call(
        ctx,
        schedule::BINDING,
        &phone,
        "invite_status",
        &json!({"uid": uid, "status": status}),
    )
    .await
}

/// `review.created` naming its invite: which request led to which review.
pub async fn link_review(
    ctx: &Ctx,
    settings: &Settings,
    review: &ReviewEvent,
) -> Result<Option<Value>, AppError> {
    let (Some(invite), Some(review_uid)) = (&review.invite_uid, &review.uid) else {
        return Ok(None);
    };
    let Some(phone) = phone_of_invite(ctx, settings, invite).await? else {
        return Ok(None);
    };
    let out: Value = rpc::call(
        ctx,
        schedule::BINDING,
        &phone,
        "link_review",
        &json!({"invite_uid": invite, "review_uid": review_uid}),
    )
    .await?;
    Ok(Some(out))
}

/// `GET /admin/reviews?state=…&since=…`: requests by state. `scheduled` is what is
/// waiting now; the others are the log of transitions (newest last).
pub async fn list(ctx: &Ctx, settings: &Settings, req: &Request) -> Result<Response, AppError> {
    let url = req.url()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let state = param("state").unwrap_or_else(|| "scheduled".into());
    if !STATES.contains(&state.as_str()) {
        return Err(AppError::bad_request(
            "invalid_state",
            format!("state must be one of {}", STATES.join(", ")),
            Some("state"),
        ));
    }
    if state == "scheduled" {
        let requests = ops::index_list(ctx, settings, "scheduled:").await?;
        return Ok(Response::from_json(
            &json!({"state": state, "requests": requests}),
        )?);
    }
    let since = param("since")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    let limit = param("limit").and_then(|s| s.parse::<i64>().ok());
    let after = param("cursor").and_then(|c| ops::decode_cursor(&c));
    let (events, next) = ops::page(
        ctx,
        settings,
        "event.page",
        "events",
        &PageArgs {
            since,
            after,
            limit,
            kind: Some(format!("review.{state}")),
        },
    )
    .await?;
    Ok(Response::from_json(
        &json!({"state": state, "events": events, "next_cursor": next.as_ref().map(ops::encode_cursor)}),
    )?)
}

/// `POST /admin/reviews/{phone}/{id}/cancel`.
pub async fn cancel(ctx: &Ctx, phone: &str, id: &str) -> Result<Response, AppError> {
    let out: Value = rpc::call(ctx, schedule::BINDING, phone, "cancel", &json!({"id": id})).await?;
    if let Some(refused) = out.get("refused").and_then(Value::as_str) {
        return Err(AppError::bad_request(
            "not_cancellable",
            refused,
            Some("id"),
        ));
    }
    Ok(Response::from_json(&out)?)
}

/// A phone's review state for the admin view.
pub async fn status(ctx: &Ctx, phone: &str) -> Result<Value, AppError> {
    rpc::call(ctx, schedule::BINDING, phone, "status", &json!({})).await
}
