//! The browser face of `gateway-core` that every chat loads: phone and file checks with
//! the exact verdicts the worker gives, kept small (see the README's Performance
//! section): results are built as plain JS objects directly (no serde_json round trip),
//! messages are built without `core::fmt`, and the whole-envelope check
//! (`validateMessage`, which needs serde_json) lives in a second module, `widget_message`,
//! fetched only when a message is about to be sent.
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
use gateway_core::phone;
use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A refusal: `code` is stable and machine-readable, `message` is for people. */
export interface Refusal { ok: false; code: string; message: string; field?: string }
export type PhoneResult = { ok: true; e164: string; extension?: string } | Refusal;
export type AttachmentResult = { ok: true; contentType: string } | Refusal;
export type MessageResult =
  | { ok: true; e164: string; extension?: string; attachmentTypes: string[] }
  | (Refusal & { problems: Refusal[] });
/** validateMessage before the message module has loaded: await it for the verdict. */
export type PendingMessageResult =
  ({ ok: true } | (Refusal & { problems: Refusal[] })) & { pending: true } & PromiseLike<MessageResult | undefined>;
/** Anything with `name`, `type` and `size` (a `File` works as it is). */
export interface AttachmentLike { name: string; type: string; size: number }
export interface AttachmentPolicy { max_bytes?: number; allowed_types?: string[]; max_count?: number }
"#;

// The second module (validateMessage) is loaded by this small piece of JS. wasm-bindgen
// emits it as `snippets/widget-wasm-<hash>/inline0.js`; scripts/build-widget.sh bundles it
// into `widget.js` (one request fewer on a cold start), so `import.meta.url` is
// `widget.js`'s and `widget_message.js` is found beside it.
#[wasm_bindgen(inline_js = r#"
let message = null;
let loading = null;
export function load_message_validator() {
  if (loading === null) {
    const url = new URL('widget_message.js', import.meta.url);
    loading = import(url.href)
      .then((m) => m.default({ module_or_path: new URL('widget_message_bg.wasm', url) })
        .then(() => { message = m; return true; }))
      .catch(() => { loading = null; return false; });
  }
  return loading;
}
export function phone_ok(digits, extension) {
  const e164 = '+' + digits;
  return extension === undefined ? { ok: true, e164 } : { ok: true, e164, extension };
}
export function file_ok(contentType) { return { ok: true, contentType }; }
export function refusal(code, message) { return { ok: false, code, message }; }
export function message_loaded() { return message !== null; }
export function validate_message(envelope, region, policy, early) {
  if (message !== null) return message.validateMessage(envelope, region, policy);
  const verdict = load_message_validator()
    .then((ok) => (ok ? message.validateMessage(envelope, region, policy) : undefined));
  const out = early === undefined ? { ok: true } : early;
  out.pending = true;
  out.then = (resolve, reject) => verdict.then(resolve, reject);
  return out;
}
export function phone_problem(code, message) {
  const field = 'contact.phone';
  return { ok: false, code, message, field, problems: [{ code, message, field }] };
}
"#)]
extern "C" {
    // Results are built here, in JS, in one call each (instead of a Reflect.set per
    // field). The E.164 digits cross as a number (at most 15 digits: exact in a double,
    // never a leading zero), which spares decoding a string from wasm memory.
    fn phone_ok(digits: f64, extension: Option<String>) -> JsValue;
    fn file_ok(content_type: &str) -> JsValue;
    #[wasm_bindgen(js_name = refusal)]
    fn js_refusal(code: &str, message: &str) -> JsValue;
    #[wasm_bindgen(js_name = load_message_validator)]
    fn js_load_message_validator() -> Promise;
    fn message_loaded() -> bool;
    #[wasm_bindgen(js_name = validate_message)]
    fn js_validate_message(
        envelope: &JsValue,
        region: &JsValue,
        policy: &JsValue,
        early: &JsValue,
    ) -> JsValue;
    fn phone_problem(code: &str, message: &str) -> JsValue;
}

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
        return refusal("wrong_type", "the phone number must be a string");
    };
    match phone::parse(&raw, region.as_deref()) {
        Ok(n) => {
            // E.164 is `+` and at most 15 digits: the digits as a double are exact.
            let digits = n
                .e164
                .as_str()
                .bytes()
                .skip(1)
                .fold(0.0, |v, b| v * 10.0 + f64::from(b.wrapping_sub(b'0')));
            phone_ok(digits, n.extension)
        }
        Err(e) => refusal(e.code(), &e.message()),
    }
}

/// Judge a file before upload. `policy` defaults to Podium's limits.
#[wasm_bindgen(js_name = checkAttachment, unchecked_return_type = "AttachmentResult")]
pub fn check_attachment(
    #[wasm_bindgen(unchecked_param_type = "AttachmentLike")] file: JsValue,
    policy: Option<PolicyArg>,
) -> JsValue {
    let policy = match read_policy(policy.map(JsValue::from)) {
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
        );
    };
    let verdict = attachment::size_from_f64(size)
        .and_then(|size| attachment::check(&policy, &name, &content_type, size));
    match verdict {
        Ok(accepted_file) => file_ok(&accepted_file.content_type),
        Err(e) => refusal(e.code(), &e.message()),
    }
}

/// Validate a whole webchat envelope exactly as the worker will. Once the message
/// module is loaded (`loadMessageValidator`, or `warmUp`) the verdict is returned as is;
/// before that the call starts loading it and returns a pending result that is also a
/// promise of the verdict (`await` it): a refusal of the contact's phone if that is
/// wrong (the envelope's verdict lists it too), else `{ok: true, pending: true}`, which
/// a synchronous caller takes as "no refusal yet: the gateway decides".
#[wasm_bindgen(
    js_name = validateMessage,
    unchecked_return_type = "MessageResult | PendingMessageResult"
)]
pub fn validate_message(
    #[wasm_bindgen(unchecked_param_type = "object | string")] envelope: JsValue,
    region: Option<RegionArg>,
    policy: Option<PolicyArg>,
) -> JsValue {
    let region = region.map_or(JsValue::UNDEFINED, JsValue::from);
    let policy = policy.map_or(JsValue::UNDEFINED, JsValue::from);
    // Until the message module is here, the one check this module can make the same
    // way: the contact's phone (the field customers get wrong). A refusal from it is
    // the envelope's too; anything else waits for the full verdict.
    let mut early = JsValue::UNDEFINED;
    if !message_loaded() {
        let phone = get(&get(&envelope, "contact"), "phone").as_string();
        if let Some(Err(e)) = phone.map(|p| phone::parse(&p, region.as_string().as_deref())) {
            early = phone_problem(e.code(), &e.message());
        }
    }
    js_validate_message(&envelope, &region, &policy, &early)
}

/// Fetch and start the message module (`widget_message.js` + `widget_message_bg.wasm`
/// beside this one) for `validateMessage`; resolves `true` once it runs, `false` if it
/// could not load (a later call tries again).
#[wasm_bindgen(js_name = loadMessageValidator, unchecked_return_type = "Promise<boolean>")]
pub fn load_message_validator() -> Promise {
    js_load_message_validator()
}

/// Get ready for the customer's first keystroke and send: the phone metadata is compiled
/// in (nothing to build), so this only starts loading the message module in the
/// background. The snippet calls it once the chat is in use.
#[wasm_bindgen(js_name = warmUp)]
pub fn warm_up() {
    let _ = js_load_message_validator();
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

/// The libphonenumber metadata version the phone checks were compiled from (`9.0.33`).
#[wasm_bindgen(js_name = metadataVersion)]
pub fn metadata_version() -> String {
    phone::metadata_version().to_owned()
}

/// A policy object as the worker reads its JSON (`{max_bytes?, allowed_types?,
/// max_count?}`, unknown keys refused), read field by field instead of through
/// JSON text and serde_json, which would double this module's size.
fn read_policy(policy: Option<JsValue>) -> Result<AttachmentPolicy, JsValue> {
    let Some(policy) = policy.filter(|p| !p.is_undefined() && !p.is_null()) else {
        return Ok(AttachmentPolicy::default());
    };
    let bad = |why: &str| {
        let mut m = "invalid attachment policy: ".to_owned();
        m.push_str(why);
        refusal("invalid_policy", &m)
    };
    if !policy.is_object() || Array::is_array(&policy) || policy.is_function() {
        return Err(bad(
            "expected an object {max_bytes?, allowed_types?, max_count?}",
        ));
    }
    let mut parsed = AttachmentPolicy::default();
    for key in Object::keys(&Object::from(policy.clone())).iter() {
        let value = get(&policy, &key.as_string().unwrap_or_default());
        // JSON.stringify leaves out undefined (and function) values: so does the worker.
        if value.is_undefined() || value.is_function() {
            continue;
        }
        match key.as_string().as_deref() {
            Some("max_bytes") => {
                parsed.max_bytes = whole(&value, u64::MAX)
                    .ok_or_else(|| bad("max_bytes must be a whole number"))?;
            }
            Some("max_count") => {
                parsed.max_count = whole(&value, usize::MAX as u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| bad("max_count must be a whole number"))?;
            }
            Some("allowed_types") => {
                let types = Array::is_array(&value)
                    .then(|| Array::from(&value).iter().map(|t| t.as_string()).collect())
                    .flatten()
                    .ok_or_else(|| bad("allowed_types must be a list of strings"))?;
                parsed.allowed_types = types;
            }
            _ => {
                return Err(bad(
                    "unknown field, expected one of max_bytes, allowed_types, max_count",
                ))
            }
        }
    }
    parsed
        .validated()
        .map_err(|e| refusal("invalid_policy", &e.message()))
}

/// A non-negative whole number up to `max`: what serde_json takes for an unsigned
/// field from `JSON.stringify`'s output (so `10.0` passes and `10.5`, `-1`, `1e21` and
/// non-numbers don't).
fn whole(value: &JsValue, max: u64) -> Option<u64> {
    const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;
    let n = value.as_f64()?;
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < TWO_TO_64) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let v = n as u64;
    (v <= max).then_some(v)
}

fn get(target: &JsValue, key: &str) -> JsValue {
    if !target.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn refusal(code: &str, message: &str) -> JsValue {
    js_refusal(code, message)
}
