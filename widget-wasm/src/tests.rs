//! wasm-bindgen tests: run by `wasm-pack test --node` and `--headless --chrome`.

use super::*;
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
    // No extension key at all when there is none (not null).
    assert!(field(&us, "extension").is_undefined());
}

#[wasm_bindgen_test]
fn phone_refusals_are_objects_not_exceptions() {
    let r = normalize_phone("abc".into(), Some(region("AU")));
    assert!(!ok(&r));
    assert_eq!(code(&r), "phone_not_a_number");
    assert!(field(&r, "message").as_string().is_some());
    assert_eq!(
        code(&normalize_phone("0412 345 678".into(), None)),
        "phone_region_required"
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
    let small = obj(r#"{"name":"a.png","type":"image/png","size":2048}"#);
    let r = check_attachment(small.clone(), None);
    assert!(ok(&r));
    assert_eq!(field(&r, "contentType").as_string().unwrap(), "image/png");
    let tight = obj(r#"{"max_bytes":1000}"#);
    assert_eq!(
        code(&check_attachment(small, Some(tight.unchecked_into()))),
        "attachment_too_large"
    );
    let bad_policy = obj(r#"{"max_bytes":99999999999}"#);
    assert_eq!(
        code(&check_attachment(
            obj(r#"{"name":"a","type":"","size":1}"#),
            Some(bad_policy.unchecked_into())
        )),
        "invalid_policy"
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
}

#[wasm_bindgen_test]
fn messages_as_object_or_text() {
    let text = r#"{"session_id":"d1b467d4-7eb6-448d-b21f-50578ebaf69b",
        "message":{"type":"text","value":"hi"},"contact":{"phone":"0412 345 678"}}"#;
    for input in [JsValue::from_str(text), obj(text)] {
        let r = validate_message(input, Some(region("AU")), None);
        assert!(ok(&r));
        assert_eq!(field(&r, "e164").as_string().unwrap(), "+61412345678");
    }
    let r = validate_message(obj(r#"{"bogus":1}"#), Some(region("AU")), None);
    assert!(!ok(&r));
    let problems: js_sys::Array = field(&r, "problems").into();
    assert!(problems.length() >= 4, "all problems are listed");
    assert_eq!(
        code(&validate_message("{".into(), Some(region("AU")), None)),
        "invalid_json"
    );
}

#[wasm_bindgen_test]
fn limits_and_version() {
    assert_eq!(podium_max_attachment_bytes(), 25_000_000.0);
    assert!(!version().is_empty());
    warm_up();
}
