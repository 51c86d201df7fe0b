//! Webhook ingress decisions (F10, F13–F15): the configuration, which secrets a route
//! needs, the idempotency key of a delivery and the shard that keeps it, and what each
//! provider's event means for the gateway. The worker verifies, claims, persists and
//! acknowledges; what to *do* is decided here.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::optout::{self, Keyword};
use crate::phone;
use crate::review::{self, ReviewClass};
use crate::signature::{Headers, Scheme, Tolerance};
use crate::time;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long an idempotency key is kept, per provider. Each default is longer than the
/// provider's documented retry horizon, so a late retry is still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Podium retries ~15 times over ~8 h and queues events ~10 days.
    pub podium_ms: i64,
    /// Shopify retries 8 times over 4 h.
    pub shopify_ms: i64,
    /// Stripe retries for up to 3 days.
    pub stripe_ms: i64,
    /// Chatwoot retries briefly; a day is generous.
    pub chatwoot_ms: i64,
    /// Standard Webhooks senders (Svix's schedule) retry for about 28 h.
    pub standard_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            podium_ms: 14 * DAY_MS,
            shopify_ms: 2 * DAY_MS,
            stripe_ms: 4 * DAY_MS,
            chatwoot_ms: DAY_MS,
            standard_ms: 3 * DAY_MS,
        }
    }
}

impl Retention {
    /// The documented retry horizon a retention must cover.
    pub fn horizon_ms(scheme: Scheme) -> i64 {
        match scheme {
            Scheme::Podium => 10 * DAY_MS,
            Scheme::Shopify => 4 * HOUR_MS,
            Scheme::Stripe => 3 * DAY_MS,
            Scheme::Chatwoot => HOUR_MS,
            Scheme::Standard => 28 * HOUR_MS,
        }
    }

    pub fn for_scheme(&self, scheme: Scheme) -> i64 {
        match scheme {
            Scheme::Podium => self.podium_ms,
            Scheme::Shopify => self.shopify_ms,
            Scheme::Stripe => self.stripe_ms,
            Scheme::Chatwoot => self.chatwoot_ms,
            Scheme::Standard => self.standard_ms,
        }
    }
}

/// Webhook ingress settings (`webhooks` in `GATEWAY_CONFIG`). Secrets are not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// How far a signed timestamp may be from now, in both directions.
    pub tolerance_ms: i64,
    /// Shopify signs no timestamp; a delivery whose `X-Shopify-Triggered-At` is older
    /// than this is refused as stale (Shopify's own retries end after 4 h).
    pub shopify_max_age_ms: i64,
    /// Largest body accepted (Durable Object values must stay under 2 MB).
    pub max_body_bytes: u32,
    /// Idempotency shards: one Durable Object handles ~1,000 requests/s.
    pub shards: u32,
    pub retention: Retention,
    /// Allow retentions shorter than the providers' retry horizons (tests only: a late
    /// retry would then be processed twice).
    pub allow_short_retention: bool,
    /// Wait this long after acknowledging before processing (0 in production; tests
    /// widen the window to restart the worker in it).
    pub process_delay_ms: i64,
    /// Attempts before a failing event is dead-lettered.
    pub max_attempts: u32,
    /// Slack-compatible incoming-webhook URL for escalations (low ratings, failures).
    pub alert_url: Option<String>,
    /// Receives `{review, …}` for ratings of 4 and 5 (the thank-you flow).
    pub thank_you_url: Option<String>,
    /// Alerts and thank-you payloads carry phone numbers masked (`+6141****678`);
    /// `true` sends them whole, for a merchant's own system that needs the number.
    pub full_phone_in_hooks: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            tolerance_ms: 5 * 60 * 1000,
            shopify_max_age_ms: 48 * HOUR_MS,
            max_body_bytes: 1024 * 1024,
            shards: 16,
            retention: Retention::default(),
            allow_short_retention: false,
            process_delay_ms: 0,
            max_attempts: 12,
            alert_url: None,
            thank_you_url: None,
            full_phone_in_hooks: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhooks.{0} must be positive")]
    NotPositive(&'static str),
    #[error("webhooks.shards must be 1 to 1024")]
    Shards,
    #[error("webhooks.max_body_bytes must be 1 KiB to 1.5 MiB")]
    BodyCap,
    #[error("webhooks.retention.{scheme}_ms is shorter than {scheme}'s retry horizon ({horizon_ms} ms); set allow_short_retention only in tests")]
    ShortRetention {
        scheme: &'static str,
        horizon_ms: i64,
    },
    #[error("webhooks.{0} is not an http(s) URL")]
    BadUrl(&'static str),
}

impl WebhookConfig {
    pub fn validated(self) -> Result<Self, WebhookConfigError> {
        for (name, v) in [
            ("tolerance_ms", self.tolerance_ms),
            ("shopify_max_age_ms", self.shopify_max_age_ms),
            ("max_attempts", i64::from(self.max_attempts)),
        ] {
            if v <= 0 {
                return Err(WebhookConfigError::NotPositive(name));
            }
        }
        if self.process_delay_ms < 0 {
            return Err(WebhookConfigError::NotPositive("process_delay_ms"));
        }
        if !(1..=1024).contains(&self.shards) {
            return Err(WebhookConfigError::Shards);
        }
        if !(1024..=1536 * 1024).contains(&self.max_body_bytes) {
            return Err(WebhookConfigError::BodyCap);
        }
        for scheme in SCHEMES {
            let kept = self.retention.for_scheme(scheme);
            if kept <= 0 {
                return Err(WebhookConfigError::NotPositive("retention"));
            }
            let horizon_ms = Retention::horizon_ms(scheme);
            if kept < horizon_ms && !self.allow_short_retention {
                return Err(WebhookConfigError::ShortRetention {
                    scheme: scheme.as_str(),
                    horizon_ms,
                });
            }
        }
        for (name, url) in [
            ("alert_url", &self.alert_url),
            ("thank_you_url", &self.thank_you_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(WebhookConfigError::BadUrl(name));
                }
            }
        }
        Ok(self)
    }

    /// The timestamp window for a scheme (Shopify's is its staleness bound).
    pub fn tolerance(&self, scheme: Scheme) -> Tolerance {
        Tolerance {
            past_ms: if scheme == Scheme::Shopify {
                self.shopify_max_age_ms
            } else {
                self.tolerance_ms
            },
            future_ms: self.tolerance_ms,
        }
    }
}

/// Every scheme, in route order.
pub const SCHEMES: [Scheme; 5] = [
    Scheme::Podium,
    Scheme::Shopify,
    Scheme::Stripe,
    Scheme::Chatwoot,
    Scheme::Standard,
];

/// A Standard Webhooks source name in `/webhooks/standard/{source}`: 1–32 of
/// `a-z 0-9 - _`, starting with a letter or digit (it becomes part of a secret's name).
pub fn valid_source(source: &str) -> bool {
    let b = source.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// The secret (list) a route verifies with: `WEBHOOK_SECRETS_PODIUM`, …,
/// `WEBHOOK_SECRETS_STANDARD_<SOURCE>` (upper case, `-` as `_`).
pub fn secret_name(scheme: Scheme, source: Option<&str>) -> String {
    let mut name = format!("WEBHOOK_SECRETS_{}", scheme.as_str().to_ascii_uppercase());
    if let Some(source) = source {
        name.push('_');
        name.extend(source.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
    }
    name
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0x1f]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keys longer than this are hashed (they are primary keys in storage).
const MAX_KEY_LEN: usize = 200;

fn bounded(prefix: &str, id: &str) -> String {
    let clean = id.trim();
    if clean.is_empty() || clean.len() > MAX_KEY_LEN || clean.chars().any(char::is_control) {
        format!("{prefix}#{}", sha256_hex(&[clean.as_bytes()]))
    } else {
        format!("{prefix}{clean}")
    }
}

/// The idempotency key of a verified delivery. Every provider's retries of one event map
/// to one key:
/// - Podium documents no event id: a hash of the event type and the exact body (its
///   retries resend the same body);
/// - Shopify: `X-Shopify-Webhook-Id` (older `X-Shopify-Event-Id`);
/// - Stripe: the event `id` in the body;
/// - Chatwoot: `X-Chatwoot-Delivery`, else conversation + message + event;
/// - Standard Webhooks: `webhook-id`, per source.
///
/// Where the id is missing the key falls back to a hash of the body, which still
/// deduplicates byte-identical retries.
pub fn dedup_key(
    scheme: Scheme,
    source: Option<&str>,
    headers: &Headers,
    body: &[u8],
    json: &Value,
) -> String {
    let body_hash = || sha256_hex(&[body]);
    let header = |name: &str| headers.get(name).map(str::trim).filter(|v| !v.is_empty());
    match scheme {
        Scheme::Podium => {
            let event_type = json
                .pointer("/metadata/event_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("podium:{}", sha256_hex(&[event_type.as_bytes(), body]))
        }
        // The signed body decides first: the topic and the resource's id (and its
        // `updated_at`, so distinct updates of one order stay distinct). A captured body
        // replayed with a fresh X-Shopify-Webhook-Id is then still one event; a body
        // without an id falls back to the delivery header.
        Scheme::Shopify => {
            let topic = header("x-shopify-topic").unwrap_or("-");
            let id = json.get("id").and_then(|v| match v {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                _ => None,
            });
            match (
                id,
                header("x-shopify-webhook-id").or(header("x-shopify-event-id")),
            ) {
                (Some(id), _) => {
                    let updated = json.get("updated_at").and_then(Value::as_str).unwrap_or("");
                    bounded("shopify:", &format!("{topic}:{id}:{updated}"))
                }
                (None, Some(delivery)) => bounded("shopify:", delivery),
                (None, None) => format!("shopify:#{}", body_hash()),
            }
        }
        Scheme::Stripe => match json.get("id").and_then(Value::as_str) {
            Some(id) => bounded("stripe:", id),
            None => format!("stripe:#{}", body_hash()),
        },
        Scheme::Chatwoot => {
            if let Some(id) = header("x-chatwoot-delivery") {
                return bounded("chatwoot:", id);
            }
            let part = |p: &str| json.pointer(p).map(|v| v.to_string()).unwrap_or_default();
            let (conversation, message, event) =
                (part("/conversation/id"), part("/id"), part("/event"));
            if conversation.is_empty() && message.is_empty() {
                format!("chatwoot:#{}", body_hash())
            } else {
                bounded("chatwoot:", &format!("{conversation}/{message}/{event}"))
            }
        }
        Scheme::Standard => {
            let prefix = format!("standard:{}:", source.unwrap_or("-"));
            match header("webhook-id") {
                Some(id) => bounded(&prefix, id),
                None => format!("{prefix}#{}", body_hash()),
            }
        }
    }
}

/// Which idempotency shard keeps a key: a stable hash, spread evenly.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0_u8; 4];
    for (dst, src) in first.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    u32::from_be_bytes(first) % shards.max(1)
}

/// A review as the gateway keeps it (F10), for alerts now and the review-request flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEvent {
    pub uid: Option<String>,
    pub rating: Option<f64>,
    pub class: ReviewClass,
    pub location_uid: Option<String>,
    pub site: Option<String>,
    pub author: Option<String>,
    pub phone: Option<String>,
    /// The review invite that led to it, where Podium says.
    pub invite_uid: Option<String>,
    pub at_ms: i64,
}

/// What one event asks the gateway to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// STOP-family (or START/UNSTOP) texted to the store: the phone's one opt-out record.
    Keyword {
        phone: String,
        opted_out: bool,
        at_ms: i64,
    },
    /// Podium's contact record says the phone is (`Some(since)`) or is not (`None`)
    /// transactionally opted out.
    PodiumOptState {
        phone: String,
        opted_out_at_ms: Option<i64>,
        observed_ms: i64,
    },
    /// Podium could not deliver a message.
    MessageFailed {
        message_uid: Option<String>,
        phone: Option<String>,
        reason: Option<String>,
        at_ms: i64,
    },
    Review(ReviewEvent),
    /// A review invite's delivery changed (`review.invite_link_updated`).
    InviteUpdated {
        invite_uid: String,
        status: String,
        phone: Option<String>,
        at_ms: i64,
    },
    /// A webchat message from another front end (Chatwoot), as a gateway envelope for
    /// the ingestion pipeline.
    Webchat {
        envelope: Value,
    },
    /// Kept for the review-request flow (Shopify `orders/fulfilled`, Stripe
    /// `checkout.session.completed`).
    Store {
        kind: String,
        payload: Value,
    },
    /// Chatwoot's `conversation_created`: the conversation's session remembers the
    /// contact's phone, for later messages that lack one.
    RememberPhone {
        session_id: String,
        phone: String,
    },
    /// Accepted, nothing to do.
    Ignore {
        reason: String,
    },
}

/// An event understood: its type as the provider names it, and the action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interpreted {
    pub event_type: String,
    pub action: Action,
}

fn ignore(reason: impl Into<String>) -> Action {
    Action::Ignore {
        reason: reason.into(),
    }
}

fn str_at<'a>(v: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A phone Podium reports, as E.164 (Podium sends E.164; anything else is unusable).
fn podium_phone(raw: Option<&str>) -> Option<String> {
    phone::normalize(raw?, None).ok().map(|p| p.to_string())
}

/// The phone of a message event: the conversation's phone channel, else the contact's.
fn message_phone(data: &Value) -> Option<String> {
    let channel_is_phone = |p: &str| {
        data.pointer(p)
            .and_then(Value::as_str)
            .is_none_or(|t| matches!(t.to_ascii_lowercase().as_str(), "phone" | "sms"))
    };
    let from_channel = [
        (
            "/conversation/channel/type",
            "/conversation/channel/identifier",
        ),
        ("/channel/type", "/channel/identifier"),
    ]
    .iter()
    .filter(|(t, _)| channel_is_phone(t))
    .find_map(|(_, id)| podium_phone(str_at(data, &[id])));
    from_channel.or_else(|| {
        podium_phone(str_at(
            data,
            &[
                "/contact/phoneNumber",
                "/contact/phoneNumbers/0",
                "/phoneNumber",
                "/sender/phoneNumber",
            ],
        ))
    })
}

fn event_time(data: &Value, pointers: &[&str], received_ms: i64) -> i64 {
    pointers
        .iter()
        .find_map(|p| data.pointer(p).and_then(time::from_json_ms))
        .unwrap_or(received_ms)
}

fn interpret_podium(json: &Value, received_ms: i64) -> Interpreted {
    let event_type = json
        .pointer("/metadata/event_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let data = json.get("data").unwrap_or(&Value::Null);
    let action = match event_type.as_str() {
        "message.received" => {
            let text = str_at(data, &["/body", "/message/body", "/text"]).unwrap_or("");
            match (optout::keyword(text), message_phone(data)) {
                (None, _) => ignore("not an opt-out keyword"),
                (Some(_), None) => ignore("keyword without a usable phone"),
                (Some(k), Some(phone)) => Action::Keyword {
                    phone,
                    opted_out: k == Keyword::OptOut,
                    at_ms: event_time(data, &["/createdAt", "/sentAt"], received_ms),
                },
            }
        }
        "contact.updated" | "contact.created" => podium_opt_state(data, received_ms),
        "message.failed" => Action::MessageFailed {
            message_uid: str_at(data, &["/uid", "/message/uid"]).map(str::to_owned),
            phone: message_phone(data),
            reason: str_at(data, &["/failureReason", "/error", "/deliveryStatusReason"])
                .map(|r| r.chars().take(200).collect()),
            at_ms: event_time(data, &["/updatedAt", "/createdAt"], received_ms),
        },
        "review.created" | "review.updated" => {
            let rating = data.get("rating").and_then(review::rating_from_json);
            Action::Review(ReviewEvent {
                uid: str_at(data, &["/uid", "/id"]).map(str::to_owned),
                rating,
                class: review::classify(rating),
                location_uid: str_at(data, &["/locationUid", "/location/uid"]).map(str::to_owned),
                site: str_at(data, &["/reviewSite", "/siteName", "/site"]).map(str::to_owned),
                author: str_at(data, &["/authorName", "/author/name", "/reviewer/name"])
                    .map(|a| a.chars().take(100).collect()),
                phone: podium_phone(str_at(
                    data,
                    &[
                        "/phoneNumber",
                        "/contact/phoneNumber",
                        "/reviewer/phoneNumber",
                    ],
                )),
                invite_uid: str_at(data, &["/inviteUid", "/reviewInviteUid", "/invite/uid"])
                    .map(str::to_owned),
                at_ms: event_time(data, &["/updatedAt", "/createdAt"], received_ms),
            })
        }
        "review.invite_link_updated" => match (
            str_at(data, &["/uid", "/inviteUid"]),
            str_at(data, &["/deliveryStatus", "/status"]),
        ) {
            (Some(uid), Some(status)) => Action::InviteUpdated {
                invite_uid: uid.to_owned(),
                status: status.to_ascii_lowercase(),
                phone: podium_phone(str_at(data, &["/phoneNumber", "/contact/phoneNumber"])),
                at_ms: event_time(data, &["/updatedAt", "/createdAt"], received_ms),
            },
            _ => ignore("invite update without uid or deliveryStatus"),
        },
        "" => ignore("no metadata.event_type"),
        // Podium adds event types without notice: accept and ignore.
        other => ignore(format!("event type {other} is not used")),
    };
    Interpreted { event_type, action }
}

/// `contact.updated`: the phone channel's `transactionalOptedOutAt`, when the event
/// carries the field at all (absent means "not part of this update").
fn podium_opt_state(data: &Value, received_ms: i64) -> Action {
    let channels = data
        .get("channels")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for channel in channels {
        let is_phone = channel
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(|t| matches!(t.to_ascii_lowercase().as_str(), "phone" | "sms"));
        let Some(state) = channel.get("transactionalOptedOutAt") else {
            continue;
        };
        let phone = podium_phone(str_at(channel, &["/identifier", "/value"]));
        if let (true, Some(phone)) = (is_phone, phone) {
            let observed_ms = event_time(data, &["/updatedAt"], received_ms);
            let opted_out_at_ms = match state {
                Value::Null => None,
                // An opt-out whose time can't be read still counts, as of now.
                other => Some(time::from_json_ms(other).unwrap_or(observed_ms)),
            };
            return Action::PodiumOptState {
                phone,
                opted_out_at_ms,
                observed_ms,
            };
        }
    }
    ignore("no phone channel carrying transactionalOptedOutAt")
}

fn interpret_shopify(headers: &Headers, json: &Value) -> Interpreted {
    let topic = headers
        .get("x-shopify-topic")
        .unwrap_or("")
        .trim()
        .to_owned();
    let action = match topic.as_str() {
        "orders/fulfilled" => Action::Store {
            kind: "shopify.orders_fulfilled".into(),
            payload: json!({
                "shop_domain": headers.get("x-shopify-shop-domain").map(str::trim),
                "order": json,
            }),
        },
        "" => ignore("no X-Shopify-Topic"),
        other => ignore(format!("topic {other} is not used")),
    };
    Interpreted {
        event_type: topic,
        action,
    }
}

fn interpret_stripe(json: &Value) -> Interpreted {
    let event_type = json
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let action = match event_type.as_str() {
        "checkout.session.completed" => Action::Store {
            kind: "stripe.checkout_completed".into(),
            payload: json.clone(),
        },
        // The alternative trigger (payments without Checkout); the same payment's
        // checkout event and this one make one review request (keyed on the intent).
        "payment_intent.succeeded" => Action::Store {
            kind: "stripe.payment_succeeded".into(),
            payload: json.clone(),
        },
        "" => ignore("no event type"),
        other => ignore(format!("event type {other} is not used")),
    };
    Interpreted { event_type, action }
}

/// A stable UUID for a Chatwoot conversation, so it gets one gateway session.
pub fn chatwoot_session_id(account: &str, conversation: &str) -> String {
    derived_uuid(&[b"chatwoot", account.as_bytes(), conversation.as_bytes()])
}

/// The gateway session of a plain chat widget's `session_id` (any 1–128 printable
/// characters): a UUID stays itself, anything else maps to a stable UUID of its own,
/// so each maps to its own session and the envelope's UUID rule holds.
pub fn chat_session_id(raw: &str) -> String {
    if crate::envelope::is_uuid(raw) {
        return raw.to_ascii_lowercase();
    }
    derived_uuid(&[b"chat-session", raw.as_bytes()])
}

/// A version 8 (custom) UUID from a hash of `parts`: 8-4-4-4-12 with the version and
/// variant nibbles set.
fn derived_uuid(parts: &[&[u8]]) -> String {
    let h = sha256_hex(parts);
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0");
    format!(
        "{}-{}-8{}-a{}-{}",
        part(0, 8),
        part(8, 12),
        part(13, 16),
        part(17, 20),
        part(20, 32)
    )
}

fn interpret_chatwoot(json: &Value) -> Interpreted {
    let event_type = json
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if event_type == "conversation_created" {
        return Interpreted {
            action: chatwoot_conversation(json),
            event_type,
        };
    }
    if event_type != "message_created" {
        let reason = if event_type.is_empty() {
            "no event".to_owned()
        } else {
            format!("event {event_type} is not used")
        };
        return Interpreted {
            event_type,
            action: ignore(reason),
        };
    }
    // Chatwoot sends message_type as a name or as its enum number (0 = incoming).
    let incoming = match json.get("message_type") {
        Some(Value::String(s)) => s == "incoming",
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    };
    let private = json
        .get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let action = if !incoming || private {
        ignore("not an incoming customer message")
    } else {
        chatwoot_envelope(json)
    };
    Interpreted { event_type, action }
}

fn chatwoot_envelope(json: &Value) -> Action {
    let text = json
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if text.is_empty() {
        return ignore("no text (Chatwoot attachments are not forwarded)");
    }
    // Without a phone here, the conversation's session may know it (from
    // `conversation_created`); the pipeline asks it.
    let phone = str_at(
        json,
        &[
            "/sender/phone_number",
            "/conversation/meta/sender/phone_number",
            "/contact/phone_number",
        ],
    );
    let id_of = |p: &str| {
        json.pointer(p)
            .map(|v| v.to_string().trim_matches('"').to_owned())
    };
    let Some(conversation) = id_of("/conversation/id") else {
        return ignore("no conversation id");
    };
    let account = id_of("/account/id").unwrap_or_default();
    let name = str_at(json, &["/sender/name", "/conversation/meta/sender/name"]);
    let page_url = str_at(json, &["/conversation/additional_attributes/referer"]);
    let mut contact = serde_json::Map::new();
    if let Some(phone) = phone {
        contact.insert("phone".into(), json!(phone));
    }
    if let Some(name) = name {
        contact.insert("name".into(), json!(name));
    }
    let mut location = serde_json::Map::new();
    if let Some(url) = page_url {
        location.insert("page_url".into(), json!(url));
    }
    let envelope = json!({
        "session_id": chatwoot_session_id(&account, &conversation),
        "message": {"type": "text", "value": text},
        "contact": contact,
        "location": location,
        "client": {"widget_version": "chatwoot"},
    });
    Action::Webchat { envelope }
}

/// `conversation_created`: remember the contact's phone for the conversation.
fn chatwoot_conversation(json: &Value) -> Action {
    let id_of = |p: &str| {
        json.pointer(p)
            .map(|v| v.to_string().trim_matches('"').to_owned())
            .filter(|v| !v.is_empty() && v != "null")
    };
    let Some(conversation) = id_of("/id").or_else(|| id_of("/conversation/id")) else {
        return ignore("no conversation id");
    };
    let account = id_of("/account/id").unwrap_or_default();
    match str_at(
        json,
        &[
            "/meta/sender/phone_number",
            "/conversation/meta/sender/phone_number",
            "/contact/phone_number",
        ],
    ) {
        Some(phone) => Action::RememberPhone {
            session_id: chatwoot_session_id(&account, &conversation),
            phone: phone.to_owned(),
        },
        None => ignore("the Chatwoot contact has no phone number"),
    }
}

/// What a verified, parsed delivery means. `received_ms` stands in for event times the
/// payload does not carry.
pub fn interpret(scheme: Scheme, headers: &Headers, json: &Value, received_ms: i64) -> Interpreted {
    match scheme {
        Scheme::Podium => interpret_podium(json, received_ms),
        Scheme::Shopify => interpret_shopify(headers, json),
        Scheme::Stripe => interpret_stripe(json),
        Scheme::Chatwoot => interpret_chatwoot(json),
        Scheme::Standard => Interpreted {
            event_type: str_at(json, &["/type", "/event_type", "/event"])
                .unwrap_or("")
                .to_owned(),
            action: ignore("standard webhooks are verified, deduplicated and recorded"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().copied())
    }

    fn podium(event_type: &str, data: Value) -> Value {
        json!({"data": data, "metadata": {"event_type": event_type, "version": "2021.04.01"}})
    }

    #[test]
    fn config_defaults_cover_retry_horizons_and_mistakes_are_refused() {
        let c = WebhookConfig::default().validated().unwrap();
        for s in SCHEMES {
            assert!(c.retention.for_scheme(s) >= Retention::horizon_ms(s));
        }
        let short = WebhookConfig {
            retention: Retention {
                podium_ms: DAY_MS,
                ..Retention::default()
            },
            ..WebhookConfig::default()
        };
        assert!(matches!(
            short.clone().validated(),
            Err(WebhookConfigError::ShortRetention {
                scheme: "podium",
                ..
            })
        ));
        assert!(WebhookConfig {
            allow_short_retention: true,
            ..short
        }
        .validated()
        .is_ok());
        for bad in [
            WebhookConfig {
                shards: 0,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                tolerance_ms: 0,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                max_body_bytes: 10_000_000,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                alert_url: Some("slack".into()),
                ..WebhookConfig::default()
            },
        ] {
            assert!(bad.validated().is_err());
        }
        let c = WebhookConfig::default();
        assert_eq!(c.tolerance(Scheme::Shopify).past_ms, 48 * HOUR_MS);
        assert_eq!(c.tolerance(Scheme::Stripe).past_ms, 300_000);
    }

    #[test]
    fn sources_and_secret_names() {
        assert!(valid_source("acme-crm_2"));
        for bad in ["", "-x", "Acme", "a/b", &"a".repeat(33)] {
            assert!(!valid_source(bad), "{bad}");
        }
        assert_eq!(secret_name(Scheme::Podium, None), "WEBHOOK_SECRETS_PODIUM");
        assert_eq!(
            secret_name(Scheme::Standard, Some("acme-crm")),
            "WEBHOOK_SECRETS_STANDARD_ACME_CRM"
        );
    }

    #[test]
    fn dedup_keys_follow_each_providers_id() {
        let none = Headers::new();
        let body = br#"{"data":{},"metadata":{"event_type":"message.received"}}"#;
        let json: Value = serde_json::from_slice(body).unwrap();
        let a = dedup_key(Scheme::Podium, None, &none, body, &json);
        assert_eq!(a, dedup_key(Scheme::Podium, None, &none, body, &json));
        let other = br#"{"data":{},"metadata":{"event_type":"message.received"} }"#;
        assert_ne!(a, dedup_key(Scheme::Podium, None, &none, other, &json));

        let h = headers(&[
            ("X-Shopify-Webhook-Id", "b54557e4"),
            ("X-Shopify-Event-Id", "e1"),
        ]);
        assert_eq!(
            dedup_key(Scheme::Shopify, None, &h, b"{}", &json!({})),
            "shopify:b54557e4"
        );
        let h = headers(&[("X-Shopify-Event-Id", "e1")]);
        assert_eq!(
            dedup_key(Scheme::Shopify, None, &h, b"{}", &json!({})),
            "shopify:e1"
        );
        // The signed body's topic + id (+ updated_at) decide: a captured body replayed
        // with a fresh delivery id is the same event.
        let order = json!({"id": 820982911946154508_u64, "updated_at": "2026-12-01T10:00:00Z"});
        let first = headers(&[
            ("X-Shopify-Topic", "orders/fulfilled"),
            ("X-Shopify-Webhook-Id", "a"),
        ]);
        let replayed = headers(&[
            ("X-Shopify-Topic", "orders/fulfilled"),
            ("X-Shopify-Webhook-Id", "fresh"),
        ]);
        assert_eq!(
            dedup_key(Scheme::Shopify, None, &first, b"x", &order),
            dedup_key(Scheme::Shopify, None, &replayed, b"x", &order)
        );
        let updated = json!({"id": 820982911946154508_u64, "updated_at": "2026-12-02T10:00:00Z"});
        assert_ne!(
            dedup_key(Scheme::Shopify, None, &first, b"x", &order),
            dedup_key(Scheme::Shopify, None, &first, b"x", &updated)
        );
        assert_eq!(
            dedup_key(Scheme::Stripe, None, &none, b"", &json!({"id": "evt_1"})),
            "stripe:evt_1"
        );
        assert_eq!(
            dedup_key(
                Scheme::Chatwoot,
                None,
                &none,
                b"",
                &json!({"id": 7, "event": "message_created", "conversation": {"id": 3}})
            ),
            "chatwoot:3/7/\"message_created\""
        );
        let h = headers(&[("webhook-id", "msg_1")]);
        assert_eq!(
            dedup_key(Scheme::Standard, Some("crm"), &h, b"", &json!({})),
            "standard:crm:msg_1"
        );
        let long = "x".repeat(500);
        let h = headers(&[("webhook-id", &long)]);
        assert!(dedup_key(Scheme::Standard, Some("crm"), &h, b"", &json!({})).len() < 100);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut counts = [0_u32; 16];
        for i in 0..1600 {
            let s = shard_of(&format!("stripe:evt_{i}"), 16);
            counts[s as usize] += 1;
        }
        assert!(counts.iter().all(|c| (60..=140).contains(c)), "{counts:?}");
        assert_eq!(shard_of("k", 16), shard_of("k", 16));
        assert_eq!(shard_of("k", 0), 0);
    }

    #[test]
    fn podium_stop_and_start_texts() {
        let stop = podium(
            "message.received",
            json!({"body": " Stop. ", "createdAt": "2026-11-21T10:00:00Z",
                   "conversation": {"channel": {"type": "phone", "identifier": "+61412345678"}}}),
        );
        let i = interpret(Scheme::Podium, &Headers::new(), &stop, 5);
        assert_eq!(
            i.action,
            Action::Keyword {
                phone: "+61412345678".into(),
                opted_out: true,
                at_ms: time::parse_rfc3339_ms("2026-11-21T10:00:00Z").unwrap()
            }
        );
        let start = podium(
            "message.received",
            json!({"body": "unstop", "contact": {"phoneNumber": "+61412345678"}}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &start, 5).action,
            Action::Keyword {
                opted_out: false,
                at_ms: 5,
                ..
            }
        ));
        let chat = podium(
            "message.received",
            json!({"body": "please don't stop my order"}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &chat, 5).action,
            Action::Ignore { .. }
        ));
        let email = podium(
            "message.received",
            json!({"body": "STOP", "conversation": {"channel": {"type": "email", "identifier": "a@b.c"}}}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &email, 5).action,
            Action::Ignore { .. }
        ));
    }

    #[test]
    fn podium_contact_opt_state() {
        let out = podium(
            "contact.updated",
            json!({"updatedAt": "2026-11-21T10:00:01Z", "channels": [
                {"type": "email", "identifier": "a@b.c", "transactionalOptedOutAt": null},
                {"type": "phone", "identifier": "+14155550123", "transactionalOptedOutAt": "2026-11-21T10:00:00Z"}]}),
        );
        let at = time::parse_rfc3339_ms("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(
            interpret(Scheme::Podium, &Headers::new(), &out, 5).action,
            Action::PodiumOptState {
                phone: "+14155550123".into(),
                opted_out_at_ms: Some(at),
                observed_ms: at + 1000
            }
        );
        let back = podium(
            "contact.updated",
            json!({"channels": [{"type": "phone", "identifier": "+14155550123", "transactionalOptedOutAt": null}]}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &back, 5).action,
            Action::PodiumOptState {
                opted_out_at_ms: None,
                observed_ms: 5,
                ..
            }
        ));
        let silent = podium(
            "contact.updated",
            json!({"channels": [{"type": "phone", "identifier": "+14155550123"}]}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &silent, 5).action,
            Action::Ignore { .. }
        ));
    }

    #[test]
    fn podium_reviews_are_classified_and_unknown_events_ignored() {
        let low = podium(
            "review.created",
            json!({"uid": "r1", "rating": 1, "locationUid": "loc_sydney", "reviewSite": "google"}),
        );
        match interpret(Scheme::Podium, &Headers::new(), &low, 5).action {
            Action::Review(r) => {
                assert_eq!(r.class, ReviewClass::Escalate);
                assert_eq!(r.location_uid.as_deref(), Some("loc_sydney"));
            }
            other => panic!("{other:?}"),
        }
        let high = podium("review.updated", json!({"rating": "5"}));
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &high, 5).action,
            Action::Review(ReviewEvent {
                class: ReviewClass::ThankYou,
                ..
            })
        ));
        let new_type = podium("payment.settled", json!({}));
        let i = interpret(Scheme::Podium, &Headers::new(), &new_type, 5);
        assert_eq!(i.event_type, "payment.settled");
        assert!(matches!(i.action, Action::Ignore { .. }));
        let failed = podium(
            "message.failed",
            json!({"uid": "m1", "channel": {"identifier": "+14155550123"}}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &failed, 5).action,
            Action::MessageFailed { .. }
        ));
        let invite = podium(
            "review.invite_link_updated",
            json!({"uid": "inv1", "deliveryStatus": "FAILED"}),
        );
        assert!(matches!(
            interpret(Scheme::Podium, &Headers::new(), &invite, 5).action,
            Action::InviteUpdated { ref status, .. } if status == "failed"
        ));
    }

    #[test]
    fn shopify_stripe_and_chatwoot() {
        let h = headers(&[
            ("X-Shopify-Topic", "orders/fulfilled"),
            ("X-Shopify-Shop-Domain", "shop.myshopify.com"),
        ]);
        assert!(matches!(
            interpret(Scheme::Shopify, &h, &json!({"id": 1}), 5).action,
            Action::Store { ref kind, .. } if kind == "shopify.orders_fulfilled"
        ));
        let h = headers(&[("X-Shopify-Topic", "orders/create")]);
        assert!(matches!(
            interpret(Scheme::Shopify, &h, &json!({}), 5).action,
            Action::Ignore { .. }
        ));
        assert!(matches!(
            interpret(
                Scheme::Stripe,
                &Headers::new(),
                &json!({"type": "checkout.session.completed"}),
                5
            )
            .action,
            Action::Store { .. }
        ));
        let msg = json!({
            "event": "message_created", "id": 9, "message_type": "incoming", "content": "Hi there",
            "account": {"id": 1},
            "conversation": {"id": 42, "additional_attributes": {"referer": "https://shop.example/sydney/"}},
            "sender": {"name": "Ann", "phone_number": "+61412345678"}
        });
        match interpret(Scheme::Chatwoot, &Headers::new(), &msg, 5).action {
            Action::Webchat { envelope } => {
                assert!(crate::envelope::is_uuid(
                    envelope["session_id"].as_str().unwrap()
                ));
                assert_eq!(
                    envelope["location"]["page_url"],
                    "https://shop.example/sydney/"
                );
                assert_eq!(envelope["contact"]["phone"], "+61412345678");
            }
            other => panic!("{other:?}"),
        }
        let outgoing =
            json!({"event": "message_created", "message_type": "outgoing", "content": "x"});
        assert!(matches!(
            interpret(Scheme::Chatwoot, &Headers::new(), &outgoing, 5).action,
            Action::Ignore { .. }
        ));
        // No phone in the message: the pipeline asks the conversation's session.
        let no_phone = json!({"event": "message_created", "message_type": 0, "content": "x", "conversation": {"id": 1}});
        match interpret(Scheme::Chatwoot, &Headers::new(), &no_phone, 5).action {
            Action::Webchat { envelope } => assert!(envelope["contact"].get("phone").is_none()),
            other => panic!("{other:?}"),
        }
        // conversation_created: the session remembers the contact's phone.
        let created = json!({"event": "conversation_created", "id": 42, "account": {"id": 1},
                             "meta": {"sender": {"name": "Ann", "phone_number": "+61412345678"}}});
        assert_eq!(
            interpret(Scheme::Chatwoot, &Headers::new(), &created, 5).action,
            Action::RememberPhone {
                session_id: chatwoot_session_id("1", "42"),
                phone: "+61412345678".into()
            }
        );
        let stripe_intent = json!({"id": "evt_2", "type": "payment_intent.succeeded",
                                   "data": {"object": {"id": "pi_1", "object": "payment_intent"}}});
        assert!(matches!(
            interpret(Scheme::Stripe, &Headers::new(), &stripe_intent, 5).action,
            Action::Store { kind, .. } if kind == "stripe.payment_succeeded"
        ));
        assert_eq!(
            chatwoot_session_id("1", "42"),
            chatwoot_session_id("1", "42")
        );
        let d1b = "d1b467d4-7eb6-448d-b21f-50578ebaf69b";
        assert_eq!(chat_session_id(d1b), d1b, "a UUID stays itself");
        assert!(crate::envelope::is_uuid(&chat_session_id("test-session")));
        assert_ne!(
            chat_session_id("test-session"),
            chat_session_id("user-session-123")
        );
        assert_eq!(
            chat_session_id("test-session"),
            chat_session_id("test-session")
        );
        assert_ne!(
            chatwoot_session_id("1", "42"),
            chatwoot_session_id("2", "42")
        );
    }
}
