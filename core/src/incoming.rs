//! The incoming-webchat envelope (`{"_incoming_webchat_data": {…}}`, F16): a second wire
//! format some merchants' widgets already emit, accepted beside the gateway's own.
//!
//! It is validated by its own published JSON Schema
//! (`schema/incoming-webchat-data.schema.json`, copied verbatim from the field notes):
//! the validator walks the schema document itself, so the two cannot drift. It supports
//! exactly the draft-07 keywords that schema uses (`type`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, and the one UUID `pattern`), and a
//! schema with anything else fails the tests. Every problem is reported at once, with
//! the gateway's codes and the field path, like the gateway's own envelope.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Problem;

/// The top-level key that tells this envelope from the gateway's own.
pub const ROOT_KEY: &str = "_incoming_webchat_data";

/// The published schema, as served in `schema/`.
pub const SCHEMA_JSON: &str = include_str!("../../schema/incoming-webchat-data.schema.json");

/// The only `pattern` the schema uses: a version 1–5, RFC 4122 variant UUID.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$";

/// Whether `raw` is this envelope (and not the gateway's own).
pub fn is_incoming(raw: &Value) -> bool {
    raw.as_object().is_some_and(|m| m.contains_key(ROOT_KEY))
}

fn schema() -> Option<&'static Value> {
    static SCHEMA: OnceLock<Option<Value>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| serde_json::from_str(SCHEMA_JSON).ok())
        .as_ref()
}

/// `pattern` as the schema writes it, checked without a regex engine.
pub fn matches_uuid_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    crate::envelope::is_uuid(s)
        && b.get(14).is_some_and(|v| (b'1'..=b'5').contains(v))
        && b.get(19)
            .is_some_and(|v| matches!(v, b'8' | b'9' | b'a' | b'b' | b'A' | b'B'))
}

/// The message as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incoming {
    #[serde(rename = "_incoming_webchat_data")]
    pub data: IncomingData,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingData {
    pub sessionuuid: String,
    pub webchat_message: WebchatMessage,
    #[serde(default)]
    pub webchat_attachments: Vec<WebchatAttachment>,
    pub webchat_configuration: WebchatConfiguration,
    pub webchat_meta_data: WebchatMeta,
    pub webchat_profile: WebchatProfile,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatAttachment {
    pub filename: String,
    pub originalname: String,
    pub fileuuid: String,
    #[serde(rename = "contentType")]
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatConfiguration {
    pub branch: String,
    #[serde(default)]
    pub pass_through_data: Option<String>,
    pub profile_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatMeta {
    pub ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatProfile {
    pub webchat_client_config: WebchatClientConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatClientConfig {
    pub opening_message: WebchatMessage,
}

/// Validate a parsed body against the published schema. `Err` lists every problem.
pub fn validate(raw: &Value) -> Result<Incoming, Vec<Problem>> {
    let Some(schema) = schema() else {
        return Err(vec![problem(
            "schema_unavailable",
            "the incoming-webchat schema could not be loaded".into(),
            None,
        )]);
    };
    let mut problems = Vec::new();
    check(schema, raw, "", &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(raw.clone()).map_err(|e| {
        vec![problem(
            "invalid_envelope",
            format!("the envelope does not match the schema: {e}"),
            None,
        )]
    })
}

fn problem(code: &'static str, message: String, field: Option<String>) -> Problem {
    Problem {
        code,
        message,
        field,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The gateway's code for a broken `pattern`/`enum`, by the property it is on.
fn code_for(path: &str, keyword: &str) -> &'static str {
    let name = path.rsplit('.').next().unwrap_or(path);
    match (keyword, name) {
        ("pattern", "sessionuuid") => "invalid_session_id",
        ("pattern", n) if n.starts_with("fileuuid") => "invalid_file_id",
        ("pattern", "profile_uuid") => "invalid_profile_uuid",
        ("pattern", _) => "invalid_format",
        ("enum", "type") => "invalid_message_type",
        _ => "invalid_value",
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Check `value` at `path` against the (sub)schema `schema`, collecting problems.
fn check(schema: &Value, value: &Value, path: &str, problems: &mut Vec<Problem>) {
    let field = || (!path.is_empty()).then(|| path.to_owned());
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        if type_name(value) != want {
            problems.push(problem(
                "wrong_type",
                format!("expected {want}, got {}", type_name(value)),
                field(),
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, problems),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), problems);
                }
            }
        }
        Value::String(s) => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let ok = pattern == UUID_PATTERN && matches_uuid_pattern(s);
                if !ok {
                    problems.push(problem(
                        code_for(path, "pattern"),
                        "must be a UUID (8-4-4-4-12 hex digits, version 1 to 5)".into(),
                        field(),
                    ));
                }
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                if !allowed.iter().any(|a| a.as_str() == Some(s)) {
                    let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                    problems.push(problem(
                        code_for(path, "enum"),
                        format!("must be one of {}", names.join(", ")),
                        field(),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, problems: &mut Vec<Problem>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(name) {
            problems.push(problem(
                "missing_field",
                format!("{name} is required"),
                Some(join(path, name)),
            ));
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (key, value) in map {
        match properties.and_then(|p| p.get(key)) {
            Some(sub) => check(sub, value, &join(path, key), problems),
            None if closed => problems.push(problem(
                "unknown_field",
                format!("unknown field {key:?}"),
                Some(join(path, key)),
            )),
            None => {}
        }
    }
}

/// A phone number carried in `pass_through_data`, when that is a JSON object with a
/// `phone` (or `phone_number`, `phoneNumber`, `mobile`) string. Anything else (the
/// field notes' own example is `"{'some','data'}"`) carries none.
pub fn pass_through_phone(pass_through: Option<&str>) -> Option<String> {
    let parsed: Value = serde_json::from_str(pass_through?.trim()).ok()?;
    ["phone", "phone_number", "phoneNumber", "mobile"]
        .iter()
        .find_map(|k| parsed.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.chars().count() <= crate::phone::MAX_INPUT_CHARS)
        .map(str::to_owned)
}

/// The field of the incoming envelope a gateway-envelope field came from (so a problem
/// found by the shared pipeline names the field the widget actually sent).
pub fn field_path(gateway_field: &str) -> String {
    let data = ROOT_KEY;
    if let Some(rest) = gateway_field.strip_prefix("message.") {
        return format!("{data}.webchat_message.{rest}");
    }
    if let Some(rest) = gateway_field.strip_prefix("attachments") {
        let rest = rest
            .replace(".file_id", ".fileuuid")
            .replace(".content_type", ".contentType");
        return format!("{data}.webchat_attachments{rest}");
    }
    if gateway_field == "session_id" {
        return format!("{data}.sessionuuid");
    }
    if gateway_field.starts_with("contact.phone") {
        return format!("{data}.webchat_configuration.pass_through_data");
    }
    format!("{data}.{gateway_field}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/incoming-webchat-data.example.json"
        ))
        .unwrap()
    }

    fn codes(v: &Value) -> Vec<(String, String)> {
        validate(v)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.code.to_owned(), p.field.unwrap_or_default()))
            .collect()
    }

    /// The validator runs on the published schema, and that schema uses only what the
    /// validator implements: a schema change that needs more fails here.
    #[test]
    fn the_schema_uses_only_supported_keywords() {
        fn walk(v: &Value, path: &str) {
            let Some(map) = v.as_object() else { return };
            for (k, sub) in map {
                match k.as_str() {
                    "$schema" | "title" | "description" | "type" | "required" | "enum" => {}
                    "additionalProperties" => assert_eq!(sub, &json!(false), "{path}"),
                    "pattern" => assert_eq!(sub.as_str(), Some(UUID_PATTERN), "{path}"),
                    "items" => walk(sub, &format!("{path}[]")),
                    "properties" => {
                        for (name, s) in sub.as_object().unwrap() {
                            walk(s, &format!("{path}.{name}"));
                        }
                    }
                    other => panic!("unsupported keyword {other} at {path}"),
                }
            }
        }
        let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        walk(&schema, "");
        assert!(super::schema().is_some());
    }

    #[test]
    fn the_field_notes_example_is_accepted() {
        let m = validate(&example()).unwrap();
        assert_eq!(m.data.sessionuuid, "d1b467d4-7eb6-448d-b21f-50578ebaf69b");
        assert_eq!(m.data.webchat_message.value, "hi");
        assert_eq!(m.data.webchat_attachments.len(), 1);
        assert_eq!(m.data.webchat_attachments[0].content_type, "audio/webm");
        assert_eq!(
            m.data
                .webchat_profile
                .webchat_client_config
                .opening_message
                .value,
            "Initial message from DRAFT context"
        );
        assert!(is_incoming(&example()));
        assert!(!is_incoming(&json!({"session_id": "x"})));
    }

    /// Each rule of the schema broken once → its code and path.
    #[test]
    fn each_rule_broken_once() {
        let d = "_incoming_webchat_data";
        type Edit = fn(&mut Value);
        let cases: Vec<(Edit, &str, String)> = vec![
            (
                |v| {
                    v[ROOT_KEY].as_object_mut().unwrap().remove("sessionuuid");
                },
                "missing_field",
                format!("{d}.sessionuuid"),
            ),
            (
                |v| v[ROOT_KEY]["sessionuuid"] = json!("not-a-uuid"),
                "invalid_session_id",
                format!("{d}.sessionuuid"),
            ),
            (
                |v| v[ROOT_KEY]["sessionuuid"] = json!("d1b467d4-7eb6-048d-b21f-50578ebaf69b"),
                "invalid_session_id",
                format!("{d}.sessionuuid"),
            ),
            (
                |v| v[ROOT_KEY]["sessionuuid"] = json!(42),
                "wrong_type",
                format!("{d}.sessionuuid"),
            ),
            (
                |v| {
                    v[ROOT_KEY]
                        .as_object_mut()
                        .unwrap()
                        .remove("webchat_message");
                },
                "missing_field",
                format!("{d}.webchat_message"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_message"]["type"] = json!("video"),
                "invalid_message_type",
                format!("{d}.webchat_message.type"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_message"]
                        .as_object_mut()
                        .unwrap()
                        .remove("value");
                },
                "missing_field",
                format!("{d}.webchat_message.value"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_message"]["colour"] = json!("red"),
                "unknown_field",
                format!("{d}.webchat_message.colour"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_attachments"] = json!({}),
                "wrong_type",
                format!("{d}.webchat_attachments"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_attachments"][0]["fileuuid"] = json!("f_1"),
                "invalid_file_id",
                format!("{d}.webchat_attachments[0].fileuuid"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_attachments"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("originalname");
                },
                "missing_field",
                format!("{d}.webchat_attachments[0].originalname"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_attachments"][0]["size"] = json!(1),
                "unknown_field",
                format!("{d}.webchat_attachments[0].size"),
            ),
            (
                |v| {
                    v[ROOT_KEY]
                        .as_object_mut()
                        .unwrap()
                        .remove("webchat_configuration");
                },
                "missing_field",
                format!("{d}.webchat_configuration"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_configuration"]
                        .as_object_mut()
                        .unwrap()
                        .remove("branch");
                },
                "missing_field",
                format!("{d}.webchat_configuration.branch"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_configuration"]["profile_uuid"] = json!("x"),
                "invalid_profile_uuid",
                format!("{d}.webchat_configuration.profile_uuid"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_configuration"]["pass_through_data"] =
                        json!({"phone": "+61412345678"})
                },
                "wrong_type",
                format!("{d}.webchat_configuration.pass_through_data"),
            ),
            (
                |v| {
                    v[ROOT_KEY]
                        .as_object_mut()
                        .unwrap()
                        .remove("webchat_meta_data");
                },
                "missing_field",
                format!("{d}.webchat_meta_data"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_meta_data"]
                        .as_object_mut()
                        .unwrap()
                        .remove("user_agent");
                },
                "missing_field",
                format!("{d}.webchat_meta_data.user_agent"),
            ),
            (
                |v| v[ROOT_KEY]["webchat_meta_data"]["ip"] = json!(null),
                "wrong_type",
                format!("{d}.webchat_meta_data.ip"),
            ),
            (
                |v| {
                    v[ROOT_KEY]
                        .as_object_mut()
                        .unwrap()
                        .remove("webchat_profile");
                },
                "missing_field",
                format!("{d}.webchat_profile"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_profile"]
                        .as_object_mut()
                        .unwrap()
                        .remove("webchat_client_config");
                },
                "missing_field",
                format!("{d}.webchat_profile.webchat_client_config"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_profile"]["webchat_client_config"]["opening_message"]
                        ["type"] = json!("image")
                },
                "invalid_message_type",
                format!("{d}.webchat_profile.webchat_client_config.opening_message.type"),
            ),
            (
                |v| {
                    v[ROOT_KEY]["webchat_profile"]["webchat_client_config"]["theme"] = json!("dark")
                },
                "unknown_field",
                format!("{d}.webchat_profile.webchat_client_config.theme"),
            ),
            (
                |v| v[ROOT_KEY]["extra"] = json!(1),
                "unknown_field",
                format!("{d}.extra"),
            ),
            (
                |v| v["session_id"] = json!("x"),
                "unknown_field",
                "session_id".into(),
            ),
            (|v| *v = json!({}), "missing_field", d.into()),
            (|v| v[ROOT_KEY] = json!("text"), "wrong_type", d.into()),
        ];
        for (edit, code, field) in cases {
            let mut v = example();
            edit(&mut v);
            let got = codes(&v);
            assert_eq!(
                got,
                vec![(code.to_owned(), field.clone())],
                "{code} at {field}"
            );
        }
        // Several problems at once are all reported.
        let mut v = example();
        v[ROOT_KEY]["sessionuuid"] = json!("x");
        v[ROOT_KEY]["webchat_message"]["type"] = json!("video");
        assert_eq!(codes(&v).len(), 2);
    }

    #[test]
    fn pass_through_phones() {
        assert_eq!(pass_through_phone(Some("{'some','data'}")), None);
        assert_eq!(pass_through_phone(None), None);
        assert_eq!(
            pass_through_phone(Some(r#"{"phone": " 0412 345 678 "}"#)).as_deref(),
            Some("0412 345 678")
        );
        assert_eq!(
            pass_through_phone(Some(r#"{"phoneNumber": "+61412345678", "x": 1}"#)).as_deref(),
            Some("+61412345678")
        );
        assert_eq!(pass_through_phone(Some(r#"{"phone": 412345678}"#)), None);
        assert_eq!(pass_through_phone(Some(r#"["+61412345678"]"#)), None);
    }

    #[test]
    fn gateway_fields_map_back() {
        assert_eq!(
            field_path("message.value"),
            "_incoming_webchat_data.webchat_message.value"
        );
        assert_eq!(
            field_path("attachments[1].file_id"),
            "_incoming_webchat_data.webchat_attachments[1].fileuuid"
        );
        assert_eq!(
            field_path("contact.phone"),
            "_incoming_webchat_data.webchat_configuration.pass_through_data"
        );
    }
}
