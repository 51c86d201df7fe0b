//! The browser face of `gateway-core`: phone, attachment and message checks for the chat
//! widget, with the exact verdicts the worker gives.
//!
//! Nothing exported here throws on bad input: every function returns a plain object,
//! `{ok: true, …}` or `{ok: false, code, message, field?}`.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use gateway_core::attachment::{self, AttachmentPolicy};
use gateway_core::envelope::{self, ValidationContext};
use gateway_core::{phone, Problem};
use js_sys::{Reflect, JSON};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

#[cfg(test)]
mod tests;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A refusal: `code` is stable and machine-readable, `message` is for people. */
export interface Refusal { ok: false; code: string; message: string; field?: string }
export type PhoneResult = { ok: true; e164: string; extension?: string } | Refusal;
export type AttachmentResult = { ok: true; contentType: string } | Refusal;
export type MessageResult =
  | { ok: true; e164: string; extension?: string; attachmentTypes: string[] }
  | (Refusal & { problems: Refusal[] });
/** Anything with `name`, `type` and `size` (a `File` works as it is). */
export interface AttachmentLike { name: string; type: string; size: number }
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

/// Normalize a phone number to E.164 for the store's region (ISO 3166 alpha-2, or
/// empty/undefined when unknown: then only `+` numbers pass).
#[wasm_bindgen(js_name = normalizePhone, unchecked_return_type = "PhoneResult")]
pub fn normalize_phone(
    #[wasm_bindgen(unchecked_param_type = "string")] raw: JsValue,
    region: Option<RegionArg>,
) -> JsValue {
    let region = region.and_then(|r| JsValue::from(r).as_string());
    let Some(raw) = raw.as_string() else {
        return refusal("wrong_type", "the phone number must be a string", None);
    };
    match phone::parse(&raw, region.as_deref()) {
        Ok(n) => to_js(&json!({"ok": true, "e164": n.e164, "extension": n.extension})),
        Err(e) => refusal(e.code(), &e.to_string(), None),
    }
}

/// Judge a file before upload. `policy` defaults to Podium's limits.
#[wasm_bindgen(js_name = checkAttachment, unchecked_return_type = "AttachmentResult")]
pub fn check_attachment(
    #[wasm_bindgen(unchecked_param_type = "AttachmentLike")] file: JsValue,
    policy: Option<PolicyArg>,
) -> JsValue {
    let policy = match read_policy(policy) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let name = get(&file, "name").as_string();
    let content_type = get(&file, "type").as_string();
    let size = get(&file, "size").as_f64();
    let (Some(name), Some(content_type), Some(size)) = (name, content_type, size) else {
        return refusal(
            "wrong_type",
            "expected an object with name (string), type (string) and size (number)",
            None,
        );
    };
    let verdict = attachment::size_from_f64(size)
        .and_then(|size| attachment::check(&policy, &name, &content_type, size));
    match verdict {
        Ok(accepted) => to_js(&json!({"ok": true, "contentType": accepted.content_type})),
        Err(e) => refusal(e.code(), &e.to_string(), None),
    }
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

/// Build the phone metadata now (≈200 ms the first time) so the customer's first
/// keystroke does not pay for it. The snippet calls this when the page is idle.
#[wasm_bindgen(js_name = warmUp)]
pub fn warm_up() {
    phone::warm_up();
}

/// The largest attachment Podium takes, in bytes.
#[wasm_bindgen(js_name = podiumMaxAttachmentBytes)]
pub fn podium_max_attachment_bytes() -> f64 {
    // Exact: 25,000,000 < 2^53.
    #[allow(clippy::cast_precision_loss)]
    let limit = attachment::PODIUM_MAX_ATTACHMENT_BYTES as f64;
    limit
}

/// The widget module's version (the workspace version).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
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

fn get(target: &JsValue, key: &str) -> JsValue {
    if !target.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
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
