//! The phone object (class `Contact`, one per E.164 phone; the class keeps its name so
//! the outboxes of a deployed gateway carry over): everything the gateway holds about
//! one phone, in one Durable Object, so a message costs one call here and the opt-out
//! check before a send cannot interleave with a STOP.
//!
//! One module per concern:
//! - [`consent`]: the opt-out record (channels, precedence) and the import from the
//!   former per-phone `OptOut` objects;
//! - [`outbox`]: the jobs and their delivery (decisions in `gateway_core::outbox`);
//! - [`auto_text`]: the per-phone window for automatic texts and the breaker call;
//! - [`keys`]: message idempotency keys (a resend gets the first answer);
//! - [`records`]: what leaves for the operations shards (dead letters, fallbacks,
//!   counts), shipped by the alarm, never on the request path.

mod auto_text;
mod consent;
mod keys;
mod outbox;
mod records;

use gateway_core::optout::{Applied, Channel, Keyword};
use gateway_core::outbox::JobKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State, Storage};

use crate::error::AppError;
use crate::objects::ops::Fallback;
use crate::objects::turn::Turn;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings;

pub use auto_text::AutoTextIn;

/// Everything a message's turn may read (see [`Contact::message`]).
const MESSAGE_ENTRIES: [&str; 7] = [
    PHONE,
    keys::ENTRY,
    consent::ENTRIES[0],
    auto_text::ENTRIES[0],
    outbox::ENTRIES[0],
    records::ENTRIES[0],
    records::ENTRIES[1],
];

pub const BINDING: &str = "CONTACTS";

/// A chat for this phone (the webchat pipeline's one call here).
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageIn {
    pub phone: String,
    /// The client's idempotency key (or the webhook delivery's key): a repeat within
    /// the retention gets the first answer and queues nothing.
    #[serde(default)]
    pub key: Option<String>,
    /// A STOP/START typed in the webchat.
    #[serde(default)]
    pub keyword: Option<Keyword>,
    pub jobs: Vec<JobKind>,
    /// Messages that were held for want of a phone, released with this one under their
    /// own key (queued once, however often the release is repeated).
    #[serde(default)]
    pub held_key: Option<String>,
    #[serde(default)]
    pub held_jobs: Vec<JobKind>,
    /// The automatic text this chat may trigger (decided here: see `gateway_core::texts`).
    #[serde(default)]
    pub auto_text: Option<AutoTextIn>,
    /// The chat went to the default location: recorded for operators (F5).
    #[serde(default)]
    pub fallback: Option<Fallback>,
}

/// The answer, also what a repeat of the same key gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageOut {
    pub message_id: String,
    pub job_ids: Vec<String>,
    #[serde(default)]
    pub duplicate: bool,
    /// What a keyword did: `opted_out`, `opted_in`, `still_opted_out`.
    #[serde(default)]
    pub opt_out: Option<String>,
    /// Which channel holds an opt-out a webchat START could not lift.
    #[serde(default)]
    pub governed_by: Option<Channel>,
    /// `queued`, or why not (`gateway_core::texts::Skip` code).
    #[serde(default)]
    pub auto_text: Option<String>,
}

// State and Env have no Debug.
#[allow(missing_debug_implementations)]
#[durable_object]
pub struct Contact {
    state: State,
    env: Env,
}

impl DurableObject for Contact {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        rpc::serve(req, |op, body| async move { self.handle(&op, body).await }).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // On an error the jobs stay where they are: try again shortly.
        let outcome = self.run().await;
        rpc::alarm_outcome(&self.state.storage(), "phone_alarm", outcome, 5_000).await
    }
}

/// The phone this object is for, remembered on first use.
const PHONE: &str = "phone";

/// Which phone an operation is about: the body's `phone`, remembered on first use.
async fn phone_of(storage: &Storage, body: &Value) -> Result<String, AppError> {
    if let Some(phone) = body.get("phone").and_then(Value::as_str) {
        let mut turn = Turn::load(storage, &[PHONE]).await?;
        remember_phone(&mut turn, phone)?;
        turn.commit(storage).await?;
        return Ok(phone.to_owned());
    }
    storage
        .get::<String>(PHONE)
        .await?
        .ok_or_else(|| AppError::Internal("phone object without a phone".into()))
}

/// Keep `phone` as the one this object is for (written only when it changes).
fn remember_phone(turn: &mut Turn, phone: &str) -> Result<(), AppError> {
    if turn.get::<String>(PHONE)?.as_deref() != Some(phone) {
        turn.put(PHONE, phone)?;
    }
    Ok(())
}

impl Contact {
    fn ctx(&self) -> Ctx {
        Ctx::new(self.env.clone())
    }

    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        let ctx = self.ctx();
        if op == "message" {
            // Remembers its phone inside its own turn.
            let input: MessageIn = rpc::args(body)?;
            return Ok(json!(self.message(&ctx, &storage, input).await?));
        }
        let phone = phone_of(&storage, &body).await?;
        match op {
            "requeue" => {
                let kind: JobKind = rpc::args(body.get("kind").cloned().unwrap_or_default())?;
                let ids = outbox::enqueue(&storage, vec![kind], now_ms()).await?;
                Ok(json!({"job_ids": ids}))
            }
            "optout.get" => {
                let record = consent::load(&ctx, &storage, &phone).await?;
                Ok(json!(record))
            }
            "optout.apply" => {
                let change: consent::ApplyIn = rpc::args(body)?;
                let mut record = consent::load(&ctx, &storage, &phone).await?;
                let applied = record.apply(change.opted_out, change.at_ms, change.channel);
                consent::save(&storage, &record).await?;
                Ok(
                    json!({"applied": applied, "flipped": applied == Applied::Flipped, "record": record}),
                )
            }
            "optout.podium" => {
                let view: gateway_core::optout::PodiumView = rpc::args(body)?;
                let mut record = consent::load(&ctx, &storage, &phone).await?;
                let outcome = record.apply_podium(view.opted_out_at_ms, view.observed_ms);
                consent::save(&storage, &record).await?;
                Ok(json!({"outcome": outcome, "record": record, "drift": record.drift()}))
            }
            // A review invite, sent from here so the opt-out check and the send cannot
            // be interleaved with a STOP (F6, F12).
            "send_invite" => {
                let input: outbox::InviteIn = rpc::args(body)?;
                outbox::send_invite(&ctx, &storage, &phone, input).await
            }
            "status" => self.status(&ctx, &storage, &phone).await,
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    /// A chat: one storage read and one write for everything it changes (see `turn`),
    /// then the alarm.
    async fn message(
        &self,
        ctx: &Ctx,
        storage: &Storage,
        input: MessageIn,
    ) -> Result<MessageOut, AppError> {
        let settings = settings::load(&self.env)?;
        let retention = settings.config.retention.message_keys_ms;
        // A keyword changes the record, which must first hold the former object's
        // decisions: that import calls the former object, so it comes before the turn.
        if input.keyword.is_some() {
            consent::import(ctx, storage, &input.phone).await?;
        }
        let mut turn = Turn::load(storage, &MESSAGE_ENTRIES).await?;
        let now = now_ms();
        if let Some(key) = &input.key {
            if let Some(mut first) = keys::find(&turn, key, now, retention)? {
                first.duplicate = true;
                return Ok(first);
            }
        }
        remember_phone(&mut turn, &input.phone)?;
        let mut out = MessageOut {
            message_id: String::new(),
            job_ids: Vec::new(),
            duplicate: false,
            opt_out: None,
            governed_by: None,
            auto_text: None,
        };
        // F6: a keyword changes the one record before anything is queued.
        let mut opted_out_now = None;
        if let Some(keyword) = input.keyword {
            let mut record = consent::load_in(&turn)?;
            let applied = record.apply(keyword == Keyword::OptOut, now, Channel::Webchat);
            consent::save_in(&mut turn, &record)?;
            out.opt_out = Some(
                match (keyword, applied) {
                    (_, Applied::StillOptedOut { .. }) => "still_opted_out",
                    (Keyword::OptOut, _) => "opted_out",
                    (Keyword::OptIn, _) => "opted_in",
                }
                .to_owned(),
            );
            if let Applied::StillOptedOut { governed_by } = applied {
                out.governed_by = Some(governed_by);
            }
            opted_out_now = Some(record.opted_out);
        }
        let mut jobs = Vec::new();
        let mut held_ids = Vec::new();
        if let Some(held_key) = &input.held_key {
            if keys::find(&turn, held_key, now, retention)?.is_none() {
                held_ids = outbox::enqueue_in(&mut turn, input.held_jobs, now)?;
                let held_out = MessageOut {
                    message_id: held_ids.first().cloned().unwrap_or_default(),
                    job_ids: held_ids.clone(),
                    duplicate: false,
                    opt_out: None,
                    governed_by: None,
                    auto_text: None,
                };
                keys::remember(&mut turn, held_key, &held_out, now, retention)?;
            }
        }
        jobs.extend(input.jobs);
        if let Some(auto) = &input.auto_text {
            let decision = if input.keyword.is_some() {
                Err("keyword".to_owned())
            } else {
                auto_text::decide(
                    &mut turn,
                    &settings.config.auto_texts,
                    auto,
                    opted_out_now,
                    now,
                )?
                .map_err(|skip| skip.code().to_owned())
            };
            match decision {
                Ok(job) => {
                    jobs.push(job);
                    out.auto_text = Some("queued".into());
                }
                Err(code) => {
                    records::count_in(&mut turn, &format!("auto_text_skipped:{code}"), 1)?;
                    out.auto_text = Some(code);
                }
            }
        }
        out.job_ids = outbox::enqueue_in(&mut turn, jobs, now)?;
        // The message's id: its own first job, else the first held one it released.
        out.message_id = out
            .job_ids
            .first()
            .or(held_ids.first())
            .cloned()
            .unwrap_or_default();
        if let Some(mut fallback) = input.fallback {
            fallback.message_id.clone_from(&out.message_id);
            records::push_in(&mut turn, &records::Record::Fallback(fallback))?;
        }
        records::count_in(&mut turn, "received", 1)?;
        if let Some(key) = &input.key {
            keys::remember(&mut turn, key, &out, now, retention)?;
        }
        turn.commit(storage).await?;
        // Deliver (and ship the counts) now. An alarm already due is set again to the
        // same moment, so there is no need to read it first.
        rpc::alarm_at(storage, now).await?;
        Ok(out)
    }

    /// The admin view of this phone.
    async fn status(&self, ctx: &Ctx, storage: &Storage, phone: &str) -> Result<Value, AppError> {
        let record = consent::load(ctx, storage, phone).await?;
        let contact = outbox::contact(storage).await?;
        let pending = outbox::pending_view(storage).await?;
        Ok(json!({
            "contact": {"identifier": contact.identifier, "locations": contact.locations},
            "pending": pending,
            "opt_out": consent::view(&record),
            "auto_text": auto_text::view(storage).await?,
        }))
    }

    /// The alarm: take in the former opt-out record, deliver what is due, ship records
    /// to the operations shards, set the next alarm.
    async fn run(&self) -> Result<(), AppError> {
        let storage = self.state.storage();
        let Some(phone) = storage.get::<String>(PHONE).await? else {
            return Ok(());
        };
        let ctx = self.ctx();
        let settings = settings::load(&self.env)?;
        // Before any send: the former layout's opt-out decisions are honoured.
        consent::load(&ctx, &storage, &phone).await?;
        let outbox_wake = outbox::drain(&ctx, &storage, &settings, &phone).await?;
        let records_wake = records::ship(&ctx, &storage, &settings, &phone).await?;
        let keys_wake = keys::expire(
            &storage,
            now_ms(),
            settings.config.retention.message_keys_ms,
        )
        .await?;
        // Only storage is awaited from here on (no message can slip in unseen).
        let queued_wake = outbox::next_wake(&storage).await?;
        let next = [outbox_wake, queued_wake, records_wake, keys_wake]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) => rpc::alarm_at(&storage, at.max(now_ms())).await?,
            None => storage.delete_alarm().await?,
        }
        Ok(())
    }
}
