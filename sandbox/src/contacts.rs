//! `POST /v4/contacts` (upsert, with a modelled create race), `GET|PATCH /v4/contacts/{id}`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::error::{json_object, opt_str, req_str, ApiError};
use crate::state::{Contact, Shared};
use crate::util::{is_e164, now_ms, phone_from_param, uuid};

/// A validated `locations` array (every uid known).
pub fn locations(sb: &Shared, obj: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let list = match obj.get("locations") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_request("`locations` must not be empty"))
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                "`locations` must be an array of location uids",
            ))
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let uid = v.as_str().ok_or_else(|| {
            ApiError::invalid_request("`locations` must be an array of location uids")
        })?;
        out.push(uid.to_owned());
    }
    if let Some(bad) = out.iter().find(|u| !sb.location_known(u)) {
        return Err(ApiError::invalid_location(bad));
    }
    Ok(Some(out))
}

fn phone_field(obj: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    match opt_str(obj, "phoneNumber")? {
        Some(p) if !is_e164(p) => Err(ApiError::invalid_request(
            "`phoneNumber` must be E.164 (^\\+[1-9]\\d{1,14}$)",
        )),
        other => Ok(other),
    }
}

fn email_field(obj: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    match opt_str(obj, "email")? {
        Some(e) if !valid_email(e) => Err(ApiError::invalid_request(
            "`email` is not an e-mail address",
        )),
        other => Ok(other),
    }
}

/// Deliberately loose: `local@domain` with a dot in the domain and no spaces.
pub fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

fn accepted(uid: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "data": { "identifier": uid } })),
    )
        .into_response()
}

/// `POST /v4/contacts`.
pub async fn upsert(State(sb): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let obj = json_object(&body)?;
    let name = req_str(&obj, "name")?.to_owned();
    let phone = phone_field(&obj)?.map(str::to_owned);
    let email = email_field(&obj)?.map(str::to_owned);
    if obj.get("locations").is_none_or(Value::is_null) {
        return Err(ApiError::invalid_request("`locations` is required"));
    }
    if phone.is_none() && email.is_none() {
        return Err(ApiError::invalid_request(
            "one of `phoneNumber` or `email` is required",
        ));
    }
    let locs = locations(&sb, &obj)?.unwrap_or_default();

    let window = {
        let mut g = sb.lock();
        let found = phone
            .as_deref()
            .and_then(|p| g.contact_by_phone(p))
            .or_else(|| email.as_deref().and_then(|e| g.contact_by_email(e)));
        if let Some(c) = found.and_then(|i| g.contacts.get_mut(i)) {
            c.name.clone_from(&name);
            c.merge_locations(&locs);
            if c.phone.is_none() {
                c.phone.clone_from(&phone);
            }
            if let Some(e) = &email {
                if !c.has_email(e) {
                    c.emails.push(e.clone());
                }
            }
            c.updated_at_ms = now_ms();
            return Ok(accepted(&c.uid));
        }
        g.settings.upsert_race_window_ms
    };
    // The race real integrations hit: the lookup and the insert are not atomic.
    if window > 0 {
        tokio::time::sleep(Duration::from_millis(window)).await;
    }
    let contact = Contact::new(uuid(), &name, phone.as_deref(), email.as_deref(), &locs);
    let uid = contact.uid.clone();
    let mut g = sb.lock();
    g.contacts.push(contact);
    g.contact_creates += 1;
    Ok(accepted(&uid))
}

/// `GET /v4/contacts/{identifier}` (uid, E.164 phone or e-mail).
pub async fn get(State(sb): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = phone_from_param(&id);
    let g = sb.lock();
    let c = g
        .find_contact(&id)
        .and_then(|i| g.contacts.get(i))
        .ok_or_else(|| ApiError::not_found("contact not found"))?;
    Ok(Json(json!({ "data": c.to_json() })).into_response())
}

/// `PATCH /v4/contacts/{identifier}`: `name`, `email`, `locations` (replaced), `phoneNumber`.
pub async fn patch(
    State(sb): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = phone_from_param(&id);
    let obj = json_object(&body)?;
    let name = match obj.get("name") {
        None => None,
        Some(_) => Some(req_str(&obj, "name")?.to_owned()),
    };
    let phone = phone_field(&obj)?.map(str::to_owned);
    let email = email_field(&obj)?.map(str::to_owned);
    let locs = locations(&sb, &obj)?;
    let mut g = sb.lock();
    let idx = g
        .find_contact(&id)
        .ok_or_else(|| ApiError::not_found("contact not found"))?;
    let c = g
        .contacts
        .get_mut(idx)
        .ok_or_else(|| ApiError::not_found("contact not found"))?;
    if let Some(n) = name {
        c.name = n;
    }
    if let Some(p) = phone {
        c.phone = Some(p);
    }
    if let Some(e) = email {
        c.emails = vec![e];
    }
    if let Some(l) = locs {
        c.locations = l;
    }
    c.updated_at_ms = now_ms();
    Ok(Json(json!({ "data": c.to_json() })).into_response())
}
