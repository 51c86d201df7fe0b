//! `POST /v1/webchat/validate`: a dry run of the webchat envelope, judged by the same
//! core code the widget runs in the browser. Nothing is stored or forwarded.

use gateway_core::envelope::{self, ValidationContext, MAX_ENVELOPE_BYTES};
use serde_json::json;
use worker::{Request, Response, RouteContext};

use crate::error::AppError;

/// `?region=AU` gives the store's country for national numbers.
pub async fn handle(mut req: Request, _ctx: RouteContext<()>) -> Result<Response, AppError> {
    let is_json = req
        .headers()
        .get("content-type")?
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(AppError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_ENVELOPE_BYTES) {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    let region = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v.into_owned());
    let bytes = req.bytes().await?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    let ctx = ValidationContext {
        default_region: region,
        ..ValidationContext::default()
    };
    let valid = envelope::validate(&bytes, &ctx).map_err(AppError::Invalid)?;
    Ok(Response::from_json(&json!({
        "ok": true,
        "e164": valid.phone,
        "extension": valid.phone_extension,
        "attachmentTypes": valid.attachment_types,
    }))?)
}
