//! `POST /oauth/token`: the refresh-token grant, JSON or form-encoded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::Shared;
use crate::util::random_hex;

/// Scopes reported with each token.
pub const SCOPES: &str = "read_contacts write_contacts read_messages write_messages read_locations read_reviews write_reviews";

/// How long a rotated-out refresh token keeps working.
pub const ROTATION_GRACE: Duration = Duration::from_secs(60);

fn oauth_error(status: StatusCode, code: &str, message: &str) -> ApiError {
    let mut e = ApiError::new(status, code, message);
    e.oauth = true;
    e
}

fn fields(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Ok(form_urlencoded::parse(body).into_owned().collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect()),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be a JSON object or application/x-www-form-urlencoded",
        )),
    }
}

/// The token endpoint.
pub async fn token(State(sb): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match issue(&sb, &headers, &body) {
        Ok(v) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            Json(v),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn issue(sb: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let f = fields(headers, body)?;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("client_id") != sb.seeds.client_id || get("client_secret") != sb.seeds.client_secret {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id or wrong client_secret",
        ));
    }
    if get("grant_type") != "refresh_token" {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=refresh_token is supported",
        ));
    }
    let presented = get("refresh_token");
    let now = Instant::now();
    let mut g = sb.lock();
    let valid = g
        .refresh_tokens
        .get(presented)
        .is_some_and(|until| until.is_none_or(|u| now < u));
    if !valid {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token is invalid, expired or revoked",
        ));
    }
    let access = format!("sbx_at_{}", random_hex(24));
    let ttl = g.settings.token_ttl_secs;
    g.tokens
        .insert(access.clone(), now + Duration::from_secs(ttl));
    g.token_refreshes += 1;
    // Which refresh token each refresh presented (a test double may keep it: tests check
    // that a new PODIUM_REFRESH_TOKEN supersedes a rotated one the gateway stored).
    g.refreshes_presented.push(presented.to_owned());
    let refresh = if g.settings.rotate_refresh_tokens {
        let new = format!("sbx_rt_{}", random_hex(24));
        if let Some(until) = g.refresh_tokens.get_mut(presented) {
            let grace = now + ROTATION_GRACE;
            *until = Some(until.map_or(grace, |u| u.min(grace)));
        }
        g.refresh_tokens.insert(new.clone(), None);
        new
    } else {
        presented.to_owned()
    };
    Ok(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": SCOPES,
    }))
}
