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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A keyword typed into the website chat, next to a phone number the customer typed:
    /// nothing proves they own that phone (unverified).
    Webchat,
    /// A keyword texted from the phone itself, reported by a signed Podium webhook
    /// (verified: only the phone's owner can text from it).
    Sms,
    /// Podium's contact record (`transactionalOptedOutAt`), read or reported by a signed
    /// webhook (verified).
    Podium,
    /// An operator, through the admin API (verified).
    Admin,
}

/// Every channel, in a fixed order (for views).
pub const CHANNELS: [Channel; 4] = [
    Channel::Webchat,
    Channel::Sms,
    Channel::Podium,
    Channel::Admin,
];

impl Channel {
    /// Whether a change on this channel is proven to come from the phone's owner (or
    /// the merchant's systems), rather than typed by anyone next to any number.
    pub fn is_verified(self) -> bool {
        !matches!(self, Channel::Webchat)
    }

    /// Whether an opt-in (START) on this channel lifts an opt-out held by `held`.
    ///
    /// - SMS START and an operator lift every opt-out: the phone's owner (or the
    ///   merchant) said so on a verified channel.
    /// - Podium's "not opted out" lifts only Podium's own opt-out: Podium may simply
    ///   never have seen a STOP that reached us another way.
    /// - A webchat START lifts only a webchat STOP: anyone can type any number into a
    ///   chat box, so it can never undo a STOP that came from the phone itself (F6).
    pub fn lifts(self, held: Channel) -> bool {
        match self {
            Channel::Sms | Channel::Admin => true,
            Channel::Podium => held == Channel::Podium,
            Channel::Webchat => held == Channel::Webchat,
        }
    }
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

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The phone may now be texted, or may no longer be: the state flipped.
    Flipped,
    /// Recorded; the state was already what the change asked for (or the change is
    /// older than a newer decision on its channel).
    Unchanged,
    /// An opt-in that cannot lift the opt-out in force: it came from a channel that
    /// does not prove phone ownership (a webchat START) while a verified channel holds
    /// the opt-out. The customer has to text START from the phone.
    StillOptedOut { governed_by: Channel },
}

/// Whether our record and Podium's contact disagree, and what that risks.
pub fn drift_between(ours_opted_out: bool, podium_opted_out: bool) -> Option<&'static str> {
    match (ours_opted_out, podium_opted_out) {
        (true, false) => Some("opted out here but Podium's contact is not: Podium's own inbox and campaigns may still text this phone"),
        (false, true) => Some("Podium has the phone opted out but our record does not: an opt-out the gateway missed (e.g. a contact.updated webhook that never arrived)"),
        _ => None,
    }
}

/// The single opt-out record of one phone: the latest change per channel (never
/// truncated), an audit history, and Podium's last word.
///
/// The state is derived from the latest change of each channel, replayed in time order:
/// a STOP on any channel holds an opt-out on that channel; a START lifts what its
/// channel may lift ([`Channel::lifts`]). The phone may be texted only when no channel
/// holds an opt-out. Replaying by time (not by arrival) means a delayed webhook can't
/// undo a newer decision, and an older verified STOP still governs a newer webchat
/// START.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRecord {
    /// Derived (kept for readers of the stored record and the admin view).
    pub opted_out: bool,
    /// Newest last; bounded to the last [`MAX_HISTORY`] changes (audit only).
    pub history: Vec<Change>,
    /// Podium's last word on this phone, if any webhook or read told us.
    #[serde(default)]
    pub podium: Option<PodiumView>,
    /// The latest change per channel, which decides the state.
    #[serde(default)]
    pub latest: Vec<Change>,
}

/// Changes kept per phone.
pub const MAX_HISTORY: usize = 50;

/// One channel in the admin view: its latest change and whether it holds an opt-out now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelView {
    pub channel: Channel,
    pub verified: bool,
    /// The channel's latest change, if it ever said anything.
    pub latest: Option<Change>,
    /// Whether this channel holds an opt-out right now (after later STARTs that can
    /// lift it).
    pub holds_opt_out: bool,
}

impl OptOutRecord {
    /// Apply a change from `channel` at `at_ms`. The same change reported twice (a
    /// webhook processed again) is one change.
    pub fn apply(&mut self, opted_out: bool, at_ms: i64, channel: Channel) -> Applied {
        let before = self.opted_out;
        let change = Change {
            opted_out,
            at_ms,
            channel,
        };
        if !self.history.contains(&change) {
            let position = self
                .history
                .iter()
                .rposition(|c| c.at_ms <= at_ms)
                .map_or(0, |i| i + 1);
            self.history.insert(position, change.clone());
            if self.history.len() > MAX_HISTORY {
                let excess = self.history.len() - MAX_HISTORY;
                self.history.drain(..excess);
            }
        }
        self.ensure_latest();
        match self.latest.iter_mut().find(|c| c.channel == channel) {
            Some(current) if current.at_ms > at_ms => {}
            // At the same moment, the opt-out wins (err towards silence).
            Some(current) if current.at_ms == at_ms && current.opted_out && !opted_out => {}
            Some(current) => *current = change,
            None => self.latest.push(change),
        }
        self.recompute();
        if self.opted_out != before {
            return Applied::Flipped;
        }
        match (opted_out, self.opted_out, self.governing()) {
            (false, true, Some(governed_by)) if !channel.lifts(governed_by) => {
                Applied::StillOptedOut { governed_by }
            }
            _ => Applied::Unchanged,
        }
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
            Some(at) => match self.apply(true, at, Channel::Podium) {
                Applied::Flipped => PodiumOutcome::Applied,
                _ => PodiumOutcome::Unchanged,
            },
            None => {
                let podium_holds = self
                    .channels()
                    .iter()
                    .any(|c| c.channel == Channel::Podium && c.holds_opt_out);
                if !self.opted_out && !podium_holds {
                    return PodiumOutcome::Unchanged;
                }
                let applied = self.apply(false, observed_ms, Channel::Podium);
                if self.opted_out {
                    PodiumOutcome::KeptOptOut
                } else if applied == Applied::Flipped {
                    PodiumOutcome::Applied
                } else {
                    PodiumOutcome::Unchanged
                }
            }
        }
    }

    /// Take in a record kept by an older layout (the former per-phone `OptOut` object):
    /// its changes are replayed into this one by time, so neither side's decisions are
    /// lost, and an opt-out the old record held is never dropped (errs towards silence).
    pub fn merge_legacy(&mut self, legacy: &OptOutRecord) {
        let mut changes = legacy.history.clone();
        changes.sort_by_key(|c| c.at_ms);
        for c in &changes {
            self.apply(c.opted_out, c.at_ms, c.channel);
        }
        if let Some(view) = legacy.podium {
            if self
                .podium
                .is_none_or(|mine| mine.observed_ms < view.observed_ms)
            {
                self.podium = Some(view);
            }
        }
        if legacy.opted_out && !self.opted_out {
            // The old record said "opted out" but its truncated history no longer shows
            // why: keep the opt-out, as of its newest change, on the channel that made it.
            let last = legacy.history.iter().rev().find(|c| c.opted_out);
            let (channel, at) = last.map_or((Channel::Admin, 0), |c| (c.channel, c.at_ms));
            self.apply(true, at.max(self.newest_ms()), channel);
        }
    }

    fn newest_ms(&self) -> i64 {
        self.latest.iter().map(|c| c.at_ms).max().unwrap_or(0)
    }

    /// Records stored before `latest` existed derive it from their history.
    fn ensure_latest(&mut self) {
        if !self.latest.is_empty() || self.history.is_empty() {
            return;
        }
        for c in &self.history {
            match self.latest.iter_mut().find(|l| l.channel == c.channel) {
                Some(l) if l.at_ms > c.at_ms => {}
                Some(l) => *l = c.clone(),
                None => self.latest.push(c.clone()),
            }
        }
    }

    /// The channels holding an opt-out now, replaying each channel's latest change in
    /// time order (at equal times the opt-out comes last, so it stands).
    fn holders(&self) -> Vec<Channel> {
        let mut ordered: Vec<&Change> = self.latest.iter().collect();
        ordered.sort_by_key(|c| (c.at_ms, c.opted_out, c.channel));
        let mut holding: Vec<Channel> = Vec::new();
        for c in ordered {
            if c.opted_out {
                if !holding.contains(&c.channel) {
                    holding.push(c.channel);
                }
            } else {
                holding.retain(|held| !c.channel.lifts(*held));
            }
        }
        holding
    }

    fn recompute(&mut self) {
        self.ensure_latest();
        self.opted_out = !self.holders().is_empty();
    }

    /// The channel whose opt-out is in force: a verified one if any holds (only a
    /// verified START can lift it), else the webchat. `None` when the phone may be
    /// texted.
    pub fn governing(&self) -> Option<Channel> {
        let holders = self.holders();
        let newest = |verified: bool| {
            holders
                .iter()
                .filter(|c| c.is_verified() == verified)
                .filter_map(|c| self.latest.iter().find(|l| l.channel == *c))
                .max_by_key(|l| l.at_ms)
                .map(|l| l.channel)
        };
        newest(true).or_else(|| newest(false))
    }

    /// Every channel's state: its latest change and whether it holds an opt-out now.
    pub fn channels(&self) -> Vec<ChannelView> {
        let mut record = self.clone();
        record.ensure_latest();
        let holders = record.holders();
        CHANNELS
            .iter()
            .map(|&channel| ChannelView {
                channel,
                verified: channel.is_verified(),
                latest: record.latest.iter().find(|c| c.channel == channel).cloned(),
                holds_opt_out: holders.contains(&channel),
            })
            .collect()
    }

    /// Whether Podium's last word disagrees with our record, and how.
    pub fn drift(&self) -> Option<&'static str> {
        drift_between(self.opted_out, self.podium?.opted_out_at_ms.is_some())
    }

    /// The latest change per channel that said something (for compact views).
    pub fn by_channel(&self) -> Vec<Change> {
        self.channels()
            .into_iter()
            .filter_map(|c| c.latest)
            .collect()
    }

    /// The unified predicate: may any flow text this phone now?
    pub fn may_text(&self) -> bool {
        !self.opted_out
    }

    /// The change that set the current state: the governing channel's opt-out, or the
    /// newest opt-in.
    pub fn last_change(&self) -> Option<Change> {
        let mut record = self.clone();
        record.ensure_latest();
        match record.governing() {
            Some(channel) => record.latest.iter().find(|c| c.channel == channel).cloned(),
            None => record
                .latest
                .iter()
                .filter(|c| !c.opted_out)
                .max_by_key(|c| c.at_ms)
                .cloned(),
        }
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
        assert_eq!(r.apply(true, 1_000, Channel::Webchat), Applied::Flipped);
        assert!(!r.may_text());
        // A late webhook saying "opted in" from before the STOP does not undo it.
        assert_eq!(
            r.apply(false, 500, Channel::Podium),
            Applied::StillOptedOut {
                governed_by: Channel::Webchat
            }
        );
        assert!(!r.may_text());
        assert_eq!(r.history.len(), 2);
        assert_eq!(r.history[0].at_ms, 500, "history stays in time order");
        assert_eq!(r.last_change().unwrap().channel, Channel::Webchat);
        // START by SMS (the phone itself) lifts the webchat STOP.
        assert_eq!(r.apply(false, 2_000, Channel::Sms), Applied::Flipped);
        assert!(r.may_text());
        assert_eq!(r.apply(false, 3_000, Channel::Admin), Applied::Unchanged);
    }

    /// Every ordering of a verified STOP and an unverified (webchat) START: the START
    /// never lifts it, whichever arrives or is dated first; a verified START does.
    #[test]
    fn only_a_verified_start_lifts_a_verified_stop() {
        for verified in [Channel::Sms, Channel::Podium, Channel::Admin] {
            // STOP first, then a webchat START.
            let mut r = OptOutRecord::default();
            r.apply(true, 1_000, verified);
            assert_eq!(
                r.apply(false, 2_000, Channel::Webchat),
                Applied::StillOptedOut {
                    governed_by: verified
                },
                "{verified:?}"
            );
            assert!(!r.may_text());
            assert_eq!(r.governing(), Some(verified));
            // The webchat START arrives first but the (older-dated) verified STOP
            // arrives later (a delayed webhook): still opted out.
            let mut r = OptOutRecord::default();
            r.apply(false, 2_000, Channel::Webchat);
            assert_eq!(r.apply(true, 1_000, verified), Applied::Flipped);
            assert!(!r.may_text(), "{verified:?}");
            // A verified START after the STOP lifts it.
            let mut r = OptOutRecord::default();
            r.apply(true, 1_000, verified);
            let lifter = if verified == Channel::Podium {
                Channel::Podium
            } else {
                Channel::Sms
            };
            assert_eq!(r.apply(false, 3_000, lifter), Applied::Flipped);
            assert!(r.may_text());
        }
    }

    #[test]
    fn webchat_stop_is_immediate_and_a_webchat_start_lifts_only_it() {
        let mut r = OptOutRecord::default();
        assert_eq!(r.apply(true, 1_000, Channel::Webchat), Applied::Flipped);
        assert_eq!(r.governing(), Some(Channel::Webchat));
        assert_eq!(r.apply(false, 2_000, Channel::Webchat), Applied::Flipped);
        assert!(r.may_text());
        // Webchat STOP, then SMS STOP, then webchat START: the SMS STOP governs.
        r.apply(true, 3_000, Channel::Webchat);
        r.apply(true, 4_000, Channel::Sms);
        assert_eq!(
            r.apply(false, 5_000, Channel::Webchat),
            Applied::StillOptedOut {
                governed_by: Channel::Sms
            }
        );
        let views = r.channels();
        let sms = views.iter().find(|c| c.channel == Channel::Sms).unwrap();
        assert!(sms.holds_opt_out && sms.verified);
        let web = views
            .iter()
            .find(|c| c.channel == Channel::Webchat)
            .unwrap();
        assert!(!web.holds_opt_out && !web.verified);
        // SMS START lifts everything before it.
        assert_eq!(r.apply(false, 6_000, Channel::Sms), Applied::Flipped);
        assert_eq!(r.governing(), None);
    }

    #[test]
    fn same_moment_stop_wins() {
        let mut r = OptOutRecord::default();
        r.apply(false, 1_000, Channel::Sms);
        r.apply(true, 1_000, Channel::Webchat);
        assert!(!r.may_text());
        let mut r = OptOutRecord::default();
        r.apply(true, 1_000, Channel::Sms);
        r.apply(false, 1_000, Channel::Sms);
        assert!(
            !r.may_text(),
            "a STOP and a START at the same instant: silence"
        );
    }

    /// Podium's `contact.updated` with an older opt-out time than a webchat START must
    /// not be overridden by it.
    #[test]
    fn an_older_podium_opt_out_beats_a_newer_unverified_opt_in() {
        let mut r = OptOutRecord::default();
        r.apply(false, 5_000, Channel::Webchat);
        assert_eq!(r.apply_podium(Some(1_000), 6_000), PodiumOutcome::Applied);
        assert!(!r.may_text());
        assert_eq!(r.governing(), Some(Channel::Podium));
        assert_eq!(
            r.apply(false, 7_000, Channel::Webchat),
            Applied::StillOptedOut {
                governed_by: Channel::Podium
            }
        );
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
        // And an SMS STOP is not lifted by Podium's "not opted out" either.
        let mut r = OptOutRecord::default();
        r.apply(true, 100, Channel::Sms);
        assert_eq!(r.apply_podium(None, 200), PodiumOutcome::KeptOptOut);
        assert!(!r.may_text());
    }

    #[test]
    fn records_stored_before_channels_were_tracked_still_decide_the_same() {
        // The stored shape of the former layout: no `latest`.
        let old: OptOutRecord = serde_json::from_value(serde_json::json!({
            "opted_out": true,
            "history": [{"opted_out": true, "at_ms": 100, "channel": "sms"}],
            "podium": null
        }))
        .unwrap();
        let mut r = old.clone();
        assert_eq!(
            r.apply(false, 200, Channel::Webchat),
            Applied::StillOptedOut {
                governed_by: Channel::Sms
            }
        );
        // Merged into a fresh record (the phone object importing the old OptOut object).
        let mut fresh = OptOutRecord::default();
        fresh.apply(false, 150, Channel::Webchat);
        fresh.merge_legacy(&old);
        assert!(!fresh.may_text());
        assert_eq!(fresh.governing(), Some(Channel::Sms));
        // An old record that says "opted out" with its reason truncated away stays so.
        let truncated = OptOutRecord {
            opted_out: true,
            history: vec![],
            podium: None,
            latest: vec![],
        };
        let mut fresh = OptOutRecord::default();
        fresh.apply(false, 10, Channel::Webchat);
        fresh.merge_legacy(&truncated);
        assert!(!fresh.may_text());
    }

    #[test]
    fn history_is_bounded() {
        let mut r = OptOutRecord::default();
        for i in 0..200 {
            r.apply(i % 2 == 0, i, Channel::Admin);
        }
        assert!(r.may_text(), "the last change (199) was an opt-in");
        assert_eq!(r.history.len(), MAX_HISTORY);
        assert_eq!(r.history.last().unwrap().at_ms, 199);
    }
}
