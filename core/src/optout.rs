//! Opt-outs (F6): carrier keywords, and the one record every outbound text is checked
//! against at the moment of sending.
//!
//! A keyword only counts when it is the whole message (`STOP`, `stop.`, ` Stop! `): a
//! customer writing "please don't cancel my order" has not opted out. That is how
//! carriers and CTIA's guidelines treat them, and it avoids silencing customers by
//! accident.

use serde::{Deserialize, Serialize};

/// Keywords that opt a phone out of all texts.
pub const OPT_OUT_KEYWORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Keywords that opt a phone back in.
pub const OPT_IN_KEYWORDS: &[&str] = &["START", "UNSTOP"];

/// What a message says about consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    OptOut,
    OptIn,
}

/// Classify a whole message: `Some` only when it is exactly a keyword, ignoring case,
/// surrounding spaces and trailing punctuation.
pub fn keyword(message: &str) -> Option<Keyword> {
    let word: String = message
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_uppercase();
    if word.len() > 16 {
        return None;
    }
    if OPT_OUT_KEYWORDS.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN_KEYWORDS.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else {
        None
    }
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A keyword typed into the website chat.
    Webchat,
    /// A keyword texted by SMS, reported by a Podium webhook.
    Sms,
    /// Podium's contact record (`transactionalOptedOutAt`).
    Podium,
    /// An operator, through the admin API.
    Admin,
}

/// One change of state, kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub opted_out: bool,
    pub at_ms: i64,
    pub channel: Channel,
}

/// What Podium's contact record last said about this phone (`transactionalOptedOutAt`),
/// kept beside our record so a disagreement (drift) is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodiumView {
    /// `Some(since)`: Podium has the phone opted out; `None`: it does not.
    pub opted_out_at_ms: Option<i64>,
    /// When Podium said so.
    pub observed_ms: i64,
}

/// What Podium's view did to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodiumOutcome {
    /// The record changed to match Podium.
    Applied,
    /// Already in agreement (or an older report than one already seen).
    Unchanged,
    /// Podium says "not opted out" but our record holds an opt-out from another channel
    /// (a STOP typed in the webchat Podium never saw): we keep the opt-out — texting
    /// someone who said STOP is the one mistake that can't be undone — and report drift.
    KeptOptOut,
}

/// Whether our record and Podium's contact disagree, and what that risks.
pub fn drift_between(ours_opted_out: bool, podium_opted_out: bool) -> Option<&'static str> {
    match (ours_opted_out, podium_opted_out) {
        (true, false) => Some("opted out here but Podium's contact is not: Podium's own inbox and campaigns may still text this phone"),
        (false, true) => Some("Podium has the phone opted out but our record does not: an opt-out the gateway missed (e.g. a contact.updated webhook that never arrived)"),
        _ => None,
    }
}

/// The single opt-out record of one phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRecord {
    pub opted_out: bool,
    /// Newest last; bounded to the last [`MAX_HISTORY`] changes.
    pub history: Vec<Change>,
    /// Podium's last word on this phone, if any webhook or read told us.
    #[serde(default)]
    pub podium: Option<PodiumView>,
}

/// Changes kept per phone.
pub const MAX_HISTORY: usize = 50;

impl OptOutRecord {
    /// Apply a change. Returns whether the state flipped. An older event than the last
    /// recorded one (a delayed webhook) is kept in history but does not override a
    /// newer decision.
    pub fn apply(&mut self, opted_out: bool, at_ms: i64, channel: Channel) -> bool {
        let newest = self.history.last().map_or(i64::MIN, |c| c.at_ms);
        let change = Change {
            opted_out,
            at_ms,
            channel,
        };
        // The same change reported twice (a webhook processed again) is one change.
        if self.history.contains(&change) {
            return false;
        }
        let position = self
            .history
            .iter()
            .rposition(|c| c.at_ms <= at_ms)
            .map_or(0, |i| i + 1);
        self.history.insert(position, change);
        if self.history.len() > MAX_HISTORY {
            let excess = self.history.len() - MAX_HISTORY;
            self.history.drain(..excess);
        }
        if at_ms < newest {
            return false;
        }
        let flipped = self.opted_out != opted_out;
        self.opted_out = opted_out;
        flipped
    }

    /// Podium's contact record reports the phone's transactional opt-out state.
    /// An opt-out is applied as of Podium's time. "Not opted out" only lifts an opt-out
    /// that Podium itself set (it was lifted there); an opt-out from any other channel is
    /// kept, and the disagreement is reported.
    pub fn apply_podium(
        &mut self,
        opted_out_at_ms: Option<i64>,
        observed_ms: i64,
    ) -> PodiumOutcome {
        if self
            .podium
            .is_some_and(|seen| seen.observed_ms > observed_ms)
        {
            return PodiumOutcome::Unchanged;
        }
        self.podium = Some(PodiumView {
            opted_out_at_ms,
            observed_ms,
        });
        match opted_out_at_ms {
            Some(at) => {
                if self.apply(true, at, Channel::Podium) {
                    PodiumOutcome::Applied
                } else {
                    PodiumOutcome::Unchanged
                }
            }
            None if !self.opted_out => PodiumOutcome::Unchanged,
            None => match self.last_change() {
                Some(c) if c.channel == Channel::Podium && c.at_ms <= observed_ms => {
                    self.apply(false, observed_ms, Channel::Podium);
                    PodiumOutcome::Applied
                }
                _ => PodiumOutcome::KeptOptOut,
            },
        }
    }

    /// Whether Podium's last word disagrees with our record, and how.
    pub fn drift(&self) -> Option<&'static str> {
        drift_between(self.opted_out, self.podium?.opted_out_at_ms.is_some())
    }

    /// The latest change per channel: "opt-out per flow, with time and source".
    pub fn by_channel(&self) -> Vec<&Change> {
        let mut latest: Vec<&Change> = Vec::new();
        for change in self.history.iter().rev() {
            if !latest.iter().any(|c| c.channel == change.channel) {
                latest.push(change);
            }
        }
        latest
    }

    /// The unified predicate: may any flow text this phone now?
    pub fn may_text(&self) -> bool {
        !self.opted_out
    }

    /// The change that set the current state.
    pub fn last_change(&self) -> Option<&Change> {
        self.history
            .iter()
            .rev()
            .find(|c| c.opted_out == self.opted_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_message_keywords_only() {
        for m in [
            "STOP",
            "stop",
            " Stop! ",
            "stop.",
            "StopAll",
            "UNSUBSCRIBE",
            "cancel",
            "End",
            "quit",
        ] {
            assert_eq!(keyword(m), Some(Keyword::OptOut), "{m}");
        }
        for m in ["START", "unstop", "Start!"] {
            assert_eq!(keyword(m), Some(Keyword::OptIn), "{m}");
        }
        for m in [
            "please don't cancel my order",
            "stop by tomorrow?",
            "",
            "STOPP",
            "end of day",
        ] {
            assert_eq!(keyword(m), None, "{m}");
        }
    }

    #[test]
    fn record_follows_the_newest_change() {
        let mut r = OptOutRecord::default();
        assert!(r.may_text());
        assert!(r.apply(true, 1_000, Channel::Webchat));
        assert!(!r.may_text());
        // A late webhook saying "opted in" from before the STOP does not undo it.
        assert!(!r.apply(false, 500, Channel::Podium));
        assert!(!r.may_text());
        assert_eq!(r.history.len(), 2);
        assert_eq!(r.history[0].at_ms, 500, "history stays in time order");
        assert_eq!(r.last_change().unwrap().channel, Channel::Webchat);
        assert!(r.apply(false, 2_000, Channel::Sms));
        assert!(r.may_text());
        assert!(!r.apply(false, 3_000, Channel::Admin), "no flip");
    }

    #[test]
    fn podium_view_opts_out_but_never_silently_opts_back_in() {
        let mut r = OptOutRecord::default();
        assert_eq!(r.apply_podium(None, 10), PodiumOutcome::Unchanged);
        assert_eq!(r.drift(), None);
        assert_eq!(r.apply_podium(Some(100), 110), PodiumOutcome::Applied);
        assert!(!r.may_text());
        assert_eq!(r.last_change().unwrap().channel, Channel::Podium);
        assert_eq!(r.apply_podium(Some(100), 110), PodiumOutcome::Unchanged);
        assert_eq!(r.history.len(), 1, "a repeated report is one change");
        // Lifted in Podium: lifted here.
        assert_eq!(r.apply_podium(None, 200), PodiumOutcome::Applied);
        assert!(r.may_text());
        // A STOP typed in the webchat is kept when Podium says "not opted out".
        r.apply(true, 300, Channel::Webchat);
        assert_eq!(r.apply_podium(None, 400), PodiumOutcome::KeptOptOut);
        assert!(!r.may_text());
        assert!(r.drift().is_some());
        // An older report than one already seen changes nothing.
        assert_eq!(r.apply_podium(Some(50), 60), PodiumOutcome::Unchanged);
    }

    #[test]
    fn history_is_bounded() {
        let mut r = OptOutRecord::default();
        for i in 0..200 {
            r.apply(i % 2 == 0, i, Channel::Admin);
        }
        assert_eq!(r.history.len(), MAX_HISTORY);
        assert_eq!(r.history.last().unwrap().at_ms, 199);
    }
}
