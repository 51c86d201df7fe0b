//! The phone's outbox: jobs persisted before the client hears "accepted" and delivered
//! in order by the alarm. What to do next and what Podium's answer means is
//! `gateway_core::outbox`; this file loads the state, performs the call it asks for,
//! and persists what it decided. Texts pass the country breaker and then the opt-out
//! gate, read immediately before the request leaves (after the token and the request
//! slot), inside this object — nothing can come between the check and the send.

use gateway_core::delivery::Attempt;
use gateway_core::outbox::{
    self, Answer, Call, ContactFound, ContactState, Job, JobKind, JobOutcome, Plan,
};
use gateway_core::phone;
use gateway_core::texts::BreakerVerdict;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{ListOptions, Method, Storage};

use super::consent;
use super::records::{self, Record};
use crate::attachments;
use crate::error::AppError;
use crate::objects::breaker;
use crate::objects::ops::DeadLetter;
use crate::objects::token;
use crate::objects::turn::Turn;
use crate::ops;
use crate::podium::{self, Body, NoReply, Reply};
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::Settings;

/// Calls made per alarm run before yielding (the alarm re-arms at once).
const STEPS_PER_RUN: usize = 100;

fn job_key(seq: u64) -> String {
    format!("job:{seq:012}")
}

/// The entries a turn must load to [`enqueue_in`].
pub const ENTRIES: [&str; 1] = [SEQ];

const SEQ: &str = "seq";

/// Persist jobs at the end of the queue (and make sure the alarm comes); their ids.
pub async fn enqueue(
    storage: &Storage,
    kinds: Vec<JobKind>,
    now: i64,
) -> Result<Vec<String>, AppError> {
    let mut turn = Turn::load(storage, &ENTRIES).await?;
    let ids = enqueue_in(&mut turn, kinds, now)?;
    turn.commit(storage).await?;
    if !ids.is_empty() {
        rpc::wake_by(storage, now).await?;
    }
    Ok(ids)
}

/// [`enqueue`] inside a turn that loaded [`ENTRIES`]; the caller makes sure the alarm
/// comes once the turn is committed.
pub fn enqueue_in(turn: &mut Turn, kinds: Vec<JobKind>, now: i64) -> Result<Vec<String>, AppError> {
    let mut seq: u64 = turn.get(SEQ)?.unwrap_or(0);
    let mut ids = Vec::with_capacity(kinds.len());
    for kind in kinds {
        seq += 1;
        let job = Job {
            id: rpc::new_id("job"),
            created_ms: now,
            attempts: 0,
            next_at_ms: now,
            last_error: None,
            kind,
        };
        ids.push(job.id.clone());
        turn.put(&job_key(seq), &job)?;
    }
    turn.put(SEQ, &seq)?;
    Ok(ids)
}

pub async fn contact(storage: &Storage) -> Result<ContactState, AppError> {
    Ok(storage.get("contact").await?.unwrap_or_default())
}

async fn jobs(storage: &Storage, limit: usize) -> Result<Vec<(String, Job)>, AppError> {
    let map = storage
        .list_with_options(ListOptions::new().prefix("job:").limit(limit))
        .await?;
    let mut out = Vec::new();
    for entry in map.entries() {
        let entry = entry.map_err(|e| AppError::Internal(format!("{e:?}")))?;
        let pair = js_sys::Array::from(&entry);
        let key = pair.get(0).as_string().unwrap_or_default();
        let job: Job = serde_wasm_bindgen::from_value(pair.get(1))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        out.push((key, job));
    }
    Ok(out)
}

/// When the queue needs the alarm, read from storage as it is now: what a run asks last,
/// after every call it made out, so a job queued while the run waited on Podium or a
/// shard is never left without an alarm.
pub async fn next_wake(storage: &Storage) -> Result<Option<i64>, AppError> {
    let contact = contact(storage).await?;
    let head: Vec<Job> = jobs(storage, 1)
        .await?
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    let now = now_ms();
    Ok(match outbox::plan(&contact, &head, now) {
        Plan::Idle => None,
        Plan::WakeAt(at) => Some(at),
        Plan::Perform { .. } => Some(now),
    })
}

/// The queue for operators.
pub async fn pending_view(storage: &Storage) -> Result<Vec<Value>, AppError> {
    Ok(jobs(storage, 1000)
        .await?
        .iter()
        .map(|(_, j)| {
            json!({"id": j.id, "type": j.kind.name(), "attempts": j.attempts,
                   "next_at_ms": j.next_at_ms, "last_error": j.last_error,
                   "location_uid": j.kind.location_uid()})
        })
        .collect())
}

/// Deliver due jobs in order; when to wake next (`None`: nothing queued).
pub async fn drain(
    ctx: &Ctx,
    storage: &Storage,
    settings: &Settings,
    phone: &str,
) -> Result<Option<i64>, AppError> {
    let config = &settings.config;
    let mut contact = contact(storage).await?;
    // Ask the token object once for the slots this run should need, not once per call;
    // the same read gives the first step its head.
    let mut first = jobs(storage, token::MAX_PERMITS as usize).await?;
    let due: Vec<Job> = first.iter().map(|(_, j)| j.clone()).collect();
    ctx.permits().borrow_mut().expect(outbox::calls_expected(
        &contact,
        &due,
        now_ms(),
        token::MAX_PERMITS,
    ));
    first.truncate(1);
    let mut first = Some(first);
    for _ in 0..STEPS_PER_RUN {
        let head = match first.take() {
            Some(head) => head,
            None => jobs(storage, 1).await?,
        };
        let queue: Vec<Job> = head.iter().map(|(_, j)| j.clone()).collect();
        let call = match outbox::plan(&contact, &queue, now_ms()) {
            Plan::Idle => return Ok(None),
            Plan::WakeAt(at) => return Ok(Some(at)),
            Plan::Perform { call, .. } => call,
        };
        let Some((key, mut job)) = head.into_iter().next() else {
            return Ok(None);
        };
        let answer = perform(ctx, storage, settings, phone, &job, &call).await?;
        let now = now_ms();
        let step = outbox::apply(
            &mut contact,
            &mut job,
            &call,
            &answer,
            &config.retry,
            now,
            rpc::random(),
        );
        if step.contact_changed {
            storage.put("contact", &contact).await?;
        }
        if step.drain_pacing {
            if let Err(e) = podium::drain_pacing(ctx).await {
                log_warn("pacing_not_drained", &e);
            }
        }
        if step.record_podium_opt_out {
            // Podium refused the text as opted out: take its word for every flow (F6).
            let mut record = consent::load_local(storage).await?;
            record.apply_podium(Some(now), now);
            consent::save(storage, &record).await?;
        }
        match step.job {
            JobOutcome::Continue => {}
            JobOutcome::Delivered { counter } => {
                storage.delete(&key).await?;
                records::count(storage, counter, 1).await?;
                if let JobKind::Attachment { file_id, .. } = &job.kind {
                    attachments::forget(ctx, file_id).await;
                }
                log_job(phone, &job, counter, None);
            }
            JobOutcome::Suppressed { counter, reason } => {
                storage.delete(&key).await?;
                records::count(storage, counter, 1).await?;
                log_job(phone, &job, counter, Some(&reason));
            }
            JobOutcome::Retry { at_ms, reason } => {
                storage.put(&key, &job).await?;
                records::count(storage, "retried", 1).await?;
                log_job(phone, &job, "retry", Some(&reason));
                return Ok(Some(at_ms));
            }
            JobOutcome::Wait { at_ms } => return Ok(Some(at_ms)),
            JobOutcome::DeadLetter { reason } => {
                // Recorded before the job leaves the outbox: never lost. The id follows
                // from the job's, so shipping it twice stores it once.
                let shard = ops::shard_of(settings, phone);
                let letter = DeadLetter {
                    id: format!("dl-{shard}-{}", job.id),
                    at_ms: now,
                    phone: phone.to_owned(),
                    reason: reason.clone(),
                    attempts: job.attempts,
                    job: json!(job.kind),
                };
                records::push(storage, Record::DeadLetter(letter)).await?;
                storage.delete(&key).await?;
                log_job(phone, &job, "dead_letter", Some(&reason));
            }
        }
    }
    Ok(Some(now_ms()))
}

/// Make the call the plan asked for and turn whatever came back into an [`Answer`].
async fn perform(
    ctx: &Ctx,
    storage: &Storage,
    settings: &Settings,
    phone: &str,
    job: &Job,
    call: &Call,
) -> Result<Answer, AppError> {
    let config = &settings.config.podium;
    let by_phone = podium::url(config, &format!("/v4/contacts/{}", podium::segment(phone)));
    match call {
        Call::LookupContact | Call::RereadContact => {
            let answer =
                podium::call_authorized(ctx, config, Method::Get, &by_phone, Body::None).await?;
            Ok(to_answer(answer, true))
        }
        Call::CreateContact { name, locations } => {
            let body = json!({"name": name, "phoneNumber": phone, "locations": locations});
            let url = podium::url(config, "/v4/contacts");
            let answer =
                podium::call_authorized(ctx, config, Method::Post, &url, Body::Json(body)).await?;
            Ok(to_answer(answer, true))
        }
        Call::Send => send(ctx, storage, settings, phone, job).await,
    }
}

async fn send(
    ctx: &Ctx,
    storage: &Storage,
    settings: &Settings,
    phone: &str,
    job: &Job,
) -> Result<Answer, AppError> {
    let config = &settings.config.podium;
    let location = job.kind.location_uid();
    let (url, body) = match &job.kind {
        JobKind::Chat {
            body,
            contact_name,
            webchat_url,
            ..
        } => (
            podium::url(config, "/v4/messages"),
            Body::Json(json!({
                "body": body,
                "channel": {"type": "phone", "identifier": phone},
                "locationUid": location,
                "contactName": contact_name,
                "webchatUrl": webchat_url,
                "setOpenInbox": true,
            })),
        ),
        JobKind::Attachment {
            file_id,
            filename,
            content_type,
            caption,
            contact_name,
            webchat_url,
            ..
        } => {
            let data = json!({
                "body": caption,
                "channel": {"type": "phone", "identifier": phone},
                "locationUid": location,
                "contactName": contact_name,
                "webchatUrl": webchat_url,
                "setOpenInbox": true,
            });
            match attachments::multipart_body(ctx, file_id, filename, content_type, &data).await? {
                Some((content_type, body)) => (
                    podium::url(config, "/v4/messages/attachment"),
                    Body::Raw { content_type, body },
                ),
                None => {
                    return Ok(Answer::Gone(format!(
                        "attachment {file_id} is no longer stored"
                    )))
                }
            }
        }
        JobKind::Text { body, .. } => {
            // Every text is bounded by its country's breaker first (automatic texts are
            // the only texts the gateway sends on its own).
            if let Some(paused) = breaker_check(ctx, settings, phone).await? {
                return Ok(Answer::Paused(paused));
            }
            (
                podium::url(config, "/v4/messages"),
                Body::Json(json!({
                    "body": body,
                    "channel": {"type": "phone", "identifier": phone},
                    "locationUid": location,
                })),
            )
        }
    };
    let texts = job.kind.texts_customer();
    let answer = podium::call_guarded(ctx, config, Method::Post, &url, body, || async {
        // F6: the opt-out record, read at the moment of sending (chats and files go to
        // the store's inbox and text nobody).
        Ok(!texts || consent::load_local(storage).await?.may_text())
    })
    .await?;
    Ok(to_answer(answer, false))
}

/// Ask the country's breaker for one more automatic text: `Some(why)` when paused.
async fn breaker_check(
    ctx: &Ctx,
    settings: &Settings,
    phone: &str,
) -> Result<Option<String>, AppError> {
    let Some(code) = phone::normalize(phone, None)
        .ok()
        .and_then(|e| phone::calling_code(&e))
    else {
        return Ok(None);
    };
    let verdict: BreakerVerdict = rpc::call(
        ctx,
        breaker::BINDING,
        &breaker::name(code),
        "take",
        &json!({"policy": settings.config.auto_texts.breaker, "calling_code": code}),
    )
    .await?;
    Ok(match verdict {
        BreakerVerdict::Allowed => None,
        BreakerVerdict::Tripped { until_ms } | BreakerVerdict::Open { until_ms } => Some(format!(
            "automatic texts to +{code} are paused until {until_ms} (breaker open)"
        )),
    })
}

/// A Podium contact in an answer body: `data.uid`/`data.identifier` and its locations.
fn contact_in(body: &Value) -> ContactFound {
    let data = body.get("data").unwrap_or(body);
    let identifier = data
        .get("uid")
        .or_else(|| data.get("identifier"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let locations = data.get("locations").and_then(Value::as_array).map(|list| {
        list.iter()
            .filter_map(|l| l.as_str().or_else(|| l.get("uid").and_then(Value::as_str)))
            .map(str::to_owned)
            .collect()
    });
    ContactFound {
        identifier,
        locations,
    }
}

fn to_answer(answer: Result<Reply, NoReply>, contact_call: bool) -> Answer {
    match answer {
        Ok(reply) => Answer::Status {
            status: reply.status,
            retry_after_ms: reply.retry_after_ms,
            detail: reply.detail(),
            contact: (contact_call && reply.is_success()).then(|| contact_in(&reply.body)),
        },
        Err(NoReply::Wait(ms)) => Answer::NoSlot { wait_ms: ms },
        Err(NoReply::Refused) => Answer::OptedOut,
        Err(NoReply::Failed(Attempt::Timeout)) => Answer::Timeout,
        Err(NoReply::Failed(Attempt::Network(e))) => Answer::Network(e),
        Err(NoReply::Failed(Attempt::Status {
            status,
            retry_after_ms,
            detail,
        })) => Answer::Status {
            status,
            retry_after_ms,
            detail,
            contact: None,
        },
    }
}

/// A review invite to send from this object (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
pub struct InviteIn {
    pub invite: Value,
}

/// `send_invite`: the opt-out gate immediately before `POST /v4/reviews/invites`.
pub async fn send_invite(
    ctx: &Ctx,
    storage: &Storage,
    phone: &str,
    input: InviteIn,
) -> Result<Value, AppError> {
    let settings = crate::settings::load(ctx)?;
    let config = &settings.config.podium;
    // The former layout's opt-out decisions first (a network call, before the gate).
    consent::load(ctx, storage, phone).await?;
    let url = podium::url(config, "/v4/reviews/invites");
    let answer = podium::call_guarded(
        ctx,
        config,
        Method::Post,
        &url,
        Body::Json(input.invite),
        || async { Ok(consent::load_local(storage).await?.may_text()) },
    )
    .await?;
    Ok(match answer {
        Ok(reply) => {
            if reply.status == 429 && reply.retry_after_ms.is_none() {
                if let Err(e) = podium::drain_pacing(ctx).await {
                    log_warn("pacing_not_drained", &e);
                }
            }
            json!({"outcome": "reply", "status": reply.status, "retry_after_ms": reply.retry_after_ms,
                   "detail": reply.detail(), "body": reply.body})
        }
        Err(NoReply::Refused) => json!({"outcome": "opted_out"}),
        Err(NoReply::Wait(ms)) => json!({"outcome": "wait", "wait_ms": ms}),
        Err(NoReply::Failed(attempt)) => {
            let timeout = matches!(attempt, Attempt::Timeout);
            json!({"outcome": "no_answer", "timeout": timeout, "detail": format!("{attempt:?}")})
        }
    })
}

fn log_warn(event: &str, e: &AppError) {
    worker::console_error!(
        "{}",
        json!({"level": "warn", "event": event, "error": e.to_string()})
    );
}

fn log_job(phone: &str, job: &Job, outcome: &str, reason: Option<&str>) {
    worker::console_log!(
        "{}",
        json!({
            "event": "delivery", "job": job.id, "type": job.kind.name(), "outcome": outcome,
            "attempts": job.attempts, "phone": crate::mask_phone(phone), "reason": reason,
            "location_uid": job.kind.location_uid(),
        })
    );
}
