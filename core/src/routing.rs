//! Location routing (F5): which Podium `locationUid` a chat belongs to, and *how* that
//! was decided, so a fallback to the default is visible and countable, never silent.
//!
//! Order: an explicit `location_uid` that is configured → page URL rules (host, then the
//! longest matching path prefix) → postcode rules → the default location. An explicit
//! uid that is *not* configured is never used (it could be a typo or a stale embed
//! pointing at another merchant's store); the chat falls through to the other rules and
//! the decision carries a note saying so.

use serde::{Deserialize, Serialize};

use crate::envelope::LocationContext;

/// One store, as configured by the merchant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Podium's location uid.
    pub uid: String,
    pub name: String,
    /// ISO 3166 alpha-2: the default region for phone numbers typed at this store.
    pub region: String,
    /// Hostnames this store's pages live on (`sydney.shop.example`, or `*.shop.example`
    /// for every subdomain). Empty: any host (then path prefixes decide).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Path prefixes of this store's pages (`/sydney/`). Empty: the whole host.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// Postcodes served: exact (`2000`), prefix (`42*`) or inclusive numeric range
    /// (`2000-2234`).
    #[serde(default)]
    pub postcodes: Vec<String>,
    /// Countries (ISO alpha-2) whose numbers may get automatic texts from this store
    /// (the confirmation after a chat). `None`: the store's own region only; `[]`: none.
    /// Numbers from elsewhere are still forwarded to the inbox; the agent can reply.
    #[serde(default)]
    pub auto_text_regions: Option<Vec<String>>,
    /// Webchat profile UUIDs (the `_incoming_webchat_data` envelope's
    /// `webchat_configuration.profile_uuid`) that belong to this store.
    #[serde(default)]
    pub profile_uuids: Vec<String>,
    /// The store's texting number (E.164), quoted when a customer must text START.
    #[serde(default)]
    pub sms_number: Option<String>,
}

impl LocationConfig {
    /// Regions whose numbers may get automatic texts from this store.
    pub fn auto_text_regions(&self) -> Vec<String> {
        self.auto_text_regions
            .clone()
            .unwrap_or_else(|| vec![self.region.clone()])
    }
}

/// All stores of a merchant plus the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub locations: Vec<LocationConfig>,
    /// Where a chat goes when nothing else decides. `None`: such chats are refused
    /// (`location_unresolved`) rather than guessed.
    #[serde(default)]
    pub default_location_uid: Option<String>,
}

/// A configuration mistake, found when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingConfigError {
    #[error("no locations are configured")]
    NoLocations,
    #[error("location uid {0:?} is configured twice")]
    DuplicateUid(String),
    #[error("location {uid:?}: {problem}")]
    Invalid { uid: String, problem: String },
    #[error("default_location_uid {0:?} is not a configured location")]
    UnknownDefault(String),
    #[error("host {host:?} path {path:?} is claimed by both {first:?} and {second:?}")]
    AmbiguousRule {
        host: String,
        path: String,
        first: String,
        second: String,
    },
}

impl RoutingConfig {
    /// Check the configuration once, at startup: every later decision relies on it.
    pub fn validated(mut self) -> Result<Self, RoutingConfigError> {
        if self.locations.is_empty() {
            return Err(RoutingConfigError::NoLocations);
        }
        let mut seen_rules: Vec<(String, String, String)> = Vec::new();
        for i in 0..self.locations.len() {
            let Some(loc) = self.locations.get_mut(i) else {
                continue;
            };
            let invalid = |problem: String| RoutingConfigError::Invalid {
                uid: loc.uid.clone(),
                problem,
            };
            if loc.uid.trim().is_empty() {
                return Err(invalid("uid is empty".into()));
            }
            loc.region = loc.region.trim().to_ascii_uppercase();
            if crate::phone::normalize("+14155551234", Some(&loc.region)).is_err() {
                return Err(invalid(format!(
                    "region {:?} is not a known ISO 3166 code",
                    loc.region
                )));
            }
            for host in &mut loc.hostnames {
                *host = host.trim().trim_end_matches('.').to_ascii_lowercase();
                if host.is_empty() || host.contains('/') || host.contains(':') {
                    return Err(invalid(format!(
                        "hostname {host:?} is not a bare host name"
                    )));
                }
            }
            for prefix in &loc.path_prefixes {
                if !prefix.starts_with('/') {
                    return Err(invalid(format!(
                        "path prefix {prefix:?} must start with '/'"
                    )));
                }
            }
            if let Some(regions) = &mut loc.auto_text_regions {
                for r in regions.iter_mut() {
                    *r = r.trim().to_ascii_uppercase();
                    if crate::phone::normalize("+14155551234", Some(r)).is_err() {
                        return Err(invalid(format!(
                            "auto_text_regions: {r:?} is not a known ISO 3166 code"
                        )));
                    }
                }
            }
            for uuid in &mut loc.profile_uuids {
                *uuid = uuid.trim().to_ascii_lowercase();
                if !crate::envelope::is_uuid(uuid) {
                    return Err(invalid(format!("profile_uuids: {uuid:?} is not a UUID")));
                }
            }
            if let Some(number) = &loc.sms_number {
                if !crate::phone::E164::is_e164_shape(number) {
                    return Err(invalid(format!(
                        "sms_number {number:?} is not an E.164 number (+61…)"
                    )));
                }
            }
            for postcode in &loc.postcodes {
                if PostcodeRule::parse(postcode).is_none() {
                    return Err(invalid(format!(
                        "postcode rule {postcode:?} is not understood"
                    )));
                }
            }
            let hosts = if loc.hostnames.is_empty() {
                vec!["*".to_owned()]
            } else {
                loc.hostnames.clone()
            };
            let paths = if loc.path_prefixes.is_empty() {
                vec!["/".to_owned()]
            } else {
                loc.path_prefixes
                    .iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect()
            };
            // Only page rules that say something are checked for ambiguity: a location
            // with neither hosts nor paths never matches a page URL.
            if loc.hostnames.is_empty() && loc.path_prefixes.is_empty() {
                continue;
            }
            for host in &hosts {
                for path in &paths {
                    if let Some((_, _, first)) =
                        seen_rules.iter().find(|(h, p, _)| h == host && p == path)
                    {
                        return Err(RoutingConfigError::AmbiguousRule {
                            host: host.clone(),
                            path: path.clone(),
                            first: first.clone(),
                            second: loc.uid.clone(),
                        });
                    }
                    seen_rules.push((host.clone(), path.clone(), loc.uid.clone()));
                }
            }
        }
        for (i, loc) in self.locations.iter().enumerate() {
            for later in self.locations.iter().skip(i + 1) {
                if later.uid == loc.uid {
                    return Err(RoutingConfigError::DuplicateUid(loc.uid.clone()));
                }
                if let Some(uuid) = loc
                    .profile_uuids
                    .iter()
                    .find(|u| later.profile_uuids.contains(u))
                {
                    return Err(RoutingConfigError::Invalid {
                        uid: later.uid.clone(),
                        problem: format!("profile uuid {uuid} is also claimed by {}", loc.uid),
                    });
                }
            }
        }
        if let Some(default) = &self.default_location_uid {
            if self.location(default).is_none() {
                return Err(RoutingConfigError::UnknownDefault(default.clone()));
            }
        }
        Ok(self)
    }

    pub fn location(&self, uid: &str) -> Option<&LocationConfig> {
        self.locations.iter().find(|l| l.uid == uid)
    }
}

/// How a location was chosen. `Default` is the fallback that operators watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteMethod {
    ExplicitUid,
    /// The webchat profile UUID of the incoming-webchat envelope.
    Profile,
    PageUrl,
    Postcode,
    Default,
}

/// The routing decision for one chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub location_uid: String,
    pub location_name: String,
    /// The chosen store's country, used for the customer's phone number.
    pub region: String,
    pub method: RouteMethod,
    /// The rule that matched, for the operator (`host shop.example path /sydney/`).
    pub rule: String,
    /// Things an operator should know (an ignored unknown uid, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Route {
    pub fn is_fallback(&self) -> bool {
        self.method == RouteMethod::Default
    }
}

/// Nothing decided and there is no default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no location matches this chat and no default location is configured")]
pub struct Unresolved {
    pub notes: Vec<String>,
}

impl Unresolved {
    pub fn code(&self) -> &'static str {
        "location_unresolved"
    }
}

/// Decide where a chat goes.
pub fn resolve(config: &RoutingConfig, context: &LocationContext) -> Result<Route, Unresolved> {
    resolve_with_profile(config, context, None)
}

/// Decide where a chat goes, with the webchat profile UUID of an incoming-webchat
/// envelope: an explicit uid → the profile → page URL → postcode → default.
pub fn resolve_with_profile(
    config: &RoutingConfig,
    context: &LocationContext,
    profile_uuid: Option<&str>,
) -> Result<Route, Unresolved> {
    let mut notes = Vec::new();
    let route = |loc: &LocationConfig, method, rule: String, notes: &mut Vec<String>| Route {
        location_uid: loc.uid.clone(),
        location_name: loc.name.clone(),
        region: loc.region.clone(),
        method,
        rule,
        notes: std::mem::take(notes),
    };

    if let Some(uid) = context.location_uid.as_deref() {
        match config.location(uid) {
            Some(loc) => {
                return Ok(route(
                    loc,
                    RouteMethod::ExplicitUid,
                    format!("location_uid {uid}"),
                    &mut notes,
                ))
            }
            None => notes.push(format!("ignored unknown location_uid {uid:?}")),
        }
    }

    if let Some(profile) = profile_uuid {
        let wanted = profile.trim().to_ascii_lowercase();
        match config
            .locations
            .iter()
            .find(|l| l.profile_uuids.contains(&wanted))
        {
            Some(loc) => {
                return Ok(route(
                    loc,
                    RouteMethod::Profile,
                    format!("profile {wanted}"),
                    &mut notes,
                ))
            }
            None => notes.push(format!("no store claims webchat profile {wanted}")),
        }
    }

    if let Some(url) = context.page_url.as_deref() {
        match split_url(url) {
            Some((host, path)) => {
                if let Some((loc, rule)) = match_page(config, &host, &path) {
                    return Ok(route(loc, RouteMethod::PageUrl, rule, &mut notes));
                }
            }
            None => notes.push("page_url could not be read".into()),
        }
    }

    if let Some(postcode) = context.postcode.as_deref() {
        let wanted = normalize_postcode(postcode);
        for loc in &config.locations {
            let hit = loc
                .postcodes
                .iter()
                .find(|rule| PostcodeRule::parse(rule).is_some_and(|r| r.matches(&wanted)));
            if let Some(rule) = hit {
                return Ok(route(
                    loc,
                    RouteMethod::Postcode,
                    format!("postcode {rule}"),
                    &mut notes,
                ));
            }
        }
    }

    match config
        .default_location_uid
        .as_deref()
        .and_then(|uid| config.location(uid))
    {
        Some(loc) => Ok(route(
            loc,
            RouteMethod::Default,
            "default location".into(),
            &mut notes,
        )),
        None => Err(Unresolved { notes }),
    }
}

/// The best page rule: a specific host beats "any host", then the longest path prefix.
fn match_page<'c>(
    config: &'c RoutingConfig,
    host: &str,
    path: &str,
) -> Option<(&'c LocationConfig, String)> {
    let mut best: Option<(u8, usize, &LocationConfig, String)> = None;
    for loc in &config.locations {
        if loc.hostnames.is_empty() && loc.path_prefixes.is_empty() {
            continue;
        }
        let host_score = if loc.hostnames.is_empty() {
            Some(0)
        } else {
            loc.hostnames.iter().find_map(|h| host_matches(h, host))
        };
        let Some(host_score) = host_score else {
            continue;
        };
        let path_hit = if loc.path_prefixes.is_empty() {
            Some((0, "/".to_owned()))
        } else {
            loc.path_prefixes
                .iter()
                .filter(|p| path_has_prefix(path, p))
                .map(|p| (p.len(), p.clone()))
                .max_by_key(|(len, _)| *len)
        };
        let Some((path_len, prefix)) = path_hit else {
            continue;
        };
        let better = best
            .as_ref()
            .is_none_or(|(hs, pl, _, _)| (host_score, path_len) > (*hs, *pl));
        if better {
            best = Some((
                host_score,
                path_len,
                loc,
                format!("host {host} path {prefix}"),
            ));
        }
    }
    best.map(|(_, _, loc, rule)| (loc, rule))
}

/// `Some(2)` exact host, `Some(1)` wildcard subdomain match, `None` no match.
fn host_matches(rule: &str, host: &str) -> Option<u8> {
    if rule == host {
        return Some(2);
    }
    let suffix = rule.strip_prefix("*.")?;
    let label = host.strip_suffix(suffix)?.strip_suffix('.')?;
    (!label.is_empty()).then_some(1)
}

/// Case-insensitive prefix match on whole path segments: `/syd` does not match
/// `/sydney-harbour/` unless written so; `/sydney/` matches `/sydney/` and below,
/// `/sydney` matches `/sydney` and `/sydney/…`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let path = path.to_ascii_lowercase();
    let prefix = prefix.to_ascii_lowercase();
    if prefix.ends_with('/') {
        return path.starts_with(&prefix) || path == prefix.trim_end_matches('/');
    }
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// `https://Shop.Example:443/Sydney/x?y` → (`shop.example`, `/Sydney/x`).
fn split_url(url: &str) -> Option<(String, String)> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let after = rest.get(end..).unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let path = after.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    Some((host, path.to_owned()))
}

fn normalize_postcode(p: &str) -> String {
    p.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase()
}

enum PostcodeRule {
    Exact(String),
    Prefix(String),
    Range(u64, u64, usize),
}

impl PostcodeRule {
    fn parse(rule: &str) -> Option<Self> {
        let rule = rule.trim();
        if let Some(prefix) = rule.strip_suffix('*') {
            let prefix = normalize_postcode(prefix);
            return (!prefix.is_empty()).then_some(PostcodeRule::Prefix(prefix));
        }
        if let Some((lo, hi)) = rule.split_once('-') {
            let (lo, hi) = (lo.trim(), hi.trim());
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if digits(lo) && digits(hi) && lo.len() == hi.len() {
                let (a, b) = (lo.parse().ok()?, hi.parse().ok()?);
                return (a <= b).then_some(PostcodeRule::Range(a, b, lo.len()));
            }
        }
        let exact = normalize_postcode(rule);
        (!exact.is_empty() && exact.chars().all(|c| c.is_ascii_alphanumeric()))
            .then_some(PostcodeRule::Exact(exact))
    }

    fn matches(&self, postcode: &str) -> bool {
        match self {
            PostcodeRule::Exact(p) => p == postcode,
            PostcodeRule::Prefix(p) => postcode.starts_with(p.as_str()),
            PostcodeRule::Range(lo, hi, len) => {
                postcode.len() == *len
                    && postcode.bytes().all(|b| b.is_ascii_digit())
                    && postcode
                        .parse::<u64>()
                        .is_ok_and(|n| (*lo..=*hi).contains(&n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(
        uid: &str,
        region: &str,
        hosts: &[&str],
        paths: &[&str],
        postcodes: &[&str],
    ) -> LocationConfig {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
        LocationConfig {
            uid: uid.into(),
            name: uid.into(),
            region: region.into(),
            hostnames: v(hosts),
            path_prefixes: v(paths),
            postcodes: v(postcodes),
            auto_text_regions: None,
            profile_uuids: vec![],
            sms_number: None,
        }
    }

    #[test]
    fn a_webchat_profile_routes_ahead_of_page_rules() {
        let mut c = config();
        c.locations[1].profile_uuids = vec!["8e74e2f4-f88f-502d-a11f-d53ae932c3ec".into()];
        let c = c.validated().unwrap();
        let ctx = LocationContext {
            location_uid: None,
            page_url: Some("https://shop.example/sydney/".into()),
            postcode: None,
        };
        let r =
            resolve_with_profile(&c, &ctx, Some("8E74E2F4-F88F-502D-A11F-D53AE932C3EC")).unwrap();
        assert_eq!(
            (r.location_uid.as_str(), r.method),
            (c.locations[1].uid.as_str(), RouteMethod::Profile)
        );
        // An unknown profile falls through to the page rules, with a note.
        let r =
            resolve_with_profile(&c, &ctx, Some("1825610a-d7c6-5e01-9934-0c92cbc20351")).unwrap();
        assert_eq!(r.method, RouteMethod::PageUrl);
        assert!(r.notes.iter().any(|n| n.contains("no store claims")));
        // Two stores claiming one profile is a configuration error.
        let mut twice = config();
        twice.locations[0].profile_uuids = vec!["8e74e2f4-f88f-502d-a11f-d53ae932c3ec".into()];
        twice.locations[1].profile_uuids = vec!["8e74e2f4-f88f-502d-a11f-d53ae932c3ec".into()];
        assert!(twice.validated().is_err());
        let mut bad = config();
        bad.locations[0].profile_uuids = vec!["nope".into()];
        assert!(bad.validated().is_err());
        let mut bad = config();
        bad.locations[0].auto_text_regions = Some(vec!["XX".into()]);
        assert!(bad.validated().is_err());
        let mut bad = config();
        bad.locations[0].sms_number = Some("0412 345 678".into());
        assert!(bad.validated().is_err());
    }

    fn config() -> RoutingConfig {
        RoutingConfig {
            locations: vec![
                loc(
                    "loc_sydney",
                    "AU",
                    &["shop.example"],
                    &["/sydney/"],
                    &["2000-2234"],
                ),
                loc(
                    "loc_burleigh",
                    "au",
                    &["shop.example"],
                    &["/burleigh/"],
                    &["4220", "42*"],
                ),
                loc("loc_sf", "US", &["sf.shop.example"], &[], &["94*"]),
                loc("loc_any_host", "US", &[], &["/usa/"], &[]),
            ],
            default_location_uid: Some("loc_sydney".into()),
        }
        .validated()
        .unwrap()
    }

    fn ctx(uid: Option<&str>, url: Option<&str>, postcode: Option<&str>) -> LocationContext {
        LocationContext {
            location_uid: uid.map(Into::into),
            page_url: url.map(Into::into),
            postcode: postcode.map(Into::into),
        }
    }

    fn chosen(c: LocationContext) -> (String, RouteMethod) {
        let r = resolve(&config(), &c).unwrap();
        (r.location_uid, r.method)
    }

    #[test]
    fn explicit_uid_wins_when_configured() {
        let c = ctx(
            Some("loc_burleigh"),
            Some("https://shop.example/sydney/"),
            None,
        );
        assert_eq!(chosen(c), ("loc_burleigh".into(), RouteMethod::ExplicitUid));
    }

    #[test]
    fn unknown_uid_is_ignored_and_noted() {
        let r = resolve(
            &config(),
            &ctx(
                Some("loc_other_merchant"),
                Some("https://shop.example/burleigh/x"),
                None,
            ),
        )
        .unwrap();
        assert_eq!(r.location_uid, "loc_burleigh");
        assert_eq!(r.method, RouteMethod::PageUrl);
        assert_eq!(
            r.notes,
            vec!["ignored unknown location_uid \"loc_other_merchant\"".to_owned()]
        );
    }

    #[test]
    fn page_url_rules() {
        let cases = [
            ("https://shop.example/sydney/", "loc_sydney"),
            (
                "https://SHOP.example/Sydney/shoes?colour=blue#top",
                "loc_sydney",
            ),
            ("https://shop.example/sydney", "loc_sydney"),
            ("https://shop.example:8443/burleigh/", "loc_burleigh"),
            ("https://sf.shop.example/anything", "loc_sf"),
            ("https://elsewhere.example/usa/deals", "loc_any_host"),
        ];
        for (url, want) in cases {
            assert_eq!(
                chosen(ctx(None, Some(url), None)),
                (want.into(), RouteMethod::PageUrl),
                "{url}"
            );
        }
        // Not a segment match, wrong host: fall to the default.
        for url in [
            "https://shop.example/sydneyside/",
            "https://other.example/sydney/",
        ] {
            assert_eq!(
                chosen(ctx(None, Some(url), None)).1,
                RouteMethod::Default,
                "{url}"
            );
        }
    }

    #[test]
    fn postcode_rules() {
        assert_eq!(
            chosen(ctx(None, None, Some("2010"))),
            ("loc_sydney".into(), RouteMethod::Postcode)
        );
        assert_eq!(
            chosen(ctx(None, None, Some("4221"))),
            ("loc_burleigh".into(), RouteMethod::Postcode)
        );
        assert_eq!(
            chosen(ctx(None, None, Some("94 103"))),
            ("loc_sf".into(), RouteMethod::Postcode)
        );
        assert_eq!(
            chosen(ctx(None, None, Some("3000"))).1,
            RouteMethod::Default
        );
        assert_eq!(
            chosen(ctx(None, None, Some("20100"))).1,
            RouteMethod::Default,
            "range needs same length"
        );
        // The page outranks the postcode.
        assert_eq!(
            chosen(ctx(
                None,
                Some("https://shop.example/burleigh/"),
                Some("2000")
            ))
            .0,
            "loc_burleigh"
        );
    }

    #[test]
    fn fallback_is_flagged_and_regions_come_from_the_location() {
        let r = resolve(&config(), &ctx(None, None, None)).unwrap();
        assert!(r.is_fallback());
        assert_eq!(r.region, "AU");
        let burleigh = resolve(&config(), &ctx(Some("loc_burleigh"), None, None)).unwrap();
        assert_eq!(burleigh.region, "AU", "normalized from lowercase");
        let mut no_default = config();
        no_default.default_location_uid = None;
        let err = resolve(&no_default, &ctx(Some("nope"), None, None)).unwrap_err();
        assert_eq!(err.code(), "location_unresolved");
        assert_eq!(err.notes.len(), 1);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut c = config();
        c.default_location_uid = Some("loc_missing".into());
        assert_eq!(
            c.validated(),
            Err(RoutingConfigError::UnknownDefault("loc_missing".into()))
        );
        let mut c = config();
        c.locations.push(loc("loc_sydney", "AU", &[], &[], &[]));
        assert_eq!(
            c.validated(),
            Err(RoutingConfigError::DuplicateUid("loc_sydney".into()))
        );
        let mut c = config();
        c.locations.push(loc(
            "loc_dup_rule",
            "AU",
            &["shop.example"],
            &["/sydney/"],
            &[],
        ));
        assert!(matches!(
            c.validated(),
            Err(RoutingConfigError::AmbiguousRule { .. })
        ));
        for bad in [
            loc("x", "XX", &[], &[], &[]),
            loc("x", "AU", &["https://shop.example"], &[], &[]),
            loc("x", "AU", &[], &["sydney"], &[]),
            loc("x", "AU", &[], &[], &["20*00"]),
            loc("x", "AU", &[], &[], &["3000-2000"]),
        ] {
            let c = RoutingConfig {
                locations: vec![bad.clone()],
                default_location_uid: None,
            };
            assert!(
                matches!(c.validated(), Err(RoutingConfigError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            RoutingConfig {
                locations: vec![],
                default_location_uid: None
            }
            .validated(),
            Err(RoutingConfigError::NoLocations)
        );
    }

    #[test]
    fn urls_are_split_safely() {
        assert_eq!(
            split_url("https://a.example"),
            Some(("a.example".into(), "/".into()))
        );
        assert_eq!(
            split_url("https://u:p@a.example:1/x"),
            Some(("a.example".into(), "/x".into()))
        );
        assert_eq!(
            split_url("https://[::1]:8787/x"),
            Some(("[::1]".into(), "/x".into()))
        );
        assert_eq!(split_url("nonsense"), None);
        assert_eq!(split_url("https:///x"), None);
    }
}
