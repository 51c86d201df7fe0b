//! The merchant's gateway configuration: one JSON document (the `GATEWAY_CONFIG` var),
//! parsed strictly and checked once. Secrets are not here: they come from
//! `wrangler secret put` / `.dev.vars`.

use serde::{Deserialize, Serialize};

use crate::attachment::{AttachmentPolicy, PolicyError};
use crate::delivery::RetryPolicy;
use crate::ratelimit::Limit;
use crate::review::config::{ReviewConfig, ReviewConfigError};
use crate::routing::{RoutingConfig, RoutingConfigError};
use crate::session::SessionPolicy;
use crate::texts::AutoTextPolicy;
use crate::webhook::{WebhookConfig, WebhookConfigError};

/// Where and how the gateway talks to Podium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodiumConfig {
    /// API origin, without `/v4` (`https://api.podium.com`).
    pub api_base: String,
    /// OAuth token endpoint. Podium documents `https://api.podium.com/oauth/token`; its
    /// own sample apps use `https://accounts.podium.com/oauth/token`.
    pub token_url: String,
    /// Sent as `podium-version` on every call, so a new API version never surprises us.
    pub api_version: String,
    /// Podium's documented limit; the gateway paces itself below it.
    pub requests_per_minute: u32,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u32,
}

impl Default for PodiumConfig {
    fn default() -> Self {
        PodiumConfig {
            api_base: "https://api.podium.com".into(),
            token_url: "https://api.podium.com/oauth/token".into(),
            api_version: "2021.04.01".into(),
            requests_per_minute: 300,
            timeout_ms: 10_000,
        }
    }
}

/// Limits that must be exact, kept inside the object that owns the state. Per-client
/// limits (requests, new sessions and new phones per IP) are Cloudflare's Rate Limiting
/// bindings, set in `wrangler.toml` (`[[ratelimits]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Messages per session (in the session's own object).
    pub per_session: Limit,
    /// No longer used: per-IP limits moved to the `RL_CLIENT` Rate Limiting binding in
    /// `wrangler.toml`. Still accepted so an older configuration keeps working; the
    /// health route lists it as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_ip: Option<Limit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_session: Limit {
                burst: 10,
                per_minute: 20,
            },
            per_ip: None,
        }
    }
}

/// Cloudflare Turnstile (a bot check for the widget). On when the
/// `TURNSTILE_SECRET_KEY` secret is set: then a browser message without a valid token
/// is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnstileConfig {
    /// Cloudflare's documented endpoint (the local sandbox answers it in tests).
    pub siteverify_url: String,
    pub timeout_ms: u32,
    /// Hostnames a token may have been issued on (empty: any). Cloudflare reports the
    /// hostname the widget ran on; a token from another site is refused.
    pub hostnames: Vec<String>,
}

impl Default for TurnstileConfig {
    fn default() -> Self {
        TurnstileConfig {
            siteverify_url: "https://challenges.cloudflare.com/turnstile/v0/siteverify".into(),
            timeout_ms: 5_000,
            hostnames: Vec::new(),
        }
    }
}

/// How long personal data is kept (each enforced by an alarm; see the README's
/// retention table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// A session object (its messages kept for context, held prompts, its phone) is
    /// deleted this long after the conversation expired.
    pub session_after_expiry_ms: i64,
    /// Dead letters (with the message they could not deliver).
    pub dead_letters_ms: i64,
    /// Chats routed by fallback (kept so they can be re-routed).
    pub fallbacks_ms: i64,
    /// Operator event log (review transitions, failed messages, provider events).
    pub events_ms: i64,
    /// Message idempotency keys (a resend within this time gets the first answer).
    pub message_keys_ms: i64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        const DAY: i64 = 24 * 60 * 60 * 1000;
        RetentionPolicy {
            session_after_expiry_ms: 7 * DAY,
            dead_letters_ms: 30 * DAY,
            fallbacks_ms: 30 * DAY,
            events_ms: 30 * DAY,
            message_keys_ms: DAY,
        }
    }
}

/// Everything a merchant configures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The stores and the default (see [`crate::routing`]).
    pub routing: RoutingConfig,
    /// Origins allowed to call the webchat routes from a browser (`https://shop.example`).
    /// `*` is refused: a wildcard would let any site post into the merchant's inbox.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// When set, browser requests must carry `X-Requested-With: podium-gateway` (a CSRF
    /// guard for sites that cannot rely on CORS alone).
    #[serde(default)]
    pub require_csrf_header: bool,
    #[serde(default)]
    pub attachments: AttachmentPolicy,
    #[serde(default)]
    pub session: SessionPolicy,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub podium: PodiumConfig,
    /// A text sent to the customer's phone after their first chat message (checked
    /// against the opt-out record at the moment of sending). `None`: no text is sent.
    #[serde(default)]
    pub confirmation_text: Option<String>,
    /// Signed webhook ingress (see [`crate::webhook`]).
    #[serde(default)]
    pub webhooks: WebhookConfig,
    /// Review requests (see [`crate::review`]).
    #[serde(default)]
    pub reviews: ReviewConfig,
    /// Bounds on texts anonymous input can trigger (see [`crate::texts`]).
    #[serde(default)]
    pub auto_texts: AutoTextPolicy,
    #[serde(default)]
    pub turnstile: TurnstileConfig,
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// Shards of the operations store (dead letters, fallbacks, indexes, events,
    /// counters): no single object sees every write.
    #[serde(default = "default_ops_shards")]
    pub ops_shards: u32,
    /// Whether each phone object reads its phone's record from the former layout's
    /// `OptOut` object (once, before the phone's first send, keyword or opt-out change):
    /// the upgrade path of a gateway that ran a version before the phone object. One
    /// object call per phone, so a gateway installed fresh (no `OptOut` object was ever
    /// written) may turn it off; an upgraded one must keep it on, or phones that texted
    /// STOP before the upgrade could be texted again.
    #[serde(default = "import_by_default")]
    pub import_legacy_optouts: bool,
}

fn default_ops_shards() -> u32 {
    16
}

/// Opt-outs err towards silence: a configuration that says nothing imports.
fn import_by_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("GATEWAY_CONFIG is not valid JSON for the gateway: {0}")]
    Parse(String),
    #[error(transparent)]
    Routing(#[from] RoutingConfigError),
    #[error("attachments: {0}")]
    Attachments(#[from] PolicyError),
    #[error("allowed_origins: {0:?} is not an origin like https://shop.example")]
    BadOrigin(String),
    #[error("session: idle_ms must be positive and warning_ms between 0 and idle_ms")]
    BadSession,
    #[error("podium: {0}")]
    BadPodium(String),
    #[error("confirmation_text must be 1 to 320 characters")]
    BadConfirmation,
    #[error(transparent)]
    Webhooks(#[from] WebhookConfigError),
    #[error(transparent)]
    Reviews(#[from] ReviewConfigError),
    #[error("{0}")]
    Invalid(String),
}

impl GatewayConfig {
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let parsed: GatewayConfig =
            serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        parsed.validated()
    }

    pub fn validated(mut self) -> Result<Self, ConfigError> {
        self.routing = self.routing.validated()?;
        self.attachments = self.attachments.validated()?;
        for origin in &mut self.allowed_origins {
            *origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !ok {
                return Err(ConfigError::BadOrigin(origin.clone()));
            }
        }
        let s = &self.session;
        if s.idle_ms <= 0 || s.warning_ms < 0 || s.warning_ms > s.idle_ms {
            return Err(ConfigError::BadSession);
        }
        let p = &mut self.podium;
        for url in [&mut p.api_base, &mut p.token_url] {
            *url = url.trim().trim_end_matches('/').to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::BadPodium(format!(
                    "{url:?} is not an http(s) URL"
                )));
            }
        }
        if p.requests_per_minute == 0 || p.api_version.trim().is_empty() || p.timeout_ms == 0 {
            return Err(ConfigError::BadPodium(
                "requests_per_minute, api_version and timeout_ms must be set".into(),
            ));
        }
        if let Some(text) = &self.confirmation_text {
            let len = text.trim().chars().count();
            if len == 0 || len > 320 {
                return Err(ConfigError::BadConfirmation);
            }
        }
        self.webhooks = self.webhooks.validated()?;
        self.auto_texts = self.auto_texts.validated().map_err(ConfigError::Invalid)?;
        let t = &mut self.turnstile;
        t.siteverify_url = t.siteverify_url.trim().to_owned();
        if !(t.siteverify_url.starts_with("https://") || t.siteverify_url.starts_with("http://"))
            || t.timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "turnstile: siteverify_url must be an http(s) URL and timeout_ms positive".into(),
            ));
        }
        for host in &mut t.hostnames {
            *host = host.trim().to_ascii_lowercase();
        }
        let r = &self.retention;
        if [
            r.session_after_expiry_ms,
            r.dead_letters_ms,
            r.fallbacks_ms,
            r.events_ms,
            r.message_keys_ms,
        ]
        .iter()
        .any(|ms| *ms <= 0)
        {
            return Err(ConfigError::Invalid(
                "retention: every period must be positive".into(),
            ));
        }
        if !(1..=256).contains(&self.ops_shards) {
            return Err(ConfigError::Invalid("ops_shards must be 1 to 256".into()));
        }
        let routing = &self.routing;
        self.reviews = self
            .reviews
            .validated(|uid| routing.location(uid).is_some())?;
        Ok(self)
    }

    /// Settings an operator should hear about (accepted, but no longer doing anything).
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.rate_limits.per_ip.is_some() {
            out.push("rate_limits.per_ip is ignored: per-IP limits are the RL_CLIENT, RL_NEW_SESSION and RL_NEW_PHONE Rate Limiting bindings in wrangler.toml");
        }
        out
    }

    /// Whether a browser origin may call the webchat routes.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.allowed_origins.contains(&origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"{
        "routing": {
            "locations": [
                {"uid": "loc_sydney", "name": "Sydney", "region": "AU", "path_prefixes": ["/sydney/"], "postcodes": ["2000-2234"]},
                {"uid": "loc_sanfrancisco", "name": "San Francisco", "region": "US", "path_prefixes": ["/san-francisco/"]}
            ],
            "default_location_uid": "loc_sydney"
        },
        "allowed_origins": ["https://Shop.Example/"],
        "session": {"idle_ms": 5000, "warning_ms": 2000},
        "podium": {"api_base": "http://127.0.0.1:8788/"}
    }"#;

    #[test]
    fn parses_with_defaults() {
        let c = GatewayConfig::from_json(DEMO).unwrap();
        assert_eq!(c.routing.locations.len(), 2);
        assert_eq!(c.podium.api_base, "http://127.0.0.1:8788");
        assert_eq!(c.podium.api_version, "2021.04.01");
        assert_eq!(
            c.session.max_buffered,
            SessionPolicy::default().max_buffered
        );
        assert!(c.origin_allowed("https://shop.example"));
        assert!(!c.origin_allowed("https://evil.example"));
        assert_eq!(c.attachments, AttachmentPolicy::default());
        // Silent about the former layout: its opt-outs are imported.
        assert!(c.import_legacy_optouts);
        let mut v: serde_json::Value = serde_json::from_str(DEMO).unwrap();
        v["import_legacy_optouts"] = serde_json::json!(false);
        let fresh = GatewayConfig::from_json(&v.to_string()).unwrap();
        assert!(!fresh.import_legacy_optouts);
    }

    #[test]
    fn refuses_mistakes() {
        let bad = |patch: &str| {
            let mut v: serde_json::Value = serde_json::from_str(DEMO).unwrap();
            let p: serde_json::Value = serde_json::from_str(patch).unwrap();
            for (k, val) in p.as_object().unwrap() {
                v[k] = val.clone();
            }
            GatewayConfig::from_json(&v.to_string()).unwrap_err()
        };
        assert!(matches!(
            bad(r#"{"allowed_origins": ["*"]}"#),
            ConfigError::BadOrigin(_)
        ));
        assert!(matches!(
            bad(r#"{"allowed_origins": ["https://a/b"]}"#),
            ConfigError::BadOrigin(_)
        ));
        assert!(matches!(
            bad(r#"{"session": {"idle_ms": 1000, "warning_ms": 2000}}"#),
            ConfigError::BadSession
        ));
        assert!(matches!(
            bad(
                r#"{"routing": {"locations": [{"uid": "a", "name": "A", "region": "AU"}], "default_location_uid": "nope"}}"#
            ),
            ConfigError::Routing(_)
        ));
        assert!(matches!(
            bad(r#"{"attachments": {"max_bytes": 30000000}}"#),
            ConfigError::Attachments(_)
        ));
        assert!(matches!(
            bad(r#"{"podium": {"api_base": "ftp://x"}}"#),
            ConfigError::BadPodium(_)
        ));
        assert!(matches!(
            bad(r#"{"confirmation_text": " "}"#),
            ConfigError::BadConfirmation
        ));
        assert!(matches!(bad(r#"{"typo_field": 1}"#), ConfigError::Parse(_)));
        assert!(matches!(
            GatewayConfig::from_json("{"),
            Err(ConfigError::Parse(_))
        ));
    }
}
