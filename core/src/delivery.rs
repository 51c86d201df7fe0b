//! Delivery decisions (F18): after an attempt to call Podium, retry when, or give up
//! why. Backoff is exponential with full jitter (the jitter value is passed in, so the
//! decision stays pure).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// First retry delay before jitter.
    pub base_ms: i64,
    /// Longest delay between attempts.
    pub max_delay_ms: i64,
    /// Attempts before a job is dead-lettered as undeliverable.
    pub max_attempts: u32,
    /// Without `Retry-After`, a 429 waits at least this long (Podium allows 300
    /// requests a minute; a fifth of the window is enough for it to recover).
    pub rate_limited_min_ms: i64,
    /// Cap on an upstream `Retry-After`.
    pub max_retry_after_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 1_000,
            max_delay_ms: 5 * 60 * 1000,
            max_attempts: 20,
            rate_limited_min_ms: 12_000,
            max_retry_after_ms: 60 * 60 * 1000,
        }
    }
}

/// What an attempt came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP answer (with `Retry-After` in ms if there was one, and Podium's error
    /// code and message for the dead-letter reason).
    Status {
        status: u16,
        retry_after_ms: Option<i64>,
        detail: String,
    },
    /// No answer in time.
    Timeout,
    /// Could not connect.
    Network(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum Next {
    Done,
    RetryAt { at_ms: i64, reason: String },
    DeadLetter { reason: String },
}

/// Decide after attempt number `attempts` (1 for the first), at `now_ms`, with
/// `jitter` uniformly drawn from `[0, 1)`.
pub fn next(
    policy: &RetryPolicy,
    attempts: u32,
    outcome: &Attempt,
    now_ms: i64,
    jitter: f64,
) -> Next {
    let backoff = || {
        let exp = policy
            .base_ms
            .saturating_mul(1_i64 << attempts.saturating_sub(1).min(30))
            .min(policy.max_delay_ms);
        // Full jitter, but never less than half the step, so retries still spread out.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let jittered = (exp as f64 * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as i64;
        jittered.max(1)
    };
    let (retryable, reason, floor) = match outcome {
        Attempt::Status { status, .. } if (200..300).contains(status) => return Next::Done,
        Attempt::Status {
            status: 429,
            retry_after_ms,
            detail,
        } => {
            let wait = retry_after_ms
                .map(|ra| ra.clamp(0, policy.max_retry_after_ms))
                .unwrap_or_else(|| backoff().max(policy.rate_limited_min_ms));
            if attempts >= policy.max_attempts {
                return Next::DeadLetter {
                    reason: format!("gave up after {attempts} attempts: 429 {detail}"),
                };
            }
            return Next::RetryAt {
                at_ms: now_ms.saturating_add(wait),
                reason: format!("429 {detail}"),
            };
        }
        // 401/403: our credentials, not the message; the caller refreshes the token.
        Attempt::Status {
            status,
            detail,
            retry_after_ms,
        } if matches!(status, 401 | 403 | 408 | 425) || *status >= 500 => (
            true,
            format!("{status} {detail}"),
            retry_after_ms.unwrap_or(0),
        ),
        Attempt::Status { status, detail, .. } => (false, format!("{status} {detail}"), 0),
        Attempt::Timeout => (true, "timed out".to_owned(), 0),
        Attempt::Network(e) => (true, format!("network: {e}"), 0),
    };
    if !retryable {
        return Next::DeadLetter { reason };
    }
    if attempts >= policy.max_attempts {
        return Next::DeadLetter {
            reason: format!("gave up after {attempts} attempts: {reason}"),
        };
    }
    Next::RetryAt {
        at_ms: now_ms.saturating_add(backoff().max(floor)),
        reason,
    }
}

/// Parse a `Retry-After` header: delta-seconds (HTTP-dates are not used by Podium and
/// are treated as absent).
pub fn retry_after_ms(header: Option<&str>) -> Option<i64> {
    let secs: f64 = header?.trim().parse().ok()?;
    #[allow(clippy::cast_possible_truncation)]
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).min(1e12) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after_ms: Option<i64>) -> Attempt {
        Attempt::Status {
            status,
            retry_after_ms,
            detail: "x".into(),
        }
    }

    #[test]
    fn success_is_done() {
        assert_eq!(
            next(&RetryPolicy::default(), 1, &status(202, None), 0, 0.5),
            Next::Done
        );
    }

    #[test]
    fn server_errors_back_off_exponentially_with_jitter() {
        let p = RetryPolicy::default();
        let at = |attempts, jitter| match next(&p, attempts, &status(500, None), 0, jitter) {
            Next::RetryAt { at_ms, .. } => at_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(1, 0.0), 500);
        assert_eq!(at(1, 0.999_999), 999);
        assert_eq!(at(2, 0.0), 1_000);
        assert_eq!(at(3, 0.0), 2_000);
        assert_eq!(at(15, 0.0), 150_000, "capped at max_delay_ms");
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            ..p
        };
        assert!(
            matches!(
                next(&huge, u32::MAX - 1, &status(500, None), 0, 0.0),
                Next::RetryAt { at_ms: 150_000, .. }
            ),
            "no overflow"
        );
        assert!(matches!(
            next(&p, 20, &status(503, None), 0, 0.0),
            Next::DeadLetter { .. }
        ));
        assert!(matches!(
            next(&p, 1, &Attempt::Timeout, 0, 0.0),
            Next::RetryAt { .. }
        ));
        assert!(matches!(
            next(&p, 1, &Attempt::Network("refused".into()), 0, 0.0),
            Next::RetryAt { .. }
        ));
        assert!(matches!(
            next(&p, 1, &status(401, None), 0, 0.0),
            Next::RetryAt { .. }
        ));
    }

    #[test]
    fn rate_limits() {
        let p = RetryPolicy::default();
        assert_eq!(
            next(&p, 1, &status(429, Some(2_000)), 100, 0.0),
            Next::RetryAt {
                at_ms: 2_100,
                reason: "429 x".into()
            }
        );
        match next(&p, 1, &status(429, None), 0, 0.0) {
            Next::RetryAt { at_ms, .. } => assert_eq!(at_ms, 12_000),
            other => panic!("{other:?}"),
        }
        match next(&p, 1, &status(429, Some(i64::MAX)), 0, 0.0) {
            Next::RetryAt { at_ms, .. } => assert_eq!(at_ms, p.max_retry_after_ms),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_errors_are_dead_lettered_with_the_reason() {
        let p = RetryPolicy::default();
        for s in [400, 404, 409, 413, 415, 422] {
            assert_eq!(
                next(&p, 1, &status(s, None), 0, 0.0),
                Next::DeadLetter {
                    reason: format!("{s} x")
                }
            );
        }
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(retry_after_ms(Some("2")), Some(2_000));
        assert_eq!(retry_after_ms(Some(" 1.5 ")), Some(1_500));
        assert_eq!(retry_after_ms(Some("-1")), None);
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after_ms(None), None);
    }
}
