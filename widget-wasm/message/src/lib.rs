//! The chat widget's second browser module: `validateMessage`, the worker's own check of
//! a whole webchat envelope (serde_json and the envelope rules), with the exact verdicts
//! the worker gives. It lives apart from the phone and file checks (`widget-wasm`) so the
//! module every chat loads stays small: this one is fetched only when a message is about
//! to be sent (see `loadMessageValidator` in widget-wasm).
//!
//! Nothing exported here throws on bad input: every result is a plain object.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use gateway_core::attachment::AttachmentPolicy;
use gateway_core::envelope::{self, ValidationContext};
use gateway_core::{phone, Problem};
use js_sys::JSON;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

#[cfg(test)]
mod tests;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A refusal: `code` is stable and machine-readable, `message` is for people. */
export interface Refusal { ok: false; code: string; message: string; field?: string }
export type MessageResult =
  | { ok: true; e164: string; extension?: string; attachmentTypes: string[] }
  | (Refusal & { problems: Refusal[] });
export interface AttachmentPolicy { max_bytes?: number; allowed_types?: string[]; max_count?: number }
"#;

#[wasm_bindgen]
extern "C" {
    /// A region code argument (typed for TypeScript; read defensively at run time).
    #[wasm_bindgen(typescript_type = "string")]
    pub type RegionArg;
    /// An attachment policy argument.
    #[wasm_bindgen(typescript_type = "AttachmentPolicy")]
    pub type PolicyArg;
}

/// Validate a whole webchat envelope (an object or its JSON text) exactly as the worker
/// will, with the store's region for the phone number.
#[wasm_bindgen(js_name = validateMessage, unchecked_return_type = "MessageResult")]
pub fn validate_message(
    #[wasm_bindgen(unchecked_param_type = "object | string")] envelope: JsValue,
    region: Option<RegionArg>,
    policy: Option<PolicyArg>,
) -> JsValue {
    let attachment_policy = match read_policy(policy) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    // The same bytes the worker will parse: JSON text, parsed by the same serde code.
    let text = match envelope.as_string() {
        Some(text) => text,
        None => match JSON::stringify(&envelope).ok().and_then(|s| s.as_string()) {
            Some(text) => text,
            None => {
                return refusal(
                    "invalid_json",
                    "the envelope cannot be turned into JSON",
                    None,
                )
            }
        },
    };
    let ctx = ValidationContext {
        default_region: region.and_then(|r| JsValue::from(r).as_string()),
        attachment_policy,
    };
    match envelope::validate(text.as_bytes(), &ctx) {
        Ok(v) => to_js(&json!({
            "ok": true,
            "e164": v.phone,
            "extension": v.phone_extension,
            "attachmentTypes": v.attachment_types,
        })),
        Err(problems) => {
            let first = problems.first().cloned().unwrap_or(Problem {
                code: "invalid_envelope",
                message: "the envelope is invalid".into(),
                field: None,
            });
            let mut out = refusal_value(first.code, &first.message, first.field.as_deref());
            if let Value::Object(map) = &mut out {
                map.insert("problems".into(), json!(problems));
            }
            to_js(&out)
        }
    }
}

/// This module's version (the workspace version; equal to the main module's).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The libphonenumber metadata version compiled in (equal to the main module's).
#[wasm_bindgen(js_name = metadataVersion)]
pub fn metadata_version() -> String {
    phone::metadata_version().to_owned()
}

fn read_policy(policy: Option<PolicyArg>) -> Result<AttachmentPolicy, JsValue> {
    let Some(policy) = policy
        .map(JsValue::from)
        .filter(|p| !p.is_undefined() && !p.is_null())
    else {
        return Ok(AttachmentPolicy::default());
    };
    let bad = |why: String| refusal("invalid_policy", &why, None);
    let text = JSON::stringify(&policy)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| bad("the policy cannot be turned into JSON".into()))?;
    let parsed: AttachmentPolicy =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid attachment policy: {e}")))?;
    parsed.validated().map_err(|e| bad(e.to_string()))
}

fn refusal_value(code: &str, message: &str, field: Option<&str>) -> Value {
    let mut out = json!({"ok": false, "code": code, "message": message});
    if let (Some(field), Value::Object(map)) = (field, &mut out) {
        map.insert("field".into(), json!(field));
    }
    out
}

fn refusal(code: &str, message: &str, field: Option<&str>) -> JsValue {
    to_js(&refusal_value(code, message, field))
}

/// Plain objects with `undefined` rather than `null` for absent optional fields.
fn to_js(value: &Value) -> JsValue {
    let mut value = value.clone();
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}
