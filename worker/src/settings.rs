//! Configuration read once per isolate into typed values: the `GATEWAY_CONFIG` var
//! (checked by `gateway_core::config`), optional local overrides (`PODIUM_API_BASE`,
//! `PODIUM_TOKEN_URL`, `WEBHOOK_ALERT_URL`, `WEBHOOK_THANK_YOU_URL`, `SHOPIFY_API_BASE`,
//! `TURNSTILE_SITEVERIFY_URL`), and secrets.

use std::cell::RefCell;
use std::rc::Rc;

use gateway_core::config::GatewayConfig;
use worker::Env;

use crate::error::AppError;

/// Podium OAuth client credentials (secrets).
#[derive(Clone)]
pub struct PodiumCredentials {
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the merchant authorized with; the token object keeps the
    /// newest one after Podium rotates it.
    pub refresh_token: String,
}

impl std::fmt::Debug for PodiumCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodiumCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

#[derive(Debug)]
pub struct Settings {
    pub config: GatewayConfig,
    /// `None`: admin routes refuse everything (never "open").
    pub admin_token: Option<String>,
}

thread_local! {
    static CACHED: RefCell<Option<(String, Rc<Settings>)>> = const { RefCell::new(None) };
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

/// A secret (or `.dev.vars` entry), `None` when absent or blank.
pub fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

/// The settings for this request; parsed on first use in the isolate and again only
/// when the raw configuration changes.
pub fn load(env: &Env) -> Result<Rc<Settings>, AppError> {
    let raw = var(env, "GATEWAY_CONFIG")
        .ok_or_else(|| AppError::Config("the GATEWAY_CONFIG var is missing".into()))?;
    let api_base = var(env, "PODIUM_API_BASE");
    let token_url = var(env, "PODIUM_TOKEN_URL");
    let alert_url = var(env, "WEBHOOK_ALERT_URL");
    let thank_you_url = var(env, "WEBHOOK_THANK_YOU_URL");
    let shopify_base = var(env, "SHOPIFY_API_BASE");
    let siteverify_url = var(env, "TURNSTILE_SITEVERIFY_URL");
    let admin_token = secret(env, "ADMIN_TOKEN");
    let fingerprint = format!(
        "{raw}\u{0}{api_base:?}\u{0}{token_url:?}\u{0}{alert_url:?}\u{0}{thank_you_url:?}\u{0}{shopify_base:?}\u{0}{siteverify_url:?}\u{0}{}",
        admin_token.as_deref().map_or(0, str::len)
    );
    if let Some(hit) = CACHED.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(f, _)| *f == fingerprint)
            .map(|(_, s)| Rc::clone(s))
    }) {
        return Ok(hit);
    }
    let mut config = GatewayConfig::from_json(&raw).map_err(|e| AppError::Config(e.to_string()))?;
    if let Some(base) = api_base {
        config.podium.api_base = base;
    }
    if let Some(url) = token_url {
        config.podium.token_url = url;
    }
    if alert_url.is_some() {
        config.webhooks.alert_url = alert_url;
    }
    if thank_you_url.is_some() {
        config.webhooks.thank_you_url = thank_you_url;
    }
    if shopify_base.is_some() {
        config.reviews.shopify.api_base = shopify_base;
    }
    if let Some(url) = siteverify_url {
        config.turnstile.siteverify_url = url;
    }
    let config = config
        .validated()
        .map_err(|e| AppError::Config(e.to_string()))?;
    let settings = Rc::new(Settings {
        config,
        admin_token,
    });
    CACHED.with(|c| *c.borrow_mut() = Some((fingerprint, Rc::clone(&settings))));
    Ok(settings)
}

/// Podium credentials; a missing one is a configuration error, never "skip".
pub fn podium_credentials(env: &Env) -> Result<PodiumCredentials, AppError> {
    let need = |name: &str| {
        secret(env, name).ok_or_else(|| AppError::Config(format!("the {name} secret is missing")))
    };
    Ok(PodiumCredentials {
        client_id: need("PODIUM_CLIENT_ID")?,
        client_secret: need("PODIUM_CLIENT_SECRET")?,
        refresh_token: need("PODIUM_REFRESH_TOKEN")?,
    })
}
