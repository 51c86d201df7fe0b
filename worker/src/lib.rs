//! The gateway worker's router and nothing else: each route group lives in its module,
//! each Durable Object in `objects/`.

mod admin;
mod attachments;
mod edge;
mod error;
mod events;
mod objects;
mod podium;
mod reviews;
mod rpc;
mod settings;
mod validate;
mod webchat;
mod webhooks;

use error::AppError;
use serde_json::json;
use worker::{event, Context, Env, Method, Request, Response, Result};

pub use objects::contact::Contact;
pub use objects::idempotency::Idempotency;
pub use objects::ledger::Ledger;
pub use objects::limiter::Limiter;
pub use objects::optout::OptOut;
pub use objects::reviews::ReviewSchedule;
pub use objects::session::Session;
pub use objects::token::PodiumToken;

/// Version of this build, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Hide the middle of a phone number in logs.
pub(crate) fn mask_phone(phone: &str) -> String {
    gateway_core::phone::mask(phone)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let started = rpc::now_ms();
    let method = req.method();
    let path = req.path();
    let (outcome, origin) = route(req, &env).await;
    let (response, code) = match outcome {
        Ok(response) => (response, None),
        Err(e) => (error::to_response(&e)?, Some(e.code())),
    };
    // F19 counters for what customers send: received, or rejected by reason. Counted
    // after answering, off the response path.
    let ingress = matches!(
        path.as_str(),
        "/v1/webchat/messages" | "/chat" | "/v1/webchat/attachments"
    );
    // Webhooks: accepted deliveries are counted by their idempotency shard; refusals
    // (signature, size, type) here, by scheme and reason. The name comes from a fixed
    // list, never from the path: every made-up route would otherwise add a counter.
    // A 5xx is our failure, not a refusal: counted apart (`errors`), so the rejection
    // figures stay about what providers sent.
    let server_error = response.status_code() >= 500;
    let webhook_rejected = path
        .strip_prefix("/webhooks/")
        .and_then(|rest| code.map(|c| (webhooks::counter_scheme(rest), c)))
        .map(|(scheme, code)| {
            let kind = if server_error { "error" } else { "rejected" };
            format!("webhook:{scheme}:{kind}:{code}")
        });
    let counter = match (method == Method::Post && ingress, code) {
        (true, None) => Some(format!("received{}", path.replace('/', ":"))),
        (true, Some(code)) => Some(format!("rejected:{code}")),
        (false, _) => webhook_rejected,
    };
    if let Some(name) = counter {
        let env = env.clone();
        ctx.wait_until(async move {
            let _ = rpc::call::<_, serde_json::Value>(
                &env,
                objects::ledger::BINDING,
                objects::ledger::NAME,
                "count",
                &json!({"name": name}),
            )
            .await;
        });
    }
    let response = edge::with_cors(response, origin.as_deref())?;
    // One line per request; never a phone number or a message body.
    let logged_path = match path.strip_prefix("/admin/contacts/") {
        Some(phone) => format!("/admin/contacts/{}", mask_phone(phone)),
        None => path,
    };
    worker::console_log!(
        "{}",
        json!({"method": method.to_string(), "path": logged_path, "status": response.status_code(),
               "ms": rpc::now_ms() - started, "code": code})
    );
    Ok(response)
}

/// Dispatch; also returns the allowed cross-origin caller (for CORS on every answer,
/// errors included).
async fn route(
    mut req: Request,
    env: &Env,
) -> (std::result::Result<Response, AppError>, Option<String>) {
    let method = req.method();
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method == Method::Get && path == "/health" {
        return (health(), None);
    }
    let settings = match settings::load(env) {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let browser_route = path.starts_with("/v1/") || path == "/chat";
    let mut origin = None;
    if browser_route {
        match edge::allowed_origin(&req, &settings) {
            Ok(o) => origin = o,
            Err(e) => return (Err(e), None),
        }
        if method == Method::Options {
            return (edge::preflight(&req, &settings), None);
        }
        if let Err(e) = edge::check_csrf(&req, &settings) {
            return (Err(e), origin);
        }
    }
    let outcome = match (method, segments.as_slice()) {
        (Method::Post, ["v1", "webchat", "messages"]) => {
            webchat::post_message(req, env, &settings).await
        }
        (Method::Post, ["chat"]) => webchat::post_chat(req, env, &settings).await,
        (Method::Post, ["v1", "webchat", "attachments"]) => {
            match edge::rate_limit(
                env,
                "ip",
                &edge::client_ip(&req),
                settings.config.rate_limits.per_ip,
            )
            .await
            {
                Ok(()) => attachments::upload(req, env, &settings).await,
                Err(e) => Err(e),
            }
        }
        (Method::Get, ["v1", "webchat", "sessions", id]) => {
            webchat::session_status(env, id, false).await
        }
        (Method::Post, ["v1", "webchat", "sessions", id, "keepalive"]) => {
            webchat::session_status(env, id, true).await
        }
        (Method::Post, ["webhooks", rest @ ..]) => match webhooks::scheme_of(rest) {
            Some((scheme, source)) => {
                webhooks::ingress(req, env, &settings, scheme, source.as_deref()).await
            }
            None => Err(AppError::NotFound("no such webhook route")),
        },
        (Method::Post, ["v1", "webchat", "validate"]) => {
            validate::handle(&mut req, &settings).await
        }
        (method, ["admin", rest @ ..]) => match admin::authorize(&req, &settings) {
            Err(e) => Err(e),
            Ok(()) => match (method, rest) {
                (Method::Get, ["contacts", phone]) => {
                    admin::contact(env, &settings, &req, phone).await
                }
                (Method::Get, ["reviews"]) => reviews::list(env, &req).await,
                (Method::Post, ["reviews", phone, id, "cancel"]) => match admin::e164(phone) {
                    Ok(phone) => reviews::cancel(env, &phone, id).await,
                    Err(e) => Err(e),
                },
                (Method::Get, ["webhooks"]) => webhooks::recent(env, &settings, &req).await,
                (Method::Post, ["webhooks", "replay"]) => {
                    webhooks::replay(req, env, &settings).await
                }
                (Method::Get, ["dead-letters"]) => admin::dead_letters(env).await,
                (Method::Post, ["dead-letters", id, "replay"]) => {
                    admin::replay(env, &settings, id).await
                }
                (Method::Get, ["routing", "fallbacks"]) => admin::fallbacks(env, &req).await,
                (Method::Post, ["routing", "reroute"]) => admin::reroute(req, env, &settings).await,
                (Method::Get, ["metrics"]) => admin::metrics(env, &settings).await,
                _ => Err(AppError::NotFound("no such admin route")),
            },
        },
        _ => Err(AppError::NotFound("no such route")),
    };
    (outcome, origin)
}

fn health() -> std::result::Result<Response, AppError> {
    Ok(Response::from_json(&json!({
        "status": "ok",
        "service": "podium-gateway",
        "version": VERSION,
        // The libphonenumber metadata compiled into core::phone (see phonegen).
        "phone_metadata_version": gateway_core::phone::metadata_version(),
    }))?)
}
