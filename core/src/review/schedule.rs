//! One phone's review requests (F7–F9, F12): the cooldown, what is scheduled and why
//! things were skipped, the fire-time steps, and each invite's `sent → delivered |
//! failed` with the cooldown rolled back when the customer never got it. Pure state
//! transitions: the per-phone Durable Object loads this, calls one method, stores it.

use serde::{Deserialize, Serialize};

use super::candidate::{Candidate, Source, UNREVIEWABLE_STATUSES};
use super::config::Timing;

/// Requests kept per phone (finished ones beyond this are dropped, oldest first).
pub const MAX_REQUESTS: usize = 50;

/// How long after `mark_sending` the alarm stays armed for a request still `Sending`:
/// if the run dies mid-call (isolate evicted, runtime killed), the next run finds it,
/// marks it unknown and escalates it (never re-sends). Longer than an invite call takes
/// (a token refresh and two Podium calls within their timeouts); alarms of one object
/// never overlap, so a normal run always settles the request first.
pub const SENDING_GRACE_MS: i64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for its alarm (fulfilment + refund buffer).
    Scheduled,
    /// The invite call is in flight (persisted before calling, so a second alarm run
    /// never sends it again).
    Sending,
    /// Podium accepted the invite; delivery not yet confirmed.
    Sent,
    Delivered,
    /// The invite was refused or its delivery failed.
    Failed,
    Skipped,
    Cancelled,
    /// The send was interrupted or could not be verified: Podium may or may not have
    /// it. Never re-sent automatically (a duplicate would embarrass); escalated instead.
    Unknown,
    /// Podium answered 5xx or not at all: the invite may exist. Before anything is sent
    /// again, Podium's invites for the phone are read (at `fire_at_ms`): one found is
    /// the invite; none means it may be sent again.
    Verifying,
}

impl RequestState {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RequestState::Scheduled | RequestState::Sending | RequestState::Verifying
        )
    }
}

/// Reads of Podium's invites after an uncertain send, before giving up as `Unknown`.
pub const MAX_VERIFY_READS: u32 = 5;

/// Why something did not (or will not) happen: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

impl Reason {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Reason {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub uid: String,
    pub sent_ms: i64,
    /// Podium's `deliveryStatus`: pending, sent, delivered, failed.
    pub status: String,
    pub status_ms: i64,
    /// When to read the invite if no webhook has resolved it.
    pub check_at_ms: i64,
    /// Unresolved past the deadline and reported to the alert URL.
    pub escalated: bool,
    /// The review it led to, when Podium tells us (`review.created`).
    #[serde(default)]
    pub review_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRequest {
    pub id: String,
    pub candidate: Candidate,
    pub timing: Timing,
    pub state: RequestState,
    pub created_ms: i64,
    pub fire_at_ms: i64,
    pub updated_ms: i64,
    pub reason: Option<Reason>,
    pub platform: Option<String>,
    pub platform_reason: Option<String>,
    pub invite: Option<Invite>,
    /// Invite calls made so far (the retry policy's attempt number).
    #[serde(default)]
    pub attempts: u32,
    /// When the last invite call began (an invite Podium created since is ours).
    #[serde(default)]
    pub send_started_ms: Option<i64>,
    /// Reads of Podium's invites made while verifying.
    #[serde(default)]
    pub verify_reads: u32,
}

/// A phone flagged after an invite failed (the carrier refused, wrong number, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub reason: String,
    pub at_ms: i64,
    pub invite_uid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneReviews {
    pub cooldown_until_ms: Option<i64>,
    /// The cooldown before the last invite set it: restored if that invite fails.
    pub cooldown_before_ms: Option<i64>,
    pub cooldown_invite: Option<String>,
    /// Oldest first.
    pub requests: Vec<ReviewRequest>,
    pub flag: Option<Flag>,
}

/// The order as the Shopify Admin API shows it at fire time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
pub enum OrderCheck {
    Found {
        financial_status: Option<String>,
        cancelled: bool,
    },
    NotFound,
    /// Shopify could not be asked (down, timeout): try again later.
    Unavailable {
        detail: String,
    },
    /// Not a Shopify order (Stripe): nothing to re-check.
    NotApplicable,
}

/// What the alarm should do next for a due request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Fire {
    /// Not due, already handled (a repeated alarm), or gone.
    Nothing,
    /// Skipped now, with the reason (recorded).
    Skipped { reason: Reason },
    /// Gates passed: re-check the order (Shopify) and continue with `after_order`.
    CheckOrder,
    /// A previous run stopped mid-send: marked unknown, not re-sent.
    Interrupted,
    /// An uncertain send is due to be verified: read Podium's invites for the phone and
    /// continue with `verified`.
    Verify,
}

/// What reading Podium's invites after an uncertain send decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verified {
    /// The invite exists: recorded as sent.
    Found,
    /// None exists: the request is scheduled again (a later alarm sends it).
    Retry,
    /// The retry policy is used up: failed (escalate).
    GaveUp,
    /// Podium could not be read again and again: unknown (escalate, never re-sent).
    Unreadable,
    /// Read failed: read again later.
    ReadLater,
    /// Nothing to verify (changed meanwhile).
    Nothing,
}

impl PhoneReviews {
    fn find(&mut self, id: &str) -> Option<&mut ReviewRequest> {
        self.requests.iter_mut().find(|r| r.id == id)
    }

    pub fn get(&self, id: &str) -> Option<&ReviewRequest> {
        self.requests.iter().find(|r| r.id == id)
    }

    /// Milliseconds of cooldown left at `now`, if any.
    pub fn cooldown_remaining(&self, now_ms: i64) -> Option<i64> {
        self.cooldown_until_ms
            .filter(|until| *until > now_ms)
            .map(|until| until - now_ms)
    }

    fn gate(&self, opted_out: bool, now_ms: i64) -> Result<(), Reason> {
        if opted_out {
            return Err(Reason::new(
                "opted_out",
                "the phone is opted out (one record for every flow)",
            ));
        }
        if let Some(left) = self.cooldown_remaining(now_ms) {
            return Err(Reason::new(
                "cooldown",
                format!(
                    "a review request went to this phone recently; cooldown ends in {} s",
                    left / 1000
                ),
            ));
        }
        Ok(())
    }

    fn push(&mut self, request: ReviewRequest) {
        self.requests.push(request);
        while self.requests.len() > MAX_REQUESTS {
            // Drop the oldest finished request; open ones are never dropped.
            match self.requests.iter().position(|r| !r.state.is_open()) {
                Some(i) => {
                    self.requests.remove(i);
                }
                None => break,
            }
        }
    }

    /// A trigger arrives (F7, F12): gate on opt-out and cooldown, one open request per
    /// phone, one request per order. The request is recorded either way (scheduled or
    /// skipped with its reason); returns it.
    pub fn schedule(
        &mut self,
        id: &str,
        candidate: Candidate,
        timing: Timing,
        opted_out: bool,
        now_ms: i64,
    ) -> ReviewRequest {
        let same_order = self.requests.iter().find(|r| {
            r.candidate.source == candidate.source
                && r.candidate.order_id == candidate.order_id
                && r.state != RequestState::Skipped
        });
        let open = self.requests.iter().find(|r| r.state.is_open());
        let verdict = if let Some(r) = same_order {
            Err(Reason::new(
                "duplicate_order",
                format!("order {} already has request {}", candidate.order_id, r.id),
            ))
        } else if let Some(r) = open {
            Err(Reason::new(
                "already_scheduled",
                format!("request {} is already scheduled for this phone", r.id),
            ))
        } else {
            self.gate(opted_out, now_ms)
        };
        let fire_at_ms = candidate
            .fulfilled_at_ms
            .saturating_add(timing.refund_buffer_ms)
            .max(now_ms);
        let (state, reason) = match verdict {
            Ok(()) => (RequestState::Scheduled, None),
            Err(reason) => (RequestState::Skipped, Some(reason)),
        };
        let request = ReviewRequest {
            id: id.to_owned(),
            candidate,
            timing,
            state,
            created_ms: now_ms,
            fire_at_ms,
            updated_ms: now_ms,
            reason,
            platform: None,
            platform_reason: None,
            invite: None,
            attempts: 0,
            send_started_ms: None,
            verify_reads: 0,
        };
        self.push(request.clone());
        request
    }

    /// The alarm reaches a request: opt-out and cooldown again (F12). At-least-once
    /// alarms: anything not `Scheduled` (or not yet due) is left alone.
    pub fn begin_fire(&mut self, id: &str, opted_out: bool, now_ms: i64) -> Fire {
        let gate = self.gate(opted_out, now_ms);
        let Some(r) = self.find(id) else {
            return Fire::Nothing;
        };
        match r.state {
            RequestState::Sending => {
                r.state = RequestState::Unknown;
                r.updated_ms = now_ms;
                r.reason = Some(Reason::new(
                    "interrupted",
                    "the send was interrupted; Podium may have the invite, so it is not sent again",
                ));
                let timing = r.timing;
                self.hold_cooldown(timing, now_ms);
                return Fire::Interrupted;
            }
            RequestState::Verifying if r.fire_at_ms <= now_ms => return Fire::Verify,
            RequestState::Scheduled if r.fire_at_ms <= now_ms => {}
            _ => return Fire::Nothing,
        }
        match gate {
            Ok(()) => Fire::CheckOrder,
            Err(reason) => {
                r.state = RequestState::Skipped;
                r.updated_ms = now_ms;
                r.reason = Some(reason.clone());
                Fire::Skipped { reason }
            }
        }
    }

    /// The order re-check (F8). `Ok(())`: go ahead and send. `Err(Some(reason))`: skipped.
    /// `Err(None)`: Shopify couldn't be asked; the request is pushed back by `retry_ms`.
    pub fn after_order(
        &mut self,
        id: &str,
        check: &OrderCheck,
        retry_ms: i64,
        now_ms: i64,
    ) -> Result<(), Option<Reason>> {
        let Some(r) = self.find(id) else {
            return Err(Some(Reason::new("gone", "no such request")));
        };
        // Cancelled (or otherwise settled) while the order was being read: leave it.
        if r.state != RequestState::Scheduled {
            return Err(Some(Reason::new(
                "not_scheduled",
                "the request changed while the order was re-checked",
            )));
        }
        let skip = match check {
            OrderCheck::NotApplicable => None,
            OrderCheck::Found {
                cancelled: true, ..
            } => Some(Reason::new("cancelled", "the order was cancelled")),
            OrderCheck::Found {
                financial_status: Some(status),
                ..
            } if UNREVIEWABLE_STATUSES.contains(&status.as_str()) => {
                Some(Reason::new(status, format!("the order is {status}")))
            }
            OrderCheck::Found { .. } => None,
            OrderCheck::NotFound => Some(Reason::new(
                "order_not_found",
                "the order no longer exists in Shopify",
            )),
            OrderCheck::Unavailable { .. } => {
                r.fire_at_ms = now_ms.saturating_add(retry_ms.max(1_000));
                r.updated_ms = now_ms;
                return Err(None);
            }
        };
        match skip {
            Some(reason) => {
                r.state = RequestState::Skipped;
                r.updated_ms = now_ms;
                r.reason = Some(reason.clone());
                Err(Some(reason))
            }
            None => Ok(()),
        }
    }

    /// About to call Podium: persisted before the call. Returns the attempt number of
    /// this call (1 for the first), for the retry policy.
    pub fn mark_sending(&mut self, id: &str, platform: &str, why: &str, now_ms: i64) -> u32 {
        let Some(r) = self.find(id) else { return 0 };
        r.state = RequestState::Sending;
        r.platform = Some(platform.to_owned());
        r.platform_reason = Some(why.to_owned());
        r.updated_ms = now_ms;
        r.attempts = r.attempts.saturating_add(1);
        r.send_started_ms = Some(now_ms);
        r.attempts
    }

    /// Podium answered 5xx or not at all: the invite may exist (F7, never re-POSTed
    /// blindly). The cooldown holds; Podium's invites are read at `verify_at_ms`.
    pub fn uncertain(&mut self, id: &str, detail: &str, verify_at_ms: i64, now_ms: i64) {
        let Some(r) = self.find(id) else { return };
        r.state = RequestState::Verifying;
        r.reason = Some(Reason::new("verifying", detail));
        r.fire_at_ms = verify_at_ms;
        r.updated_ms = now_ms;
        r.verify_reads = 0;
        let timing = r.timing;
        self.hold_cooldown(timing, now_ms);
    }

    /// The read of Podium's invites for this phone after an uncertain send.
    /// `found`: an invite Podium created for this phone and location since the send
    /// began (uid, delivery status); `read_ok`: whether the read itself worked;
    /// `retry_at`: when to send again if none exists (`None`: the retry policy is used
    /// up).
    pub fn verified(
        &mut self,
        id: &str,
        read_ok: bool,
        found: Option<(&str, &str)>,
        retry_at: Option<i64>,
        read_again_at: i64,
        now_ms: i64,
    ) -> Verified {
        let Some(r) = self.find(id) else {
            return Verified::Nothing;
        };
        if r.state != RequestState::Verifying {
            return Verified::Nothing;
        }
        if !read_ok {
            r.verify_reads = r.verify_reads.saturating_add(1);
            if r.verify_reads >= MAX_VERIFY_READS {
                r.state = RequestState::Unknown;
                r.reason = Some(Reason::new(
                    "unverifiable",
                    "Podium answered the invite call with an error and its invites could not be read afterwards; not sent again",
                ));
                r.updated_ms = now_ms;
                return Verified::Unreadable;
            }
            r.fire_at_ms = read_again_at;
            r.updated_ms = now_ms;
            return Verified::ReadLater;
        }
        if let Some((uid, status)) = found {
            // The invite went out after all: as if Podium had answered 2xx (the
            // cooldown held since the send restarts from now, with the earlier one kept
            // to roll back to if the invite's delivery fails).
            let restore = self.cooldown_before_ms;
            self.cooldown_until_ms = restore;
            self.sent(id, uid, status, now_ms);
            return Verified::Found;
        }
        // Nothing reached Podium: give the held cooldown back, then send again (or stop).
        self.cooldown_until_ms = self.cooldown_before_ms;
        let Some(r) = self.find(id) else {
            return Verified::Nothing;
        };
        match retry_at {
            Some(at) => {
                r.state = RequestState::Scheduled;
                r.fire_at_ms = at;
                r.reason = Some(Reason::new(
                    "retrying",
                    "Podium had no invite for this phone after the failed call; sending again",
                ));
                r.updated_ms = now_ms;
                Verified::Retry
            }
            None => {
                // Keep what Podium last answered (the uncertain call's reason).
                let last = r
                    .reason
                    .as_ref()
                    .map(|reason| reason.message.clone())
                    .unwrap_or_default();
                r.state = RequestState::Failed;
                r.reason = Some(Reason::new(
                    "podium_failed",
                    format!("Podium kept failing the invite call (none was created); last: {last}"),
                ));
                r.updated_ms = now_ms;
                Verified::GaveUp
            }
        }
    }

    /// Podium accepted the invite: the cooldown starts now, remembering the one before
    /// so a failed delivery can give it back (F9).
    pub fn sent(&mut self, id: &str, invite_uid: &str, status: &str, now_ms: i64) {
        let Some(r) = self.find(id) else { return };
        let timing = r.timing;
        r.state = RequestState::Sent;
        r.updated_ms = now_ms;
        r.invite = Some(Invite {
            uid: invite_uid.to_owned(),
            sent_ms: now_ms,
            status: status.to_owned(),
            status_ms: now_ms,
            check_at_ms: now_ms.saturating_add(timing.unresolved_after_ms),
            escalated: false,
            review_uid: None,
        });
        self.cooldown_before_ms = self.cooldown_until_ms;
        self.cooldown_until_ms = Some(now_ms.saturating_add(timing.cooldown_ms));
        self.cooldown_invite = Some(invite_uid.to_owned());
        // The status may already be final (Podium answered `failed`).
        self.invite_status(invite_uid, status, now_ms);
    }

    /// Podium refused the invite (a 4xx): no cooldown, the reason recorded.
    pub fn refused(&mut self, id: &str, reason: Reason, now_ms: i64) {
        if let Some(r) = self.find(id) {
            r.state = RequestState::Failed;
            r.reason = Some(reason);
            r.updated_ms = now_ms;
        }
    }

    /// Podium answered with a retryable error: back to scheduled.
    pub fn retry_at(&mut self, id: &str, at_ms: i64, detail: &str, now_ms: i64) {
        if let Some(r) = self.find(id) {
            r.state = RequestState::Scheduled;
            r.fire_at_ms = at_ms;
            r.reason = Some(Reason::new("retrying", detail));
            r.updated_ms = now_ms;
        }
    }

    /// No answer (timeout, lost connection): the invite may exist; never re-sent, and
    /// the cooldown holds as if it had been sent.
    pub fn unknown(&mut self, id: &str, detail: &str, now_ms: i64) {
        let Some(r) = self.find(id) else { return };
        r.state = RequestState::Unknown;
        r.reason = Some(Reason::new("no_answer", detail));
        r.updated_ms = now_ms;
        let timing = r.timing;
        self.hold_cooldown(timing, now_ms);
    }

    /// An invite may have reached the customer without our knowing (F7): start the
    /// cooldown as a send would, with nothing to roll back (no invite to hear about).
    fn hold_cooldown(&mut self, timing: Timing, now_ms: i64) {
        let until = now_ms.saturating_add(timing.cooldown_ms);
        self.cooldown_before_ms = self.cooldown_until_ms;
        self.cooldown_until_ms = Some(self.cooldown_until_ms.map_or(until, |u| u.max(until)));
        self.cooldown_invite = None;
    }

    /// An invite's delivery status (webhook or read). `failed` rolls back the cooldown
    /// if this invite set it and flags the phone. Returns the request id it changed.
    pub fn invite_status(&mut self, invite_uid: &str, status: &str, now_ms: i64) -> Option<String> {
        let status = status.trim().to_ascii_lowercase();
        let r = self
            .requests
            .iter_mut()
            .find(|r| r.invite.as_ref().is_some_and(|i| i.uid == invite_uid))?;
        let invite = r.invite.as_mut()?;
        // Final states are final: a late "sent" does not undo "delivered" or "failed".
        if matches!(invite.status.as_str(), "delivered" | "failed") && invite.status != status {
            return None;
        }
        invite.status.clone_from(&status);
        invite.status_ms = now_ms;
        let id = r.id.clone();
        match status.as_str() {
            "delivered" => r.state = RequestState::Delivered,
            "failed" => {
                r.state = RequestState::Failed;
                r.reason = Some(Reason::new(
                    "delivery_failed",
                    "Podium reported the invite's delivery failed; the cooldown was rolled back",
                ));
                if self.cooldown_invite.as_deref() == Some(invite_uid) {
                    self.cooldown_until_ms = self.cooldown_before_ms;
                    self.cooldown_invite = None;
                }
                self.flag = Some(Flag {
                    reason: "review invite delivery failed".into(),
                    at_ms: now_ms,
                    invite_uid: invite_uid.to_owned(),
                });
            }
            _ => {}
        }
        Some(id)
    }

    /// Invites to read now: neither delivered nor failed past their deadline.
    pub fn due_checks(&self, now_ms: i64) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| r.state == RequestState::Sent)
            .filter_map(|r| r.invite.as_ref())
            .filter(|i| !i.escalated && i.check_at_ms <= now_ms)
            .map(|i| i.uid.clone())
            .collect()
    }

    /// Still unresolved after reading: reported once.
    pub fn mark_escalated(&mut self, invite_uid: &str) {
        for r in &mut self.requests {
            if let Some(i) = r.invite.as_mut().filter(|i| i.uid == invite_uid) {
                i.escalated = true;
            }
        }
    }

    /// Which invite led to a review (`review.created` naming it).
    pub fn link_review(&mut self, invite_uid: &str, review_uid: &str) -> bool {
        for r in &mut self.requests {
            if let Some(i) = r.invite.as_mut().filter(|i| i.uid == invite_uid) {
                i.review_uid = Some(review_uid.to_owned());
                return true;
            }
        }
        false
    }

    /// Scheduled requests due now.
    pub fn due(&self, now_ms: i64) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| {
                (matches!(r.state, RequestState::Scheduled | RequestState::Verifying)
                    && r.fire_at_ms <= now_ms)
                    || r.state == RequestState::Sending
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// When the phone's alarm should next fire.
    pub fn next_wake(&self) -> Option<i64> {
        let fires = self.requests.iter().filter_map(|r| match r.state {
            RequestState::Scheduled | RequestState::Verifying => Some(r.fire_at_ms),
            RequestState::Sending => Some(r.updated_ms.saturating_add(SENDING_GRACE_MS)),
            _ => None,
        });
        let checks = self
            .requests
            .iter()
            .filter(|r| r.state == RequestState::Sent)
            .filter_map(|r| r.invite.as_ref())
            .filter(|i| !i.escalated)
            .map(|i| i.check_at_ms);
        fires.chain(checks).min()
    }

    /// An operator cancels a scheduled request.
    pub fn cancel(&mut self, id: &str, now_ms: i64) -> Result<(), &'static str> {
        let r = self.find(id).ok_or("no such request")?;
        if r.state != RequestState::Scheduled {
            return Err("only a scheduled request can be cancelled");
        }
        r.state = RequestState::Cancelled;
        r.reason = Some(Reason::new(
            "cancelled_by_operator",
            "cancelled through the admin API",
        ));
        r.updated_ms = now_ms;
        Ok(())
    }

    /// The newest invite, for operators.
    pub fn last_invite(&self) -> Option<(&ReviewRequest, &Invite)> {
        self.requests
            .iter()
            .rev()
            .find_map(|r| r.invite.as_ref().map(|i| (r, i)))
    }

    /// Whether the request is a Shopify order (re-checked at fire time).
    pub fn needs_order_check(&self, id: &str) -> bool {
        self.get(id)
            .is_some_and(|r| r.candidate.source == Source::Shopify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod verify {
        use super::super::*;
        use crate::review::candidate::{Candidate, Source};
        use crate::review::config::Timing;

        fn reviews_sending() -> PhoneReviews {
            let timing = Timing {
                cooldown_ms: 1_000_000,
                refund_buffer_ms: 0,
                unresolved_after_ms: 50_000,
            };
            let candidate = Candidate {
                source: Source::Stripe,
                order_id: "pi_1".into(),
                shop_domain: None,
                location_uid: "loc".into(),
                phone: "+61412345678".into(),
                phone_field: "metadata.phone".into(),
                customer_name: None,
                preference: None,
                accounts: vec![],
                fulfilled_at_ms: 0,
            };
            let mut r = PhoneReviews::default();
            r.schedule("rr_1", candidate, timing, false, 0);
            assert_eq!(r.begin_fire("rr_1", false, 0), Fire::CheckOrder);
            r.mark_sending("rr_1", "google", "default", 10);
            r
        }

        /// A 5xx or no answer: verifying holds the cooldown, and what the read of
        /// Podium's invites finds decides — never a blind re-send.
        #[test]
        fn uncertain_sends_are_verified_before_any_retry() {
            let mut r = reviews_sending();
            r.uncertain("rr_1", "500", 100, 20);
            assert_eq!(r.get("rr_1").unwrap().state, RequestState::Verifying);
            assert!(r.cooldown_remaining(30).is_some(), "held while unknown");
            assert_eq!(
                r.begin_fire("rr_1", false, 50),
                Fire::Nothing,
                "not due yet"
            );
            assert_eq!(r.begin_fire("rr_1", false, 100), Fire::Verify);
            // Found: sent, with the invite recorded.
            assert_eq!(
                r.verified(
                    "rr_1",
                    true,
                    Some(("inv_9", "pending")),
                    Some(500),
                    200,
                    110
                ),
                Verified::Found
            );
            assert_eq!(r.get("rr_1").unwrap().state, RequestState::Sent);
            assert_eq!(r.get("rr_1").unwrap().invite.as_ref().unwrap().uid, "inv_9");

            // None found: the held cooldown is given back and it is sent again.
            let mut r = reviews_sending();
            r.uncertain("rr_1", "timeout", 100, 20);
            assert_eq!(
                r.verified("rr_1", true, None, Some(500), 200, 110),
                Verified::Retry
            );
            assert_eq!(r.get("rr_1").unwrap().state, RequestState::Scheduled);
            assert_eq!(r.get("rr_1").unwrap().fire_at_ms, 500);
            assert_eq!(r.cooldown_remaining(120), None);

            // None found and the policy is used up: failed.
            let mut r = reviews_sending();
            r.uncertain("rr_1", "500", 100, 20);
            assert_eq!(
                r.verified("rr_1", true, None, None, 200, 110),
                Verified::GaveUp
            );
            assert_eq!(r.get("rr_1").unwrap().state, RequestState::Failed);

            // Podium can't be read: read again, then unknown (never re-sent).
            let mut r = reviews_sending();
            r.uncertain("rr_1", "500", 100, 20);
            for _ in 1..MAX_VERIFY_READS {
                assert_eq!(
                    r.verified("rr_1", false, None, Some(500), 200, 110),
                    Verified::ReadLater
                );
            }
            assert_eq!(
                r.verified("rr_1", false, None, Some(500), 200, 110),
                Verified::Unreadable
            );
            assert_eq!(r.get("rr_1").unwrap().state, RequestState::Unknown);
            assert!(
                r.cooldown_remaining(120).is_some(),
                "the cooldown holds for an unknown send"
            );
        }
    }

    const T: Timing = Timing {
        cooldown_ms: 10_000,
        refund_buffer_ms: 2_000,
        unresolved_after_ms: 5_000,
    };

    fn cand(order: &str, fulfilled: i64) -> Candidate {
        Candidate {
            source: Source::Shopify,
            order_id: order.into(),
            shop_domain: Some("s".into()),
            location_uid: "loc".into(),
            phone: "+61412345678".into(),
            phone_field: "phone".into(),
            customer_name: None,
            preference: None,
            accounts: vec![],
            fulfilled_at_ms: fulfilled,
        }
    }

    fn send(p: &mut PhoneReviews, id: &str, invite: &str, now: i64) {
        assert_eq!(p.begin_fire(id, false, now), Fire::CheckOrder);
        let found = OrderCheck::Found {
            financial_status: Some("paid".into()),
            cancelled: false,
        };
        p.after_order(id, &found, 1000, now).unwrap();
        p.mark_sending(id, "google", "campaign_default", now);
        p.sent(id, invite, "sent", now);
    }

    #[test]
    fn cooldown_blocks_a_second_order_and_allows_one_after() {
        let mut p = PhoneReviews::default();
        assert_eq!(
            p.schedule("r1", cand("o1", 0), T, false, 0).state,
            RequestState::Scheduled
        );
        assert_eq!(p.next_wake(), Some(2_000));
        assert_eq!(
            p.begin_fire("r1", false, 1_000),
            Fire::Nothing,
            "not due yet"
        );
        send(&mut p, "r1", "inv1", 2_000);
        assert_eq!(p.cooldown_remaining(3_000), Some(9_000));
        let r2 = p.schedule("r2", cand("o2", 3_000), T, false, 3_000);
        assert_eq!(r2.reason.as_ref().unwrap().code, "cooldown");
        assert_eq!(
            p.schedule("r3", cand("o3", 12_500), T, false, 12_500).state,
            RequestState::Scheduled
        );
    }

    #[test]
    fn one_open_request_per_phone_and_one_per_order() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        let again = p.schedule("r2", cand("o1", 0), T, false, 0);
        assert_eq!(again.reason.as_ref().unwrap().code, "duplicate_order");
        let other = p.schedule("r3", cand("o2", 0), T, false, 0);
        assert_eq!(other.reason.as_ref().unwrap().code, "already_scheduled");
        assert_eq!(p.due(5_000), vec!["r1".to_owned()]);
    }

    #[test]
    fn opt_out_at_both_ends_and_refund_at_fire_time() {
        let mut p = PhoneReviews::default();
        let r = p.schedule("r1", cand("o1", 0), T, true, 0);
        assert_eq!(r.reason.as_ref().unwrap().code, "opted_out");
        p.schedule("r2", cand("o2", 0), T, false, 0);
        assert!(matches!(
            p.begin_fire("r2", true, 2_000),
            Fire::Skipped { .. }
        ));
        assert_eq!(p.get("r2").unwrap().state, RequestState::Skipped);
        assert_eq!(
            p.begin_fire("r2", false, 2_000),
            Fire::Nothing,
            "a repeated alarm is a no-op"
        );

        p.schedule("r3", cand("o3", 0), T, false, 0);
        assert_eq!(p.begin_fire("r3", false, 2_000), Fire::CheckOrder);
        let refunded = OrderCheck::Found {
            financial_status: Some("partially_refunded".into()),
            cancelled: false,
        };
        let skip = p
            .after_order("r3", &refunded, 1000, 2_000)
            .unwrap_err()
            .unwrap();
        assert_eq!(skip.code, "partially_refunded");

        p.schedule("r4", cand("o4", 0), T, false, 2_000);
        assert_eq!(p.begin_fire("r4", false, 2_000), Fire::CheckOrder);
        let cancelled = OrderCheck::Found {
            financial_status: Some("paid".into()),
            cancelled: true,
        };
        assert_eq!(
            p.after_order("r4", &cancelled, 1000, 2_000)
                .unwrap_err()
                .unwrap()
                .code,
            "cancelled"
        );

        p.schedule("r5", cand("o5", 0), T, false, 2_000);
        assert_eq!(p.begin_fire("r5", false, 2_000), Fire::CheckOrder);
        let down = OrderCheck::Unavailable {
            detail: "503".into(),
        };
        assert_eq!(p.after_order("r5", &down, 1_000, 2_000), Err(None));
        assert_eq!(p.get("r5").unwrap().fire_at_ms, 3_000);
        assert_eq!(p.get("r5").unwrap().state, RequestState::Scheduled);
    }

    #[test]
    fn failed_delivery_rolls_back_the_cooldown_and_flags() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        send(&mut p, "r1", "inv1", 2_000);
        assert!(p.cooldown_remaining(3_000).is_some());
        assert_eq!(p.invite_status("inv1", "FAILED", 3_000), Some("r1".into()));
        assert_eq!(p.cooldown_remaining(3_000), None);
        assert!(p.flag.is_some());
        assert_eq!(p.get("r1").unwrap().state, RequestState::Failed);
        assert_eq!(
            p.invite_status("inv1", "sent", 3_500),
            None,
            "final stays final"
        );
        assert_eq!(
            p.schedule("r2", cand("o2", 3_000), T, false, 3_000).state,
            RequestState::Scheduled,
            "the next order's request goes out"
        );
    }

    #[test]
    fn delivery_resolves_and_unresolved_is_escalated_once() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        send(&mut p, "r1", "inv1", 2_000);
        assert_eq!(p.next_wake(), Some(7_000));
        assert!(p.due_checks(6_000).is_empty());
        assert_eq!(p.due_checks(7_000), vec!["inv1".to_owned()]);
        p.mark_escalated("inv1");
        assert!(p.due_checks(8_000).is_empty());
        assert_eq!(p.next_wake(), None);
        p.invite_status("inv1", "delivered", 9_000);
        assert_eq!(p.get("r1").unwrap().state, RequestState::Delivered);
        assert!(
            p.cooldown_remaining(9_000).is_some(),
            "delivered keeps the cooldown"
        );
        assert!(p.link_review("inv1", "rev1"));
    }

    #[test]
    fn each_invite_call_is_counted_for_the_retry_policy() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        let found = OrderCheck::Found {
            financial_status: Some("paid".into()),
            cancelled: false,
        };
        for attempt in 1..=3 {
            let now = 2_000 * i64::from(attempt);
            assert_eq!(p.begin_fire("r1", false, now), Fire::CheckOrder);
            p.after_order("r1", &found, 1_000, now).unwrap();
            assert_eq!(
                p.mark_sending("r1", "google", "campaign_default", now),
                attempt
            );
            p.retry_at("r1", now + 1_000, "500", now);
        }
        assert_eq!(p.get("r1").unwrap().attempts, 3);
        assert_eq!(p.mark_sending("nope", "google", "x", 0), 0);
    }

    #[test]
    fn an_interrupted_send_is_never_repeated() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        assert_eq!(p.begin_fire("r1", false, 2_000), Fire::CheckOrder);
        p.mark_sending("r1", "google", "campaign_default", 2_000);
        // The alarm stays armed while the call is in flight…
        assert_eq!(p.next_wake(), Some(2_000 + SENDING_GRACE_MS));
        // …the isolate died here; the alarm runs again.
        assert_eq!(p.due(2_500), vec!["r1".to_owned()]);
        assert_eq!(p.begin_fire("r1", false, 2_500), Fire::Interrupted);
        assert_eq!(p.get("r1").unwrap().state, RequestState::Unknown);
        assert_eq!(p.begin_fire("r1", false, 3_000), Fire::Nothing);
        assert_eq!(p.next_wake(), None);
        // The customer may have the invite: the cooldown holds.
        assert_eq!(p.cooldown_remaining(3_000), Some(9_500));
        let next = p.schedule("r2", cand("o2", 3_000), T, false, 3_000);
        assert_eq!(next.reason.unwrap().code, "cooldown");
    }

    #[test]
    fn no_answer_holds_the_cooldown() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        assert_eq!(p.begin_fire("r1", false, 2_000), Fire::CheckOrder);
        p.mark_sending("r1", "google", "campaign_default", 2_000);
        p.unknown("r1", "timed out", 5_000);
        assert_eq!(p.get("r1").unwrap().state, RequestState::Unknown);
        assert_eq!(p.cooldown_remaining(5_000), Some(10_000));
        assert_eq!(p.next_wake(), None, "never re-sent");
        assert_eq!(
            p.schedule("r2", cand("o2", 6_000), T, false, 6_000)
                .reason
                .unwrap()
                .code,
            "cooldown"
        );
        assert!(p
            .schedule("r3", cand("o3", 15_000), T, false, 15_000)
            .reason
            .is_none());
    }

    #[test]
    fn a_request_cancelled_during_the_order_check_stays_cancelled() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        assert_eq!(p.begin_fire("r1", false, 2_000), Fire::CheckOrder);
        p.cancel("r1", 2_100).unwrap();
        let found = OrderCheck::Found {
            financial_status: Some("paid".into()),
            cancelled: false,
        };
        assert_eq!(
            p.after_order("r1", &found, 1_000, 2_200)
                .unwrap_err()
                .unwrap()
                .code,
            "not_scheduled"
        );
        assert_eq!(p.get("r1").unwrap().state, RequestState::Cancelled);
    }

    #[test]
    fn cancel_and_history_bound() {
        let mut p = PhoneReviews::default();
        p.schedule("r1", cand("o1", 0), T, false, 0);
        assert!(p.cancel("r1", 1).is_ok());
        assert!(p.cancel("r1", 1).is_err());
        for i in 0..(MAX_REQUESTS + 20) {
            p.schedule(&format!("x{i}"), cand(&format!("ox{i}"), 0), T, true, 0);
        }
        assert_eq!(p.requests.len(), MAX_REQUESTS);
    }
}
