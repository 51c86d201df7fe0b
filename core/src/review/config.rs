//! Review-request settings (`reviews` in `GATEWAY_CONFIG`): timing per merchant (shop),
//! the review platforms and what each needs from the customer, and where the Shopify
//! Admin API is.

use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 24 * 3_600_000;

/// A review platform a campaign can send customers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// `google`, `facebook`, …
    pub name: String,
    /// The customer account the platform needs (`facebook_id`): without it the link
    /// lands on a login wall, so the request goes to Google instead (F11).
    #[serde(default)]
    pub requires: Option<String>,
    /// Podium's review-site uid for this platform, sent with the invite when set.
    #[serde(default)]
    pub review_site_uid: Option<String>,
}

/// One Shopify shop (a merchant's store front) and its overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// `harbour-and-bay.myshopify.com` (as `X-Shopify-Shop-Domain` sends it).
    pub domain: String,
    /// The Podium location its review requests go out from.
    pub location_uid: String,
    #[serde(default)]
    pub cooldown_ms: Option<i64>,
    #[serde(default)]
    pub refund_buffer_ms: Option<i64>,
    #[serde(default)]
    pub default_platform: Option<String>,
}

/// Where the Shopify Admin API is (the order re-check at fire time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShopifyApi {
    /// `https://{shop}` by default; a fixed base (the local sandbox) when set.
    pub api_base: Option<String>,
    pub api_version: String,
    pub timeout_ms: u32,
}

impl Default for ShopifyApi {
    fn default() -> Self {
        ShopifyApi {
            api_base: None,
            api_version: "2025-01".into(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Off: triggers are recorded and skipped with reason `disabled`.
    pub enabled: bool,
    /// At most one request per phone per window (F7).
    pub cooldown_ms: i64,
    /// Wait this long after fulfilment before sending, then re-check the order (F8).
    pub refund_buffer_ms: i64,
    /// An invite neither delivered nor failed after this long is escalated (F9).
    pub unresolved_after_ms: i64,
    /// The campaign's platform when the customer has no preference.
    pub default_platform: String,
    pub platforms: Vec<PlatformConfig>,
    pub shops: Vec<ShopConfig>,
    /// Location for Stripe checkouts without `metadata.location_uid` (else the routing
    /// default).
    pub stripe_location_uid: Option<String>,
    pub shopify: ShopifyApi,
    /// When the order can't be re-checked (Shopify down), try again after this long.
    pub recheck_retry_ms: i64,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            enabled: true,
            cooldown_ms: 30 * DAY_MS,
            refund_buffer_ms: 5 * DAY_MS,
            unresolved_after_ms: DAY_MS,
            default_platform: "google".into(),
            platforms: vec![
                PlatformConfig {
                    name: "google".into(),
                    requires: None,
                    review_site_uid: None,
                },
                PlatformConfig {
                    name: "facebook".into(),
                    requires: Some("facebook_id".into()),
                    review_site_uid: None,
                },
            ],
            shops: Vec::new(),
            stripe_location_uid: None,
            shopify: ShopifyApi::default(),
            recheck_retry_ms: 10 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewConfigError {
    #[error("reviews.{0} must not be negative")]
    Negative(&'static str),
    #[error("reviews.platforms must include google (the fallback) and the default platform {0:?}")]
    Platforms(String),
    #[error("reviews.shops: {0}")]
    Shop(String),
    #[error("reviews.shopify.api_base must be an http(s) URL")]
    ApiBase,
}

/// The timing that applies to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    pub cooldown_ms: i64,
    pub refund_buffer_ms: i64,
    pub unresolved_after_ms: i64,
}

impl ReviewConfig {
    /// Checked against the routing's locations (`known_location`).
    pub fn validated(
        mut self,
        known_location: impl Fn(&str) -> bool,
    ) -> Result<Self, ReviewConfigError> {
        for (name, v) in [
            ("cooldown_ms", self.cooldown_ms),
            ("refund_buffer_ms", self.refund_buffer_ms),
            ("unresolved_after_ms", self.unresolved_after_ms),
            ("recheck_retry_ms", self.recheck_retry_ms),
        ] {
            if v < 0 {
                return Err(ReviewConfigError::Negative(name));
            }
        }
        for p in &mut self.platforms {
            p.name = p.name.trim().to_ascii_lowercase();
        }
        self.default_platform = self.default_platform.trim().to_ascii_lowercase();
        let has = |name: &str| self.platforms.iter().any(|p| p.name == name);
        if !has("google") || !has(&self.default_platform) {
            return Err(ReviewConfigError::Platforms(self.default_platform.clone()));
        }
        for shop in &mut self.shops {
            shop.domain = shop.domain.trim().to_ascii_lowercase();
            if shop.domain.is_empty() || !known_location(&shop.location_uid) {
                return Err(ReviewConfigError::Shop(format!(
                    "{:?} needs a domain and a location_uid from routing.locations",
                    shop.domain
                )));
            }
            if shop.cooldown_ms.is_some_and(|v| v < 0)
                || shop.refund_buffer_ms.is_some_and(|v| v < 0)
            {
                return Err(ReviewConfigError::Negative("shops[].*_ms"));
            }
            if let Some(p) = &mut shop.default_platform {
                *p = p.trim().to_ascii_lowercase();
            }
        }
        if let Some(uid) = &self.stripe_location_uid {
            if !known_location(uid) {
                return Err(ReviewConfigError::Shop(format!(
                    "stripe_location_uid {uid:?} is not in routing.locations"
                )));
            }
        }
        if let Some(base) = &mut self.shopify.api_base {
            *base = base.trim().trim_end_matches('/').to_owned();
            if !(base.starts_with("https://") || base.starts_with("http://")) {
                return Err(ReviewConfigError::ApiBase);
            }
        }
        Ok(self)
    }

    pub fn shop(&self, domain: &str) -> Option<&ShopConfig> {
        let domain = domain.trim().to_ascii_lowercase();
        self.shops.iter().find(|s| s.domain == domain)
    }

    /// The timing for a shop (its overrides), or the defaults.
    pub fn timing(&self, shop_domain: Option<&str>) -> Timing {
        let shop = shop_domain.and_then(|d| self.shop(d));
        Timing {
            cooldown_ms: shop.and_then(|s| s.cooldown_ms).unwrap_or(self.cooldown_ms),
            refund_buffer_ms: shop
                .and_then(|s| s.refund_buffer_ms)
                .unwrap_or(self.refund_buffer_ms),
            unresolved_after_ms: self.unresolved_after_ms,
        }
    }

    /// The campaign default for a shop.
    pub fn default_platform(&self, shop_domain: Option<&str>) -> &str {
        shop_domain
            .and_then(|d| self.shop(d))
            .and_then(|s| s.default_platform.as_deref())
            .unwrap_or(&self.default_platform)
    }

    /// The Admin API URL of an order.
    pub fn order_url(&self, shop_domain: &str, order_id: &str) -> String {
        let base = self
            .shopify
            .api_base
            .clone()
            .unwrap_or_else(|| format!("https://{shop_domain}"));
        let id: String = order_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!(
            "{base}/admin/api/{}/orders/{id}.json",
            self.shopify.api_version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut c = ReviewConfig::default();
        c.shops.push(ShopConfig {
            domain: " Shop.MyShopify.com ".into(),
            location_uid: "loc_a".into(),
            cooldown_ms: Some(5_000),
            refund_buffer_ms: None,
            default_platform: Some("Facebook".into()),
        });
        let c = c.validated(|uid| uid == "loc_a").unwrap();
        let t = c.timing(Some("shop.myshopify.com"));
        assert_eq!(t.cooldown_ms, 5_000);
        assert_eq!(t.refund_buffer_ms, 5 * DAY_MS);
        assert_eq!(c.timing(None).cooldown_ms, 30 * DAY_MS);
        assert_eq!(c.default_platform(Some("shop.myshopify.com")), "facebook");
        assert_eq!(
            c.order_url("shop.myshopify.com", "450789469"),
            "https://shop.myshopify.com/admin/api/2025-01/orders/450789469.json"
        );
        assert_eq!(
            c.order_url("s", "../../x"),
            "https://s/admin/api/2025-01/orders/x.json",
            "an order id can't walk the path"
        );
    }

    #[test]
    fn mistakes_are_refused() {
        let bad_shop = ReviewConfig {
            shops: vec![ShopConfig {
                domain: "s".into(),
                location_uid: "nope".into(),
                cooldown_ms: None,
                refund_buffer_ms: None,
                default_platform: None,
            }],
            ..ReviewConfig::default()
        };
        assert!(bad_shop.validated(|_| false).is_err());
        let no_google = ReviewConfig {
            platforms: vec![],
            ..ReviewConfig::default()
        };
        assert!(no_google.validated(|_| true).is_err());
        let negative = ReviewConfig {
            cooldown_ms: -1,
            ..ReviewConfig::default()
        };
        assert!(negative.validated(|_| true).is_err());
    }
}
