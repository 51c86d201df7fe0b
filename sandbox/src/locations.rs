//! `GET /v4/locations` (cursor pagination) and `GET /v4/locations/{uid}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::Shared;
use crate::util::hex;

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

/// Cursors are opaque to clients: hex of `offset:N`.
fn encode_cursor(offset: usize) -> String {
    hex(format!("offset:{offset}").as_bytes())
}

fn decode_cursor(c: &str) -> Option<usize> {
    if !c.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| c.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// `GET /v4/locations?limit=&cursor=`.
pub async fn list(
    State(sb): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match q.get("limit").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(format!("`limit` must be an integer in 1..={MAX_LIMIT}"))
            })?,
    };
    let offset = match q.get("cursor").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| ApiError::invalid_request("invalid `cursor`"))?,
    };
    let all = &sb.seeds.locations;
    let page: Vec<_> = all.iter().skip(offset).take(limit).cloned().collect();
    let end = offset.saturating_add(limit);
    let next = (end < all.len()).then(|| encode_cursor(end));
    Ok(Json(json!({ "data": page, "metadata": { "nextCursor": next } })).into_response())
}

/// `GET /v4/locations/{uid}`.
pub async fn get(State(sb): State<Shared>, Path(uid): Path<String>) -> Result<Response, ApiError> {
    let loc = sb
        .location(&uid)
        .ok_or_else(|| ApiError::not_found("location not found"))?;
    Ok(Json(json!({ "data": loc })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("abc"), None);
    }
}
