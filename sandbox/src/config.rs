//! Command line and `--config FILE` parsing: defaults < config file < flags.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{DeliveryStatus, SeedContact, Seeds, Settings};
use crate::util::is_e164;

pub const DEFAULT_PORT: u16 = 8788;

pub const USAGE: &str = "\
podium-sandbox: a local stand-in for the Podium API (and its control routes under /_sandbox)

USAGE: podium-sandbox [OPTIONS]

  --port N                      port to listen on (default $SANDBOX_PORT, else 8788; 0 = any free port)
  --host HOST                   address to bind (default 127.0.0.1)
  --token-ttl-secs N            access token lifetime (default 36000)
  --rate-limit-per-minute N     requests per minute per access token on /v4/* (default 300; 0 = off)
  --upsert-race-window-ms N     pause between lookup and insert in POST /v4/contacts (default 25)
  --config FILE                 JSON file overriding seeds and settings
  -h, --help                    this text

Prints one JSON line {\"listening\":\"http://HOST:PORT\"} on stdout once ready; logs to stderr.";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub host: String,
    pub port: u16,
    pub config: Option<String>,
    pub token_ttl_secs: Option<u64>,
    pub rate_limit_per_minute: Option<u32>,
    pub upsert_race_window_ms: Option<u64>,
    pub help: bool,
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
}

/// Parses the arguments (without the program name). `env_port` is `$SANDBOX_PORT`.
pub fn parse_args<I: IntoIterator<Item = String>>(
    args: I,
    env_port: Option<&str>,
) -> Result<Cli, String> {
    let mut cli = Cli {
        host: "127.0.0.1".into(),
        port: match env_port.map(str::trim).filter(|s| !s.is_empty()) {
            Some(p) => num("SANDBOX_PORT", p)?,
            None => DEFAULT_PORT,
        },
        config: None,
        token_ttl_secs: None,
        rate_limit_per_minute: None,
        upsert_race_window_ms: None,
        help: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            cli.help = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--port" => cli.port = num(&flag, &value()?)?,
            "--host" => cli.host = value()?,
            "--config" => cli.config = Some(value()?),
            "--token-ttl-secs" => cli.token_ttl_secs = Some(num(&flag, &value()?)?),
            "--rate-limit-per-minute" => cli.rate_limit_per_minute = Some(num(&flag, &value()?)?),
            "--upsert-race-window-ms" => cli.upsert_race_window_ms = Some(num(&flag, &value()?)?),
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(cli)
}

/// The `--config` file. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub rotate_refresh_tokens: Option<bool>,
    pub token_ttl_secs: Option<u64>,
    pub rate_limit_per_minute: Option<u32>,
    pub upsert_race_window_ms: Option<u64>,
    /// Replaces the seeded locations (each needs `uid` and `name`).
    pub locations: Option<Vec<Value>>,
    /// Contacts present at start.
    pub contacts: Option<Vec<SeedContact>>,
    /// `deliveryStatus` of new review invites (default "pending").
    pub invite_initial_status: Option<DeliveryStatus>,
    /// Where webhooks go from the start (and after every reset).
    pub webhook: Option<WebhookConfig>,
}

/// `{"url": "http://127.0.0.1:8787/webhooks/podium", "secret": "…"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

impl ConfigFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("config: {e}"))
    }
}

/// Completes a location given in a config file with the fields Podium always returns.
fn complete_location(loc: Value) -> Result<Value, String> {
    let Value::Object(mut map) = loc else {
        return Err("config: each location must be an object".into());
    };
    let name = match (map.get("uid"), map.get("name")) {
        (Some(Value::String(u)), Some(Value::String(n))) if !u.is_empty() => n.clone(),
        _ => return Err("config: each location needs string `uid` and `name`".into()),
    };
    map.entry("displayName").or_insert(Value::String(name));
    map.entry("phoneNumber").or_insert(Value::Null);
    map.entry("addressDetails").or_insert(json!({}));
    map.entry("archived").or_insert(Value::Bool(false));
    Ok(Value::Object(map))
}

/// Seeds and settings from defaults, the config file and the flags.
pub fn build(cli: &Cli, file: Option<ConfigFile>) -> Result<(Seeds, Settings), String> {
    let file = file.unwrap_or_default();
    let mut seeds = Seeds::default();
    let mut settings = Settings::default();
    if let Some(v) = file.client_id {
        seeds.client_id = v;
    }
    if let Some(v) = file.client_secret {
        seeds.client_secret = v;
    }
    if let Some(v) = file.refresh_token {
        seeds.refresh_token = v;
    }
    if let Some(locs) = file.locations {
        seeds.locations = locs
            .into_iter()
            .map(complete_location)
            .collect::<Result<_, _>>()?;
    }
    if let Some(contacts) = file.contacts {
        for c in &contacts {
            if c.phone_number.is_none() && c.email.is_none() {
                return Err(format!(
                    "config: contact `{}` needs phoneNumber or email",
                    c.name
                ));
            }
            if let Some(p) = &c.phone_number {
                if !is_e164(p) {
                    return Err(format!("config: `{p}` is not E.164"));
                }
            }
            for l in &c.locations {
                let known = seeds
                    .locations
                    .iter()
                    .any(|x| x.get("uid").and_then(Value::as_str) == Some(l));
                if !known {
                    return Err(format!("config: contact location `{l}` is not a location"));
                }
            }
        }
        seeds.contacts = contacts;
    }
    if let Some(w) = file.webhook {
        seeds.webhook = Some(
            crate::webhooks::parse_target(&w.url, &w.secret)
                .map_err(|e| format!("config: webhook: {e}"))?,
        );
    }
    settings.rotate_refresh_tokens = file.rotate_refresh_tokens.unwrap_or(false);
    settings.invite_initial_status = file.invite_initial_status.unwrap_or_default();
    settings.token_ttl_secs = cli
        .token_ttl_secs
        .or(file.token_ttl_secs)
        .unwrap_or(settings.token_ttl_secs);
    settings.rate_limit_per_minute = cli
        .rate_limit_per_minute
        .or(file.rate_limit_per_minute)
        .unwrap_or(settings.rate_limit_per_minute);
    settings.upsert_race_window_ms = cli
        .upsert_race_window_ms
        .or(file.upsert_race_window_ms)
        .unwrap_or(settings.upsert_race_window_ms);
    Ok((seeds, settings))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_and_env() {
        let c = parse_args(args(&[]), None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8788));
        assert_eq!(parse_args(args(&[]), Some("9000")).unwrap().port, 9000);
        assert_eq!(
            parse_args(args(&["--port", "0"]), Some("9000"))
                .unwrap()
                .port,
            0
        );
    }

    #[test]
    fn flags() {
        let c = parse_args(
            args(&[
                "--host=0.0.0.0",
                "--rate-limit-per-minute",
                "5",
                "--upsert-race-window-ms=0",
                "--token-ttl-secs",
                "60",
                "--config",
                "x.json",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.rate_limit_per_minute, Some(5));
        assert_eq!(c.upsert_race_window_ms, Some(0));
        assert_eq!(c.token_ttl_secs, Some(60));
        assert_eq!(c.config.as_deref(), Some("x.json"));
        assert!(parse_args(args(&["--port"]), None).is_err());
        assert!(parse_args(args(&["--port", "x"]), None).is_err());
        assert!(parse_args(args(&["--nope"]), None).is_err());
    }

    #[test]
    fn config_file_overrides_and_flags_win() {
        let file = ConfigFile::parse(
            r#"{"client_id":"c","rotate_refresh_tokens":true,"token_ttl_secs":5,
                "locations":[{"uid":"loc_x","name":"X"}],
                "contacts":[{"name":"A","phoneNumber":"+61412345678","locations":["loc_x"],"optedOut":true}]}"#,
        )
        .unwrap();
        let cli = parse_args(args(&["--token-ttl-secs", "7"]), None).unwrap();
        let (seeds, settings) = build(&cli, Some(file)).unwrap();
        assert_eq!(seeds.client_id, "c");
        assert_eq!(seeds.client_secret, "sandbox-secret");
        assert_eq!(settings.token_ttl_secs, 7);
        assert!(settings.rotate_refresh_tokens);
        assert_eq!(seeds.locations.len(), 1);
        assert_eq!(seeds.locations[0]["displayName"], "X");
        assert!(seeds.contacts[0].opted_out);
        assert!(ConfigFile::parse(r#"{"typo":1}"#).is_err());
        let hooks = ConfigFile::parse(
            r#"{"invite_initial_status":"sent",
                "webhook":{"url":"http://127.0.0.1:8787/webhooks/podium","secret":"s"}}"#,
        )
        .unwrap();
        let (seeds, settings) = build(&cli, Some(hooks)).unwrap();
        assert_eq!(settings.invite_initial_status, DeliveryStatus::Sent);
        assert_eq!(
            seeds.webhook.unwrap().url,
            "http://127.0.0.1:8787/webhooks/podium"
        );
        assert!(ConfigFile::parse(r#"{"invite_initial_status":"read"}"#).is_err());
        let remote =
            ConfigFile::parse(r#"{"webhook":{"url":"https://example.com/","secret":"s"}}"#)
                .unwrap();
        assert!(build(&cli, Some(remote)).is_err());
        let bad = ConfigFile::parse(
            r#"{"contacts":[{"name":"A","phoneNumber":"+1","locations":["nope"]}]}"#,
        )
        .unwrap();
        assert!(build(&cli, Some(bad)).is_err());
    }
}
