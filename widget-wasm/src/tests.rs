//! wasm-bindgen tests: run by `wasm-pack test --node` and `--headless --chrome`.

use super::*;
use js_sys::JSON;
use wasm_bindgen_test::*;

fn field(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap()
}

fn ok(v: &JsValue) -> bool {
    field(v, "ok").as_bool().unwrap()
}

fn code(v: &JsValue) -> String {
    field(v, "code").as_string().unwrap()
}

fn region(code: &str) -> RegionArg {
    JsValue::from_str(code).unchecked_into()
}

fn obj(json: &str) -> JsValue {
    JSON::parse(json).unwrap()
}

#[wasm_bindgen_test]
fn phones_by_store_region() {
    let au = normalize_phone("0412 345 678".into(), Some(region("AU")));
    assert!(ok(&au));
    assert_eq!(field(&au, "e164").as_string().unwrap(), "+61412345678");
    let us = normalize_phone("(415) 555-1234".into(), Some(region("US")));
    assert_eq!(field(&us, "e164").as_string().unwrap(), "+14155551234");
    // No extension key at all when there is none (not null), and a plain object.
    assert!(!Reflect::has(&us, &"extension".into()).unwrap());
    assert_eq!(
        JSON::stringify(&us).unwrap().as_string().unwrap(),
        r#"{"ok":true,"e164":"+14155551234"}"#
    );
    let ext = normalize_phone("(415) 555-1234 x55".into(), Some(region("US")));
    assert_eq!(field(&ext, "extension").as_string().unwrap(), "55");
}

#[wasm_bindgen_test]
fn phone_refusals_are_objects_not_exceptions() {
    let r = normalize_phone("abc".into(), Some(region("AU")));
    assert!(!ok(&r));
    assert_eq!(code(&r), "phone_not_a_number");
    assert_eq!(
        field(&r, "message").as_string().unwrap(),
        "that is not a phone number"
    );
    assert!(!Reflect::has(&r, &"field".into()).unwrap());
    assert_eq!(
        code(&normalize_phone("0412 345 678".into(), None)),
        "phone_region_required"
    );
    let r = normalize_phone("(415) 155-1234".into(), Some(region("US")));
    assert_eq!(
        field(&r, "message").as_string().unwrap(),
        "that is not a valid number for US"
    );
    assert_eq!(
        code(&normalize_phone(JsValue::from_f64(5.0), Some(region("AU")))),
        "wrong_type"
    );
    assert_eq!(
        code(&normalize_phone(
            JsValue::NULL,
            Some(JsValue::NULL.unchecked_into())
        )),
        "wrong_type"
    );
}

#[wasm_bindgen_test]
fn attachments() {
    let big = obj(r#"{"name":"clip.mp4","type":"video/mp4","size":31457280}"#);
    let r = check_attachment(big, None);
    assert_eq!(code(&r), "attachment_too_large");
    assert_eq!(
        field(&r, "message").as_string().unwrap(),
        "the file is 31.5 MB and the limit is 25 MB"
    );
    let small = obj(r#"{"name":"a.png","type":"image/png","size":2048}"#);
    let r = check_attachment(small.clone(), None);
    assert!(ok(&r));
    assert_eq!(field(&r, "contentType").as_string().unwrap(), "image/png");
    let tight = obj(r#"{"max_bytes":1000}"#);
    assert_eq!(
        code(&check_attachment(
            small.clone(),
            Some(tight.unchecked_into())
        )),
        "attachment_too_large"
    );
    assert_eq!(
        code(&check_attachment(JsValue::from_str("x"), None)),
        "wrong_type"
    );
    let negative = obj(r#"{"name":"a.png","type":"image/png","size":-1}"#);
    assert_eq!(
        code(&check_attachment(negative, None)),
        "attachment_invalid_size"
    );
    let images_only = obj(r#"{"allowed_types":["image/*"],"max_count":3,"max_bytes":10.0}"#);
    let pdf = obj(r#"{"name":"a.pdf","type":"application/pdf","size":5}"#);
    assert_eq!(
        code(&check_attachment(
            pdf,
            Some(images_only.clone().unchecked_into())
        )),
        "attachment_type_not_allowed"
    );
    let tiny_png = obj(r#"{"name":"a.png","type":"","size":5}"#);
    assert!(ok(&check_attachment(
        tiny_png,
        Some(images_only.unchecked_into())
    )));
}

/// The policy is read field by field, as the worker's serde reads its JSON: the same
/// policies pass and fail.
#[wasm_bindgen_test]
fn policies_read_like_serde() {
    let file = obj(r#"{"name":"a.png","type":"image/png","size":10}"#);
    let check = |policy: JsValue| {
        code_or_ok(&check_attachment(
            file.clone(),
            Some(policy.unchecked_into()),
        ))
    };
    for good in [
        "{}",
        r#"{"max_bytes":25000000}"#,
        r#"{"max_count":0}"#,
        r#"{"allowed_types":[]}"#,
        r#"{"allowed_types":[" IMAGE/PNG "]}"#,
    ] {
        assert_ne!(check(obj(good)), "invalid_policy", "{good}");
    }
    for bad in [
        r#"{"max_bytes":99999999999}"#,
        r#"{"max_bytes":0}"#,
        r#"{"max_bytes":10.5}"#,
        r#"{"max_bytes":-1}"#,
        r#"{"max_bytes":"10"}"#,
        r#"{"max_bytes":null}"#,
        r#"{"max_count":1e21}"#,
        r#"{"allowed_types":"image/*"}"#,
        r#"{"allowed_types":[1]}"#,
        r#"{"allowed_types":["png"]}"#,
        r#"{"colour":"red"}"#,
        "[]",
        "5",
        r#""x""#,
    ] {
        assert_eq!(check(obj(bad)), "invalid_policy", "{bad}");
    }
    // undefined values are left out, as JSON.stringify leaves them out.
    let with_undefined = Object::new();
    let _ = Reflect::set(&with_undefined, &"max_bytes".into(), &JsValue::UNDEFINED);
    assert_eq!(check(with_undefined.into()), "ok");
}

fn code_or_ok(v: &JsValue) -> String {
    if ok(v) {
        "ok".into()
    } else {
        code(v)
    }
}

#[wasm_bindgen_test]
fn limits_and_versions() {
    assert_eq!(podium_max_attachment_bytes(), 25_000_000.0);
    assert!(!version().is_empty());
    assert_eq!(metadata_version(), phone::metadata_version());
    assert_eq!(metadata_version().split('.').count(), 3);
    warm_up();
}

/// Before the message module has loaded (never, under wasm-bindgen-test: it is not
/// served), a wrong phone is refused at once and anything else is pending.
#[wasm_bindgen_test]
fn message_verdicts_before_the_message_module() {
    let bad = obj(r#"{"contact":{"phone":"abc"}}"#);
    let r = validate_message(bad, Some(region("AU")), None);
    assert!(!ok(&r));
    assert_eq!(code(&r), "phone_not_a_number");
    assert_eq!(field(&r, "field").as_string().unwrap(), "contact.phone");
    let problems: js_sys::Array = field(&r, "problems").into();
    assert_eq!(problems.length(), 1);
    assert_eq!(field(&r, "pending").as_bool(), Some(true));
    let good = obj(r#"{"contact":{"phone":"0412 345 678"}}"#);
    let r = validate_message(good, Some(region("AU")), None);
    assert!(ok(&r));
    assert_eq!(field(&r, "pending").as_bool(), Some(true));
    assert!(field(&r, "then").is_function());
}
