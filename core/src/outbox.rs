//! The phone's outbox (F2, F6, F18) as a pure state machine: which Podium call comes
//! next, what Podium's answer means, when to retry and when to dead-letter. The phone's
//! Durable Object only loads the state, asks [`plan`], performs the call, hands the
//! answer to [`apply`], persists what changed and sets its alarm.
//!
//! Jobs are delivered in order per phone: a job waiting to be retried holds back the
//! later jobs of the same phone (never other phones). Before a job is sent, Podium must
//! know the phone as a contact at the job's location: looked up once, created once (a
//! 409 means someone else won: re-read the winner), so concurrent first messages make
//! exactly one contact (F2).

use serde::{Deserialize, Serialize};

use crate::delivery::{self, Attempt, Next, RetryPolicy};

/// What to deliver. The stored shape (`{"type": "chat", …}`) is the one earlier versions
/// stored, so jobs queued before an upgrade are still delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// The customer's chat message, into the store's Podium inbox.
    Chat {
        location_uid: String,
        body: String,
        contact_name: String,
        webchat_url: String,
        session_id: String,
    },
    /// A file the customer sent (stored in R2 until delivered).
    Attachment {
        location_uid: String,
        file_id: String,
        filename: String,
        content_type: String,
        size: u64,
        caption: String,
        contact_name: String,
        webchat_url: String,
    },
    /// A text to the customer's phone: checked against the opt-out record immediately
    /// before it is sent.
    Text {
        location_uid: String,
        body: String,
        /// Why: `confirmation` (automatic, after a chat) or what an operator queued.
        purpose: String,
    },
}

impl JobKind {
    pub fn location_uid(&self) -> &str {
        match self {
            JobKind::Chat { location_uid, .. }
            | JobKind::Attachment { location_uid, .. }
            | JobKind::Text { location_uid, .. } => location_uid,
        }
    }

    /// The name Podium shows for a contact created for this job.
    pub fn contact_name(&self) -> &str {
        match self {
            JobKind::Chat { contact_name, .. } | JobKind::Attachment { contact_name, .. } => {
                contact_name
            }
            JobKind::Text { .. } => "Website visitor",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Chat { .. } => "chat",
            JobKind::Attachment { .. } => "attachment",
            JobKind::Text { .. } => "text",
        }
    }

    /// Whether this job reaches the customer's phone (and so must pass the opt-out gate
    /// at the moment of sending). Chats and files go to the store's inbox with the
    /// customer's own `webchatUrl`: receiving them texts nobody.
    pub fn texts_customer(&self) -> bool {
        matches!(self, JobKind::Text { .. })
    }
}

/// One queued job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub created_ms: i64,
    /// Attempts so far (contact steps on the job's behalf count too).
    pub attempts: u32,
    /// Not before this time (backoff, `Retry-After`).
    pub next_at_ms: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub kind: JobKind,
}

/// What the gateway knows of the phone's Podium contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactState {
    pub identifier: Option<String>,
    pub locations: Vec<String>,
    /// Podium answered 404 for this phone: go straight to the create next time, so a
    /// scarce request budget is not spent on the same lookup again and again.
    #[serde(default)]
    pub known_absent: bool,
    /// A create was answered 409 (someone else created it): read the winner before
    /// anything else.
    #[serde(default)]
    pub conflict: bool,
}

impl ContactState {
    fn has_location(&self, uid: &str) -> bool {
        self.identifier.is_some() && self.locations.iter().any(|l| l == uid)
    }
}

/// The Podium call to make next, on behalf of the job at `job` (index in the queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `GET /v4/contacts/{phone}`.
    LookupContact,
    /// `POST /v4/contacts` (an upsert): the phone at these locations, with this name.
    CreateContact {
        name: String,
        locations: Vec<String>,
    },
    /// `GET /v4/contacts/{phone}` after a 409 on the create: use the winner.
    RereadContact,
    /// The job itself: `POST /v4/messages` (chat, text) or `/v4/messages/attachment`.
    Send,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing queued.
    Idle,
    /// The next job is not due yet: wake at this time.
    WakeAt(i64),
    /// Make `call` for the job at index `job`.
    Perform { job: usize, call: Call },
}

/// Which call comes next: the first job in order, if due, after whatever contact step it
/// still needs.
pub fn plan(contact: &ContactState, jobs: &[Job], now_ms: i64) -> Plan {
    let Some(head) = jobs.first() else {
        return Plan::Idle;
    };
    if head.next_at_ms > now_ms {
        return Plan::WakeAt(head.next_at_ms);
    }
    let location = head.kind.location_uid();
    let call = if contact.has_location(location) {
        Call::Send
    } else if contact.conflict {
        Call::RereadContact
    } else if contact.identifier.is_none() && !contact.known_absent {
        Call::LookupContact
    } else {
        let mut locations = contact.locations.clone();
        if !locations.iter().any(|l| l == location) {
            locations.push(location.to_owned());
        }
        Call::CreateContact {
            name: head.kind.contact_name().to_owned(),
            locations,
        }
    };
    Plan::Perform { job: 0, call }
}

/// How many Podium calls the jobs due now should take if every answer is the usual one
/// (a lookup finds no contact, a re-read finds the winner, the create succeeds, each
/// send is accepted), at most `cap`: how many request slots one delivery run asks for
/// at once. Derived by following [`plan`] through those answers, so the estimate cannot
/// drift from what the outbox does. An unusual answer only means a slot is left unused
/// or a second ask is made.
pub fn calls_expected(contact: &ContactState, jobs: &[Job], now_ms: i64, cap: u32) -> u32 {
    let mut contact = contact.clone();
    let mut queue = jobs;
    let mut calls = 0;
    while calls < cap {
        let Plan::Perform { call, .. } = plan(&contact, queue, now_ms) else {
            break;
        };
        calls += 1;
        match call {
            Call::LookupContact => contact.known_absent = true,
            Call::RereadContact => {
                contact.conflict = false;
                contact.identifier.get_or_insert_with(String::new);
            }
            Call::CreateContact { locations, .. } => {
                contact.identifier.get_or_insert_with(String::new);
                contact.locations = locations;
            }
            Call::Send => queue = queue.get(1..).unwrap_or_default(),
        }
    }
    calls
}

/// A contact as Podium described it in an answer (parsed by the caller from the body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFound {
    pub identifier: Option<String>,
    /// `None` when the answer did not list locations.
    pub locations: Option<Vec<String>>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer: status, `Retry-After` in ms, Podium's error code and message
    /// (for reasons), and the contact in the body of a contact call.
    Status {
        status: u16,
        retry_after_ms: Option<i64>,
        detail: String,
        contact: Option<ContactFound>,
    },
    /// No answer within the timeout.
    Timeout,
    /// Could not connect.
    Network(String),
    /// No request slot or token yet: come back after this long, no attempt counted.
    NoSlot { wait_ms: i64 },
    /// The opt-out gate, read immediately before the send, says the phone is opted out.
    OptedOut,
    /// Automatic texts are paused (the circuit breaker for the number's country is
    /// open): the text is dropped, never sent late.
    Paused(String),
    /// The job can never be delivered as it is (an attachment no longer stored).
    Gone(String),
}

/// What became of the job at the head of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Still queued, its next step comes at once (a contact step succeeded).
    Continue,
    /// Delivered: remove it. `counter` names what happened (`forwarded`, `texted`).
    Delivered { counter: &'static str },
    /// Not sent on purpose (opted out): remove it.
    Suppressed {
        counter: &'static str,
        reason: String,
    },
    /// Try again at `at_ms` (attempts counted, reason kept).
    Retry { at_ms: i64, reason: String },
    /// Come back at `at_ms` without counting an attempt (no request slot).
    Wait { at_ms: i64 },
    /// Undeliverable: move it to the dead letters with the reason.
    DeadLetter { reason: String },
}

/// Everything [`apply`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub job: JobOutcome,
    /// The contact state changed: persist it.
    pub contact_changed: bool,
    /// A 429 without `Retry-After`: empty the shared pacing bucket so every phone slows
    /// down, not just this one.
    pub drain_pacing: bool,
    /// Podium refused a text because its contact is opted out: take Podium's opt-out
    /// into our record (F6), so no other flow tries again.
    pub record_podium_opt_out: bool,
}

impl Step {
    fn job(job: JobOutcome) -> Self {
        Step {
            job,
            contact_changed: false,
            drain_pacing: false,
            record_podium_opt_out: false,
        }
    }

    fn contact(job: JobOutcome) -> Self {
        Step {
            contact_changed: true,
            ..Step::job(job)
        }
    }
}

/// Whether a refusal from Podium says the contact is opted out of texts.
fn says_opted_out(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("opted_out") || d.contains("opted out")
}

/// Apply the answer to `call` made for `job`: updates `contact` and `job` (attempts,
/// next time, last error) and says what became of the job.
pub fn apply(
    contact: &mut ContactState,
    job: &mut Job,
    call: &Call,
    answer: &Answer,
    policy: &RetryPolicy,
    now_ms: i64,
    jitter: f64,
) -> Step {
    let status = match answer {
        Answer::NoSlot { wait_ms } => {
            return Step::job(JobOutcome::Wait {
                at_ms: now_ms.saturating_add((*wait_ms).max(50)),
            })
        }
        Answer::OptedOut if job.kind.texts_customer() => {
            return Step::job(JobOutcome::Suppressed {
                counter: "suppressed_opted_out",
                reason: "opted out when it was due to be sent".into(),
            })
        }
        Answer::Paused(reason) if job.kind.texts_customer() => {
            return Step::job(JobOutcome::Suppressed {
                counter: "suppressed_breaker",
                reason: reason.clone(),
            })
        }
        Answer::Gone(reason) => {
            return Step::job(JobOutcome::DeadLetter {
                reason: reason.clone(),
            })
        }
        Answer::Status { status, .. } => Some(*status),
        Answer::OptedOut | Answer::Paused(_) | Answer::Timeout | Answer::Network(_) => None,
    };
    let success = status.is_some_and(|s| (200..300).contains(&s));
    let found = match answer {
        Answer::Status { contact, .. } => contact.clone().unwrap_or_default(),
        _ => ContactFound::default(),
    };
    match call {
        Call::LookupContact if success => {
            remember(contact, &found);
            contact.known_absent = false;
            return Step::contact(JobOutcome::Continue);
        }
        Call::LookupContact if status == Some(404) => {
            contact.known_absent = true;
            return Step::contact(JobOutcome::Continue);
        }
        Call::CreateContact { locations, .. } if success => {
            if found.identifier.is_some() {
                contact.identifier = found.identifier;
            }
            contact.locations = locations.clone();
            contact.known_absent = false;
            return Step::contact(JobOutcome::Continue);
        }
        Call::CreateContact { .. } if status == Some(409) => {
            // Someone else created it first: re-read and use the winner (not an
            // attempt of the job's own: nothing failed).
            contact.conflict = true;
            return Step::contact(JobOutcome::Continue);
        }
        Call::RereadContact if success => {
            // If the winner is not at this job's store yet, the next plan upserts it there.
            remember(contact, &found);
            contact.conflict = false;
            contact.known_absent = false;
            return Step::contact(JobOutcome::Continue);
        }
        Call::RereadContact if status == Some(404) => {
            // The winner is not readable yet: try again later, never dead-letter.
            contact.conflict = false;
            contact.known_absent = false;
            let attempts = job.attempts.saturating_add(1);
            return Step {
                contact_changed: true,
                ..Step::job(retry_or_dead(
                    job,
                    policy,
                    attempts,
                    &Attempt::Status {
                        status: 503,
                        retry_after_ms: None,
                        detail: "409 on create, and the existing contact is not readable yet"
                            .into(),
                    },
                    now_ms,
                    jitter,
                ))
            };
        }
        Call::Send if success => {
            return Step::job(JobOutcome::Delivered {
                counter: if job.kind.texts_customer() {
                    "texted"
                } else {
                    "forwarded"
                },
            });
        }
        _ => {}
    }
    // A failure of the call, on the job's behalf.
    let attempt = match answer {
        Answer::Status {
            status,
            retry_after_ms,
            detail,
            ..
        } => Attempt::Status {
            status: *status,
            retry_after_ms: *retry_after_ms,
            detail: detail.clone(),
        },
        Answer::Timeout => Attempt::Timeout,
        Answer::Network(e) => Attempt::Network(e.clone()),
        // A chat or file never asks the opt-out gate; if it says so anyway, nothing was
        // sent: come back later rather than lose the customer's message.
        Answer::OptedOut | Answer::Paused(_) | Answer::NoSlot { .. } | Answer::Gone(_) => {
            Attempt::Status {
                status: 503,
                retry_after_ms: None,
                detail: "not sent".into(),
            }
        }
    };
    if let (Call::Send, Answer::Status { status, detail, .. }) = (call, answer) {
        if job.kind.texts_customer() && (400..500).contains(status) && says_opted_out(detail) {
            return Step {
                record_podium_opt_out: true,
                ..Step::job(JobOutcome::Suppressed {
                    counter: "suppressed_opted_out",
                    reason: format!("Podium refused: {status} {detail}"),
                })
            };
        }
    }
    let drain_pacing = matches!(
        answer,
        Answer::Status {
            status: 429,
            retry_after_ms: None,
            ..
        }
    );
    let attempts = job.attempts.saturating_add(1);
    Step {
        drain_pacing,
        ..Step::job(retry_or_dead(
            job, policy, attempts, &attempt, now_ms, jitter,
        ))
    }
}

fn retry_or_dead(
    job: &mut Job,
    policy: &RetryPolicy,
    attempts: u32,
    attempt: &Attempt,
    now_ms: i64,
    jitter: f64,
) -> JobOutcome {
    match delivery::next(policy, attempts, attempt, now_ms, jitter) {
        Next::RetryAt { at_ms, reason } => {
            job.attempts = attempts;
            job.next_at_ms = at_ms;
            job.last_error = Some(reason.clone());
            JobOutcome::Retry { at_ms, reason }
        }
        Next::DeadLetter { reason } => {
            job.attempts = attempts;
            job.last_error = Some(reason.clone());
            JobOutcome::DeadLetter { reason }
        }
        // A 2xx is handled before; `Done` here cannot happen, but never lose a job.
        Next::Done => JobOutcome::Retry {
            at_ms: now_ms,
            reason: "unexpected success".into(),
        },
    }
}

fn remember(contact: &mut ContactState, found: &ContactFound) {
    if let Some(id) = &found.identifier {
        contact.identifier = Some(id.clone());
    }
    if let Some(locations) = &found.locations {
        contact.locations = locations.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(location: &str) -> Job {
        Job {
            id: "job_1".into(),
            created_ms: 0,
            attempts: 0,
            next_at_ms: 0,
            last_error: None,
            kind: JobKind::Chat {
                location_uid: location.into(),
                body: "hi".into(),
                contact_name: "Ann".into(),
                webchat_url: "https://shop.example/".into(),
                session_id: "s".into(),
            },
        }
    }

    fn text() -> Job {
        Job {
            kind: JobKind::Text {
                location_uid: "loc_a".into(),
                body: "Thanks".into(),
                purpose: "confirmation".into(),
            },
            ..chat("loc_a")
        }
    }

    fn known(locations: &[&str]) -> ContactState {
        ContactState {
            identifier: Some("c_1".into()),
            locations: locations.iter().map(|l| (*l).to_owned()).collect(),
            ..ContactState::default()
        }
    }

    #[test]
    fn calls_expected_counts_the_contact_steps_once_and_one_send_per_due_job() {
        let mut later = chat("loc_a");
        later.next_at_ms = 5_000;
        let new_phone = ContactState::default();
        // Lookup, create, chat, confirmation.
        assert_eq!(
            calls_expected(&new_phone, &[chat("loc_a"), text()], 0, 10),
            4
        );
        // A returning customer at a known location: the send only.
        assert_eq!(
            calls_expected(&known(&["loc_a"]), &[chat("loc_a")], 0, 10),
            1
        );
        // Known, at a new location: the upsert, then the send.
        assert_eq!(
            calls_expected(&known(&["loc_a"]), &[chat("loc_b")], 0, 10),
            2
        );
        // Podium said 404 before: straight to the create.
        let absent = ContactState {
            known_absent: true,
            ..ContactState::default()
        };
        assert_eq!(calls_expected(&absent, &[chat("loc_a")], 0, 10), 2);
        // A create answered 409 before: the re-read, then the upsert and the send.
        let conflict = ContactState {
            conflict: true,
            ..ContactState::default()
        };
        assert_eq!(calls_expected(&conflict, &[chat("loc_a")], 0, 10), 3);
        // Jobs not due yet are not counted, nor anything behind them (order is kept).
        assert_eq!(
            calls_expected(&known(&["loc_a"]), &[later.clone(), chat("loc_a")], 0, 10),
            0
        );
        assert_eq!(
            calls_expected(&known(&["loc_a"]), &[chat("loc_a"), later], 0, 10),
            1
        );
        // Never more than the cap, and nothing queued asks for nothing.
        let many: Vec<Job> = (0..20).map(|_| chat("loc_a")).collect();
        assert_eq!(calls_expected(&known(&["loc_a"]), &many, 0, 6), 6);
        assert_eq!(calls_expected(&new_phone, &[], 0, 6), 0);
    }

    fn status(status: u16) -> Answer {
        Answer::Status {
            status,
            retry_after_ms: None,
            detail: String::new(),
            contact: None,
        }
    }

    fn found(id: &str, locations: &[&str]) -> Answer {
        Answer::Status {
            status: 200,
            retry_after_ms: None,
            detail: String::new(),
            contact: Some(ContactFound {
                identifier: Some(id.into()),
                locations: Some(locations.iter().map(|l| (*l).to_owned()).collect()),
            }),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Which call comes next, for each thing the gateway may know about the contact.
    #[test]
    fn plan_table() {
        let absent = ContactState {
            known_absent: true,
            ..ContactState::default()
        };
        let conflict = ContactState {
            conflict: true,
            ..ContactState::default()
        };
        let create = |locations: &[&str]| Call::CreateContact {
            name: "Ann".into(),
            locations: locations.iter().map(|l| (*l).to_owned()).collect(),
        };
        let table: Vec<(&str, ContactState, Call)> = vec![
            (
                "unknown phone",
                ContactState::default(),
                Call::LookupContact,
            ),
            ("Podium said 404", absent, create(&["loc_a"])),
            ("a 409 on create", conflict, Call::RereadContact),
            ("known at this store", known(&["loc_a"]), Call::Send),
            (
                "known elsewhere",
                known(&["loc_b"]),
                create(&["loc_b", "loc_a"]),
            ),
        ];
        for (case, contact, want) in table {
            assert_eq!(
                plan(&contact, &[chat("loc_a")], 0),
                Plan::Perform { job: 0, call: want },
                "{case}"
            );
        }
        assert_eq!(plan(&ContactState::default(), &[], 0), Plan::Idle);
        let mut later = chat("loc_a");
        later.next_at_ms = 500;
        assert_eq!(
            plan(&known(&["loc_a"]), &[later, chat("loc_a")], 100),
            Plan::WakeAt(500),
            "a job waiting for its retry holds back the ones behind it"
        );
    }

    /// What each answer to the send means, for a chat and for a text.
    #[test]
    fn send_answer_table() {
        let limited = |retry_after_ms| Answer::Status {
            status: 429,
            retry_after_ms,
            detail: "rate_limit".into(),
            contact: None,
        };
        let refused_opted_out = Answer::Status {
            status: 422,
            retry_after_ms: None,
            detail: "opted_out the contact has opted out".into(),
            contact: None,
        };
        type Check = fn(&Step) -> bool;
        let table: Vec<(&str, Job, Answer, Check)> = vec![
            ("chat 202", chat("loc_a"), status(202), |s| {
                s.job
                    == JobOutcome::Delivered {
                        counter: "forwarded",
                    }
            }),
            ("text 200", text(), status(200), |s| {
                s.job == JobOutcome::Delivered { counter: "texted" }
            }),
            ("500 retries", chat("loc_a"), status(500), |s| {
                matches!(s.job, JobOutcome::Retry { .. })
            }),
            ("timeout retries", chat("loc_a"), Answer::Timeout, |s| {
                matches!(s.job, JobOutcome::Retry { .. })
            }),
            (
                "network retries",
                chat("loc_a"),
                Answer::Network("refused".into()),
                |s| matches!(s.job, JobOutcome::Retry { .. }),
            ),
            (
                "401 retries (token refreshed)",
                chat("loc_a"),
                status(401),
                |s| matches!(s.job, JobOutcome::Retry { .. }),
            ),
            (
                "429 + Retry-After waits that long",
                chat("loc_a"),
                limited(Some(2_000)),
                |s| {
                    s.job
                        == JobOutcome::Retry {
                            at_ms: 1_002_000,
                            reason: "429 rate_limit".into(),
                        }
                        && !s.drain_pacing
                },
            ),
            (
                "bare 429 drains the pacing",
                chat("loc_a"),
                limited(None),
                |s| {
                    matches!(s.job, JobOutcome::Retry { at_ms, .. } if at_ms >= 1_012_000)
                        && s.drain_pacing
                },
            ),
            (
                "409 on a message is refused",
                chat("loc_a"),
                status(409),
                |s| matches!(s.job, JobOutcome::DeadLetter { .. }),
            ),
            ("400 is refused", chat("loc_a"), status(400), |s| {
                matches!(s.job, JobOutcome::DeadLetter { .. })
            }),
            (
                "no slot waits, no attempt",
                chat("loc_a"),
                Answer::NoSlot { wait_ms: 300 },
                |s| s.job == JobOutcome::Wait { at_ms: 1_000_300 },
            ),
            (
                "the breaker is open",
                text(),
                Answer::Paused("paused".into()),
                |s| {
                    matches!(
                        s.job,
                        JobOutcome::Suppressed {
                            counter: "suppressed_breaker",
                            ..
                        }
                    )
                },
            ),
            ("the gate says opted out", text(), Answer::OptedOut, |s| {
                matches!(
                    s.job,
                    JobOutcome::Suppressed {
                        counter: "suppressed_opted_out",
                        ..
                    }
                ) && !s.record_podium_opt_out
            }),
            (
                "Podium refuses a text as opted out",
                text(),
                refused_opted_out.clone(),
                |s| matches!(s.job, JobOutcome::Suppressed { .. }) && s.record_podium_opt_out,
            ),
            (
                "a chat refused as opted out is a dead letter",
                chat("loc_a"),
                refused_opted_out,
                |s| matches!(s.job, JobOutcome::DeadLetter { .. }) && !s.record_podium_opt_out,
            ),
            (
                "a vanished file",
                chat("loc_a"),
                Answer::Gone("file gone".into()),
                |s| {
                    s.job
                        == JobOutcome::DeadLetter {
                            reason: "file gone".into(),
                        }
                },
            ),
        ];
        for (case, job, answer, check) in table {
            let mut contact = known(&["loc_a"]);
            let mut job = job;
            let step = apply(
                &mut contact,
                &mut job,
                &Call::Send,
                &answer,
                &policy(),
                1_000_000,
                0.0,
            );
            assert!(check(&step), "{case}: {step:?}");
            assert!(!step.contact_changed, "{case}");
        }
    }

    #[test]
    fn retries_count_attempts_and_end_in_the_dead_letters() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..policy()
        };
        let mut job = chat("loc_a");
        let mut contact = known(&["loc_a"]);
        let mut last = None;
        for _ in 0..3 {
            let step = apply(
                &mut contact,
                &mut job,
                &Call::Send,
                &status(503),
                &p,
                0,
                0.5,
            );
            last = Some(step.job);
        }
        assert_eq!(job.attempts, 3);
        assert!(
            matches!(last, Some(JobOutcome::DeadLetter { reason }) if reason.contains("gave up after 3"))
        );
    }

    /// The contact steps: lookup, create, conflict and re-read.
    #[test]
    fn contact_answer_table() {
        let mut contact = ContactState::default();
        let mut job = chat("loc_a");
        // Lookup: 404 → known absent → create.
        let s = apply(
            &mut contact,
            &mut job,
            &Call::LookupContact,
            &status(404),
            &policy(),
            0,
            0.0,
        );
        assert_eq!((s.job, s.contact_changed), (JobOutcome::Continue, true));
        assert!(contact.known_absent);
        let Plan::Perform { call: create, .. } = plan(&contact, &[job.clone()], 0) else {
            panic!("expected a create");
        };
        // Create: 409 → re-read.
        let s = apply(
            &mut contact,
            &mut job,
            &create,
            &status(409),
            &policy(),
            0,
            0.0,
        );
        assert_eq!(s.job, JobOutcome::Continue);
        assert_eq!(
            plan(&contact, &[job.clone()], 0),
            Plan::Perform {
                job: 0,
                call: Call::RereadContact
            }
        );
        assert_eq!(job.attempts, 0, "a conflict is not a failure");
        // Re-read: the winner, at this store → send.
        let s = apply(
            &mut contact,
            &mut job,
            &Call::RereadContact,
            &found("c_9", &["loc_a"]),
            &policy(),
            0,
            0.0,
        );
        assert_eq!(s.job, JobOutcome::Continue);
        assert_eq!(contact.identifier.as_deref(), Some("c_9"));
        assert_eq!(
            plan(&contact, &[job.clone()], 0),
            Plan::Perform {
                job: 0,
                call: Call::Send
            }
        );

        // Re-read answered 404: retried later, never dead-lettered at once.
        let mut contact = ContactState {
            conflict: true,
            ..ContactState::default()
        };
        let mut job = chat("loc_a");
        let s = apply(
            &mut contact,
            &mut job,
            &Call::RereadContact,
            &status(404),
            &policy(),
            0,
            0.0,
        );
        assert!(matches!(s.job, JobOutcome::Retry { .. }), "{s:?}");
        assert!(!contact.conflict);
        assert_eq!(job.attempts, 1);

        // The winner exists at another store: the upsert adds this one.
        let mut contact = ContactState {
            conflict: true,
            ..ContactState::default()
        };
        let mut job = chat("loc_a");
        apply(
            &mut contact,
            &mut job,
            &Call::RereadContact,
            &found("c_9", &["loc_b"]),
            &policy(),
            0,
            0.0,
        );
        assert_eq!(
            plan(&contact, &[job.clone()], 0),
            Plan::Perform {
                job: 0,
                call: Call::CreateContact {
                    name: "Ann".into(),
                    locations: vec!["loc_b".into(), "loc_a".into()]
                }
            }
        );

        // Lookup found the contact already at this store.
        let mut contact = ContactState::default();
        let mut job = chat("loc_a");
        apply(
            &mut contact,
            &mut job,
            &Call::LookupContact,
            &found("c_2", &["loc_a"]),
            &policy(),
            0,
            0.0,
        );
        assert_eq!(
            plan(&contact, &[job.clone()], 0),
            Plan::Perform {
                job: 0,
                call: Call::Send
            }
        );

        // Create succeeded: the contact is at the locations asked for.
        let mut contact = ContactState {
            known_absent: true,
            ..ContactState::default()
        };
        let mut job = chat("loc_a");
        let create = Call::CreateContact {
            name: "Ann".into(),
            locations: vec!["loc_a".into()],
        };
        let created = Answer::Status {
            status: 202,
            retry_after_ms: None,
            detail: String::new(),
            contact: Some(ContactFound {
                identifier: Some("c_3".into()),
                locations: None,
            }),
        };
        apply(&mut contact, &mut job, &create, &created, &policy(), 0, 0.0);
        assert_eq!(
            contact,
            ContactState {
                identifier: Some("c_3".into()),
                locations: vec!["loc_a".into()],
                known_absent: false,
                conflict: false
            }
        );

        // A contact step failing counts against the job like a send would.
        let mut contact = ContactState::default();
        let mut job = chat("loc_a");
        let s = apply(
            &mut contact,
            &mut job,
            &Call::LookupContact,
            &status(500),
            &policy(),
            0,
            0.0,
        );
        assert!(matches!(s.job, JobOutcome::Retry { .. }));
        assert_eq!(job.attempts, 1);
        let s = apply(
            &mut contact,
            &mut job,
            &Call::LookupContact,
            &status(403),
            &policy(),
            0,
            0.0,
        );
        assert!(
            matches!(s.job, JobOutcome::Retry { .. }),
            "403: credentials, retried"
        );
    }

    #[test]
    fn stored_jobs_of_the_earlier_layout_still_load() {
        let stored = serde_json::json!({
            "id": "job_abc", "created_ms": 1, "attempts": 2, "next_at_ms": 3, "last_error": null,
            "kind": {"type": "text", "location_uid": "loc_a", "body": "Thanks", "purpose": "confirmation"}
        });
        let job: Job = serde_json::from_value(stored).unwrap();
        assert!(job.kind.texts_customer());
        assert_eq!(job.attempts, 2);
    }
}
