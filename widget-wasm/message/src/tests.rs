//! wasm-bindgen tests: run by `wasm-pack test --node` and `--headless --chrome`.

use super::*;
use js_sys::Reflect;
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
fn messages_as_object_or_text() {
    let text = r#"{"session_id":"d1b467d4-7eb6-448d-b21f-50578ebaf69b",
        "message":{"type":"text","value":"hi"},"contact":{"phone":"0412 345 678"}}"#;
    for input in [JsValue::from_str(text), obj(text)] {
        let r = validate_message(input, Some(region("AU")), None);
        assert!(ok(&r));
        assert_eq!(field(&r, "e164").as_string().unwrap(), "+61412345678");
        assert!(field(&r, "extension").is_undefined());
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
fn policy_and_phone_problems() {
    let text = r#"{"session_id":"d1b467d4-7eb6-448d-b21f-50578ebaf69b",
        "message":{"type":"file","value":""},"contact":{"phone":"abc"},
        "attachments":[{"file_id":"f1","filename":"a.pdf","content_type":"application/pdf","size":2000}]}"#;
    let tight = obj(r#"{"max_bytes":1000}"#);
    let r = validate_message(obj(text), Some(region("AU")), Some(tight.unchecked_into()));
    assert!(!ok(&r));
    let problems: js_sys::Array = field(&r, "problems").into();
    let codes: Vec<String> = problems.iter().map(|p| code(&p)).collect();
    assert!(
        codes.contains(&"attachment_too_large".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"phone_not_a_number".to_owned()),
        "{codes:?}"
    );
    let bad = obj(r#"{"max_bytes":99999999999}"#);
    assert_eq!(
        code(&validate_message(
            obj(text),
            Some(region("AU")),
            Some(bad.unchecked_into())
        )),
        "invalid_policy"
    );
}

#[wasm_bindgen_test]
fn versions() {
    assert!(!version().is_empty());
    assert_eq!(metadata_version(), phone::metadata_version());
    assert_eq!(metadata_version().split('.').count(), 3);
}
