//! From a verified trigger (Shopify `orders/fulfilled`, Stripe
//! `checkout.session.completed`) to a review-request candidate: which phone (E.164 in
//! the store's region), which store, which order, when it was fulfilled, and what the
//! customer prefers — or why there is none. A phone that can't be normalized is never
//! sent raw.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ReviewConfig;
use crate::phone;
use crate::routing::RoutingConfig;
use crate::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Shopify,
    Stripe,
}

/// A review request waiting to be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub source: Source,
    pub order_id: String,
    /// The Shopify shop (for the order re-check and the shop's timing).
    pub shop_domain: Option<String>,
    pub location_uid: String,
    pub phone: String,
    /// Which field the phone came from (`customer.phone`, …).
    pub phone_field: String,
    pub customer_name: Option<String>,
    /// The customer's review platform preference, if they stated one.
    pub preference: Option<String>,
    /// Accounts the customer has (`facebook_id`), for the platform choice.
    pub accounts: Vec<String>,
    pub fulfilled_at_ms: i64,
}

/// Why a trigger yields no request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoCandidate {
    #[error("review requests are disabled")]
    Disabled,
    #[error("the order has no id")]
    NoOrderId,
    #[error("shop {domain:?} is not configured in reviews.shops")]
    UnknownShop { domain: String },
    #[error(
        "no location: set metadata.location_uid, reviews.stripe_location_uid or a routing default"
    )]
    NoLocation,
    #[error("no phone on the order ({tried})")]
    NoPhone { tried: String },
    #[error("no usable phone: {detail}")]
    UnusablePhone { detail: String },
    #[error("the order is already {status}")]
    NotReviewable { status: String },
}

impl NoCandidate {
    pub fn code(&self) -> &'static str {
        match self {
            NoCandidate::Disabled => "disabled",
            NoCandidate::NoOrderId => "no_order_id",
            NoCandidate::UnknownShop { .. } => "unknown_shop",
            NoCandidate::NoLocation => "no_location",
            NoCandidate::NoPhone { .. } => "no_phone",
            NoCandidate::UnusablePhone { .. } => "unusable_phone",
            NoCandidate::NotReviewable { .. } => "not_reviewable",
        }
    }
}

/// Financial states in which a review request would embarrass the merchant (F8).
pub const UNREVIEWABLE_STATUSES: &[&str] = &["refunded", "partially_refunded", "voided"];

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn id_text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first field holding a phone that normalizes in `region`. Redacted (`***`),
/// empty and null fields are passed over; if some were present but none usable, the
/// reason says which fields and why — never the number.
fn first_phone(
    source: &Value,
    fields: &[(&str, &str)],
    region: &str,
) -> Result<(String, String), NoCandidate> {
    let mut problems = Vec::new();
    for (name, pointer) in fields {
        let Some(raw) = text(source, pointer) else {
            continue;
        };
        match phone::normalize(raw, Some(region)) {
            Ok(e164) => return Ok((e164.to_string(), (*name).to_owned())),
            Err(e) => problems.push(format!("{name}: {}", e.code())),
        }
    }
    if problems.is_empty() {
        let tried: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        Err(NoCandidate::NoPhone {
            tried: tried.join(", "),
        })
    } else {
        Err(NoCandidate::UnusablePhone {
            detail: problems.join("; "),
        })
    }
}

/// `note_attributes: [{name, value}]` as a lookup.
fn note_attribute<'a>(order: &'a Value, name: &str) -> Option<&'a str> {
    order
        .get("note_attributes")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|a| a.get("value").and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn accounts(config: &ReviewConfig, has: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = config
        .platforms
        .iter()
        .filter_map(|p| p.requires.clone())
        .filter(|account| has(account))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn region_of(routing: &RoutingConfig, location_uid: &str) -> String {
    routing
        .location(location_uid)
        .map_or_else(|| "US".to_owned(), |l| l.region.clone())
}

/// A Shopify `orders/fulfilled` payload (and its `X-Shopify-Shop-Domain`).
pub fn from_shopify(
    order: &Value,
    shop_domain: Option<&str>,
    config: &ReviewConfig,
    routing: &RoutingConfig,
    received_ms: i64,
) -> Result<Candidate, NoCandidate> {
    if !config.enabled {
        return Err(NoCandidate::Disabled);
    }
    let order_id = id_text(order, "/id").ok_or(NoCandidate::NoOrderId)?;
    let domain = shop_domain.unwrap_or("").trim().to_ascii_lowercase();
    let shop = config
        .shop(&domain)
        .ok_or_else(|| NoCandidate::UnknownShop {
            domain: domain.clone(),
        })?;
    if let Some(status) = text(order, "/financial_status") {
        if UNREVIEWABLE_STATUSES.contains(&status) {
            return Err(NoCandidate::NotReviewable {
                status: status.to_owned(),
            });
        }
    }
    if order.get("cancelled_at").is_some_and(|v| !v.is_null()) {
        return Err(NoCandidate::NotReviewable {
            status: "cancelled".into(),
        });
    }
    let region = region_of(routing, &shop.location_uid);
    let (phone, phone_field) = first_phone(
        order,
        &[
            ("phone", "/phone"),
            ("customer.phone", "/customer/phone"),
            ("shipping_address.phone", "/shipping_address/phone"),
            ("billing_address.phone", "/billing_address/phone"),
        ],
        &region,
    )?;
    // Fulfilment time: the newest fulfilment, else the order's update time.
    let fulfilled_at_ms = order
        .get("fulfillments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("created_at").and_then(time::from_json_ms))
        .max()
        .or_else(|| order.get("updated_at").and_then(time::from_json_ms))
        .unwrap_or(received_ms);
    let first = text(order, "/customer/first_name");
    let last = text(order, "/customer/last_name");
    let customer_name = match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
        (None, None) => None,
    };
    Ok(Candidate {
        source: Source::Shopify,
        order_id,
        shop_domain: Some(domain),
        location_uid: shop.location_uid.clone(),
        phone,
        phone_field,
        customer_name,
        preference: note_attribute(order, "review_platform").map(str::to_ascii_lowercase),
        accounts: accounts(config, |a| note_attribute(order, a).is_some()),
        fulfilled_at_ms,
    })
}

/// A Stripe `checkout.session.completed` event (the session is `data.object`).
pub fn from_stripe(
    event: &Value,
    config: &ReviewConfig,
    routing: &RoutingConfig,
    received_ms: i64,
) -> Result<Candidate, NoCandidate> {
    if !config.enabled {
        return Err(NoCandidate::Disabled);
    }
    // A Checkout Session or a PaymentIntent (`payment_intent.succeeded`, the
    // alternative trigger). Both are keyed on the payment intent, so the two events of
    // one payment make one request (the schedule refuses a second for the same order).
    let session = event.pointer("/data/object").unwrap_or(&Value::Null);
    let is_intent = text(session, "/object") == Some("payment_intent");
    let order_id = if is_intent {
        id_text(session, "/id")
    } else {
        id_text(session, "/payment_intent").or_else(|| id_text(session, "/id"))
    }
    .ok_or(NoCandidate::NoOrderId)?;
    let location_uid = text(session, "/metadata/location_uid")
        .filter(|uid| routing.location(uid).is_some())
        .map(str::to_owned)
        .or_else(|| config.stripe_location_uid.clone())
        .or_else(|| routing.default_location_uid.clone())
        .ok_or(NoCandidate::NoLocation)?;
    let region = region_of(routing, &location_uid);
    let (phone, phone_field) = first_phone(
        session,
        &[
            ("customer_details.phone", "/customer_details/phone"),
            ("shipping.phone", "/shipping/phone"),
            ("metadata.phone", "/metadata/phone"),
        ],
        &region,
    )?;
    Ok(Candidate {
        source: Source::Stripe,
        order_id,
        shop_domain: None,
        location_uid,
        phone,
        phone_field,
        customer_name: text(session, "/customer_details/name")
            .or_else(|| text(session, "/shipping/name"))
            .map(str::to_owned),
        preference: text(session, "/metadata/review_platform").map(str::to_ascii_lowercase),
        accounts: accounts(config, |a| {
            text(session, &format!("/metadata/{a}")).is_some()
        }),
        fulfilled_at_ms: session
            .get("created")
            .and_then(time::from_json_ms)
            .unwrap_or(received_ms),
    })
}

/// The platform for an invite (F11): the customer's preference, else the campaign
/// default, else Google — skipping any platform that needs an account the customer
/// lacks. Returns the platform and why.
pub fn choose_platform(
    config: &ReviewConfig,
    campaign_default: &str,
    preference: Option<&str>,
    accounts: &[String],
) -> (String, String) {
    let usable = |name: &str| {
        config.platforms.iter().find(|p| p.name == name).map(|p| {
            p.requires
                .as_ref()
                .is_none_or(|need| accounts.contains(need))
        })
    };
    let mut notes = Vec::new();
    for (name, why) in [
        (preference, "customer_preference"),
        (Some(campaign_default), "campaign_default"),
    ] {
        let Some(name) = name else { continue };
        match usable(name) {
            Some(true) => {
                let reason = if notes.is_empty() {
                    why.to_owned()
                } else {
                    format!("{why} ({})", notes.join("; "))
                };
                return (name.to_owned(), reason);
            }
            Some(false) => notes.push(format!("{name} needs an account the customer lacks")),
            None => notes.push(format!("{name} is not a configured platform")),
        }
    }
    (
        "google".to_owned(),
        format!("fallback_google ({})", notes.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::config::ShopConfig;
    use serde_json::json;

    fn setup() -> (ReviewConfig, RoutingConfig) {
        let routing: RoutingConfig = serde_json::from_value(json!({
            "locations": [
                {"uid": "loc_sydney", "name": "Sydney", "region": "AU"},
                {"uid": "loc_sf", "name": "SF", "region": "US"}
            ],
            "default_location_uid": "loc_sydney"
        }))
        .unwrap();
        let mut config = ReviewConfig::default();
        config.shops.push(ShopConfig {
            domain: "au.myshopify.com".into(),
            location_uid: "loc_sydney".into(),
            cooldown_ms: None,
            refund_buffer_ms: None,
            default_platform: None,
        });
        (config, routing)
    }

    #[test]
    fn shopify_phone_comes_from_the_first_usable_field_in_the_stores_region() {
        let (c, r) = setup();
        let order = json!({
            "id": 450789469, "phone": null,
            "customer": {"phone": "***", "first_name": "Ann", "last_name": "Lee"},
            "shipping_address": null,
            "billing_address": {"phone": "0412 345 678"},
            "fulfillments": [{"created_at": "2026-11-20T10:00:00Z"}],
            "note_attributes": [{"name": "review_platform", "value": "Facebook"}, {"name": "facebook_id", "value": "1234"}]
        });
        let cand = from_shopify(&order, Some("AU.myshopify.com"), &c, &r, 0).unwrap();
        assert_eq!(cand.phone, "+61412345678");
        assert_eq!(cand.phone_field, "billing_address.phone");
        assert_eq!(cand.order_id, "450789469");
        assert_eq!(cand.location_uid, "loc_sydney");
        assert_eq!(cand.customer_name.as_deref(), Some("Ann Lee"));
        assert_eq!(cand.preference.as_deref(), Some("facebook"));
        assert_eq!(cand.accounts, vec!["facebook_id".to_owned()]);
        assert_eq!(
            cand.fulfilled_at_ms,
            time::parse_rfc3339_ms("2026-11-20T10:00:00Z").unwrap()
        );
    }

    #[test]
    fn shopify_skips_with_reasons() {
        let (c, r) = setup();
        let shop = Some("au.myshopify.com");
        let none = json!({"id": 1, "customer": {"phone": null}, "shipping_address": null});
        assert_eq!(
            from_shopify(&none, shop, &c, &r, 0).unwrap_err().code(),
            "no_phone"
        );
        let redacted = json!({"id": 1, "phone": "***", "customer": {"phone": "[REDACTED]"}});
        let e = from_shopify(&redacted, shop, &c, &r, 0).unwrap_err();
        assert_eq!(e.code(), "unusable_phone");
        assert!(e.to_string().contains("customer.phone"));
        let good = json!({"id": 1, "phone": "+61412345678"});
        assert_eq!(
            from_shopify(&good, Some("other.myshopify.com"), &c, &r, 0)
                .unwrap_err()
                .code(),
            "unknown_shop"
        );
        let refunded = json!({"id": 1, "phone": "+61412345678", "financial_status": "refunded"});
        assert_eq!(
            from_shopify(&refunded, shop, &c, &r, 0).unwrap_err().code(),
            "not_reviewable"
        );
        let cancelled =
            json!({"id": 1, "phone": "+61412345678", "cancelled_at": "2026-11-20T10:00:00Z"});
        assert_eq!(
            from_shopify(&cancelled, shop, &c, &r, 0)
                .unwrap_err()
                .code(),
            "not_reviewable"
        );
        assert_eq!(
            from_shopify(&json!({}), shop, &c, &r, 0)
                .unwrap_err()
                .code(),
            "no_order_id"
        );
        let off = ReviewConfig {
            enabled: false,
            ..c
        };
        assert_eq!(
            from_shopify(&good, shop, &off, &r, 0).unwrap_err().code(),
            "disabled"
        );
    }

    #[test]
    fn stripe_checkout() {
        let (c, r) = setup();
        let event = json!({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {
            "id": "cs_123", "created": 1_795_000_000,
            "customer_details": {"phone": "(415) 555-0123", "name": "Bo"},
            "metadata": {"location_uid": "loc_sf"}}}});
        let cand = from_stripe(&event, &c, &r, 0).unwrap();
        assert_eq!(cand.phone, "+14155550123");
        assert_eq!(cand.location_uid, "loc_sf");
        assert_eq!(cand.fulfilled_at_ms, 1_795_000_000_000);
        let no_phone =
            json!({"data": {"object": {"id": "cs_1", "customer_details": {"phone": null}}}});
        assert_eq!(
            from_stripe(&no_phone, &c, &r, 0).unwrap_err().code(),
            "no_phone"
        );
    }

    #[test]
    fn platform_choice() {
        let c = ReviewConfig::default();
        let fb = vec!["facebook_id".to_owned()];
        assert_eq!(
            choose_platform(&c, "google", Some("facebook"), &fb).0,
            "facebook"
        );
        let (p, why) = choose_platform(&c, "google", Some("facebook"), &[]);
        assert_eq!(p, "google");
        assert!(why.starts_with("campaign_default"), "{why}");
        let (p, why) = choose_platform(&c, "facebook", None, &[]);
        assert_eq!(p, "google");
        assert!(why.starts_with("fallback_google"), "{why}");
        assert_eq!(
            choose_platform(&c, "facebook", None, &fb).1,
            "campaign_default"
        );
        assert_eq!(choose_platform(&c, "google", Some("yelp"), &[]).0, "google");
    }
}
