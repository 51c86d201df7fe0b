//! The sandbox's in-memory world: seeds, settings, tokens, contacts, messages, review
//! invites, Shopify orders, the webhook target and what was emitted to it, the request log
//! and the queue of injected faults. One mutex, never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::util::{iso, now_ms};

/// Shared handle to the sandbox.
pub type Shared = Arc<Sandbox>;

/// How many request records are kept (oldest dropped first).
pub const MAX_REQUEST_RECORDS: usize = 10_000;
/// How many emitted-webhook records are kept (oldest dropped first).
pub const MAX_WEBHOOK_RECORDS: usize = 200;

/// A review invite's `deliveryStatus`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    #[default]
    Pending,
    Sent,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Tunables; set at start (CLI / config file), changeable at run time through
/// `POST /_sandbox/config`, restored by `POST /_sandbox/reset`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub token_ttl_secs: u64,
    /// Requests per minute per access token on `/v4/*`; 0 disables.
    pub rate_limit_per_minute: u32,
    /// Pause between the lookup and the insert of `POST /v4/contacts` (lock released).
    pub upsert_race_window_ms: u64,
    /// Issue a new refresh token on every refresh (the old one stays valid 60 s).
    pub rotate_refresh_tokens: bool,
    /// `deliveryStatus` of a newly created review invite.
    #[serde(default)]
    pub invite_initial_status: DeliveryStatus,
    /// Percentage (0–100) of `/v4/*` calls answered at random with one of `random_fault_statuses`
    /// *instead of* being processed (load tests: a flaky Podium that never half-does a
    /// call). 0 disables.
    #[serde(default)]
    pub random_fault_percent: u32,
    /// Statuses for random faults; a 429 comes without `Retry-After` half the time.
    #[serde(default)]
    pub random_fault_statuses: Vec<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 36_000,
            rate_limit_per_minute: 300,
            upsert_race_window_ms: 25,
            rotate_refresh_tokens: false,
            invite_initial_status: DeliveryStatus::Pending,
            random_fault_percent: 0,
            random_fault_statuses: Vec::new(),
        }
    }
}

/// A contact present at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedContact {
    #[serde(default)]
    pub uid: Option<String>,
    pub name: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub locations: Vec<String>,
    /// Start with the phone channel transactionally opted out.
    #[serde(default)]
    pub opted_out: bool,
}

/// What the sandbox starts with (and `reset` returns to).
#[derive(Debug, Clone)]
pub struct Seeds {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub locations: Vec<Value>,
    pub contacts: Vec<SeedContact>,
    /// Where webhooks go at start (and after a reset); `PUT /_sandbox/webhooks` changes it.
    pub webhook: Option<WebhookTarget>,
}

/// Where emitted webhooks are POSTed, and the secret that signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// An `http://` loopback URL (checked by [`crate::client::HttpUrl::parse`]).
    pub url: String,
    pub secret: String,
}

impl Default for Seeds {
    fn default() -> Self {
        Self {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            refresh_token: "sandbox-refresh-token".into(),
            locations: default_locations(),
            contacts: Vec::new(),
            webhook: None,
        }
    }
}

fn default_locations() -> Vec<Value> {
    vec![
        json!({
            "uid": "loc_sydney",
            "name": "Harbour & Bay — Sydney",
            "displayName": "Harbour & Bay — Sydney",
            "phoneNumber": "+61293744000",
            "addressDetails": {
                "addressLine1": "1 Harbour Street", "addressLine2": null, "city": "Sydney",
                "state": "NSW", "postalCode": "2000", "country": "AU"
            },
            "archived": false
        }),
        json!({
            "uid": "loc_burleigh",
            "name": "Harbour & Bay — Burleigh Heads",
            "displayName": "Harbour & Bay — Burleigh Heads",
            "phoneNumber": null,
            "addressDetails": {
                "addressLine1": "1 Goodwin Terrace", "addressLine2": null, "city": "Burleigh Heads",
                "state": "QLD", "postalCode": "4220", "country": "AU"
            },
            "archived": false
        }),
        json!({
            "uid": "loc_sanfrancisco",
            "name": "Harbour & Bay — San Francisco",
            "displayName": "Harbour & Bay — San Francisco",
            "phoneNumber": "+14155550100",
            "addressDetails": {
                "addressLine1": "1 Embarcadero Center", "addressLine2": null, "city": "San Francisco",
                "state": "CA", "postalCode": "94111", "country": "US"
            },
            "archived": false
        }),
    ]
}

/// A Podium contact.
#[derive(Debug, Clone)]
pub struct Contact {
    pub uid: String,
    pub name: String,
    pub phone: Option<String>,
    pub emails: Vec<String>,
    pub locations: Vec<String>,
    pub opted_out_at: Option<String>,
    pub marketing_opted_in: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Contact {
    pub fn new(
        uid: String,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
        locations: &[String],
    ) -> Self {
        let now = now_ms();
        let mut c = Self {
            uid,
            name: name.to_owned(),
            phone: phone.map(str::to_owned),
            emails: email.map(|e| vec![e.to_owned()]).unwrap_or_default(),
            locations: Vec::new(),
            opted_out_at: None,
            marketing_opted_in: Vec::new(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        c.merge_locations(locations);
        c
    }

    pub fn merge_locations(&mut self, locations: &[String]) {
        for l in locations {
            if !self.locations.contains(l) {
                self.locations.push(l.clone());
            }
        }
    }

    pub fn has_email(&self, email: &str) -> bool {
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(email))
    }

    /// The Podium JSON shape.
    pub fn to_json(&self) -> Value {
        let mut channels: Vec<Value> = Vec::new();
        if let Some(p) = &self.phone {
            channels.push(json!({
                "type": "phone",
                "identifier": p,
                "transactionalOptedOutAt": self.opted_out_at,
                "marketingOptedInLocationUids": self.marketing_opted_in,
            }));
        }
        for e in &self.emails {
            channels.push(json!({
                "type": "email",
                "identifier": e,
                "transactionalOptedOutAt": null,
                "marketingOptedInLocationUids": [],
            }));
        }
        json!({
            "uid": self.uid,
            "name": self.name,
            "phoneNumbers": self.phone.iter().collect::<Vec<_>>(),
            "emails": self.emails,
            "locations": self.locations,
            "channels": channels,
            "createdAt": iso(self.created_at_ms),
            "updatedAt": iso(self.updated_at_ms),
        })
    }
}

/// A Podium review invite.
#[derive(Debug, Clone)]
pub struct Invite {
    pub uid: String,
    pub location_uid: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `customerName`, `reviewSiteUid`, `platform` and any other string field, as given.
    pub fields: Map<String, Value>,
    pub delivery_status: DeliveryStatus,
    pub short_url: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Invite {
    /// The API shape: the caller's extra fields, then the server's (which win).
    pub fn to_json(&self) -> Value {
        let mut map = self.fields.clone();
        let fixed = json!({
            "uid": self.uid,
            "locationUid": self.location_uid,
            "phoneNumber": self.phone,
            "email": self.email,
            "deliveryStatus": self.delivery_status,
            "shortUrl": self.short_url,
            "createdAt": iso(self.created_at_ms),
            "updatedAt": iso(self.updated_at_ms),
        });
        if let Value::Object(f) = fixed {
            map.extend(f);
        }
        Value::Object(map)
    }
}

/// One injected response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultResponse {
    pub status: u16,
    /// Error code (string or integer); default by status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Retry-After` value (seconds as a number, or any string such as an HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Value>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// Replaces the whole error body when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Injected responses for requests matching `method` and `path`.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRule {
    /// Upper-case method, or `*` for any.
    pub method: String,
    /// Exact path, or a prefix when it ends with `*`.
    pub path: String,
    pub responses: VecDeque<FaultResponse>,
}

impl FaultRule {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method == "*" || self.method.eq_ignore_ascii_case(method);
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        method_ok && path_ok
    }
}

/// One recorded request (control routes under `/_sandbox` are not recorded).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub podium_version: Option<String>,
    pub authorized: bool,
    /// Answered (or delayed) by an injected fault.
    pub faulted: bool,
}

/// Mutable state.
#[derive(Debug, Default)]
pub struct Inner {
    pub settings: Settings,
    /// access token → expiry.
    pub tokens: HashMap<String, Instant>,
    /// refresh token → valid until (None = forever).
    pub refresh_tokens: HashMap<String, Option<Instant>>,
    pub contacts: Vec<Contact>,
    pub contact_creates: u64,
    pub messages: Vec<Value>,
    pub attachments: Vec<Value>,
    pub token_refreshes: u64,
    /// The refresh token each refresh presented, in order.
    pub refreshes_presented: Vec<String>,
    pub requests: VecDeque<RequestRecord>,
    pub faults: Vec<FaultRule>,
    pub alerts: Vec<Value>,
    pub hooks: Vec<Value>,
    pub invites: Vec<Invite>,
    /// Turnstile `siteverify` calls: `{secret_kind, success, error_codes, remoteip}` (the
    /// token and secret themselves are not kept).
    pub turnstile: Vec<Value>,
    /// Shopify orders (`{"id": …, …}` objects), in creation order.
    pub orders: Vec<Map<String, Value>>,
    pub webhook: Option<WebhookTarget>,
    /// The last [`MAX_WEBHOOK_RECORDS`] emitted webhooks with their answers.
    pub webhooks_sent: VecDeque<Value>,
    /// access token → instants of its requests in the last minute.
    pub rate: HashMap<String, VecDeque<Instant>>,
    pub next_seq: u64,
}

impl Inner {
    /// First-created contact with this phone.
    pub fn contact_by_phone(&self, phone: &str) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.phone.as_deref() == Some(phone))
    }

    pub fn contact_by_email(&self, email: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.has_email(email))
    }

    /// Contact uid, E.164 phone or e-mail.
    pub fn find_contact(&self, identifier: &str) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.uid == identifier)
            .or_else(|| self.contact_by_phone(identifier))
            .or_else(|| self.contact_by_email(identifier))
    }

    /// Pops the next injected response for this request, if any.
    /// A random fault for a `/v4/*` call, per `random_fault_percent`.
    pub fn random_fault(&self, path: &str) -> Option<FaultResponse> {
        let ratio = f64::from(self.settings.random_fault_percent.min(100)) / 100.0;
        if !path.starts_with("/v4/")
            || ratio <= 0.0
            || self.settings.random_fault_statuses.is_empty()
        {
            return None;
        }
        let roll = crate::util::random_unit();
        if roll >= ratio {
            return None;
        }
        let statuses = &self.settings.random_fault_statuses;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let pick = ((roll / ratio) * statuses.len() as f64) as usize;
        let status = *statuses.get(pick.min(statuses.len() - 1))?;
        let retry_after =
            (status == 429 && crate::util::random_unit() < 0.5).then(|| Value::from(1));
        Some(FaultResponse {
            status,
            code: None,
            message: Some(format!("random fault ({status})")),
            retry_after,
            delay_ms: 0,
            body: None,
        })
    }

    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultResponse> {
        let idx = self.faults.iter().position(|r| r.matches(method, path))?;
        let rule = self.faults.get_mut(idx)?;
        let resp = rule.responses.pop_front();
        if rule.responses.is_empty() {
            self.faults.remove(idx);
        }
        resp
    }

    pub fn invite(&self, uid: &str) -> Option<usize> {
        self.invites.iter().position(|i| i.uid == uid)
    }

    /// Index of the Shopify order whose `id` is written `id` (number or string).
    pub fn order(&self, id: &str) -> Option<usize> {
        self.orders.iter().position(|o| match o.get("id") {
            Some(Value::String(s)) => s == id,
            Some(Value::Number(n)) => n.to_string() == id,
            _ => false,
        })
    }

    pub fn record_webhook(&mut self, rec: Value) {
        while self.webhooks_sent.len() >= MAX_WEBHOOK_RECORDS {
            self.webhooks_sent.pop_front();
        }
        self.webhooks_sent.push_back(rec);
    }

    pub fn record(&mut self, rec: RequestRecord) {
        if self.requests.len() >= MAX_REQUEST_RECORDS {
            self.requests.pop_front();
        }
        self.requests.push_back(rec);
    }

    /// Counts a request against the token's per-minute budget; false when over it.
    pub fn rate_ok(&mut self, token: &str, now: Instant) -> bool {
        let limit = self.settings.rate_limit_per_minute;
        if limit == 0 {
            return true;
        }
        let window = self.rate.entry(token.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        true
    }
}

/// The sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub seeds: Seeds,
    /// Settings at start, restored by reset.
    pub initial_settings: Settings,
    inner: Mutex<Inner>,
}

impl Sandbox {
    pub fn new(seeds: Seeds, settings: Settings) -> Shared {
        let sb = Arc::new(Self {
            seeds,
            initial_settings: settings,
            inner: Mutex::new(Inner::default()),
        });
        sb.reset(true);
        sb
    }

    /// Locks the state (a poisoned lock is recovered: the data is plain values).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Back to seeds. Issued tokens survive unless `revoke_tokens`.
    pub fn reset(&self, revoke_tokens: bool) {
        let mut g = self.lock();
        let next_seq = g.next_seq;
        let (tokens, refresh) = if revoke_tokens {
            (HashMap::new(), HashMap::new())
        } else {
            (
                std::mem::take(&mut g.tokens),
                std::mem::take(&mut g.refresh_tokens),
            )
        };
        *g = Inner {
            settings: self.initial_settings.clone(),
            tokens,
            refresh_tokens: refresh,
            next_seq,
            webhook: self.seeds.webhook.clone(),
            ..Inner::default()
        };
        g.refresh_tokens
            .insert(self.seeds.refresh_token.clone(), None);
        let now = iso(now_ms());
        for s in &self.seeds.contacts {
            let uid = s.uid.clone().unwrap_or_else(crate::util::uuid);
            let mut c = Contact::new(
                uid,
                &s.name,
                s.phone_number.as_deref(),
                s.email.as_deref(),
                &s.locations,
            );
            if s.opted_out {
                c.opted_out_at = Some(now.clone());
            }
            g.contacts.push(c);
        }
    }

    pub fn location(&self, uid: &str) -> Option<&Value> {
        self.seeds
            .locations
            .iter()
            .find(|l| l.get("uid").and_then(Value::as_str) == Some(uid))
    }

    pub fn location_known(&self, uid: &str) -> bool {
        self.location(uid).is_some()
    }
}
