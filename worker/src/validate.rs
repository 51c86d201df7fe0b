//! `POST /v1/webchat/validate`: a dry run of the webchat envelope, judged by the same
//! core code the widget runs in the browser. Nothing is stored or forwarded. The region
//! is `?region=` when given, else the store the envelope routes to.

use gateway_core::envelope::{self, LocationContext, ValidationContext, MAX_ENVELOPE_BYTES};
use gateway_core::routing;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::edge;
use crate::error::AppError;
use crate::settings::Settings;

pub async fn handle(req: &mut Request, settings: &Settings) -> Result<Response, AppError> {
    let region = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v.into_owned());
    let bytes = edge::json_body(req, MAX_ENVELOPE_BYTES).await?;
    let region = match region {
        Some(region) => Some(region),
        None => {
            let location: LocationContext = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("location").cloned())
                .and_then(|l| serde_json::from_value(l).ok())
                .unwrap_or_default();
            routing::resolve(&settings.config.routing, &location)
                .ok()
                .map(|r| r.region)
        }
    };
    let ctx = ValidationContext {
        default_region: region,
        attachment_policy: settings.config.attachments.clone(),
    };
    let valid = envelope::validate(&bytes, &ctx).map_err(AppError::Invalid)?;
    Ok(Response::from_json(&json!({
        "ok": true,
        "e164": valid.phone,
        "extension": valid.phone_extension,
        "attachmentTypes": valid.attachment_types,
    }))?)
}
