//! Webchat ingestion (F1–F6, F16): `POST /v1/webchat/messages`, the plain-widget
//! `POST /chat`, and the session routes. Both message routes run one pipeline: route to
//! a store, validate with the store's region (the widget's own code), apply opt-out
//! keywords, advance the session clock, persist the jobs in the phone's outbox, answer.

use gateway_core::envelope::{self, LocationContext, ValidationContext, MAX_ENVELOPE_BYTES};
use gateway_core::optout::{self, Channel, Keyword};
use gateway_core::phone;
use gateway_core::routing::{self, Route, RouteMethod};
use gateway_core::Problem;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Env, Request, Response};

use crate::error::AppError;
use crate::objects::contact::{self, JobKind};
use crate::objects::{ledger, optout as optout_object, session};
use crate::rpc::{self, now_ms};
use crate::settings::Settings;
use crate::{attachments, edge};

/// What the pipeline accepted, for both routes' answers.
struct Accepted {
    message_id: String,
    route: Route,
    phone: String,
    session: Value,
    keyword: Option<Keyword>,
}

fn accepted_json(a: &Accepted) -> Value {
    json!({
        "accepted": true,
        "message_id": a.message_id,
        "location": {
            "uid": a.route.location_uid,
            "name": a.route.location_name,
            "method": a.route.method,
            "rule": a.route.rule,
        },
        "phone": phone::mask(&a.phone),
        "session": a.session,
        "opt_out": a.keyword.map(|k| match k {
            Keyword::OptOut => "opted_out",
            Keyword::OptIn => "opted_in",
        }),
    })
}

/// The per-IP limit, then the JSON body (size and type checked).
async fn intake(req: &mut Request, env: &Env, settings: &Settings) -> Result<Vec<u8>, AppError> {
    edge::rate_limit(
        env,
        "ip",
        &edge::client_ip(req),
        settings.config.rate_limits.per_ip,
    )
    .await?;
    edge::json_body(req, MAX_ENVELOPE_BYTES).await
}

/// `POST /v1/webchat/messages` → 202 once the message is in the phone's outbox.
pub async fn post_message(
    mut req: Request,
    env: &Env,
    settings: &Settings,
) -> Result<Response, AppError> {
    let bytes = intake(&mut req, env, settings).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::Invalid(vec![Problem {
            code: "invalid_json",
            message: format!("the body is not valid JSON: {e}"),
            field: None,
        }])
    })?;
    let accepted = pipeline(env, settings, &value).await?;
    Ok(Response::from_json(&accepted_json(&accepted))?.with_status(202))
}

/// The plain-widget compatibility body: `{prompt, session_id}` plus what such widgets
/// can add. Unknown fields are refused like everywhere else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatIn {
    prompt: String,
    session_id: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    location_uid: Option<String>,
    #[serde(default)]
    page_url: Option<String>,
    #[serde(default)]
    postcode: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChatOut {
    output: String,
    session: Value,
}

/// `POST /chat` → `{output}`. Plain widgets never send a phone number, so the first
/// answer asks for one; prompts typed before it are held and delivered with it.
pub async fn post_chat(
    mut req: Request,
    env: &Env,
    settings: &Settings,
) -> Result<Response, AppError> {
    let bytes = intake(&mut req, env, settings).await?;
    let chat: ChatIn = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::Invalid(vec![Problem {
            code: if e.is_data() {
                "invalid_field"
            } else {
                "invalid_json"
            },
            message: format!("expected {{prompt, session_id}}: {e}"),
            field: None,
        }])
    })?;
    if !envelope::is_uuid(&chat.session_id) {
        return Err(AppError::Invalid(vec![Problem {
            code: "invalid_session_id",
            message: "session_id must be a UUID (8-4-4-4-12 hex digits)".into(),
            field: Some("session_id".into()),
        }]));
    }
    let location = LocationContext {
        location_uid: chat.location_uid.clone(),
        page_url: chat.page_url.clone(),
        postcode: chat.postcode.clone(),
    };
    let route = resolve(settings, &location)?;
    let policy = settings.config.session;

    // Which phone: given now, known to the session, or the prompt itself.
    let known: Value =
        rpc::call(env, session::BINDING, &chat.session_id, "get", &json!({})).await?;
    let known_phone = known
        .get("phone")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let typed_phone = phone::normalize(&chat.prompt, Some(&route.region)).ok();
    let given = match &chat.phone {
        Some(raw) => Some(phone::normalize(raw, Some(&route.region)).map_err(|e| {
            AppError::Invalid(vec![Problem {
                code: e.code(),
                message: e.to_string(),
                field: Some("phone".into()),
            }])
        })?),
        None => None,
    };
    let Some(e164) = given
        .or(typed_phone.clone())
        .map(|p| p.to_string())
        .or(known_phone)
    else {
        let held: Value = rpc::call(
            env,
            session::BINDING,
            &chat.session_id,
            "hold",
            &json!({"text": chat.prompt, "policy": policy}),
        )
        .await?;
        let out = ChatOut {
            output: format!(
                "Thanks! What's the best mobile number for our {} team to text you back on?",
                route.location_name
            ),
            session: held.get("status").cloned().unwrap_or(Value::Null),
        };
        return Ok(Response::from_json(&out)?);
    };

    // Deliver what was held before the phone was known, then this prompt (unless the
    // prompt was only the phone number).
    let held: Value = rpc::call(
        env,
        session::BINDING,
        &chat.session_id,
        "take_held",
        &json!({}),
    )
    .await?;
    let mut texts: Vec<String> = held
        .get("held")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if typed_phone.is_none() {
        texts.push(chat.prompt.clone());
    }
    if texts.is_empty() {
        texts.push("(shared their phone number in chat)".into());
    }
    let value = json!({
        "session_id": chat.session_id,
        "message": {"type": "text", "value": texts.join("\n")},
        "contact": {"phone": e164, "name": chat.name},
        "location": location,
        "client": {"widget_version": "chat-compat"},
    });
    let accepted = pipeline(env, settings, &value).await?;
    let masked = phone::mask(&accepted.phone);
    let output = match accepted.keyword {
        Some(Keyword::OptOut) => {
            "You're unsubscribed and won't get any more texts from us. Reply START to opt back in."
                .to_owned()
        }
        Some(Keyword::OptIn) => format!(
            "You're opted back in. Our {} team can text you again at {masked}.",
            accepted.route.location_name
        ),
        None => format!(
            "Thanks — your message is with our {} team. We'll reply by text to {masked}.",
            accepted.route.location_name
        ),
    };
    Ok(Response::from_json(&ChatOut {
        output,
        session: accepted.session,
    })?)
}

fn resolve(settings: &Settings, location: &LocationContext) -> Result<Route, AppError> {
    routing::resolve(&settings.config.routing, location).map_err(|e| {
        AppError::Invalid(vec![Problem {
            code: e.code(),
            message: e.to_string(),
            field: Some("location".into()),
        }])
    })
}

/// The pipeline for messages arriving from another front end (a Chatwoot webhook):
/// the same routing, validation, contact and opt-out guarantees, answered as JSON.
pub async fn pipeline_json(
    env: &Env,
    settings: &Settings,
    value: &Value,
) -> Result<Value, AppError> {
    Ok(accepted_json(&pipeline(env, settings, value).await?))
}

/// Everything after parsing, shared by both message routes.
async fn pipeline(env: &Env, settings: &Settings, value: &Value) -> Result<Accepted, AppError> {
    let config = &settings.config;
    // Route first: the store decides the phone's region (F1, F5).
    let location: LocationContext = value
        .get("location")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let route = resolve(settings, &location)?;
    let ctx = ValidationContext {
        default_region: Some(route.region.clone()),
        attachment_policy: config.attachments.clone(),
    };
    let valid = envelope::validate_value(value, &ctx).map_err(AppError::Invalid)?;
    let env_msg = &valid.envelope;
    edge::rate_limit(
        env,
        "session",
        &env_msg.session_id,
        config.rate_limits.per_session,
    )
    .await?;

    // The files must be ones this gateway stored, as described.
    let mut problems = Vec::new();
    for (i, a) in env_msg.attachments.iter().enumerate() {
        match attachments::stored(env, &a.file_id).await? {
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

    let e164 = valid.phone.to_string();
    let now = now_ms();
    let text = env_msg.message.value.clone();

    // F6: a keyword changes the one opt-out record before anything is queued, so no
    // text queued after it can slip out.
    let keyword = optout::keyword(&text);
    if let Some(k) = keyword {
        let change = optout_object::Apply {
            opted_out: k == Keyword::OptOut,
            at_ms: now,
            channel: Channel::Webchat,
        };
        rpc::call::<_, Value>(env, optout_object::BINDING, &e164, "apply", &change).await?;
    }

    // F3: the session's idle clock, and context carried over an expiry.
    let session_out: session::MessageOut = rpc::call(
        env,
        session::BINDING,
        &env_msg.session_id,
        "message",
        &session::MessageIn {
            text: text.clone(),
            policy: config.session,
            phone: Some(e164.clone()),
        },
    )
    .await?;

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
    let body = match &session_out.context_note {
        Some(note) if text.trim().is_empty() => note.clone(),
        Some(note) => format!("{note}\n\n{text}"),
        None => text.clone(),
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
    for (a, content_type) in env_msg.attachments.iter().zip(&valid.attachment_types) {
        jobs.push(JobKind::Attachment {
            location_uid: route.location_uid.clone(),
            file_id: a.file_id.clone(),
            filename: a.filename.clone(),
            content_type: content_type.clone(),
            size: a.size,
            caption: String::new(),
            contact_name: contact_name.clone(),
            webchat_url: webchat_url.clone(),
        });
    }
    if let (Some(confirmation), "new", None) = (
        &config.confirmation_text,
        session_out.arrival.as_str(),
        keyword,
    ) {
        jobs.push(JobKind::Text {
            location_uid: route.location_uid.clone(),
            body: confirmation.clone(),
            purpose: "confirmation".into(),
        });
    }
    let queued: Value = rpc::call(
        env,
        contact::BINDING,
        &e164,
        "enqueue",
        &contact::Enqueue {
            phone: e164.clone(),
            jobs,
        },
    )
    .await?;
    let message_id = queued
        .pointer("/job_ids/0")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    if route.method == RouteMethod::Default {
        // F5: a fallback is recorded and counted, never silent.
        let fallback = ledger::Fallback {
            id: rpc::new_id("fb"),
            at_ms: now,
            session_id: env_msg.session_id.clone(),
            phone: e164.clone(),
            message_id: message_id.clone(),
            location_uid: route.location_uid.clone(),
            page_url: env_msg.location.page_url.clone(),
            postcode: env_msg.location.postcode.clone(),
            notes: route.notes.clone(),
            body,
            contact_name,
            rerouted_to: None,
        };
        rpc::call::<_, Value>(
            env,
            ledger::BINDING,
            ledger::NAME,
            "fallback.add",
            &fallback,
        )
        .await?;
        worker::console_log!(
            "{}",
            json!({"event": "routing_fallback", "location_uid": route.location_uid, "notes": route.notes,
                   "phone": phone::mask(&e164)})
        );
    }

    Ok(Accepted {
        message_id,
        route,
        phone: e164,
        session: json!(session_out.status),
        keyword,
    })
}

/// `GET /v1/webchat/sessions/{id}` and `POST …/keepalive`.
pub async fn session_status(env: &Env, id: &str, keepalive: bool) -> Result<Response, AppError> {
    if !envelope::is_uuid(id) {
        return Err(AppError::bad_request(
            "invalid_session_id",
            "session ids are UUIDs",
            Some("session_id"),
        ));
    }
    let op = if keepalive { "keepalive" } else { "get" };
    let answer: Value = rpc::call(env, session::BINDING, id, op, &json!({})).await?;
    match answer.get("status") {
        Some(status) => Ok(Response::from_json(&json!({"session": status}))?),
        None => Err(AppError::NotFound("no such session")),
    }
}
