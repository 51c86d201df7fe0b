//! `Contact`: one per E.164 phone (F2, F18). It owns the phone's Podium contact id and
//! the phone's outbox. Jobs are persisted before the client hears "accepted" and are
//! delivered in order by the alarm handler, which never runs twice at once for one
//! object: so concurrent first messages from one phone create exactly one contact, and a
//! 409 from Podium just means "re-read the winner".

use gateway_core::config::PodiumConfig;
use gateway_core::delivery::{self, Attempt, Next};
use gateway_core::optout::OptOutRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, ListOptions, Method, Request, Response, State, Storage,
};

use crate::error::AppError;
use crate::objects::{ledger, optout};
use crate::podium::{self, Body, Reply};
use crate::rpc::{self, now_ms};
use crate::{attachments, settings};

pub const BINDING: &str = "CONTACTS";
/// Jobs handled per alarm run before yielding (the alarm re-arms at once).
const JOBS_PER_RUN: usize = 100;

/// What to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// A text to the customer's phone: checked against the opt-out record when sent.
    Text {
        location_uid: String,
        body: String,
        purpose: String,
    },
}

impl JobKind {
    fn location_uid(&self) -> &str {
        match self {
            JobKind::Chat { location_uid, .. }
            | JobKind::Attachment { location_uid, .. }
            | JobKind::Text { location_uid, .. } => location_uid,
        }
    }

    fn contact_name(&self) -> &str {
        match self {
            JobKind::Chat { contact_name, .. } | JobKind::Attachment { contact_name, .. } => {
                contact_name
            }
            JobKind::Text { .. } => "Website visitor",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            JobKind::Chat { .. } => "chat",
            JobKind::Attachment { .. } => "attachment",
            JobKind::Text { .. } => "text",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_at_ms: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub kind: JobKind,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Enqueue {
    pub phone: String,
    pub jobs: Vec<JobKind>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ContactInfo {
    identifier: Option<String>,
    locations: Vec<String>,
    /// Podium answered 404 for this phone: go straight to the create next time, so a
    /// scarce request budget is not spent on the same lookup again and again.
    #[serde(default)]
    known_absent: bool,
}

/// How one delivery attempt ended.
enum Step {
    Delivered(&'static str),
    /// No request slot or token yet: come back later without counting an attempt.
    Wait(i64),
    Failed(Attempt),
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
        if let Err(e) = self.drain().await {
            // The alarm is retried by the platform; leave the jobs where they are.
            worker::console_error!(
                "{}",
                json!({"level": "error", "contact_alarm": e.to_string()})
            );
            rpc::alarm_at(&self.state.storage(), now_ms() + 5_000).await?;
        }
        Response::ok("")
    }
}

fn job_key(seq: u64) -> String {
    format!("job:{seq:012}")
}

impl Contact {
    async fn handle(&self, op: &str, body: Value) -> Result<Value, AppError> {
        let storage = self.state.storage();
        match op {
            "enqueue" => {
                let input: Enqueue = rpc::args(body)?;
                let ids = self.enqueue(&storage, &input.phone, input.jobs, 0).await?;
                Ok(json!({"job_ids": ids}))
            }
            "requeue" => {
                let phone: String = rpc::args(body.get("phone").cloned().unwrap_or_default())?;
                let kind: JobKind = rpc::args(body.get("kind").cloned().unwrap_or_default())?;
                let ids = self.enqueue(&storage, &phone, vec![kind], 0).await?;
                Ok(json!({"job_ids": ids}))
            }
            "status" => {
                let contact: ContactInfo = storage.get("contact").await?.unwrap_or_default();
                let jobs = self.jobs(&storage, 1000).await?;
                let pending: Vec<Value> = jobs
                    .iter()
                    .map(|(_, j)| {
                        json!({"id": j.id, "type": j.kind.name(), "attempts": j.attempts,
                               "next_at_ms": j.next_at_ms, "last_error": j.last_error,
                               "location_uid": j.kind.location_uid()})
                    })
                    .collect();
                Ok(
                    json!({"contact": {"identifier": contact.identifier, "locations": contact.locations},
                          "pending": pending}),
                )
            }
            _ => Err(AppError::NotFound("no such operation")),
        }
    }

    async fn enqueue(
        &self,
        storage: &Storage,
        phone: &str,
        kinds: Vec<JobKind>,
        delay_ms: i64,
    ) -> Result<Vec<String>, AppError> {
        let now = now_ms();
        let mut seq: u64 = storage.get("seq").await?.unwrap_or(0);
        let mut ids = Vec::with_capacity(kinds.len());
        for kind in kinds {
            seq += 1;
            let job = Job {
                id: rpc::new_id("job"),
                created_ms: now,
                attempts: 0,
                next_at_ms: now + delay_ms,
                last_error: None,
                kind,
            };
            ids.push(job.id.clone());
            storage.put(&job_key(seq), &job).await?;
        }
        storage.put("seq", seq).await?;
        storage.put("phone", phone).await?;
        let due = now + delay_ms;
        let alarm = storage.get_alarm().await?;
        if alarm.is_none_or(|at| at > due) {
            rpc::alarm_at(storage, due).await?;
        }
        Ok(ids)
    }

    async fn jobs(&self, storage: &Storage, limit: usize) -> Result<Vec<(String, Job)>, AppError> {
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

    /// Deliver due jobs in order; stop at the first that must wait, and re-arm.
    async fn drain(&self) -> Result<(), AppError> {
        let storage = self.state.storage();
        let Some(phone) = storage.get::<String>("phone").await? else {
            return Ok(());
        };
        let settings = settings::load(&self.env)?;
        let policy = settings.config.retry;
        let jobs = self.jobs(&storage, JOBS_PER_RUN).await?;
        let more = jobs.len() == JOBS_PER_RUN;
        for (key, mut job) in jobs {
            if job.next_at_ms > now_ms() {
                rpc::alarm_at(&storage, job.next_at_ms).await?;
                return Ok(());
            }
            let step = self
                .deliver(&settings.config.podium, &storage, &phone, &job.kind)
                .await?;
            // After the attempt: a Retry-After counts from when the answer arrived.
            let now = now_ms();
            match step {
                Step::Delivered(outcome) => {
                    storage.delete(&key).await?;
                    self.count(outcome);
                    log_job(&phone, &job, outcome, None);
                }
                Step::Wait(ms) => {
                    rpc::alarm_at(&storage, now + ms.max(50)).await?;
                    return Ok(());
                }
                Step::Failed(attempt) => {
                    let attempts = job.attempts + 1;
                    match delivery::next(&policy, attempts, &attempt, now, rpc::random()) {
                        Next::Done => {
                            storage.delete(&key).await?;
                        }
                        Next::RetryAt { at_ms, reason } => {
                            job.attempts = attempts;
                            job.next_at_ms = at_ms;
                            job.last_error = Some(reason.clone());
                            storage.put(&key, &job).await?;
                            rpc::alarm_at(&storage, at_ms).await?;
                            self.count("retried");
                            log_job(&phone, &job, "retry", Some(&reason));
                            return Ok(());
                        }
                        Next::DeadLetter { reason } => {
                            let letter = ledger::DeadLetter {
                                id: rpc::new_id("dl"),
                                at_ms: now,
                                phone: phone.clone(),
                                reason: reason.clone(),
                                attempts,
                                job: json!(job.kind),
                            };
                            // Recorded before the job leaves the outbox: never lost.
                            rpc::call::<_, Value>(
                                &self.env,
                                ledger::BINDING,
                                ledger::NAME,
                                "dead_letter.add",
                                &letter,
                            )
                            .await?;
                            storage.delete(&key).await?;
                            log_job(&phone, &job, "dead_letter", Some(&reason));
                        }
                    }
                }
            }
        }
        if more {
            rpc::alarm_at(&storage, now_ms()).await?;
        }
        Ok(())
    }

    fn count(&self, name: &'static str) {
        let env = self.env.clone();
        self.state.wait_until(async move {
            let _ = rpc::call::<_, Value>(
                &env,
                ledger::BINDING,
                ledger::NAME,
                "count",
                &json!({"name": name}),
            )
            .await;
        });
    }

    /// One attempt at one job.
    async fn deliver(
        &self,
        config: &PodiumConfig,
        storage: &Storage,
        phone: &str,
        kind: &JobKind,
    ) -> Result<Step, AppError> {
        if let JobKind::Text { .. } = kind {
            // F6: the single opt-out record, read at the moment of sending.
            let record: OptOutRecord =
                rpc::call(&self.env, optout::BINDING, phone, "get", &json!({})).await?;
            if !record.may_text() {
                return Ok(Step::Delivered("suppressed_opted_out"));
            }
        }

        if let Some(step) = self.ensure_contact(config, storage, phone, kind).await? {
            return Ok(step);
        }

        let location = kind.location_uid();
        let (url, body) = match kind {
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
                match attachments::multipart_body(&self.env, file_id, filename, content_type, &data)
                    .await?
                {
                    Some((content_type, body)) => (
                        podium::url(config, "/v4/messages/attachment"),
                        Body::Raw { content_type, body },
                    ),
                    None => {
                        return Ok(Step::Failed(Attempt::Status {
                            status: 410,
                            retry_after_ms: None,
                            detail: format!("attachment {file_id} is no longer stored"),
                        }))
                    }
                }
            }
            JobKind::Text { body, .. } => (
                podium::url(config, "/v4/messages"),
                Body::Json(json!({
                    "body": body,
                    "channel": {"type": "phone", "identifier": phone},
                    "locationUid": location,
                })),
            ),
        };
        let reply = match self.podium(config, Method::Post, &url, body).await? {
            Ok(reply) => reply,
            Err(step) => return Ok(step),
        };
        if reply.is_success() {
            if let JobKind::Attachment { file_id, .. } = kind {
                attachments::forget(&self.env, file_id).await;
            }
            return Ok(Step::Delivered(match kind {
                JobKind::Text { .. } => "texted",
                _ => "forwarded",
            }));
        }
        Ok(Step::Failed(reply.attempt()))
    }

    /// Make sure Podium has this phone as a contact at the job's location. `Some(step)`
    /// when the job cannot go on yet.
    async fn ensure_contact(
        &self,
        config: &PodiumConfig,
        storage: &Storage,
        phone: &str,
        kind: &JobKind,
    ) -> Result<Option<Step>, AppError> {
        let mut contact: ContactInfo = storage.get("contact").await?.unwrap_or_default();
        let location = kind.location_uid();
        if contact.identifier.is_some() && contact.locations.iter().any(|l| l == location) {
            return Ok(None);
        }
        let by_phone = podium::url(config, &format!("/v4/contacts/{}", podium::segment(phone)));

        if contact.identifier.is_none() && !contact.known_absent {
            let found = match self
                .podium(config, Method::Get, &by_phone, Body::None)
                .await?
            {
                Ok(reply) => reply,
                Err(step) => return Ok(Some(step)),
            };
            if found.is_success() {
                remember(&mut contact, &found.body);
            } else if found.status == 404 {
                contact.known_absent = true;
                storage.put("contact", &contact).await?;
            } else {
                return Ok(Some(Step::Failed(found.attempt())));
            }
        }
        if contact.identifier.is_some() && contact.locations.iter().any(|l| l == location) {
            storage.put("contact", &contact).await?;
            return Ok(None);
        }
        // Upsert: creates the contact, or adds this location to it.
        let mut locations = contact.locations.clone();
        locations.push(location.to_owned());
        let create = json!({
            "name": kind.contact_name(),
            "phoneNumber": phone,
            "locations": locations,
        });
        let created = match self
            .podium(
                config,
                Method::Post,
                &podium::url(config, "/v4/contacts"),
                Body::Json(create),
            )
            .await?
        {
            Ok(reply) => reply,
            Err(step) => return Ok(Some(step)),
        };
        if created.status == 409 {
            // Someone else created it first: re-read and use the winner.
            let winner = match self
                .podium(config, Method::Get, &by_phone, Body::None)
                .await?
            {
                Ok(reply) => reply,
                Err(step) => return Ok(Some(step)),
            };
            if winner.status == 404 {
                // The winner is not readable yet: try again later, never dead-letter.
                contact.known_absent = false;
                storage.put("contact", &contact).await?;
                return Ok(Some(Step::Failed(Attempt::Status {
                    status: 503,
                    retry_after_ms: None,
                    detail: "409 on create, and the existing contact is not readable yet".into(),
                })));
            }
            if !winner.is_success() {
                return Ok(Some(Step::Failed(winner.attempt())));
            }
            remember(&mut contact, &winner.body);
            if !contact.locations.iter().any(|l| l == location) {
                contact.locations.push(location.to_owned());
            }
        } else if created.is_success() {
            if let Some(id) = created
                .body
                .pointer("/data/identifier")
                .and_then(Value::as_str)
            {
                contact.identifier = Some(id.to_owned());
            }
            contact.locations = locations;
        } else {
            return Ok(Some(Step::Failed(created.attempt())));
        }
        storage.put("contact", &contact).await?;
        Ok(None)
    }

    /// One Podium call with a pacing slot and the shared token; a 401 invalidates the
    /// token and tries once more with a fresh one.
    async fn podium(
        &self,
        config: &PodiumConfig,
        method: Method,
        url: &str,
        body: Body,
    ) -> Result<Result<Reply, Step>, AppError> {
        Ok(
            podium::call_authorized(&self.env, config, method, url, body)
                .await?
                .map_err(|no_reply| match no_reply {
                    podium::NoReply::Wait(ms) => Step::Wait(ms),
                    podium::NoReply::Failed(attempt) => Step::Failed(attempt),
                }),
        )
    }
}

fn remember(contact: &mut ContactInfo, body: &Value) {
    let data = body.get("data").unwrap_or(body);
    if let Some(uid) = data.get("uid").and_then(Value::as_str) {
        contact.identifier = Some(uid.to_owned());
    }
    if let Some(locations) = data.get("locations").and_then(Value::as_array) {
        contact.locations = locations
            .iter()
            .filter_map(|l| l.as_str().or_else(|| l.get("uid").and_then(Value::as_str)))
            .map(str::to_owned)
            .collect();
    }
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
