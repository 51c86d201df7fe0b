//! Token buckets: per-IP and per-session limits at the edge, and pacing under Podium's
//! 300 requests a minute (with the slots an isolate's delivery runs hold, [`Permits`]).
//! Pure: the caller stores the bucket and passes the time.

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
        self.take_up_to(limit, now_ms, 1).map(|_| ())
    }

    /// Take as many whole tokens as are available, at most `want` (at least one is
    /// asked for): how many were taken, or `Err(wait_ms)` when not even one is there.
    /// A caller that takes several and uses fewer has spent them all: the bucket only
    /// ever errs towards fewer requests.
    pub fn take_up_to(&mut self, limit: &Limit, now_ms: i64, want: u32) -> Result<u32, i64> {
        let per_ms = f64::from(limit.per_minute) / 60_000.0;
        #[allow(clippy::cast_precision_loss)]
        let elapsed = now_ms.saturating_sub(self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(f64::from(limit.burst));
        self.updated_ms = self.updated_ms.max(now_ms);
        if self.tokens >= 1.0 {
            // `tokens` is at most `burst` (a u32), so the floor fits.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = self.tokens.floor() as u32;
            let taken = whole.min(want.max(1));
            self.tokens -= f64::from(taken);
            return Ok(taken);
        }
        if per_ms <= 0.0 {
            return Err(60_000);
        }
        #[allow(clippy::cast_possible_truncation)]
        let wait = ((1.0 - self.tokens) / per_ms).ceil() as i64;
        Err(wait.max(1))
    }

    /// [`Bucket::take_up_to`] `want`, then up to `spare` more for the caller's next runs,
    /// but only from what lies above half the burst: a spare slot is never one that a
    /// run elsewhere would otherwise have got while Podium's allowance is scarce.
    pub fn take_with_spare(
        &mut self,
        limit: &Limit,
        now_ms: i64,
        want: u32,
        spare: u32,
    ) -> Result<u32, i64> {
        let taken = self.take_up_to(limit, now_ms, want)?;
        let headroom = (self.tokens - f64::from(limit.burst) / 2.0).floor();
        if headroom < 1.0 {
            return Ok(taken);
        }
        // `headroom` is below `burst` (a u32), so it fits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let extra = (headroom as u32).min(spare);
        self.tokens -= f64::from(extra);
        Ok(taken.saturating_add(extra))
    }
}

/// Slots a delivery run asks for beyond its own (see [`Bucket::take_with_spare`]): they
/// stay in the isolate's [`Permits`] for the next runs there, so under load most runs
/// find a slot without a call to the token object.
pub const SPARE_PERMITS: u32 = 4;

/// How long slots from one grant may be spent: a delivery run's calls follow each other
/// within this, so Podium sees at most `burst + (elapsed + 2 s) × rate` requests in any
/// window.
pub const PERMIT_LIFETIME_MS: i64 = 2_000;

/// Request slots and the access token from grants of the shared bucket, spent by the
/// delivery runs of one isolate: a run asks once for the calls it expects (plus
/// [`SPARE_PERMITS`]) instead of once per call, and the runs after it spend what is left.
/// Slots are dropped after a 401, a 429 or an operator's token reset, and not spent once
/// older than [`PERMIT_LIFETIME_MS`]: they were taken from the bucket, so the pacing only
/// ever errs towards fewer requests.
#[derive(Debug, Default)]
pub struct Permits {
    access_token: Option<String>,
    left: u32,
    granted_ms: i64,
    /// Calls the run that asked last still expects to make after the current one (an
    /// estimate when runs overlap: it only sizes the next ask).
    expected: u32,
}

impl Permits {
    /// The run expects `calls` Podium calls from now.
    pub fn expect(&mut self, calls: u32) {
        self.expected = calls;
    }

    /// A call is about to be made: a slot (and the token) from the last grant, if one
    /// is left and still fresh; `None`: ask for a grant of [`Permits::want`] slots.
    pub fn spend(&mut self, now_ms: i64) -> Option<String> {
        self.expected = self.expected.saturating_sub(1);
        if self.left == 0 || now_ms.saturating_sub(self.granted_ms) > PERMIT_LIFETIME_MS {
            self.left = 0;
            return None;
        }
        self.left -= 1;
        self.access_token.clone()
    }

    /// How many slots to ask for: this call and the ones still expected.
    pub fn want(&self) -> u32 {
        self.expected.saturating_add(1)
    }

    /// A grant of `permits` slots came in; one of them is being spent now. Slots still
    /// held under the same token are kept, and keep the older grant time (two runs that
    /// asked at once lose nothing, and no slot outlives its lifetime).
    pub fn granted(&mut self, access_token: &str, permits: u32, now_ms: i64) {
        let fresh = self.left > 0
            && now_ms.saturating_sub(self.granted_ms) <= PERMIT_LIFETIME_MS
            && self.access_token.as_deref() == Some(access_token);
        if fresh {
            self.left = self.left.saturating_add(permits.saturating_sub(1));
            return;
        }
        self.access_token = Some(access_token.to_owned());
        self.left = permits.saturating_sub(1);
        self.granted_ms = now_ms;
    }

    /// Drop what is left (Podium answered 401 or 429).
    pub fn drop_all(&mut self) {
        self.access_token = None;
        self.left = 0;
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
    fn several_at_once_never_more_than_the_bucket_holds() {
        let limit = Limit {
            burst: 5,
            per_minute: 60,
        };
        let mut b = Bucket::full(&limit, 0);
        assert_eq!(b.take_up_to(&limit, 0, 3), Ok(3));
        // Two left: a wish for four gets two, then nothing until the refill.
        assert_eq!(b.take_up_to(&limit, 0, 4), Ok(2));
        assert_eq!(b.take_up_to(&limit, 0, 4), Err(1_000));
        // Half a second refills half a token: still not one.
        assert_eq!(b.take_up_to(&limit, 500, 2), Err(500));
        assert_eq!(b.take_up_to(&limit, 2_500, 9), Ok(2));
        // Zero is read as one: a grant is never empty.
        assert_eq!(b.take_up_to(&limit, 10_000, 0), Ok(1));
        assert!((b.tokens - 4.0).abs() < 1e-9);
    }

    #[test]
    fn permits_one_ask_per_run_then_spent_in_order() {
        let mut p = Permits::default();
        // Nothing expected (a review invite): ask for one.
        assert_eq!(p.spend(0), None);
        assert_eq!(p.want(), 1);
        p.granted("t1", 1, 0);
        assert_eq!(p.spend(10), None);

        // A new phone: lookup, create, chat, confirmation: one ask for four.
        let mut p = Permits::default();
        p.expect(4);
        assert_eq!(p.spend(0), None);
        assert_eq!(p.want(), 4);
        p.granted("t1", 4, 0);
        assert_eq!(p.spend(5).as_deref(), Some("t1"));
        assert_eq!(p.spend(6).as_deref(), Some("t1"));
        assert_eq!(p.spend(7).as_deref(), Some("t1"));
        // An unexpected fifth call asks again, for one.
        assert_eq!(p.spend(8), None);
        assert_eq!(p.want(), 1);
    }

    #[test]
    fn permits_partial_grants_stale_slots_and_errors_ask_again() {
        let mut p = Permits::default();
        p.expect(4);
        assert_eq!(p.spend(0), None);
        // The bucket had two: the third call asks for the two still expected.
        p.granted("t1", 2, 0);
        assert_eq!(p.spend(1).as_deref(), Some("t1"));
        assert_eq!(p.spend(2), None);
        assert_eq!(p.want(), 2);
        p.granted("t2", 2, 2);
        // Slots older than the lifetime are not spent (a run stalled on a timeout).
        assert_eq!(p.spend(2 + PERMIT_LIFETIME_MS + 1), None);
        // A 401 or a 429 drops the slots and the token.
        p.granted("t3", 3, 10_000);
        p.drop_all();
        assert_eq!(p.spend(10_001), None);
    }

    #[test]
    fn spare_slots_only_from_above_half_the_burst() {
        let limit = Limit {
            burst: 30,
            per_minute: 300,
        };
        // A full bucket: the run's one, and the four spares.
        let mut b = Bucket::full(&limit, 0);
        assert_eq!(b.take_with_spare(&limit, 0, 1, SPARE_PERMITS), Ok(5));
        assert!((b.tokens - 25.0).abs() < 1e-9);
        // Down to 17: the run's one, then one spare above half (15), no more.
        b.tokens = 17.0;
        assert_eq!(b.take_with_spare(&limit, 0, 1, SPARE_PERMITS), Ok(2));
        assert!((b.tokens - 15.0).abs() < 1e-9);
        // At or below half: the run gets what it asks for (or what there is), no spare.
        assert_eq!(b.take_with_spare(&limit, 0, 3, SPARE_PERMITS), Ok(3));
        b.tokens = 2.0;
        assert_eq!(b.take_with_spare(&limit, 0, 4, SPARE_PERMITS), Ok(2));
        assert_eq!(b.take_with_spare(&limit, 0, 1, SPARE_PERMITS), Err(200));
        // A burst of one (a tight allowance) never gives a spare.
        let tight = Limit {
            burst: 1,
            per_minute: 6,
        };
        let mut b = Bucket::full(&tight, 0);
        assert_eq!(b.take_with_spare(&tight, 0, 1, SPARE_PERMITS), Ok(1));
    }

    #[test]
    fn permits_shared_by_runs_keep_concurrent_grants_and_their_age() {
        let mut p = Permits::default();
        p.expect(1);
        assert_eq!(p.spend(0), None);
        p.granted("t1", 5, 0);
        // A second run asked at the same time; its grant adds to the first's.
        p.granted("t1", 5, 100);
        let spent = (0..8).filter(|i| p.spend(200 + i).is_some()).count();
        assert_eq!(spent, 8);
        assert_eq!(p.spend(300), None);
        // The added slots keep the first grant's time: none outlives its lifetime.
        p.granted("t1", 3, 1_000);
        p.granted("t1", 3, 2_500);
        assert_eq!(p.spend(1_000 + PERMIT_LIFETIME_MS + 1), None);
        // A grant under another token (refreshed after a 401) replaces the old slots.
        p.granted("t2", 3, 10_000);
        p.granted("t3", 2, 10_001);
        assert_eq!(p.spend(10_002).as_deref(), Some("t3"));
        assert_eq!(p.spend(10_003), None);
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
