//! The one place where errors become HTTP responses: `{error:{code,message,field}}`.

use gateway_core::Problem;
use serde_json::json;
use worker::{Response, Result};

/// Everything a handler can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No route (and no static asset) at this path.
    #[error("no such route")]
    NotFound,
    /// The request body is larger than the route accepts.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The route only takes JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The input was understood but is not acceptable (every problem listed).
    #[error("the message is invalid")]
    Invalid(Vec<Problem>),
    /// A bug or an unavailable dependency: details go to the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<worker::Error> for AppError {
    fn from(e: worker::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

fn body(code: &str, message: &str, field: Option<&str>) -> serde_json::Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

/// Map a handler's outcome to a response.
pub fn respond(outcome: std::result::Result<Response, AppError>) -> Result<Response> {
    let err = match outcome {
        Ok(response) => return Ok(response),
        Err(err) => err,
    };
    let (status, payload) = match &err {
        AppError::NotFound => (404, body("not_found", &err.to_string(), None)),
        AppError::PayloadTooLarge { .. } => {
            (413, body("payload_too_large", &err.to_string(), None))
        }
        AppError::UnsupportedMediaType => {
            (415, body("unsupported_media_type", &err.to_string(), None))
        }
        AppError::Invalid(problems) => {
            let first = problems.first();
            let mut payload = body(
                first.map_or("invalid", |p| p.code),
                first.map_or("invalid", |p| p.message.as_str()),
                first.and_then(|p| p.field.as_deref()),
            );
            if let Some(map) = payload.as_object_mut() {
                map.insert("problems".into(), json!(problems));
            }
            (422, payload)
        }
        AppError::Internal(detail) => {
            worker::console_error!("{}", json!({"level": "error", "error": detail}));
            (
                500,
                body("internal", "something went wrong on our side", None),
            )
        }
    };
    Ok(Response::from_json(&payload)?.with_status(status))
}
