//! The gateway worker's router and nothing else: each route group lives in its module,
//! each Durable Object in `objects/`.

mod admin;
mod attachments;
mod chat;
mod edge;
mod error;
mod events;
mod metrics;
mod objects;
mod ops;
mod podium;
mod reviews;
mod rpc;
mod settings;
mod validate;
mod webchat;
mod webhooks;

use error::AppError;
use rpc::Ctx;
use serde_json::json;
use worker::{event, Context, Env, Method, Request, Response, Result};

pub use objects::breaker::TextBreaker;
pub use objects::idempotency::Idempotency;
pub use objects::ledger::Ledger;
pub use objects::ops::Ops;
pub use objects::optout::OptOut;
pub use objects::phone::Contact;
pub use objects::reviews::ReviewSchedule;
pub use objects::session::Session;
pub use objects::token::PodiumToken;

/// Version of this build, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The response header that reports how many Durable Object calls a request made.
pub const OBJECT_CALLS_HEADER: &str = "x-gateway-object-calls";

/// Hide the middle of a phone number in logs.
pub(crate) fn mask_phone(phone: &str) -> String {
    gateway_core::phone::mask(phone)
}

/// A path for the log: any segment that is a phone number (`+61…`, `%2B61…`) masked.
fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let decoded = segment.replace("%2B", "+").replace("%2b", "+");
            let digits = decoded.trim_start_matches('+');
            if decoded.starts_with('+')
                && digits.len() >= 6
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                mask_phone(&decoded)
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let started = rpc::now_ms();
    let method = req.method();
    // Parsed once: `Request::path` and `Request::url` parse the whole URL on every call.
    let url = req.url()?;
    let path = url.path().to_owned();
    let client = edge::client_ip(&req);
    let calls = Ctx::new(env.clone());
    let (outcome, origin) = route(req, &url, &calls).await;
    let (response, code) = match outcome {
        Ok(response) => (response, None),
        Err(e) => (error::to_response(&e)?, Some(e.code())),
    };
    let mut response = edge::with_cors(response, origin.as_deref())?;
    let object_calls = calls.object_calls();
    response
        .headers_mut()
        .set(OBJECT_CALLS_HEADER, &object_calls.to_string())?;
    let status = response.status_code();
    let ms = rpc::now_ms() - started;
    // F19: a time series point (Analytics Engine, non-blocking), and exact counts of
    // refusals in an operations shard, after answering. Accepted messages are counted
    // by their phone's object.
    metrics::record(
        &env,
        &ctx,
        &method,
        &path,
        status,
        code,
        ms,
        object_calls,
        &client,
    );
    // One line per request; never a phone number or a message body.
    worker::console_log!(
        "{}",
        json!({"method": method.to_string(), "path": loggable_path(&path), "status": status,
               "ms": ms, "code": code, "object_calls": object_calls})
    );
    Ok(response)
}

/// Dispatch; also returns the allowed cross-origin caller (for CORS on every answer,
/// errors included).
async fn route(
    mut req: Request,
    url: &worker::Url,
    ctx: &Ctx,
) -> (std::result::Result<Response, AppError>, Option<String>) {
    let method = req.method();
    let path = url.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if method == Method::Get && path == "/health" {
        return (health(ctx), None);
    }
    let settings = match settings::load(ctx) {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let browser_route = path.starts_with("/v1/") || path == "/chat" || path.starts_with("/chat/");
    let mut caller = edge::Caller::Script;
    if browser_route {
        match edge::caller(&req, url, &settings) {
            Ok(c) => caller = c,
            Err(e) => return (Err(e), None),
        }
        let origin = caller.cors_origin().map(str::to_owned);
        if method == Method::Options {
            return (edge::preflight(&caller), None);
        }
        if let Err(e) = edge::check_csrf(&req, &settings) {
            return (Err(e), origin);
        }
        // Every public route is called by scripts too: requests per client IP.
        if let Err(e) = edge::limit_client(ctx, &req, "client").await {
            return (Err(e), origin);
        }
    }
    let origin = caller.cors_origin().map(str::to_owned);
    let outcome = match (method, segments.as_slice()) {
        (Method::Post, ["v1", "webchat", "messages"]) => {
            webchat::post_message(req, ctx, &settings, &caller).await
        }
        (Method::Post, ["chat"]) => chat::post(req, ctx, &settings, &caller).await,
        (Method::Post, ["chat", "sessions", id, "contact"]) => {
            chat::submit_form(req, ctx, &settings, &caller, id).await
        }
        (Method::Post, ["v1", "webchat", "attachments"]) => {
            attachments::upload(req, ctx, &settings).await
        }
        (Method::Get, ["v1", "webchat", "sessions", id]) => {
            webchat::session_status(ctx, id, false).await
        }
        (Method::Post, ["v1", "webchat", "sessions", id, "keepalive"]) => {
            webchat::session_status(ctx, id, true).await
        }
        (Method::Post, ["webhooks", rest @ ..]) => match webhooks::scheme_of(rest) {
            Some((scheme, source)) => {
                webhooks::ingress(req, ctx, &settings, scheme, source.as_deref()).await
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
                    admin::contact(ctx, &settings, &req, phone).await
                }
                (Method::Get, ["reviews"]) => reviews::list(ctx, &settings, &req).await,
                (Method::Post, ["reviews", phone, id, "cancel"]) => match admin::e164(phone) {
                    Ok(phone) => reviews::cancel(ctx, &phone, id).await,
                    Err(e) => Err(e),
                },
                (Method::Get, ["webhooks"]) => webhooks::recent(ctx, &settings, &req).await,
                (Method::Post, ["webhooks", "replay"]) => {
                    webhooks::replay(req, ctx, &settings).await
                }
                (Method::Get, ["dead-letters"]) => admin::dead_letters(ctx, &settings, &req).await,
                (Method::Post, ["dead-letters", id, "replay"]) => {
                    admin::replay(ctx, &settings, id).await
                }
                (Method::Get, ["routing", "fallbacks"]) => {
                    admin::fallbacks(ctx, &settings, &req).await
                }
                (Method::Post, ["routing", "reroute"]) => admin::reroute(req, ctx, &settings).await,
                (Method::Get, ["metrics"]) => admin::metrics(ctx, &settings).await,
                (Method::Post, ["podium", "token", "reset"]) => admin::reset_token(ctx).await,
                (Method::Post, ["migrate", "ledger"]) => {
                    admin::migrate_ledger(ctx, &settings).await
                }
                _ => Err(AppError::NotFound("no such admin route")),
            },
        },
        _ => Err(AppError::NotFound("no such route")),
    };
    (outcome, origin)
}

/// `GET /health`: up, which build, which phone metadata, and configuration warnings.
fn health(env: &Env) -> std::result::Result<Response, AppError> {
    let warnings: Vec<&str> = match settings::load(env) {
        Ok(s) => s.config.warnings(),
        Err(_) => vec!["GATEWAY_CONFIG is not valid (every other route answers 503)"],
    };
    Ok(Response::from_json(&json!({
        "status": "ok",
        "service": "podium-gateway",
        "version": VERSION,
        "warnings": warnings,
        // The libphonenumber metadata compiled into core::phone (see phonegen).
        "phone_metadata_version": gateway_core::phone::metadata_version(),
    }))?)
}
