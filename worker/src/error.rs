//! The one place where errors become HTTP responses: `{error:{code,message,field}}`.

use gateway_core::signature::SignatureError;
use gateway_core::Problem;
use serde_json::json;
use worker::{Response, Result};

/// Everything a handler can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No route (and no static asset) at this path, or no such record.
    #[error("{0}")]
    NotFound(&'static str),
    /// The request body is larger than the route accepts.
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: String },
    /// The route does not take this content type.
    #[error("{message}")]
    UnsupportedMediaType { code: &'static str, message: String },
    /// One problem with the input, at a field.
    #[error("{}", .0.message)]
    BadRequest(Problem),
    /// The input was understood but is not acceptable (every problem listed).
    #[error("the request is invalid")]
    Invalid(Vec<Problem>),
    /// The browser origin is not on the merchant's allow-list, or the CSRF header is
    /// missing.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// A webhook that is not provably from its provider (or a route with no secret
    /// configured, which refuses everything).
    #[error("{0}")]
    Signature(SignatureError),
    /// Missing or wrong admin credentials.
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// Too many requests from this client; retry after the given seconds.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        scope: &'static str,
        retry_after_secs: u64,
    },
    /// The deployment is misconfigured (a missing secret, a bad GATEWAY_CONFIG): every
    /// request fails loudly rather than running half-configured.
    #[error("the gateway is not configured: {0}")]
    Config(String),
    /// A bug or an unavailable dependency: details go to the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<worker::Error> for AppError {
    fn from(e: worker::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("json: {e}"))
    }
}

impl AppError {
    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        AppError::BadRequest(Problem {
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        })
    }

    /// The machine code the client sees (also used for counters and logs).
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::PayloadTooLarge { code, .. }
            | AppError::UnsupportedMediaType { code, .. }
            | AppError::Forbidden { code, .. } => code,
            AppError::BadRequest(p) => p.code,
            AppError::Invalid(problems) => problems.first().map_or("invalid", |p| p.code),
            AppError::Signature(e) => e.code(),
            AppError::Unauthorized => "unauthorized",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Config(_) => "not_configured",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound(_) => 404,
            AppError::PayloadTooLarge { .. } => 413,
            AppError::UnsupportedMediaType { .. } => 415,
            AppError::BadRequest(_) => 400,
            AppError::Invalid(_) => 422,
            AppError::Forbidden { .. } => 403,
            AppError::Unauthorized | AppError::Signature(_) => 401,
            AppError::RateLimited { .. } => 429,
            AppError::Config(_) => 503,
            AppError::Internal(_) => 500,
        }
    }
}

fn body(code: &str, message: &str, field: Option<&str>) -> serde_json::Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

/// Map an error to its response. Internal details are logged, never sent.
pub fn to_response(err: &AppError) -> Result<Response> {
    let status = err.status();
    let payload = match err {
        AppError::Invalid(problems) => {
            let first = problems.first();
            let mut payload = body(
                err.code(),
                first.map_or("the request is invalid", |p| p.message.as_str()),
                first.and_then(|p| p.field.as_deref()),
            );
            if let Some(map) = payload.as_object_mut() {
                map.insert("problems".into(), json!(problems));
            }
            payload
        }
        AppError::BadRequest(p) => body(p.code, &p.message, p.field.as_deref()),
        AppError::Signature(
            e @ (SignatureError::NotConfigured | SignatureError::BadSecret { .. }),
        ) => {
            // How the gateway is configured is the operator's business: the log says
            // which secret is missing or unusable; the sender only learns "refused".
            worker::console_error!(
                "{}",
                json!({"level": "error", "code": e.code(), "error": e.to_string()})
            );
            body(
                e.code(),
                "this delivery cannot be verified; the operator has been told",
                None,
            )
        }
        AppError::Signature(e) => body(e.code(), &e.to_string(), e.header()),
        AppError::Internal(detail) | AppError::Config(detail) => {
            worker::console_error!(
                "{}",
                json!({"level": "error", "code": err.code(), "error": detail})
            );
            let message = if matches!(err, AppError::Config(_)) {
                "the gateway is not configured; the operator has been told"
            } else {
                "something went wrong on our side"
            };
            body(err.code(), message, None)
        }
        other => body(other.code(), &other.to_string(), None),
    };
    let mut response = Response::from_json(&payload)?.with_status(status);
    if let AppError::RateLimited {
        retry_after_secs, ..
    } = err
    {
        response
            .headers_mut()
            .set("Retry-After", &retry_after_secs.to_string())?;
    }
    Ok(response)
}
