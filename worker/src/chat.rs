//! The plain chat-widget protocol (F16, the field notes' `/chat`): `{prompt,
//! session_id}` in, `{output}` out — and, when the gateway needs the customer's phone,
//! the protocol's interactive `form` (`content_type: "form"`) whose `submitUrl` is a
//! gateway route bound to the session. Prompts typed before the phone is known are held
//! in the session and delivered, in order, with the first message that knows it. A
//! session id is any 1–128 printable characters; one that is not a UUID maps to a stable
//! UUID of its own (`gateway_core::webhook::chat_session_id`).

use gateway_core::envelope::LocationContext;
use gateway_core::optout::Keyword;
use gateway_core::phone;
use gateway_core::webhook::chat_session_id;
use gateway_core::Problem;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Request, Response};

use crate::edge::{self, Caller, Trust};
use crate::error::AppError;
use crate::rpc::Ctx;
use crate::settings::Settings;
use crate::webchat::{self, Inbound, Outcome};

/// Longest prompt, as the protocol's own validation example has it.
pub const MAX_PROMPT_CHARS: usize = 1_000;
/// A `/chat` body is a prompt and a few fields.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The protocol's body, plus what such widgets can add. Unknown fields are refused like
/// everywhere else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatIn {
    prompt: Value,
    session_id: Value,
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

/// A submission of the phone form (`fields` `name` and `phone`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormIn {
    phone: Value,
    #[serde(default)]
    name: Option<String>,
}

fn parse_error(e: &serde_json::Error, expected: &str) -> AppError {
    AppError::BadRequest(Problem {
        code: if e.is_data() {
            "invalid_field"
        } else {
            "invalid_json"
        },
        message: format!("expected {expected}: {e}"),
        field: None,
    })
}

/// The session id of a request: any 1 to 128 printable characters.
fn session_id(raw: &Value) -> Result<String, AppError> {
    match raw.as_str() {
        Some(id) if webchat::session_id_ok(id) => Ok(id.to_owned()),
        _ => Err(edge::bad_field(
            "invalid_session_id",
            "session_id must be a string of 1 to 128 printable characters",
            "session_id",
        )),
    }
}

fn prompt(raw: &Value) -> Result<String, AppError> {
    let Some(text) = raw.as_str().filter(|t| !t.trim().is_empty()) else {
        return Err(edge::bad_field(
            "invalid_prompt",
            "prompt must be a non-empty string",
            "prompt",
        ));
    };
    if text.chars().count() > MAX_PROMPT_CHARS {
        return Err(edge::bad_field(
            "prompt_too_long",
            format!("prompt must be at most {MAX_PROMPT_CHARS} characters"),
            "prompt",
        ));
    }
    Ok(text.to_owned())
}

/// Where the widget runs: its own fields, else the page it was loaded on (`Referer`).
fn location_of(
    req: &Request,
    location_uid: Option<String>,
    page_url: Option<String>,
    postcode: Option<String>,
) -> LocationContext {
    let referer = req
        .headers()
        .get("referer")
        .ok()
        .flatten()
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
        .map(|r| r.chars().take(2048).collect());
    LocationContext {
        location_uid,
        page_url: page_url.or(referer),
        postcode,
    }
}

/// One `/chat` message (a prompt, or the phone form) as the pipeline's gateway envelope.
struct ChatMessage<'a> {
    session_id: &'a str,
    text: String,
    phone: Option<&'a str>,
    name: Option<String>,
    location: LocationContext,
    widget_version: &'static str,
    /// Hold the message when no phone is known yet (a prompt; a form always has one).
    may_hold: bool,
}

impl ChatMessage<'_> {
    fn inbound(self, req: &Request, key: Option<String>, trust: Trust) -> Inbound {
        let mut contact = serde_json::Map::new();
        if let Some(p) = self.phone {
            contact.insert("phone".into(), json!(p));
        }
        if let Some(name) = self.name.filter(|n| !n.trim().is_empty()) {
            contact.insert("name".into(), json!(name));
        }
        Inbound {
            envelope: json!({
                "session_id": chat_session_id(self.session_id),
                "message": {"type": "text", "value": self.text},
                "contact": contact,
                "location": self.location,
                "client": {"widget_version": self.widget_version},
            }),
            key,
            trust,
            client: Some(edge::client_ip(req)),
            profile_uuid: None,
            note: None,
            may_hold: self.may_hold,
            allow_empty: true,
        }
    }
}

/// `POST /chat` → `{output}` (and the phone form when the phone is not known yet).
pub async fn post(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
    caller: &Caller,
) -> Result<Response, AppError> {
    let bytes = edge::json_body(&mut req, MAX_BODY_BYTES).await?;
    let chat: ChatIn =
        serde_json::from_slice(&bytes).map_err(|e| parse_error(&e, "{prompt, session_id}"))?;
    let session_id = session_id(&chat.session_id)?;
    let prompt = prompt(&chat.prompt)?;
    let key = webchat::idempotency_key(&req)?;
    let trust = edge::trust(ctx, &req, settings, caller, false).await?;
    let location = location_of(&req, chat.location_uid, chat.page_url, chat.postcode);
    let route = webchat::resolve(settings, &location, None)?;

    // Which phone: given now, or the prompt itself is one for the store's country.
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
    let typed = phone::normalize(&prompt, Some(&route.region)).ok();
    let phone = given.or(typed.clone()).map(|p| p.to_string());
    // A prompt that is only the phone number carries no message of its own.
    let text = if typed.is_some() && chat.phone.is_none() {
        String::new()
    } else {
        prompt.clone()
    };
    let inbound = ChatMessage {
        session_id: &session_id,
        text,
        phone: phone.as_deref(),
        name: chat.name,
        location,
        widget_version: "chat-protocol",
        may_hold: true,
    }
    .inbound(&req, key, trust);
    let outcome = pipeline(ctx, settings, inbound).await?;
    answer(&req, settings, &session_id, outcome)
}

/// `POST /chat/sessions/{id}/contact`: the phone form's `submitUrl`.
pub async fn submit_form(
    mut req: Request,
    ctx: &Ctx,
    settings: &Settings,
    caller: &Caller,
    raw_id: &str,
) -> Result<Response, AppError> {
    let session_id = session_id(&json!(webchat::percent_decode(raw_id)))?;
    let bytes = edge::json_body(&mut req, MAX_BODY_BYTES).await?;
    let form: FormIn =
        serde_json::from_slice(&bytes).map_err(|e| parse_error(&e, "{phone, name?}"))?;
    let Some(raw_phone) = form.phone.as_str() else {
        return Err(edge::bad_field(
            "wrong_type",
            "phone must be a string",
            "phone",
        ));
    };
    let key = webchat::idempotency_key(&req)?;
    let trust = edge::trust(ctx, &req, settings, caller, false).await?;
    let location = location_of(&req, None, None, None);
    let route = webchat::resolve(settings, &location, None)?;
    let e164 = phone::normalize(raw_phone, Some(&route.region)).map_err(|e| {
        AppError::Invalid(vec![Problem {
            code: e.code(),
            message: e.to_string(),
            field: Some("phone".into()),
        }])
    })?;
    let inbound = ChatMessage {
        session_id: &session_id,
        text: String::new(),
        phone: Some(e164.as_str()),
        name: form.name,
        location,
        widget_version: "chat-protocol-form",
        may_hold: false,
    }
    .inbound(&req, key, trust);
    let outcome = pipeline(ctx, settings, inbound).await?;
    answer(&req, settings, &session_id, outcome)
}

/// The pipeline, with an empty text allowed (a phone-only prompt or a form).
async fn pipeline(ctx: &Ctx, settings: &Settings, inbound: Inbound) -> Result<Outcome, AppError> {
    webchat::pipeline(ctx, settings, inbound).await
}

/// The protocol's answer.
fn answer(
    req: &Request,
    settings: &Settings,
    session_id: &str,
    outcome: Outcome,
) -> Result<Response, AppError> {
    match outcome {
        Outcome::AwaitingPhone { route, session } => {
            let origin = req.url()?.origin().ascii_serialization();
            let submit_url = format!(
                "{origin}/chat/sessions/{}/contact",
                encode_segment(session_id)
            );
            let ask = format!(
                "Thanks! What's the best mobile number for our {} team to text you back on?",
                route.location_name
            );
            Ok(Response::from_json(&json!({
                "output": ask,
                "content": ask,
                "content_type": "form",
                "content_attributes": {
                    "form": {
                        "title": format!("Text with {}", route.location_name),
                        "description": "We reply by text message. Your number is only used for this conversation.",
                        "submitUrl": submit_url,
                        "fields": [
                            {"id": "name", "type": "text", "label": "Your name", "required": false},
                            {"id": "phone", "type": "tel", "label": "Mobile number", "required": true},
                        ],
                    },
                },
                "session": session,
            }))?)
        }
        Outcome::Accepted(accepted) => {
            let masked = phone::mask(&accepted.phone);
            let store = &accepted.route.location_name;
            let output = match (accepted.keyword, accepted.out.opt_out.as_deref()) {
                (_, Some("still_opted_out")) => webchat::start_hint(settings, &accepted.route),
                (Some(Keyword::OptOut), _) => {
                    "You're unsubscribed and won't get any more texts from us. Reply START to opt back in."
                        .to_owned()
                }
                (Some(Keyword::OptIn), _) => {
                    format!("You're opted back in. Our {store} team can text you again at {masked}.")
                }
                (None, _) => format!(
                    "Thanks — your message is with our {store} team. We'll reply by text to {masked}."
                ),
            };
            Ok(Response::from_json(&json!({
                "output": output,
                "session": accepted.session,
                "message_id": accepted.message_id,
            }))?)
        }
    }
}

/// Percent-encode a path segment (session ids may be any printable string).
fn encode_segment(raw: &str) -> String {
    crate::podium::segment(raw)
}
