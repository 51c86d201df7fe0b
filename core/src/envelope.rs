//! The webchat message envelope (F16): strict, validated as a whole, one verdict for
//! the browser and the edge.
//!
//! The wire format is published as JSON Schema in `schema/webchat-message.schema.json`
//! and documented in the README. Validation walks the parsed JSON and collects *every*
//! problem (unknown fields included) with a stable code and the field path, then builds
//! the typed message through `serde` with `deny_unknown_fields` as a second, independent
//! guard.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::attachment::{self, AttachmentPolicy};
use crate::phone::{self, E164};
use crate::Problem;

/// Largest envelope accepted, in bytes of JSON. Attachments travel separately, so a
/// message is text and metadata only.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Longest message text, in characters (Podium splits long texts into SMS segments;
/// beyond this an agent is reading an essay, or an attacker is filling storage).
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_NAME_CHARS: usize = 100;
const MAX_URL_CHARS: usize = 2048;
const MAX_POSTCODE_CHARS: usize = 16;
const MAX_ID_CHARS: usize = 128;
const MAX_META_CHARS: usize = 512;

/// Field names per object, as published in the JSON Schema (a test keeps them equal).
pub const ROOT_FIELDS: &[&str] = &[
    "session_id",
    "message",
    "attachments",
    "contact",
    "location",
    "client",
];
pub const MESSAGE_FIELDS: &[&str] = &["type", "value"];
pub const ATTACHMENT_FIELDS: &[&str] = &["file_id", "filename", "content_type", "size"];
pub const CONTACT_FIELDS: &[&str] = &["phone", "name"];
pub const LOCATION_FIELDS: &[&str] = &["location_uid", "page_url", "postcode"];
pub const CLIENT_FIELDS: &[&str] = &["user_agent", "locale", "timezone", "widget_version"];

/// What a message is; `image`, `audio` and `file` carry at least one attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Text,
    Image,
    Audio,
    File,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub file_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub phone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_version: Option<String>,
}

/// The envelope exactly as it travels (before phone normalization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub session_id: String,
    pub message: Message,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Attachment>,
    pub contact: Contact,
    #[serde(default, deserialize_with = "null_as_default")]
    pub location: LocationContext,
    #[serde(default, deserialize_with = "null_as_default")]
    pub client: ClientMeta,
}

/// Optional sections may be absent or `null`; both mean "empty".
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A message that passed every check: the envelope plus what validation derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatedMessage {
    pub envelope: Envelope,
    pub phone: E164,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_extension: Option<String>,
    /// Each attachment's content type as it will be sent upstream (inferred where the
    /// client sent none), in the order of `envelope.attachments`.
    pub attachment_types: Vec<String>,
}

/// What validation needs to know that the envelope does not carry.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// The store's country (ISO 3166 alpha-2) for national phone numbers.
    pub default_region: Option<String>,
    pub attachment_policy: AttachmentPolicy,
}

/// Validate raw JSON bytes. `Err` carries every problem found, never an empty list.
pub fn validate(json: &[u8], ctx: &ValidationContext) -> Result<ValidatedMessage, Vec<Problem>> {
    if json.len() > MAX_ENVELOPE_BYTES {
        return Err(vec![problem(
            "body_too_large",
            format!("the message is larger than {MAX_ENVELOPE_BYTES} bytes"),
            None,
        )]);
    }
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        vec![problem(
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
            None,
        )]
    })?;
    validate_value(&value, ctx)
}

/// Validate an already-parsed JSON value.
pub fn validate_value(
    value: &Value,
    ctx: &ValidationContext,
) -> Result<ValidatedMessage, Vec<Problem>> {
    let mut walk = Walker::default();
    let derived = walk.envelope(value, ctx);
    if !walk.problems.is_empty() {
        return Err(walk.problems);
    }
    let Some((phone, phone_extension, attachment_types)) = derived else {
        return Err(vec![problem(
            "invalid_envelope",
            "the envelope is invalid".into(),
            None,
        )]);
    };
    // Second guard: the strict serde types must agree with the walker.
    let envelope: Envelope = serde_json::from_value(value.clone()).map_err(|e| {
        vec![problem(
            "invalid_envelope",
            format!("the envelope does not match the schema: {e}"),
            None,
        )]
    })?;
    Ok(ValidatedMessage {
        envelope,
        phone,
        phone_extension,
        attachment_types,
    })
}

fn problem(code: &'static str, message: String, field: Option<String>) -> Problem {
    Problem {
        code,
        message,
        field,
    }
}

type Derived = (E164, Option<String>, Vec<String>);

#[derive(Default)]
struct Walker {
    problems: Vec<Problem>,
}

impl Walker {
    fn report(&mut self, code: &'static str, message: impl Into<String>, field: &str) {
        self.problems
            .push(problem(code, message.into(), Some(field.to_owned())));
    }

    fn envelope(&mut self, value: &Value, ctx: &ValidationContext) -> Option<Derived> {
        let Some(root) = value.as_object() else {
            self.problems.push(problem(
                "wrong_type",
                "the body must be a JSON object".into(),
                None,
            ));
            return None;
        };
        self.unknown_fields(root, "", ROOT_FIELDS);

        if let Some(id) = self.string(root, "", "session_id", true, 36) {
            if !is_uuid(id) {
                self.report(
                    "invalid_session_id",
                    "session_id must be a UUID (8-4-4-4-12 hex digits)",
                    "session_id",
                );
            }
        }
        let kind = self.message(root);
        let attachment_types = self.attachments(root, kind, &ctx.attachment_policy);
        let phone = self.contact(root, ctx);
        self.location(root);
        self.client(root);
        let (phone, extension) = phone?;
        Some((phone, extension, attachment_types?))
    }

    fn unknown_fields(&mut self, map: &Map<String, Value>, path: &str, known: &[&str]) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            let field = join(path, key);
            self.report(
                "unknown_field",
                format!("unknown field {key:?} (allowed: {})", known.join(", ")),
                &field,
            );
        }
    }

    /// A string field: reports missing (if required), wrong type and over-length.
    fn string<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        max_chars: usize,
    ) -> Option<&'v str> {
        let field = join(path, key);
        match map.get(key) {
            None | Some(Value::Null) if required => {
                self.report("missing_field", format!("{field} is required"), &field);
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() > max_chars => {
                self.report(
                    "too_long",
                    format!("{field} is longer than {max_chars} characters"),
                    &field,
                );
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.report("wrong_type", format!("{field} must be a string"), &field);
                None
            }
        }
    }

    fn object<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        required: bool,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        match map.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.report("missing_field", format!("{key} is required"), key);
                }
                None
            }
            Some(Value::Object(inner)) => {
                self.unknown_fields(inner, key, known);
                Some(inner)
            }
            Some(_) => {
                self.report("wrong_type", format!("{key} must be an object"), key);
                None
            }
        }
    }

    fn message(&mut self, root: &Map<String, Value>) -> Option<MessageKind> {
        let message = self.object(root, "message", true, MESSAGE_FIELDS)?;
        let kind = match message.get("type") {
            None | Some(Value::Null) => {
                self.report("missing_field", "message.type is required", "message.type");
                None
            }
            Some(v) => match serde_json::from_value::<MessageKind>(v.clone()) {
                Ok(kind) => Some(kind),
                Err(_) => {
                    self.report(
                        "invalid_message_type",
                        "message.type must be one of text, image, audio, file",
                        "message.type",
                    );
                    None
                }
            },
        };
        if let Some(text) = self.string(message, "message", "value", true, MAX_TEXT_CHARS) {
            let has_attachments = root
                .get("attachments")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if kind == Some(MessageKind::Text) && text.trim().is_empty() && !has_attachments {
                self.report("message_empty", "the message is empty", "message.value");
            }
        }
        kind
    }

    /// Returns the resolved content type of each attachment when all are valid.
    fn attachments(
        &mut self,
        root: &Map<String, Value>,
        kind: Option<MessageKind>,
        policy: &AttachmentPolicy,
    ) -> Option<Vec<String>> {
        let items: &[Value] = match root.get("attachments") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.report("wrong_type", "attachments must be an array", "attachments");
                return None;
            }
        };
        if let Err(e) = attachment::check_count(policy, items.len()) {
            self.report(e.code(), e.to_string(), "attachments");
        }
        if matches!(
            kind,
            Some(MessageKind::Image | MessageKind::Audio | MessageKind::File)
        ) && items.is_empty()
        {
            self.report(
                "attachment_required",
                "a message of type image, audio or file needs at least one attachment",
                "attachments",
            );
        }
        let before = self.problems.len();
        let mut types = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("attachments[{i}]");
            let Some(map) = item.as_object() else {
                self.report("wrong_type", format!("{path} must be an object"), &path);
                continue;
            };
            self.unknown_fields(map, &path, ATTACHMENT_FIELDS);
            if let Some(id) = self.string(map, &path, "file_id", true, MAX_ID_CHARS) {
                if !is_token(id) {
                    self.report(
                        "invalid_file_id",
                        "file_id may only contain letters, digits, '-', '_' and '.'",
                        &join(&path, "file_id"),
                    );
                }
            }
            let name = self.string(map, &path, "filename", true, attachment::MAX_NAME_CHARS);
            let content_type = self.string(map, &path, "content_type", true, 255);
            let size = self.size(map, &path);
            let (Some(name), Some(content_type), Some(size)) = (name, content_type, size) else {
                continue;
            };
            match attachment::check(policy, name, content_type, size) {
                Ok(accepted) => {
                    let family = accepted.content_type.split('/').next().unwrap_or_default();
                    let mismatch = match kind {
                        Some(MessageKind::Image) => family != "image",
                        Some(MessageKind::Audio) => family != "audio",
                        _ => false,
                    };
                    if mismatch {
                        self.report(
                            "attachment_type_mismatch",
                            format!(
                                "a message of type {} cannot carry {}",
                                kind.map(kind_name).unwrap_or_default(),
                                accepted.content_type
                            ),
                            &join(&path, "content_type"),
                        );
                    }
                    types.push(accepted.content_type);
                }
                Err(e) => {
                    let field = match e {
                        attachment::AttachmentError::TooLarge { .. }
                        | attachment::AttachmentError::Empty
                        | attachment::AttachmentError::InvalidSize => "size",
                        attachment::AttachmentError::TypeNotAllowed { .. } => "content_type",
                        _ => "filename",
                    };
                    self.report(e.code(), e.to_string(), &join(&path, field));
                }
            }
        }
        (self.problems.len() == before).then_some(types)
    }

    fn size(&mut self, map: &Map<String, Value>, path: &str) -> Option<u64> {
        let field = join(path, "size");
        match map.get("size") {
            None | Some(Value::Null) => {
                self.report("missing_field", format!("{field} is required"), &field);
                None
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(size) => Some(size),
                None => {
                    let e = attachment::AttachmentError::InvalidSize;
                    self.report(e.code(), e.to_string(), &field);
                    None
                }
            },
            Some(_) => {
                self.report("wrong_type", format!("{field} must be a number"), &field);
                None
            }
        }
    }

    fn contact(
        &mut self,
        root: &Map<String, Value>,
        ctx: &ValidationContext,
    ) -> Option<(E164, Option<String>)> {
        let contact = self.object(root, "contact", true, CONTACT_FIELDS)?;
        self.string(contact, "contact", "name", false, MAX_NAME_CHARS);
        // The phone module applies its own length limit with its own code.
        let raw = self.string(contact, "contact", "phone", true, usize::MAX)?;
        match phone::parse(raw, ctx.default_region.as_deref()) {
            Ok(n) => Some((n.e164, n.extension)),
            Err(e) => {
                self.report(e.code(), e.to_string(), "contact.phone");
                None
            }
        }
    }

    fn location(&mut self, root: &Map<String, Value>) {
        let Some(location) = self.object(root, "location", false, LOCATION_FIELDS) else {
            return;
        };
        if let Some(uid) = self.string(location, "location", "location_uid", false, MAX_ID_CHARS) {
            if !is_token(uid) {
                self.report(
                    "invalid_location_uid",
                    "location_uid may only contain letters, digits, '-', '_' and '.'",
                    "location.location_uid",
                );
            }
        }
        if let Some(url) = self.string(location, "location", "page_url", false, MAX_URL_CHARS) {
            if !is_http_url(url) {
                self.report(
                    "invalid_url",
                    "page_url must be an absolute http(s) URL",
                    "location.page_url",
                );
            }
        }
        if let Some(postcode) =
            self.string(location, "location", "postcode", false, MAX_POSTCODE_CHARS)
        {
            let ok = !postcode.trim().is_empty()
                && postcode
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
            if !ok {
                self.report(
                    "invalid_postcode",
                    "postcode may only contain letters, digits, spaces and '-'",
                    "location.postcode",
                );
            }
        }
    }

    fn client(&mut self, root: &Map<String, Value>) {
        if let Some(client) = self.object(root, "client", false, CLIENT_FIELDS) {
            for key in CLIENT_FIELDS {
                self.string(client, "client", key, false, MAX_META_CHARS);
            }
        }
    }
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Image => "image",
        MessageKind::Audio => "audio",
        MessageKind::File => "file",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Canonical hyphenated UUID of any version: `8-4-4-4-12` hex digits.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `http://` or `https://`, a non-empty host, no whitespace or control characters.
fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        s.get(8..)
    } else if lower.starts_with("http://") {
        s.get(7..)
    } else {
        None
    };
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(region: &str) -> ValidationContext {
        ValidationContext {
            default_region: Some(region.into()),
            attachment_policy: AttachmentPolicy::default(),
        }
    }

    fn good() -> Value {
        json!({
            "session_id": "d1b467d4-7eb6-448d-b21f-50578ebaf69b",
            "message": {"type": "text", "value": "Do you have the blue one?"},
            "contact": {"phone": "0412 345 678", "name": "Ann"},
            "location": {"page_url": "https://shop.example/sydney/", "postcode": "2000"},
            "client": {"user_agent": "Mozilla/5.0", "locale": "en-AU"}
        })
    }

    fn codes(result: Result<ValidatedMessage, Vec<Problem>>) -> Vec<(String, Option<String>)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|p| (p.code.to_owned(), p.field))
            .collect()
    }

    #[test]
    fn a_good_message_passes_with_its_phone_normalized() {
        let v = validate(good().to_string().as_bytes(), &ctx("AU")).unwrap();
        assert_eq!(v.phone.as_str(), "+61412345678");
        assert_eq!(v.envelope.message.kind, MessageKind::Text);
        assert_eq!(v.envelope.location.postcode.as_deref(), Some("2000"));
    }

    #[test]
    fn the_same_phone_on_a_us_page_is_refused() {
        let got = codes(validate(good().to_string().as_bytes(), &ctx("US")));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1.as_deref(), Some("contact.phone"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut v = good();
        v["session_id"] = json!("not-a-uuid");
        v["message"]["type"] = json!("video");
        v["message"]["colour"] = json!("red");
        v["contact"]["phone"] = json!("abc");
        v["location"]["page_url"] = json!("javascript:alert(1)");
        v["extra"] = json!(1);
        v["attachments"] = json!([
            {"file_id": "f1", "filename": "big.mp4", "content_type": "video/mp4", "size": 30_000_000},
            {"file_id": "f 2", "filename": "a.exe", "content_type": "image/png", "size": 10},
            "nope"
        ]);
        let got = codes(validate(v.to_string().as_bytes(), &ctx("AU")));
        let expect = [
            ("unknown_field", "extra"),
            ("invalid_session_id", "session_id"),
            ("unknown_field", "message.colour"),
            ("invalid_message_type", "message.type"),
            ("attachment_too_large", "attachments[0].size"),
            ("invalid_file_id", "attachments[1].file_id"),
            ("attachment_type_not_allowed", "attachments[1].content_type"),
            ("wrong_type", "attachments[2]"),
            ("phone_not_a_number", "contact.phone"),
            ("invalid_url", "location.page_url"),
        ];
        for (code, field) in expect {
            assert!(
                got.contains(&(code.to_owned(), Some(field.to_owned()))),
                "missing {code} at {field} in {got:?}"
            );
        }
        assert_eq!(got.len(), expect.len(), "{got:?}");
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let got = codes(validate(
            br#"{"message": {"type": "text"}, "contact": 5}"#,
            &ctx("AU"),
        ));
        assert!(got.contains(&("missing_field".into(), Some("session_id".into()))));
        assert!(got.contains(&("missing_field".into(), Some("message.value".into()))));
        assert!(got.contains(&("wrong_type".into(), Some("contact".into()))));
        assert_eq!(codes(validate(b"[1]", &ctx("AU")))[0].0, "wrong_type");
        assert_eq!(codes(validate(b"{", &ctx("AU")))[0].0, "invalid_json");
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(codes(validate(&huge, &ctx("AU")))[0].0, "body_too_large");
    }

    #[test]
    fn media_messages_need_matching_attachments() {
        let mut v = good();
        v["message"] = json!({"type": "image", "value": ""});
        assert_eq!(
            codes(validate(v.to_string().as_bytes(), &ctx("AU"))),
            vec![("attachment_required".into(), Some("attachments".into()))]
        );
        v["attachments"] =
            json!([{"file_id": "f1", "filename": "a.pdf", "content_type": "", "size": 10}]);
        assert_eq!(
            codes(validate(v.to_string().as_bytes(), &ctx("AU"))),
            vec![(
                "attachment_type_mismatch".into(),
                Some("attachments[0].content_type".into())
            )]
        );
        v["attachments"] =
            json!([{"file_id": "f1", "filename": "IMG_1.HEIC", "content_type": "", "size": 10}]);
        let ok = validate(v.to_string().as_bytes(), &ctx("AU")).unwrap();
        assert_eq!(ok.attachment_types, vec!["image/heic".to_owned()]);
    }

    #[test]
    fn empty_text_is_refused() {
        let mut v = good();
        v["message"]["value"] = json!("   ");
        assert_eq!(
            codes(validate(v.to_string().as_bytes(), &ctx("AU"))),
            vec![("message_empty".into(), Some("message.value".into()))]
        );
    }

    #[test]
    fn optional_sections_may_be_absent_or_null() {
        let v = json!({
            "session_id": "D1B467D4-7EB6-448D-B21F-50578EBAF69B",
            "message": {"type": "text", "value": "hi"},
            "contact": {"phone": "+14155551234"},
            "location": null,
            "attachments": null
        });
        let ok = validate(v.to_string().as_bytes(), &ValidationContext::default()).unwrap();
        assert_eq!(ok.phone.as_str(), "+14155551234");
    }

    #[test]
    fn helpers() {
        assert!(is_uuid("d1b467d4-7eb6-448d-b21f-50578ebaf69b"));
        assert!(!is_uuid("d1b467d4-7eb6-448d-b21f-50578ebaf69"));
        assert!(!is_uuid("d1b467d4x7eb6-448d-b21f-50578ebaf69b"));
        assert!(is_http_url("https://a.example/x?y#z"));
        assert!(is_http_url("HTTP://a"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("ftp://a"));
        assert!(!is_http_url("https://a b"));
    }

    /// The published JSON Schema names exactly the fields the validator knows, with
    /// `additionalProperties: false` everywhere and the same required fields.
    #[test]
    fn published_schema_matches_the_validator() {
        let schema: Value =
            serde_json::from_str(include_str!("../../schema/webchat-message.schema.json")).unwrap();
        let defs = &schema["$defs"];
        let objects = [
            (
                &schema,
                ROOT_FIELDS,
                vec!["session_id", "message", "contact"],
            ),
            (&defs["message"], MESSAGE_FIELDS, vec!["type", "value"]),
            (
                &defs["attachment"],
                ATTACHMENT_FIELDS,
                ATTACHMENT_FIELDS.to_vec(),
            ),
            (&defs["contact"], CONTACT_FIELDS, vec!["phone"]),
            (&defs["location"], LOCATION_FIELDS, vec![]),
            (&defs["client"], CLIENT_FIELDS, vec![]),
        ];
        for (object, fields, required) in objects {
            let mut props: Vec<&str> = object["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut fields = fields.to_vec();
            props.sort_unstable();
            fields.sort_unstable();
            assert_eq!(props, fields);
            assert_eq!(object["additionalProperties"], json!(false));
            let mut listed: Vec<&str> = object["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut required = required;
            listed.sort_unstable();
            required.sort_unstable();
            assert_eq!(listed, required);
        }
        assert_eq!(
            schema["$defs"]["message"]["properties"]["value"]["maxLength"],
            json!(MAX_TEXT_CHARS)
        );
        assert_eq!(
            schema["$defs"]["attachment"]["properties"]["size"]["maximum"],
            json!(attachment::PODIUM_MAX_ATTACHMENT_BYTES)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]
            #[test]
            fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let _ = validate(&bytes, &ctx("AU"));
            }

            /// Mutating any field of a good envelope either passes or yields problems
            /// that each carry a code; the walker and serde never disagree on a pass.
            #[test]
            fn mutated_envelopes_get_coded_verdicts(
                key in prop::sample::select(vec!["session_id", "message", "contact", "location", "client", "attachments", "zzz"]),
                replacement in prop_oneof![
                    Just(json!(null)), Just(json!(1)), Just(json!("x")), Just(json!([])),
                    Just(json!({})), Just(json!({"type": "text", "value": "hi"})),
                    Just(json!({"phone": "+61412345678"}))
                ],
            ) {
                let mut v = good();
                v[key] = replacement;
                match validate_value(&v, &ctx("AU")) {
                    Ok(_) => {}
                    Err(problems) => {
                        prop_assert!(!problems.is_empty());
                        prop_assert!(problems.iter().all(|p| !p.code.is_empty() && p.code != "invalid_envelope"));
                    }
                }
            }
        }
    }
}
