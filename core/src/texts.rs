//! Automatic texts (F6, F17): the texts anonymous webchat input can make the gateway
//! send to a phone (today the confirmation after a chat), and every bound on them.
//!
//! Anyone can type any number into a chat box, from a script and many IPs: each
//! automatic text costs the merchant money and reaches a stranger's phone (SMS
//! pumping). So an automatic text is only ever sent when *all* of these hold:
//! - the request is trusted: a browser on an allowed origin (and, when Turnstile is
//!   configured, with a valid token) — scripts are served but never trigger texts;
//! - the number's country is allowed for the store (default: the store's own region);
//! - the phone got no automatic text within the window (default 24 h), decided inside
//!   the phone's own Durable Object so two concurrent requests cannot both pass;
//! - the phone is not opted out, read immediately before the send;
//! - the circuit breaker for the number's country calling code is closed: a spike of
//!   automatic texts to one country stops them and raises an alert.
//!
//! Any future automatic text goes through [`decide`] and the breaker the same way.

use serde::{Deserialize, Serialize};

/// The bounds on automatic texts (config `auto_texts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoTextPolicy {
    /// At most one automatic text per phone within this window.
    pub per_phone_window_ms: i64,
    /// The circuit breaker per country calling code.
    pub breaker: BreakerPolicy,
}

impl Default for AutoTextPolicy {
    fn default() -> Self {
        AutoTextPolicy {
            per_phone_window_ms: 24 * 60 * 60 * 1000,
            breaker: BreakerPolicy::default(),
        }
    }
}

/// When automatic texts to one country calling code spike above `max_per_window` within
/// `window_ms`, the breaker opens: no automatic text to that code for `open_ms`, an
/// alert and a counter record the trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    pub max_per_window: u32,
    pub window_ms: i64,
    pub open_ms: i64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            max_per_window: 60,
            window_ms: 10 * 60 * 1000,
            open_ms: 60 * 60 * 1000,
        }
    }
}

impl AutoTextPolicy {
    pub fn validated(self) -> Result<Self, String> {
        let b = &self.breaker;
        if self.per_phone_window_ms < 0 {
            return Err("auto_texts.per_phone_window_ms must not be negative".into());
        }
        if b.max_per_window == 0 || b.window_ms <= 0 || b.open_ms <= 0 {
            return Err(
                "auto_texts.breaker: max_per_window, window_ms and open_ms must be positive".into(),
            );
        }
        Ok(self)
    }
}

/// Why an automatic text was not queued (or not sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Skip {
    #[error("no automatic text is configured")]
    NotConfigured,
    #[error("the request did not come from a verified browser on an allowed origin")]
    Untrusted,
    #[error("automatic texts to numbers from {region} are not allowed for this store")]
    CountryNotAllowed { region: String },
    #[error("this phone already got an automatic text at {last_ms}")]
    WindowActive { last_ms: i64 },
    #[error("the phone is opted out")]
    OptedOut,
    #[error("not the first message of a conversation")]
    MidConversation,
    #[error("automatic texts to +{calling_code} are paused until {until_ms} (breaker open)")]
    BreakerOpen { calling_code: String, until_ms: i64 },
}

impl Skip {
    /// Stable machine code (counters: `auto_text_skipped:<code>`).
    pub fn code(&self) -> &'static str {
        match self {
            Skip::NotConfigured => "not_configured",
            Skip::Untrusted => "untrusted",
            Skip::CountryNotAllowed { .. } => "country_not_allowed",
            Skip::WindowActive { .. } => "window_active",
            Skip::OptedOut => "opted_out",
            Skip::MidConversation => "mid_conversation",
            Skip::BreakerOpen { .. } => "breaker_open",
        }
    }
}

/// Everything the phone's object knows when a chat arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// A verified browser on an allowed origin (see the module docs).
    pub trusted: bool,
    /// The phone's region (ISO alpha-2), if the metadata knows it.
    pub phone_region: Option<&'a str>,
    /// Regions the store may text automatically.
    pub allowed_regions: &'a [String],
    /// When this phone last got an automatic text (any store).
    pub last_auto_text_ms: Option<i64>,
    pub opted_out: bool,
    pub now_ms: i64,
}

/// Whether to queue an automatic text now. The caller records `now_ms` as the phone's
/// last automatic text when this says yes (the window counts from the decision, so a
/// concurrent second request sees it at once).
pub fn decide(policy: &AutoTextPolicy, request: &Request<'_>) -> Result<(), Skip> {
    if !request.trusted {
        return Err(Skip::Untrusted);
    }
    let region = request.phone_region.unwrap_or("unknown");
    if !request
        .allowed_regions
        .iter()
        .any(|r| r.eq_ignore_ascii_case(region))
    {
        return Err(Skip::CountryNotAllowed {
            region: region.to_owned(),
        });
    }
    if let Some(last_ms) = request.last_auto_text_ms {
        if request.now_ms.saturating_sub(last_ms) < policy.per_phone_window_ms {
            return Err(Skip::WindowActive { last_ms });
        }
    }
    if request.opted_out {
        return Err(Skip::OptedOut);
    }
    Ok(())
}

/// The breaker's state for one country calling code (kept by its own object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub window_start_ms: i64,
    pub count: u32,
    /// Open (no automatic texts) until this time.
    pub open_until_ms: Option<i64>,
    /// Texts refused while open, in the current trip.
    pub refused: u32,
    /// How many times it opened.
    pub trips: u32,
}

/// The breaker's answer to "may one more automatic text go out now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum BreakerVerdict {
    Allowed,
    /// This request crossed the threshold: the breaker opened now (raise the alert once).
    Tripped {
        until_ms: i64,
    },
    /// Already open.
    Open {
        until_ms: i64,
    },
}

impl Breaker {
    pub fn take(&mut self, policy: &BreakerPolicy, now_ms: i64) -> BreakerVerdict {
        if let Some(until_ms) = self.open_until_ms {
            if now_ms < until_ms {
                self.refused = self.refused.saturating_add(1);
                return BreakerVerdict::Open { until_ms };
            }
            self.open_until_ms = None;
            self.window_start_ms = now_ms;
            self.count = 0;
            self.refused = 0;
        }
        if now_ms.saturating_sub(self.window_start_ms) >= policy.window_ms {
            self.window_start_ms = now_ms;
            self.count = 0;
        }
        if self.count >= policy.max_per_window {
            let until_ms = now_ms.saturating_add(policy.open_ms);
            self.open_until_ms = Some(until_ms);
            self.trips = self.trips.saturating_add(1);
            self.refused = 1;
            return BreakerVerdict::Tripped { until_ms };
        }
        self.count += 1;
        BreakerVerdict::Allowed
    }

    /// When the object may forget this state (nothing open, window over).
    pub fn idle_after_ms(&self, policy: &BreakerPolicy) -> i64 {
        self.open_until_ms
            .unwrap_or(0)
            .max(self.window_start_ms.saturating_add(policy.window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(trusted: bool, region: Option<&'static str>, last: Option<i64>) -> Request<'static> {
        Request {
            trusted,
            phone_region: region,
            allowed_regions: &[],
            last_auto_text_ms: last,
            opted_out: false,
            now_ms: 100_000_000,
        }
    }

    #[test]
    fn every_bound_is_checked() {
        let policy = AutoTextPolicy::default();
        let au = vec!["AU".to_owned()];
        let with = |r: Request<'static>| Request {
            allowed_regions: &au,
            ..r
        };
        assert_eq!(
            decide(&policy, &with(request(true, Some("AU"), None))),
            Ok(())
        );
        assert_eq!(
            decide(&policy, &with(request(false, Some("AU"), None))),
            Err(Skip::Untrusted)
        );
        assert_eq!(
            decide(&policy, &with(request(true, Some("GB"), None))),
            Err(Skip::CountryNotAllowed {
                region: "GB".into()
            })
        );
        assert_eq!(
            decide(&policy, &with(request(true, None, None))).map_err(|e| e.code()),
            Err("country_not_allowed")
        );
        let recent = 100_000_000 - 1_000;
        assert_eq!(
            decide(&policy, &with(request(true, Some("AU"), Some(recent)))),
            Err(Skip::WindowActive { last_ms: recent })
        );
        let old = 100_000_000 - policy.per_phone_window_ms;
        assert_eq!(
            decide(&policy, &with(request(true, Some("au"), Some(old)))),
            Ok(()),
            "the window has passed (and regions compare without case)"
        );
        let opted = Request {
            opted_out: true,
            ..with(request(true, Some("AU"), None))
        };
        assert_eq!(decide(&policy, &opted), Err(Skip::OptedOut));
        assert_eq!(
            decide(&policy, &request(true, Some("AU"), None)),
            Err(Skip::CountryNotAllowed {
                region: "AU".into()
            }),
            "an empty allow-list allows nothing"
        );
    }

    #[test]
    fn breaker_trips_once_then_refuses_until_it_closes() {
        let p = BreakerPolicy {
            max_per_window: 3,
            window_ms: 1_000,
            open_ms: 5_000,
        };
        let mut b = Breaker::default();
        for t in [0, 10, 20] {
            assert_eq!(b.take(&p, t), BreakerVerdict::Allowed);
        }
        assert_eq!(b.take(&p, 30), BreakerVerdict::Tripped { until_ms: 5_030 });
        assert_eq!(b.take(&p, 40), BreakerVerdict::Open { until_ms: 5_030 });
        assert_eq!((b.trips, b.refused), (1, 2));
        // Closed again after open_ms, with a fresh window.
        assert_eq!(b.take(&p, 5_030), BreakerVerdict::Allowed);
        assert_eq!(b.count, 1);
        // A new window resets the count without tripping.
        let mut b = Breaker::default();
        for t in [0, 10, 20, 1_500, 1_510, 1_520] {
            assert_eq!(b.take(&p, t), BreakerVerdict::Allowed, "{t}");
        }
        assert_eq!(b.trips, 0);
    }

    #[test]
    fn policy_checks() {
        assert!(AutoTextPolicy::default().validated().is_ok());
        let bad = AutoTextPolicy {
            breaker: BreakerPolicy {
                max_per_window: 0,
                ..BreakerPolicy::default()
            },
            ..AutoTextPolicy::default()
        };
        assert!(bad.validated().is_err());
    }
}
