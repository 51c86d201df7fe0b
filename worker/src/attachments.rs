//! Attachments at the edge (F4): `POST /v1/webchat/attachments` judges a file with the
//! widget's own policy from its headers *before* reading the body (`Content-Length` over
//! the limit is a 413 at once), counts the body as it streams in and cuts a chunked or
//! lying upload off at the limit, keeps accepted files in R2 until delivered, and
//! streams them to Podium's `POST /v4/messages/attachment` as multipart.

use futures_util::StreamExt;
use gateway_core::attachment::{self, AttachmentError};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{Env, HttpMetadata, Request, Response};

use crate::edge;
use crate::error::AppError;
use crate::rpc::{self, now_ms};
use crate::settings::Settings;

pub const BUCKET: &str = "ATTACHMENTS";

fn key(file_id: &str) -> String {
    format!("att/{file_id}")
}

fn refused(e: &AttachmentError) -> AppError {
    let message = e.to_string();
    match e {
        AttachmentError::TooLarge { .. } => AppError::PayloadTooLarge {
            code: e.code(),
            message,
        },
        AttachmentError::TypeNotAllowed { .. } => AppError::UnsupportedMediaType {
            code: e.code(),
            message,
        },
        _ => AppError::bad_request(e.code(), message, None),
    }
}

/// Percent-decoded `x-filename` (header values are ASCII; the snippet encodes UTF-8).
fn filename(req: &Request) -> Result<String, AppError> {
    let raw = req.headers().get("x-filename")?.ok_or_else(|| {
        AppError::bad_request(
            "missing_filename",
            "the x-filename header is required",
            Some("x-filename"),
        )
    })?;
    String::from_utf8(edge::percent_decode_bytes(&raw)).map_err(|_| {
        AppError::bad_request(
            "attachment_invalid_name",
            "x-filename is not UTF-8",
            Some("x-filename"),
        )
    })
}

/// `POST /v1/webchat/attachments` → `201 {file_id, content_type, size}`.
pub async fn upload(
    mut req: Request,
    env: &Env,
    settings: &Settings,
) -> Result<Response, AppError> {
    let policy = &settings.config.attachments;
    let name = filename(&req)?;
    let claimed_type = req.headers().get("content-type")?.unwrap_or_default();
    let declared: Option<u64> = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse().ok());
    // Judge name, type and declared size before a single body byte is read.
    let accepted = attachment::check(policy, &name, &claimed_type, declared.unwrap_or(1))
        .map_err(|e| refused(&e))?;

    let mut stream = req.stream()?;
    let mut body: Vec<u8> = Vec::with_capacity(
        usize::try_from(declared.unwrap_or(0).min(policy.max_bytes)).unwrap_or(0),
    );
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let total = body.len() as u64 + chunk.len() as u64;
        if total > policy.max_bytes {
            // Cut off: stop reading, whatever Content-Length said.
            return Err(refused(&AttachmentError::TooLarge {
                size: total,
                limit: policy.max_bytes,
            }));
        }
        body.extend_from_slice(&chunk);
    }
    let size = body.len() as u64;
    attachment::check(policy, &name, &claimed_type, size).map_err(|e| refused(&e))?;

    // A random UUID: unguessable (a file id is what lets a message attach the file),
    // and the shape the incoming-webchat envelope's `fileuuid` requires.
    let file_id = rpc::new_uuid();
    let bucket = env.bucket(BUCKET)?;
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("filename".to_owned(), name.clone());
    metadata.insert("uploaded_at_ms".to_owned(), now_ms().to_string());
    bucket
        .put(key(&file_id), body)
        .http_metadata(HttpMetadata {
            content_type: Some(accepted.content_type.clone()),
            ..HttpMetadata::default()
        })
        .custom_metadata(metadata)
        .execute()
        .await?;
    Ok(Response::from_json(&json!({
        "file_id": file_id,
        "content_type": accepted.content_type,
        "size": size,
    }))?
    .with_status(201))
}

/// What the gateway holds for a file id: `(filename, content_type, size)`.
pub async fn stored(env: &Env, file_id: &str) -> Result<Option<(String, String, u64)>, AppError> {
    let Some(object) = env.bucket(BUCKET)?.head(key(file_id)).await? else {
        return Ok(None);
    };
    let name = object
        .custom_metadata()
        .ok()
        .and_then(|m| m.get("filename").cloned())
        .unwrap_or_default();
    let content_type = object.http_metadata().content_type.unwrap_or_default();
    Ok(Some((name, content_type, object.size())))
}

/// The file is delivered: drop it (best effort; a lifecycle rule on the bucket catches
/// anything missed).
pub async fn forget(env: &Env, file_id: &str) {
    if let Ok(bucket) = env.bucket(BUCKET) {
        let _ = bucket.delete(key(file_id)).await;
    }
}

/// A streamed `multipart/form-data` body for Podium: the `data` part (message fields as
/// JSON), then the `attachment` part read straight from R2. `None` when the file is gone.
pub async fn multipart_body(
    env: &Env,
    file_id: &str,
    filename: &str,
    content_type: &str,
    data: &Value,
) -> Result<Option<(String, JsValue)>, AppError> {
    let Some(object) = env.bucket(BUCKET)?.get(key(file_id)).execute().await? else {
        return Ok(None);
    };
    let Some(file) = object.body() else {
        return Ok(None);
    };
    let boundary = rpc::new_id("gateway-boundary");
    let safe_name: String = filename
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\nContent-Type: application/json\r\n\r\n{data}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{safe_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let to_js = |bytes: Vec<u8>| -> Result<JsValue, JsValue> {
        Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
    };
    let file_chunks = file.stream()?.map(move |chunk| {
        chunk
            .map_err(|e| JsValue::from_str(&e.to_string()))
            .and_then(to_js)
    });
    let stream = futures_util::stream::once(async move { to_js(head.into_bytes()) })
        .chain(file_chunks)
        .chain(futures_util::stream::once(async move {
            to_js(tail.into_bytes())
        }));
    let readable = wasm_streams::ReadableStream::from_stream(stream).into_raw();
    Ok(Some((
        format!("multipart/form-data; boundary={boundary}"),
        readable.into(),
    )))
}
