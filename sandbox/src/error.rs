//! Podium-shaped errors: every error body is `{code, message, moreInfo}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// Where `moreInfo` points.
pub const MORE_INFO: &str = "https://docs.podium.com";

/// The error `code` used when none is given, by HTTP status.
pub fn default_code(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "rate_limit",
        500 => "internal_error",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        _ => "error",
    }
}

/// `{code, message, moreInfo}`.
pub fn error_body(code: Value, message: &str) -> Value {
    json!({ "code": code, "message": message, "moreInfo": MORE_INFO })
}

/// An error answer. `code` is a JSON value because Podium has been seen sending it both as
/// a string and as an integer (injected faults may choose either).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Value,
    pub message: String,
    /// `Retry-After` header value, only when set.
    pub retry_after: Option<String>,
    /// Also carry the RFC 6749 `error` / `error_description` fields (for `/oauth/token`).
    pub oauth: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Value::String(code.to_owned()),
            message: message.into(),
            retry_after: None,
            oauth: false,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn invalid_location(uid: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_location",
            format!("unknown location uid `{uid}`"),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Podium refusing to text a contact whose phone channel is transactionally opted out.
    pub fn opted_out() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "opted_out",
            "the contact has opted out of messages on this channel",
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = error_body(self.code.clone(), &self.message);
        if self.oauth {
            if let Value::Object(map) = &mut body {
                map.insert("error".into(), self.code);
                map.insert("error_description".into(), Value::String(self.message));
            }
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(ra) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&ra) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Parses a request body that must be a JSON object.
pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_request("body must be a JSON object")),
        Err(e) => Err(ApiError::invalid_request(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

/// An optional string field (`null` counts as absent).
pub fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid_request(format!(
            "`{key}` must be a string"
        ))),
    }
}

/// A required, non-blank string field.
pub fn req_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match opt_str(obj, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(ApiError::invalid_request(format!(
            "`{key}` must not be empty"
        ))),
        None => Err(ApiError::invalid_request(format!("`{key}` is required"))),
    }
}

/// An optional boolean field.
pub fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid_request(format!(
            "`{key}` must be a boolean"
        ))),
    }
}
