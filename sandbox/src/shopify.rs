//! A sliver of the Shopify Admin REST API: `GET /admin/api/{version}/orders/{id}.json`
//! (any non-empty `X-Shopify-Access-Token`; Shopify's own `{"errors": …}` bodies), and the
//! control routes `PUT /_sandbox/shopify/orders/{id}` (create or merge) and
//! `GET /_sandbox/shopify/orders`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::error::{json_object, ApiError};
use crate::state::Shared;
use crate::util::{iso, now_ms};

/// Shopify's answer to a missing access token.
pub const INVALID_TOKEN: &str = "[API] Invalid API key or access token";

fn shopify_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": message }))).into_response()
}

/// `GET /admin/api/{version}/orders/{id}.json` → `{"order": {…}}`.
pub async fn get_order(
    State(sb): State<Shared>,
    Path((_version, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let token_ok = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| !t.trim().is_empty());
    if !token_ok {
        return shopify_error(StatusCode::UNAUTHORIZED, INVALID_TOKEN);
    }
    let Some(id) = file.strip_suffix(".json") else {
        return shopify_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let g = sb.lock();
    match g.order(id).and_then(|i| g.orders.get(i)) {
        Some(o) => Json(json!({ "order": o })).into_response(),
        None => shopify_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// A new order's fields before the caller's are merged in.
fn default_order(id: &str, now: &str) -> Map<String, Value> {
    // Shopify ids are integers; keep one written as such a number.
    let id_value = id
        .parse::<u64>()
        .map_or_else(|_| Value::String(id.to_owned()), Value::from);
    let order = json!({
        "id": id_value,
        "name": format!("#{id}"),
        "phone": null,
        "email": null,
        "financial_status": "paid",
        "cancelled_at": null,
        "fulfillment_status": null,
        "customer": { "phone": null },
        "shipping_address": null,
        "billing_address": null,
        "created_at": now,
        "updated_at": now,
    });
    match order {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Objects merge key by key (recursively); anything else, `null` included, replaces.
fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Type checks for the fields the gateway reads (others are stored as given).
fn check_order_fields(obj: &Map<String, Value>) -> Result<(), ApiError> {
    let kind = |k: &str, ok: fn(&Value) -> bool, what: &str| match obj.get(k) {
        Some(v) if !ok(v) => Err(ApiError::invalid_request(format!("`{k}` must be {what}"))),
        _ => Ok(()),
    };
    for k in ["name", "financial_status"] {
        kind(k, Value::is_string, "a string")?;
    }
    for k in [
        "phone",
        "email",
        "cancelled_at",
        "fulfillment_status",
        "created_at",
        "updated_at",
    ] {
        kind(k, |v| v.is_string() || v.is_null(), "a string or null")?;
    }
    for k in ["customer", "shipping_address", "billing_address"] {
        kind(k, |v| v.is_object() || v.is_null(), "an object or null")?;
        if let Some(Value::Object(o)) = obj.get(k) {
            if o.get("phone")
                .is_some_and(|p| !(p.is_string() || p.is_null()))
            {
                return Err(ApiError::invalid_request(format!(
                    "`{k}.phone` must be a string or null"
                )));
            }
        }
    }
    Ok(())
}

/// `PUT /_sandbox/shopify/orders/{id}` with a (partial) order: merged into the stored one,
/// or a new order (defaults: `financial_status` "paid", `cancelled_at` null, …). The path
/// id wins over any `id` in the body; `updated_at` becomes now unless given.
/// 201 (created) or 200 `{"order": {…}, "created": bool}`.
pub async fn put_order(
    State(sb): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = id.trim().to_owned();
    if id.is_empty() {
        return Err(ApiError::invalid_request("the order id must not be empty"));
    }
    let mut patch = json_object(&body)?;
    check_order_fields(&patch)?;
    patch.remove("id");
    let now = iso(now_ms());
    if !patch.contains_key("updated_at") {
        patch.insert("updated_at".into(), Value::String(now.clone()));
    }
    let mut g = sb.lock();
    let (order, created) = match g.order(&id).and_then(|i| g.orders.get_mut(i)) {
        Some(o) => {
            merge(o, patch);
            (o.clone(), false)
        }
        None => {
            let mut o = default_order(&id, &now);
            merge(&mut o, patch);
            g.orders.push(o.clone());
            (o, true)
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "order": order, "created": created }))).into_response())
}

/// `GET /_sandbox/shopify/orders` → `{"data": [order, …]}` in creation order.
pub async fn list_orders(State(sb): State<Shared>) -> Json<Value> {
    Json(json!({ "data": sb.lock().orders }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_for_objects_and_null_replaces() {
        let mut o = default_order("42", "t");
        assert_eq!(o["id"], 42);
        assert_eq!(default_order("x-1", "t")["id"], "x-1");
        let patch = json!({"customer": {"phone": "+1"}, "cancelled_at": "c", "extra": [1]});
        merge(&mut o, patch.as_object().unwrap().clone());
        assert_eq!(o["customer"], json!({"phone": "+1"}));
        assert_eq!(o["extra"], json!([1]));
        let patch = json!({"cancelled_at": null, "shipping_address": {"phone": "+2"}});
        merge(&mut o, patch.as_object().unwrap().clone());
        assert_eq!(o["cancelled_at"], Value::Null);
        assert_eq!(o["shipping_address"]["phone"], "+2");
    }
}
