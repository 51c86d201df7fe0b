//! `POST /v4/messages` and `POST /v4/messages/attachment` (multipart, streamed, 25 MB cap).

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::contacts::valid_email;
use crate::error::{json_object, opt_bool, opt_str, req_str, ApiError};
use crate::state::Shared;
use crate::util::{hex, is_e164, iso, now_ms, uuid};

/// Largest attachment Podium takes, in bytes (inclusive).
pub const MAX_ATTACHMENT_BYTES: u64 = 25_000_000;
/// Largest `data` part of an attachment upload.
pub const MAX_DATA_PART_BYTES: usize = 1_000_000;
/// Bodies with a declared length above this are refused before reading.
const MAX_MULTIPART_BODY: u64 = MAX_ATTACHMENT_BYTES + 2 * MAX_DATA_PART_BYTES as u64;

/// The validated fields shared by both message routes.
#[derive(Debug)]
struct MessageIn {
    body: String,
    channel_type: String,
    identifier: String,
    location_uid: String,
    extra: Map<String, Value>,
}

fn parse_message(
    sb: &Shared,
    obj: &Map<String, Value>,
    body_required: bool,
) -> Result<MessageIn, ApiError> {
    let body = if body_required {
        req_str(obj, "body")?.to_owned()
    } else {
        opt_str(obj, "body")?.unwrap_or_default().to_owned()
    };
    let channel = match obj.get("channel") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => return Err(ApiError::invalid_request("`channel` is required")),
        Some(_) => return Err(ApiError::invalid_request("`channel` must be an object")),
    };
    let identifier = req_str(channel, "identifier")
        .map_err(|_| ApiError::invalid_request("`channel.identifier` is required"))?
        .to_owned();
    let channel_type = match opt_str(channel, "type") {
        Ok(Some(t @ ("phone" | "email"))) => t.to_owned(),
        _ => {
            return Err(ApiError::invalid_request(
                "`channel.type` must be \"phone\" or \"email\"",
            ))
        }
    };
    if channel_type == "phone" && !is_e164(&identifier) {
        return Err(ApiError::invalid_request(
            "`channel.identifier` must be an E.164 phone number for type \"phone\"",
        ));
    }
    if channel_type == "email" && !valid_email(&identifier) {
        return Err(ApiError::invalid_request(
            "`channel.identifier` must be an e-mail address for type \"email\"",
        ));
    }
    let location_uid = req_str(obj, "locationUid")?.to_owned();
    let mut extra = Map::new();
    for key in ["contactName", "senderName", "webchatUrl"] {
        if let Some(v) = opt_str(obj, key)? {
            extra.insert(key.into(), Value::String(v.to_owned()));
        }
    }
    if let Some(b) = opt_bool(obj, "setOpenInbox")? {
        extra.insert("setOpenInbox".into(), Value::Bool(b));
    }
    if !sb.location_known(&location_uid) {
        return Err(ApiError::invalid_location(&location_uid));
    }
    Ok(MessageIn {
        body,
        channel_type,
        identifier,
        location_uid,
        extra,
    })
}

/// Checks the opt-out, records the message (and the attachment metadata), returns `data`.
fn record(sb: &Shared, m: MessageIn, attachment: Option<Value>) -> Result<Value, ApiError> {
    let mut g = sb.lock();
    let contact = if m.channel_type == "phone" {
        g.contact_by_phone(&m.identifier)
    } else {
        g.contact_by_email(&m.identifier)
    }
    .and_then(|i| g.contacts.get(i));
    // A message carrying `webchatUrl` is the customer's own chat, recorded in the inbox;
    // anything else to a phone is an outbound text, which Podium refuses once the
    // contact opted out.
    let inbound_webchat = m.extra.contains_key("webchatUrl");
    if m.channel_type == "phone"
        && !inbound_webchat
        && contact.is_some_and(|c| c.opted_out_at.is_some())
    {
        return Err(ApiError::opted_out());
    }
    let contact_uid = contact.map(|c| c.uid.clone());
    let uid = uuid();
    let created_at = iso(now_ms());
    let mut data = json!({
        "uid": uid,
        "body": m.body,
        "channel": { "type": m.channel_type, "identifier": m.identifier },
        "locationUid": m.location_uid,
        "contactUid": contact_uid,
        "createdAt": created_at,
        "direction": if inbound_webchat { "inbound_webchat" } else { "outbound" },
    });
    if let Value::Object(map) = &mut data {
        map.extend(m.extra);
        if let Some(mut a) = attachment {
            if let Value::Object(am) = &mut a {
                am.insert("messageUid".into(), Value::String(uid.clone()));
                am.insert("locationUid".into(), Value::String(m.location_uid.clone()));
                am.insert("createdAt".into(), Value::String(created_at.clone()));
            }
            g.attachments.push(a.clone());
            map.insert("attachment".into(), a);
        }
    }
    g.messages.push(data.clone());
    Ok(data)
}

fn accepted(data: Value) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "data": data }))).into_response()
}

/// `POST /v4/messages`.
pub async fn send(State(sb): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let obj = json_object(&body)?;
    let m = parse_message(&sb, &obj, true)?;
    Ok(accepted(record(&sb, m, None)?))
}

fn multipart_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(format!("malformed multipart body: {e}"))
}

/// `POST /v4/messages/attachment`: parts `attachment` (file) and `data` (JSON).
/// The file is hashed as it streams in and never held in memory.
pub async fn send_attachment(State(sb): State<Shared>, req: Request) -> Result<Response, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MULTIPART_BODY) {
        return Err(ApiError::too_large(format!(
            "attachments are limited to {MAX_ATTACHMENT_BYTES} bytes"
        )));
    }
    let mut mp = Multipart::from_request(req, &sb).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected multipart/form-data: {}", e.body_text()),
        )
    })?;
    let mut data: Option<Vec<u8>> = None;
    let mut file: Option<Value> = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "attachment" => {
                if file.is_some() {
                    return Err(ApiError::invalid_request(
                        "only one `attachment` part is allowed",
                    ));
                }
                let filename = field
                    .file_name()
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid_request("the `attachment` part needs a filename")
                    })?
                    .to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let mut hasher = Sha256::new();
                let mut size: u64 = 0;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len() as u64;
                    if size > MAX_ATTACHMENT_BYTES {
                        return Err(ApiError::too_large(format!(
                            "attachments are limited to {MAX_ATTACHMENT_BYTES} bytes"
                        )));
                    }
                    hasher.update(&chunk);
                }
                file = Some(json!({
                    "filename": filename,
                    "contentType": content_type,
                    "size": size,
                    "sha256": hex(&hasher.finalize()),
                }));
            }
            "data" => {
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if buf.len() + chunk.len() > MAX_DATA_PART_BYTES {
                        return Err(ApiError::too_large(format!(
                            "the `data` part is limited to {MAX_DATA_PART_BYTES} bytes"
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                }
                data = Some(buf);
            }
            // Unknown parts are read and dropped.
            _ => while field.chunk().await.map_err(multipart_error)?.is_some() {},
        }
    }
    let data = data.ok_or_else(|| ApiError::invalid_request("the `data` part is required"))?;
    let file =
        file.ok_or_else(|| ApiError::invalid_request("the `attachment` part is required"))?;
    let obj = json_object(&data)
        .map_err(|e| ApiError::invalid_request(format!("`data` part: {}", e.message)))?;
    let m = parse_message(&sb, &obj, false)?;
    Ok(accepted(record(&sb, m, Some(file))?))
}
