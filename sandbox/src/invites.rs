//! Review invites: `POST /v4/reviews/invites`, `GET /v4/reviews/invites/{uid}`, and the
//! control routes `GET /_sandbox/invites` and `POST /_sandbox/invites/{uid}/status` (which
//! emits `review.invite_link_updated` when the status changes and a webhook target is set).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::contacts::valid_email;
use crate::error::{json_object, opt_str, req_str, ApiError};
use crate::state::{DeliveryStatus, Invite, Shared};
use crate::util::{is_e164, now_ms, random_hex, uuid};
use crate::webhooks::{emit_if_configured, Emission};

/// Where short links point.
pub const SHORT_URL_BASE: &str = "https://pdm.sh/";

/// `POST /v4/reviews/invites` `{locationUid, phoneNumber | email, customerName?, …}`: any
/// other string field is stored and echoed as given. 201 `{data: invite}`.
pub async fn create(State(sb): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let obj = json_object(&body)?;
    let location_uid = req_str(&obj, "locationUid")?.to_owned();
    let phone = opt_str(&obj, "phoneNumber")?.map(str::to_owned);
    let email = opt_str(&obj, "email")?.map(str::to_owned);
    match (&phone, &email) {
        (Some(p), None) if !is_e164(p) => {
            return Err(ApiError::invalid_request(
                "`phoneNumber` must be E.164 (^\\+[1-9]\\d{1,14}$)",
            ))
        }
        (None, Some(e)) if !valid_email(e) => {
            return Err(ApiError::invalid_request(
                "`email` is not an e-mail address",
            ))
        }
        (Some(_), None) | (None, Some(_)) => {}
        _ => {
            return Err(ApiError::invalid_request(
                "exactly one of `phoneNumber` or `email` is required",
            ))
        }
    }
    let mut fields = Map::new();
    for (k, v) in &obj {
        if matches!(k.as_str(), "locationUid" | "phoneNumber" | "email") {
            continue;
        }
        match v {
            Value::Null => {}
            Value::String(_) => {
                fields.insert(k.clone(), v.clone());
            }
            _ => return Err(ApiError::invalid_request(format!("`{k}` must be a string"))),
        }
    }
    if !sb.location_known(&location_uid) {
        return Err(ApiError::invalid_location(&location_uid));
    }
    let mut g = sb.lock();
    if let Some(p) = &phone {
        let opted_out = g
            .contact_by_phone(p)
            .and_then(|i| g.contacts.get(i))
            .is_some_and(|c| c.opted_out_at.is_some());
        if opted_out {
            return Err(ApiError::opted_out());
        }
    }
    let now = now_ms();
    let invite = Invite {
        uid: uuid(),
        location_uid,
        phone,
        email,
        fields,
        delivery_status: g.settings.invite_initial_status,
        short_url: format!("{SHORT_URL_BASE}{}", random_hex(4)),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let data = invite.to_json();
    g.invites.push(invite);
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))).into_response())
}

/// `GET /v4/reviews/invites/{uid}`.
pub async fn get(State(sb): State<Shared>, Path(uid): Path<String>) -> Result<Response, ApiError> {
    let g = sb.lock();
    let inv = g
        .invite(&uid)
        .and_then(|i| g.invites.get(i))
        .ok_or_else(|| ApiError::not_found("invite not found"))?;
    Ok(Json(json!({ "data": inv.to_json() })).into_response())
}

/// `GET /v4/reviews/invites?phoneNumber=&locationUid=&email=`: the account's invites,
/// newest first, filtered by the given fields (what the gateway reads after an invite
/// call that failed or went unanswered, before it ever sends again).
pub async fn search(
    State(sb): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let phone = q.get("phoneNumber").map(|s| s.trim().to_owned());
    let location = q.get("locationUid").map(|s| s.trim().to_owned());
    let email = q.get("email").map(|s| s.trim().to_owned());
    let g = sb.lock();
    let data: Vec<Value> = g
        .invites
        .iter()
        .rev()
        .filter(|i| {
            phone
                .as_ref()
                .is_none_or(|p| i.phone.as_deref() == Some(p.as_str()))
        })
        .filter(|i| location.as_ref().is_none_or(|l| i.location_uid == *l))
        .filter(|i| {
            email
                .as_ref()
                .is_none_or(|e| i.email.as_deref() == Some(e.as_str()))
        })
        .map(Invite::to_json)
        .collect();
    Json(json!({ "data": data }))
}

/// `GET /_sandbox/invites`: every invite, oldest first.
pub async fn list(State(sb): State<Shared>) -> Json<Value> {
    let g = sb.lock();
    let data: Vec<Value> = g.invites.iter().map(Invite::to_json).collect();
    Json(json!({ "data": data }))
}

/// `POST /_sandbox/invites/{uid}/status` `{"deliveryStatus": "pending"|"sent"|"delivered"|"failed"}`
/// → `{data: invite, changed, webhook: record | null}`.
pub async fn set_status(
    State(sb): State<Shared>,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let obj = json_object(&body)?;
    let status = DeliveryStatus::parse(req_str(&obj, "deliveryStatus")?).ok_or_else(|| {
        ApiError::invalid_request(
            "`deliveryStatus` must be one of \"pending\", \"sent\", \"delivered\", \"failed\"",
        )
    })?;
    let (data, changed) = {
        let mut g = sb.lock();
        let inv = g
            .invite(&uid)
            .and_then(|i| g.invites.get_mut(i))
            .ok_or_else(|| ApiError::not_found("invite not found"))?;
        let changed = inv.delivery_status != status;
        if changed {
            inv.delivery_status = status;
            inv.updated_at_ms = now_ms().max(inv.updated_at_ms);
        }
        (inv.to_json(), changed)
    };
    let webhook = if changed {
        let event = json!({
            "uid": data.get("uid"),
            "locationUid": data.get("locationUid"),
            "phoneNumber": data.get("phoneNumber"),
            "deliveryStatus": data.get("deliveryStatus"),
            "updatedAt": data.get("updatedAt"),
        });
        emit_if_configured(
            &sb,
            Emission::new("review.invite_link_updated", event, "invite_status"),
        )
        .await
    } else {
        None
    };
    Ok(Json(
        json!({ "data": data, "changed": changed, "webhook": webhook }),
    ))
}
