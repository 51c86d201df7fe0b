//! Token buckets: per-IP and per-session limits at the edge, and pacing under Podium's
//! 300 requests a minute. Pure: the caller stores the bucket and passes the time.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests allowed in a burst.
    pub burst: u32,
    /// Sustained requests per minute.
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tokens available, fractional.
    pub tokens: f64,
    pub updated_ms: i64,
}

impl Bucket {
    pub fn full(limit: &Limit, now_ms: i64) -> Self {
        Bucket {
            tokens: f64::from(limit.burst),
            updated_ms: now_ms,
        }
    }

    /// Take one token. `Err(wait_ms)` when empty: how long until one is available.
    pub fn take(&mut self, limit: &Limit, now_ms: i64) -> Result<(), i64> {
        let per_ms = f64::from(limit.per_minute) / 60_000.0;
        #[allow(clippy::cast_precision_loss)]
        let elapsed = now_ms.saturating_sub(self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(f64::from(limit.burst));
        self.updated_ms = self.updated_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if per_ms <= 0.0 {
            return Err(60_000);
        }
        #[allow(clippy::cast_possible_truncation)]
        let wait = ((1.0 - self.tokens) / per_ms).ceil() as i64;
        Err(wait.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limit = Limit {
            burst: 3,
            per_minute: 60,
        };
        let mut b = Bucket::full(&limit, 0);
        assert!(b.take(&limit, 0).is_ok());
        assert!(b.take(&limit, 0).is_ok());
        assert!(b.take(&limit, 0).is_ok());
        assert_eq!(b.take(&limit, 0), Err(1_000));
        assert_eq!(b.take(&limit, 500), Err(500));
        assert!(b.take(&limit, 1_000).is_ok());
        // Refill never exceeds the burst.
        assert!(b.take(&limit, 1_000_000).is_ok());
        assert!((b.tokens - 2.0).abs() < 1e-9);
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let limit = Limit {
            burst: 1,
            per_minute: 60,
        };
        let mut b = Bucket::full(&limit, 10_000);
        assert!(b.take(&limit, 10_000).is_ok());
        assert!(b.take(&limit, 5_000).is_err());
        let zero = Limit {
            burst: 0,
            per_minute: 0,
        };
        assert_eq!(Bucket::full(&zero, 0).take(&zero, 0), Err(60_000));
    }
}
