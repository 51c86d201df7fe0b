//! Webchat ingestion (F1–F6, F16): `POST /v1/webchat/messages` (the gateway's envelope,
//! or the incoming-webchat envelope), and the session routes. Every front end — these,
//! `/chat` (`chat.rs`) and Chatwoot — runs one pipeline: route to a store, validate with
//! the store's region (the widget's own code), then exactly two object calls: the
//! session (idle clock, exact per-session limit, new-session/new-phone limits, held
//! messages) and the phone (opt-out keyword, outbox, automatic text, idempotency).

use gateway_core::envelope::{self, LocationContext, ValidationContext, MAX_ENVELOPE_BYTES};
use gateway_core::incoming::{self, Incoming};
use gateway_core::optout::{self, Keyword};
use gateway_core::outbox::JobKind;
use gateway_core::phone;
use gateway_core::routing::{self, Route, RouteMethod};
use gateway_core::session::{HeldAttachment, HeldItem};
use gateway_core::Problem;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::attachments;
use crate::edge::{self, Caller, Trust};
use crate::error::AppError;
use crate::objects::keys::MAX_KEY_CHARS;
use crate::objects::ops::Fallback;
use crate::objects::phone::{self as phone_object, AutoTextIn};
use crate::objects::session::{self, ClientLimits};
use crate::ops;
use crate::rpc::{self, now_ms, Ctx};
use crate::settings::Settings;

/// One message from any front end, before the pipeline.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// A gateway envelope (`contact.phone` may be absent when `hold` is set).
    pub envelope: Value,
    /// The client's (or the webhook delivery's) idempotency key.
    pub key: Option<String>,
    pub trust: Trust,
    /// The client key for the per-IP new-session/new-phone limits (`None`: not a
    /// client request, e.g. a signed webhook).
    pub client: Option<String>,
    /// An incoming-webchat envelope's profile, for routing.
    pub profile_uuid: Option<String>,
    /// Context for the agent (a widget's opening message, pass-through data), added to
    /// the first message of a session.
    pub note: Option<String>,
    /// The phone may be unknown: hold the message until a later one brings it.
    pub may_hold: bool,
    /// The message may have no text (`/chat`: a phone number typed on its own, the
    /// phone form): it still delivers what was held and starts the session.
    pub allow_empty: bool,
}

/// What the pipeline did.
#[derive(Debug)]
pub enum Outcome {
    Accepted(Accepted),
    /// Held: no phone is known for the session yet.
    AwaitingPhone {
        route: Route,
        session: Value,
    },
}

/// What the pipeline accepted, for every front end's answer.
#[derive(Debug)]
pub struct Accepted {
    pub message_id: String,
    pub route: Route,
    pub phone: String,
    pub session: Value,
    pub keyword: Option<Keyword>,
    pub out: phone_object::MessageOut,
}

pub fn location_json(route: &Route) -> Value {
    json!({
        "uid": route.location_uid,
        "name": route.location_name,
        "method": route.method,
        "rule": route.rule,
    })
}

pub fn accepted_json(a: &Accepted, settings: &Settings) -> Value {
    let mut out = json!({
        "accepted": true,
        "status": "queued",
        "message_id": a.message_id,
        "location": location_json(&a.route),
        "phone": phone::mask(&a.phone),
        "session": a.session,
        "opt_out": a.out.opt_out,
        // Whether a confirmation text was queued; why not (untrusted, country, window,
        // breaker) stays in the counters and logs, not in an answer anyone can read.
        "confirmation_text": a.out.auto_text.as_deref() == Some("queued"),
    });
    if a.out.duplicate {
        rpc::set_json(&mut out, &["duplicate"], json!(true));
    }
    if a.out.opt_out.as_deref() == Some("still_opted_out") {
        rpc::set_json(
            &mut out,
            &["opt_out_message"],
            json!(start_hint(settings, &a.route)),
        );
    }
    out
}

/// What a customer whose webchat START could not lift a verified STOP is told.
pub fn start_hint(settings: &Settings, route: &Route) -> String {
    let number = settings
        .config
        .routing
        .location(&route.location_uid)
        .and_then(|l| l.sms_number.clone());
    match number {
        Some(n) => format!(
            "You opted out of texts from your phone. To get texts again, text START to {n} from that phone."
        ),
        None => "You opted out of texts from your phone. To get texts again, text START to our number from that phone.".to_owned(),
    }
}

/// The client's idempotency key, if sent (printable ASCII, at most 200 characters).
pub fn idempotency_key(req: &Request) -> Result<Option<String>, AppError> {
    let Some(raw) = req.headers().get(edge::IDEMPOTENCY_HEADER)? else {
        return Ok(None);
    };
    let key = raw.trim();
    let ok =
        !key.is_empty() && key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(edge::bad_field(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters"),
            "Idempotency-Key",
        ));
    }
    Ok(Some(key.to_owned()))
}

fn invalid_json(e: &serde_json::Error) -> AppError {
    AppError::Invalid(vec![Problem {
        code: "invalid_json",
        message: format!("the body is not valid JSON: {e}"),
        field: None,
    }])
}

/// `POST /v1/webchat/messages` → 202 once the message is in the phone's outbox (or
/// held for the phone, for an incoming-webchat envelope without one).
pub async fn post_message(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
    caller: &Caller,
) -> Result<Response, AppError> {
    let key = idempotency_key(&req)?;
    let bytes = edge::json_body(&mut req, MAX_ENVELOPE_BYTES).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid_json(&e))?;
    let trust = edge::trust(ctx, &req, settings, caller, true).await?;
    let client = Some(edge::client_ip(&req));
    if incoming::is_incoming(&value) {
        return post_incoming(ctx, settings, &value, key, trust, client).await;
    }
    let inbound = Inbound {
        envelope: value,
        key,
        trust,
        client,
        profile_uuid: None,
        note: None,
        may_hold: false,
        allow_empty: false,
    };
    match pipeline(ctx, settings, inbound).await? {
        Outcome::Accepted(a) => {
            Ok(Response::from_json(&accepted_json(&a, settings))?.with_status(202))
        }
        Outcome::AwaitingPhone { .. } => Err(AppError::Internal(
            "a gateway envelope carries its phone".into(),
        )),
    }
}

/// The incoming-webchat envelope: validated by its own schema, mapped onto the same
/// pipeline (see the README).
async fn post_incoming(
    ctx: &Ctx,
    settings: &Settings,
    value: &Value,
    key: Option<String>,
    trust: Trust,
    client: Option<String>,
) -> Result<Response, AppError> {
    let message = incoming::validate(value).map_err(AppError::Invalid)?;
    let (envelope, note) = map_incoming(ctx, &message).await?;
    let inbound = Inbound {
        envelope,
        key,
        trust,
        client,
        profile_uuid: Some(message.data.webchat_configuration.profile_uuid.clone()),
        note,
        may_hold: true,
        allow_empty: false,
    };
    let outcome = pipeline(ctx, settings, inbound)
        .await
        .map_err(remap_to_incoming)?;
    match outcome {
        Outcome::Accepted(a) => {
            Ok(Response::from_json(&accepted_json(&a, settings))?.with_status(202))
        }
        Outcome::AwaitingPhone { route, session } => Ok(Response::from_json(&json!({
            "accepted": true,
            "status": "awaiting_phone",
            "message": "held until this session brings the customer's phone number",
            "location": location_json(&route),
            "session": session,
        }))?
        .with_status(202)),
    }
}

/// Problems found by the shared pipeline name the incoming envelope's own fields.
fn remap_to_incoming(e: AppError) -> AppError {
    match e {
        AppError::Invalid(problems) => AppError::Invalid(
            problems
                .into_iter()
                .map(|mut p| {
                    p.field = p.field.map(|f| incoming::field_path(&f));
                    p
                })
                .collect(),
        ),
        other => other,
    }
}

/// The incoming envelope as a gateway envelope (files looked up in the gateway's store,
/// which knows their sizes), and the context for the agent.
async fn map_incoming(ctx: &Ctx, message: &Incoming) -> Result<(Value, Option<String>), AppError> {
    let data = &message.data;
    let mut attachments_json = Vec::new();
    let mut problems = Vec::new();
    for (i, a) in data.webchat_attachments.iter().enumerate() {
        match attachments::stored(ctx, &a.fileuuid).await? {
            Some((_, _, size)) => attachments_json.push(json!({
                "file_id": a.fileuuid,
                "filename": if a.originalname.trim().is_empty() { &a.filename } else { &a.originalname },
                "content_type": a.content_type,
                "size": size,
            })),
            None => problems.push(Problem {
                code: "attachment_not_found",
                message: "no file with this fileuuid was uploaded to /v1/webchat/attachments".into(),
                field: Some(format!("{}.webchat_attachments[{i}].fileuuid", incoming::ROOT_KEY)),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }
    let config = &data.webchat_configuration;
    let mut contact = serde_json::Map::new();
    if let Some(phone) = incoming::pass_through_phone(config.pass_through_data.as_deref()) {
        contact.insert("phone".into(), json!(phone));
    }
    let envelope = json!({
        "session_id": data.sessionuuid,
        "message": {"type": data.webchat_message.kind, "value": data.webchat_message.value},
        "attachments": attachments_json,
        "contact": contact,
        "client": {
            "user_agent": data.webchat_meta_data.user_agent.chars().take(512).collect::<String>(),
            "widget_version": "incoming-webchat",
        },
    });
    let opening = &data
        .webchat_profile
        .webchat_client_config
        .opening_message
        .value;
    let mut notes = Vec::new();
    if !opening.trim().is_empty() {
        notes.push(format!(
            "The chat opened with: \"{}\"",
            opening.chars().take(300).collect::<String>()
        ));
    }
    if let Some(pass) = config
        .pass_through_data
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        notes.push(format!(
            "Pass-through data: {}",
            pass.chars().take(500).collect::<String>()
        ));
    }
    let note = (!notes.is_empty()).then(|| format!("[{}]", notes.join(" · ")));
    Ok((envelope, note))
}

pub fn resolve(
    settings: &Settings,
    location: &LocationContext,
    profile_uuid: Option<&str>,
) -> Result<Route, AppError> {
    routing::resolve_with_profile(&settings.config.routing, location, profile_uuid).map_err(|e| {
        AppError::Invalid(vec![Problem {
            code: e.code(),
            message: e.to_string(),
            field: Some("location".into()),
        }])
    })
}

/// Whether a problem is about the phone (which a held message may not have yet).
fn about_phone(p: &Problem) -> bool {
    p.field
        .as_deref()
        .is_some_and(|f| f == "contact" || f.starts_with("contact.phone"))
}

/// The jobs for held messages released with this one.
fn held_jobs(
    items: &[HeldItem],
    route: &Route,
    contact_name: &str,
    webchat_url: &str,
    session_id: &str,
) -> Vec<JobKind> {
    let mut jobs = Vec::new();
    for item in items {
        // To the store the message was routed to when it arrived.
        let mut route = route.clone();
        if let Some(uid) = &item.location_uid {
            route.location_uid.clone_from(uid);
        }
        let route = &route;
        let body = match &item.note {
            Some(note) if item.text.trim().is_empty() => note.clone(),
            Some(note) => format!("{note}\n\n{}", item.text),
            None => item.text.clone(),
        };
        if !body.trim().is_empty() {
            jobs.push(JobKind::Chat {
                location_uid: route.location_uid.clone(),
                body,
                contact_name: contact_name.to_owned(),
                webchat_url: webchat_url.to_owned(),
                session_id: session_id.to_owned(),
            });
        }
        jobs.extend(
            item.attachments
                .iter()
                .map(|a| attachment_job(a, route, contact_name, webchat_url)),
        );
    }
    jobs
}

fn attachment_job(
    a: &HeldAttachment,
    route: &Route,
    contact_name: &str,
    webchat_url: &str,
) -> JobKind {
    JobKind::Attachment {
        location_uid: route.location_uid.clone(),
        file_id: a.file_id.clone(),
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        caption: String::new(),
        contact_name: contact_name.to_owned(),
        webchat_url: webchat_url.to_owned(),
    }
}

/// Everything after parsing, shared by every front end.
pub async fn pipeline(
    ctx: &Ctx,
    settings: &Settings,
    inbound: Inbound,
) -> Result<Outcome, AppError> {
    let config = &settings.config;
    let value = &inbound.envelope;
    // Route first: the store decides the phone's region (F1, F5).
    let location: LocationContext = value
        .get("location")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let route = resolve(settings, &location, inbound.profile_uuid.as_deref())?;
    let ctx_v = ValidationContext {
        default_region: Some(route.region.clone()),
        attachment_policy: config.attachments.clone(),
    };
    let has_phone = value.pointer("/contact/phone").is_some();
    // A message that may be held is checked in full now, but for the phone it may not
    // carry yet (a placeholder stands in; the real phone is validated when known).
    let mut checked = value.clone();
    if inbound.may_hold && !has_phone {
        rpc::set_json(&mut checked, &["contact", "phone"], json!("+61412345678"));
    }
    let empty_text = value
        .pointer("/message/value")
        .and_then(Value::as_str)
        .is_some_and(|t| t.trim().is_empty());
    if inbound.allow_empty && empty_text {
        rpc::set_json(&mut checked, &["message", "value"], json!("-"));
    }
    let valid = match envelope::validate_value(&checked, &ctx_v) {
        Ok(v) => v,
        Err(problems) => {
            let placeholder = inbound.may_hold && !has_phone;
            let problems: Vec<Problem> = problems
                .into_iter()
                .filter(|p| !(placeholder && about_phone(p)))
                .collect();
            return Err(if problems.is_empty() {
                AppError::Internal("the placeholder phone was refused".into())
            } else {
                AppError::Invalid(problems)
            });
        }
    };
    let env_msg = &valid.envelope;

    // The files must be ones this gateway stored, as described.
    let mut problems = Vec::new();
    for (i, a) in env_msg.attachments.iter().enumerate() {
        match attachments::stored(ctx, &a.file_id).await? {
            Some((_, _, size)) if size == a.size => {}
            Some(_) => problems.push(Problem {
                code: "attachment_size_mismatch",
                message: "the size does not match the uploaded file".into(),
                field: Some(format!("attachments[{i}].size")),
            }),
            None => problems.push(Problem {
                code: "attachment_not_found",
                message:
                    "no uploaded file has this file_id (upload it to /v1/webchat/attachments first)"
                        .into(),
                field: Some(format!("attachments[{i}].file_id")),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }

    let text = if inbound.allow_empty && empty_text {
        String::new()
    } else {
        env_msg.message.value.clone()
    };
    let given_phone = has_phone.then(|| valid.phone.to_string());
    let contact_name = env_msg
        .contact
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "Website visitor".into());
    let webchat_url = env_msg
        .location
        .page_url
        .clone()
        .unwrap_or_else(|| "about:webchat".into());
    let attachments_held: Vec<HeldAttachment> = env_msg
        .attachments
        .iter()
        .zip(&valid.attachment_types)
        .map(|(a, content_type)| HeldAttachment {
            file_id: a.file_id.clone(),
            filename: a.filename.clone(),
            content_type: content_type.clone(),
            size: a.size,
        })
        .collect();

    // Object call 1: the session.
    let session_answer: Value = rpc::call(
        ctx,
        session::BINDING,
        &env_msg.session_id,
        "message",
        &session::MessageIn {
            text: text.clone(),
            policy: config.session,
            limit: config.rate_limits.per_session,
            phone: given_phone.clone(),
            key: inbound.key.clone(),
            limits: inbound.client.clone().map(|client| ClientLimits { client }),
            hold: (inbound.may_hold && given_phone.is_none()).then(|| HeldItem {
                at_ms: now_ms(),
                text: text.clone(),
                attachments: attachments_held.clone(),
                note: inbound.note.clone(),
                location_uid: Some(route.location_uid.clone()),
            }),
        },
    )
    .await?;
    if let Some(refusal) = edge::refused_by_object(&session_answer) {
        return Err(refusal);
    }
    if session_answer
        .get("awaiting_phone")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if session_answer.get("held").and_then(Value::as_bool) != Some(true) {
            return Err(AppError::Invalid(vec![Problem {
                code: "too_many_held",
                message: "this session already holds as many messages as it may until a phone number is known".into(),
                field: Some("contact.phone".into()),
            }]));
        }
        return Ok(Outcome::AwaitingPhone {
            route,
            session: session_answer.get("status").cloned().unwrap_or(Value::Null),
        });
    }
    let session_out: session::MessageOut = rpc::args(session_answer)?;
    let Some(e164) = session_out.phone.clone().or(given_phone) else {
        return Err(AppError::Internal(
            "the session answered without a phone".into(),
        ));
    };

    let keyword = optout::keyword(&text);
    let mut notes: Vec<String> = Vec::new();
    if let Some(note) = &session_out.context_note {
        notes.push(note.clone());
    }
    if session_out.arrival == "new" {
        if let Some(note) = &inbound.note {
            notes.push(note.clone());
        }
    }
    let body = if notes.is_empty() {
        text.clone()
    } else if text.trim().is_empty() {
        notes.join("\n")
    } else {
        format!("{}\n\n{text}", notes.join("\n"))
    };
    let mut jobs = Vec::new();
    if !body.trim().is_empty() {
        jobs.push(JobKind::Chat {
            location_uid: route.location_uid.clone(),
            body: body.clone(),
            contact_name: contact_name.clone(),
            webchat_url: webchat_url.clone(),
            session_id: env_msg.session_id.clone(),
        });
    }
    jobs.extend(
        attachments_held
            .iter()
            .map(|a| attachment_job(a, &route, &contact_name, &webchat_url)),
    );
    let held = session_out.held.clone();
    let (held_key, held_jobs) = match &held {
        Some(batch) => (
            Some(format!("held:{}", batch.id)),
            held_jobs(
                &batch.items,
                &route,
                &contact_name,
                &webchat_url,
                &env_msg.session_id,
            ),
        ),
        None => (None, Vec::new()),
    };
    let auto_text = config.confirmation_text.as_ref().map(|body| {
        let e = phone::normalize(&e164, None).ok();
        AutoTextIn {
            body: body.clone(),
            location_uid: route.location_uid.clone(),
            purpose: "confirmation".into(),
            trusted: inbound.trust == Trust::Browser,
            phone_region: e.as_ref().and_then(phone::region_of).map(str::to_owned),
            allowed_regions: config
                .routing
                .location(&route.location_uid)
                .map(|l| l.auto_text_regions())
                .unwrap_or_default(),
            starts_conversation: session_out.arrival == "new",
        }
    });
    let fallback = (route.method == RouteMethod::Default).then(|| {
        let shard = ops::shard_of(settings, &e164);
        Fallback {
            id: ops::new_record_id("fb", shard),
            at_ms: now_ms(),
            session_id: env_msg.session_id.clone(),
            phone: e164.clone(),
            message_id: String::new(),
            location_uid: route.location_uid.clone(),
            page_url: env_msg.location.page_url.clone(),
            postcode: env_msg.location.postcode.clone(),
            notes: route.notes.clone(),
            body: body.clone(),
            contact_name: contact_name.clone(),
            rerouted_to: None,
        }
    });

    // Object call 2: the phone (keyword, outbox, automatic text, fallback record).
    let out: phone_object::MessageOut = rpc::call(
        ctx,
        phone_object::BINDING,
        &e164,
        "message",
        &phone_object::MessageIn {
            phone: e164.clone(),
            key: inbound.key.clone(),
            keyword,
            jobs,
            held_key,
            held_jobs,
            auto_text,
            fallback,
        },
    )
    .await?;
    if route.method == RouteMethod::Default {
        worker::console_log!(
            "{}",
            json!({"event": "routing_fallback", "location_uid": route.location_uid, "notes": route.notes,
                   "phone": phone::mask(&e164)})
        );
    }
    // The held messages are queued: only now may the session forget them. A failure
    // here leaves them held; they are released again under the same key, and the phone
    // object queues a key once.
    if let Some(batch) = &held {
        if let Err(e) = rpc::call::<_, Value>(
            ctx,
            session::BINDING,
            &env_msg.session_id,
            "ack_held",
            &json!({"batch": batch.id}),
        )
        .await
        {
            worker::console_error!(
                "{}",
                json!({"level": "warn", "event": "held_ack_failed", "error": e.to_string()})
            );
        }
    }
    Ok(Outcome::Accepted(Accepted {
        message_id: out.message_id.clone(),
        route,
        phone: e164,
        session: json!(session_out.status),
        keyword,
        out,
    }))
}

/// For messages arriving from another front end (a Chatwoot webhook): the same routing,
/// validation, contact and opt-out guarantees; keyed on the delivery so a re-run of the
/// event queues nothing twice. Never triggers an automatic text.
pub async fn pipeline_json(
    ctx: &Ctx,
    settings: &Settings,
    envelope: &Value,
    key: &str,
) -> Result<Value, AppError> {
    let inbound = Inbound {
        envelope: envelope.clone(),
        key: Some(key.to_owned()),
        trust: Trust::Untrusted,
        client: None,
        profile_uuid: None,
        note: None,
        may_hold: false,
        allow_empty: false,
    };
    match pipeline(ctx, settings, inbound).await? {
        Outcome::Accepted(a) => Ok(accepted_json(&a, settings)),
        Outcome::AwaitingPhone { .. } => Ok(json!({"status": "awaiting_phone"})),
    }
}

/// A session id as the routes take it: any 1 to 128 printable characters.
pub fn session_id_ok(id: &str) -> bool {
    let n = id.chars().count();
    (1..=128).contains(&n) && !id.chars().any(char::is_control)
}

/// `GET /v1/webchat/sessions/{id}` and `POST …/keepalive`.
pub async fn session_status(
    ctx: &Ctx,
    raw_id: &str,
    keepalive: bool,
) -> Result<Response, AppError> {
    let id = percent_decode(raw_id);
    if !session_id_ok(&id) {
        return Err(AppError::bad_request(
            "invalid_session_id",
            "session ids are 1 to 128 printable characters",
            Some("session_id"),
        ));
    }
    let op = if keepalive { "keepalive" } else { "get" };
    let answer: Value = rpc::call(ctx, session::BINDING, &id, op, &json!({})).await?;
    match answer.get("status") {
        Some(status) => Ok(Response::from_json(&json!({"session": status}))?),
        None => Err(AppError::NotFound("no such session")),
    }
}

/// Decode `%XX` in a path segment (session ids may be any printable string).
pub fn percent_decode(raw: &str) -> String {
    String::from_utf8_lossy(&edge::percent_decode_bytes(raw)).into_owned()
}
