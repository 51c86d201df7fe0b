//! Webchat sessions (F3): the idle clock, the "still there?" warning, and the context a
//! customer already gave, carried into a new conversation when they come back late.
//!
//! Podium ends a webchat conversation after ~30 minutes idle. The gateway keeps its own
//! clock per session (a Durable Object alarm fires at expiry), tells the widget when
//! expiry is near, and when a message arrives after expiry it starts a new conversation
//! whose first message carries what the customer said before, so the agent sees it.

use serde::{Deserialize, Serialize};

/// Timing and buffering per merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionPolicy {
    /// Idle time after which the conversation is over (Podium's is ~30 min).
    pub idle_ms: i64,
    /// How long before expiry the widget is told to ask "still there?".
    pub warning_ms: i64,
    /// Most recent customer messages kept as context.
    pub max_buffered: usize,
    /// Characters kept per buffered message.
    pub max_buffered_chars: usize,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_ms: 30 * 60 * 1000,
            warning_ms: 5 * 60 * 1000,
            max_buffered: 5,
            max_buffered_chars: 500,
        }
    }
}

/// A message the customer sent, kept for context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffered {
    pub at_ms: i64,
    pub text: String,
}

/// The durable state of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Starts at 1; a message after expiry starts the next one.
    pub conversation: u32,
    pub last_activity_ms: i64,
    /// Set by the expiry alarm (or noticed on arrival): the conversation is over.
    pub expired: bool,
    /// The current conversation's recent customer messages.
    pub buffer: Vec<Buffered>,
}

/// What the widget is told with every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub conversation: u32,
    pub expires_at_ms: i64,
    /// Relative to now, so a widget with a wrong clock can still schedule its prompt.
    pub expires_in_ms: i64,
    /// When to ask "still there?", relative to now (0 when already inside the window).
    pub warn_in_ms: i64,
    /// Inside the warning window: show "still there?".
    pub warning: bool,
    pub expired: bool,
}

/// How a message fits the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// First message of a new session.
    New,
    /// Within the idle window of the current conversation.
    Continued,
    /// After expiry: a new conversation, with the earlier messages as context.
    Resumed { carried: Vec<Buffered> },
}

impl SessionState {
    pub fn status(&self, now_ms: i64, policy: &SessionPolicy) -> SessionStatus {
        let expires_at_ms = self.last_activity_ms.saturating_add(policy.idle_ms);
        let expired = self.expired || now_ms >= expires_at_ms;
        let warn_at_ms = expires_at_ms.saturating_sub(policy.warning_ms);
        SessionStatus {
            conversation: self.conversation,
            expires_at_ms,
            expires_in_ms: expires_at_ms.saturating_sub(now_ms).max(0),
            warn_in_ms: warn_at_ms.saturating_sub(now_ms).max(0),
            warning: !expired && now_ms >= warn_at_ms,
            expired,
        }
    }

    /// When the expiry alarm should fire.
    pub fn expiry_at(&self, policy: &SessionPolicy) -> i64 {
        self.last_activity_ms.saturating_add(policy.idle_ms)
    }

    /// The expiry alarm fired: returns `Some(at)` to re-arm when activity moved the
    /// deadline (alarms are at-least-once and may be early after a restart).
    pub fn on_alarm(&mut self, now_ms: i64, policy: &SessionPolicy) -> Option<i64> {
        let at = self.expiry_at(policy);
        if now_ms >= at {
            self.expired = true;
            None
        } else {
            Some(at)
        }
    }
}

/// Record a customer message. `state` is `None` for a session never seen before.
pub fn on_message(
    state: Option<SessionState>,
    now_ms: i64,
    text: &str,
    policy: &SessionPolicy,
) -> (SessionState, Arrival) {
    let entry = Buffered {
        at_ms: now_ms,
        text: text.chars().take(policy.max_buffered_chars).collect(),
    };
    let (mut next, arrival) = match state {
        None => (
            SessionState {
                conversation: 1,
                last_activity_ms: now_ms,
                expired: false,
                buffer: Vec::new(),
            },
            Arrival::New,
        ),
        Some(previous) if previous.status(now_ms, policy).expired => (
            SessionState {
                conversation: previous.conversation.saturating_add(1),
                last_activity_ms: now_ms,
                expired: false,
                buffer: Vec::new(),
            },
            Arrival::Resumed {
                carried: previous.buffer,
            },
        ),
        Some(mut current) => {
            current.last_activity_ms = now_ms.max(current.last_activity_ms);
            (current, Arrival::Continued)
        }
    };
    if let Arrival::Resumed { carried } = &arrival {
        // The context stays available to the next expiry too.
        next.buffer.extend(carried.iter().cloned());
    }
    // A message with no text (a phone number given on its own) is activity, not context.
    if !entry.text.trim().is_empty() {
        next.buffer.push(entry);
    }
    if next.buffer.len() > policy.max_buffered {
        let excess = next.buffer.len() - policy.max_buffered;
        next.buffer.drain(..excess);
    }
    (next, arrival)
}

/// When a session's state may be deleted: `keep_ms` after its conversation expired
/// (personal data kept no longer than it serves the customer coming back).
pub fn forget_at(state: &SessionState, policy: &SessionPolicy, keep_ms: i64) -> i64 {
    state.expiry_at(policy).saturating_add(keep_ms)
}

/// A message held until the customer's phone is known (`/chat` before the phone
/// number, an incoming-webchat envelope without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldItem {
    pub at_ms: i64,
    pub text: String,
    /// Files the message named (delivered with it).
    #[serde(default)]
    pub attachments: Vec<HeldAttachment>,
    /// Context for the agent that came with it (a widget's opening message, say).
    #[serde(default)]
    pub note: Option<String>,
    /// The store it was routed to when it arrived (it goes there, whatever routes the
    /// message that later brings the phone).
    #[serde(default)]
    pub location_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAttachment {
    pub file_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// Most messages held per session, whatever the buffer policy says.
pub const MAX_HELD: usize = 20;

/// Hold one more message; `false` when the session already holds as many as it may
/// (the caller refuses rather than drop one silently).
pub fn hold(held: &mut Vec<HeldItem>, mut item: HeldItem, policy: &SessionPolicy) -> bool {
    if held.len() >= policy.max_buffered.clamp(1, MAX_HELD) {
        return false;
    }
    item.text = item
        .text
        .chars()
        .take(crate::envelope::MAX_TEXT_CHARS)
        .collect();
    held.push(item);
    true
}

/// The note prepended to the first message of a resumed conversation, for the agent.
pub fn context_note(carried: &[Buffered]) -> Option<String> {
    if carried.is_empty() {
        return None;
    }
    let quoted: Vec<String> = carried.iter().map(|b| format!("\"{}\"", b.text)).collect();
    Some(format!(
        "[Continuing an earlier chat that timed out. The customer had said: {}]",
        quoted.join(" · ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle_ms: 10_000,
            warning_ms: 3_000,
            max_buffered: 3,
            max_buffered_chars: 10,
        }
    }

    #[test]
    fn idle_clock_warning_and_expiry() {
        let p = policy();
        let (s, arrival) = on_message(None, 1_000, "hi", &p);
        assert_eq!(arrival, Arrival::New);
        let st = s.status(1_000, &p);
        assert_eq!(st.expires_at_ms, 11_000);
        assert_eq!((st.expires_in_ms, st.warn_in_ms), (10_000, 7_000));
        assert_eq!(s.status(20_000, &p).expires_in_ms, 0);
        assert!(!st.warning && !st.expired);
        assert!(s.status(8_000, &p).warning);
        assert!(s.status(11_000, &p).expired);
        assert!(!s.status(11_000, &p).warning);
    }

    #[test]
    fn activity_pushes_expiry_and_alarms_rearm() {
        let p = policy();
        let (s, _) = on_message(None, 0, "1", &p);
        let (mut s, arrival) = on_message(Some(s), 9_000, "2", &p);
        assert_eq!(arrival, Arrival::Continued);
        assert_eq!(s.on_alarm(10_000, &p), Some(19_000), "old alarm re-arms");
        assert!(!s.expired);
        assert_eq!(s.on_alarm(19_000, &p), None);
        assert!(s.expired);
    }

    #[test]
    fn a_late_message_resumes_with_context() {
        let p = policy();
        let (s, _) = on_message(None, 0, "1", &p);
        let (s, _) = on_message(Some(s), 1_000, "the blue one, size 10 please", &p);
        let (s, arrival) = on_message(Some(s), 60_000, "3", &p);
        let Arrival::Resumed { carried } = arrival else {
            panic!("expected resume")
        };
        assert_eq!(carried.len(), 2);
        assert_eq!(
            carried[1].text, "the blue o",
            "truncated to max_buffered_chars"
        );
        assert_eq!(s.conversation, 2);
        assert!(!s.expired);
        assert_eq!(
            context_note(&carried).unwrap(),
            "[Continuing an earlier chat that timed out. The customer had said: \"1\" · \"the blue o\"]"
        );
        assert_eq!(
            s.buffer.len(),
            3,
            "context kept for the next expiry, bounded"
        );
        assert_eq!(context_note(&[]), None);
    }

    #[test]
    fn holding_is_bounded_and_forgetting_follows_expiry() {
        let p = policy();
        let item = |t: &str| HeldItem {
            at_ms: 0,
            text: t.into(),
            attachments: vec![],
            note: None,
            location_uid: None,
        };
        let mut held = Vec::new();
        assert!(hold(&mut held, item("a"), &p));
        assert!(hold(&mut held, item("b"), &p));
        assert!(hold(&mut held, item("c"), &p));
        assert!(
            !hold(&mut held, item("d"), &p),
            "full: refused, not dropped"
        );
        assert_eq!(held.len(), 3);
        let (s, _) = on_message(None, 1_000, "x", &p);
        assert_eq!(forget_at(&s, &p, 5_000), 16_000);
    }

    #[test]
    fn buffer_is_bounded() {
        let p = policy();
        let mut s = None;
        for i in 0..10 {
            s = Some(on_message(s, i * 100, &i.to_string(), &p).0);
        }
        let s = s.unwrap();
        assert_eq!(s.buffer.len(), 3);
        assert_eq!(s.buffer[0].text, "7");
    }
}
