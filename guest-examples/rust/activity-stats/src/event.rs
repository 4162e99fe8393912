//! The `user-activity` event schema: parsing and validation with error
//! messages that name the offending field.

use std::borrow::Cow;

use ingesta::{Record, Result};
use serde::Deserialize;
use serde_json::Value;

pub use shop_events::Action;
use shop_events::excerpt;

const ACTIONS: &str = "view, click, add_to_cart or purchase";

/// One shop event. Unknown extra fields are ignored, so producers can add
/// fields without breaking this handler.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Event<'a> {
    pub user_id: u64,
    pub action: Action,
    pub product_id: u64,
    /// Borrowed from the batch unless the JSON string has escapes.
    #[serde(borrow)]
    pub product_name: Cow<'a, str>,
    pub price: f64,
    /// Milliseconds since the Unix epoch; required by the schema, unused here.
    #[allow(dead_code, reason = "validated as part of the schema")]
    pub ts: i64,
}

impl<'a> Event<'a> {
    /// Parses and validates `record`'s value. Any problem is a permanent
    /// error that names the field and the record.
    pub fn parse(record: &Record<'a>) -> Result<Self> {
        let bytes = record
            .value()
            .ok_or_else(|| record.error("value is null, expected a JSON activity event"))?;
        // Validate UTF-8 once per record and parse from `&str`: `from_slice`
        // re-validates every string it borrows, and those byte loops were
        // ~11% of this guest's instructions (docs/benchmarks.md). Invalid
        // UTF-8 takes the slice path, which names the error.
        let parsed = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str::<Event<'a>>(text),
            Err(_) => serde_json::from_slice::<Event<'a>>(bytes),
        };
        let event: Event<'a> = match parsed {
            Ok(event) => event,
            // Good input takes the fast typed path; only a bad record pays
            // for a second, untyped parse that can say which field is wrong.
            Err(err) => return Err(record.error(diagnose(bytes, &err))),
        };
        if event.price < 0.0 {
            return Err(record.error(format_args!(
                "field price must not be negative, got {}",
                event.price
            )));
        }
        Ok(event)
    }
}

/// Explains why `bytes` is not a valid event, naming the first bad field.
fn diagnose(bytes: &[u8], err: &serde_json::Error) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return format!("value is not valid JSON: {err}");
    };
    let Some(object) = value.as_object() else {
        return format!("event must be a JSON object, got {}", excerpt(&value));
    };
    type Check = fn(&Value) -> bool;
    let fields: [(&str, Check, &str); 6] = [
        (
            "user_id",
            |v| v.as_u64().is_some(),
            "a non-negative integer",
        ),
        ("action", Value::is_string, "a string"),
        (
            "product_id",
            |v| v.as_u64().is_some(),
            "a non-negative integer",
        ),
        ("product_name", Value::is_string, "a string"),
        ("price", Value::is_number, "a number"),
        (
            "ts",
            |v| v.as_i64().is_some(),
            "an integer (milliseconds since the epoch)",
        ),
    ];
    for (name, is_valid, expected) in fields {
        match object.get(name) {
            None => return format!("missing field {name}"),
            Some(v) if !is_valid(v) => {
                return format!("field {name} must be {expected}, got {}", excerpt(v));
            }
            Some(_) => {}
        }
    }
    if let Some(action) = object.get("action").and_then(Value::as_str) {
        return format!("field action has unknown value {action:?}, expected {ACTIONS}");
    }
    format!("invalid event: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::TestBatch;

    const GOOD: &str = r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}"#;

    fn parse(value: &str) -> std::result::Result<(), String> {
        let batch = TestBatch::new("user-activity", 3)
            .at_offset(120)
            .record((), value);
        let record = batch.as_batch().get(0).unwrap();
        Event::parse(&record).map(drop).map_err(|e| {
            assert!(!e.is_retryable());
            assert_eq!(e.record_index(), Some(0));
            let suffix = " (topic user-activity, partition 3, offset 120)";
            e.message()
                .strip_suffix(suffix)
                .expect("names the record")
                .to_owned()
        })
    }

    #[test]
    fn parses_a_good_event() {
        let batch = TestBatch::new("user-activity", 3).record((), GOOD);
        let record = batch.as_batch().get(0).unwrap();
        let event = Event::parse(&record).unwrap();
        assert_eq!(event.user_id, 123);
        assert_eq!(event.action, Action::AddToCart);
        assert_eq!(event.product_id, 456);
        assert!(matches!(
            event.product_name,
            Cow::Borrowed("Trekking T-shirt")
        ));
        assert_eq!(event.price, 19.9);
    }

    #[test]
    fn tolerates_extra_fields_and_escapes() {
        let json = GOOD
            .replace("Trekking T-shirt", r#"Caf\u00e9 mug"#)
            .replace("}", r#","utm":"x"}"#);
        assert_eq!(parse(&json), Ok(()));
    }

    #[test]
    fn explains_bad_events() {
        let cases = [
            (
                "{not json",
                "value is not valid JSON: key must be a string at line 1 column 2",
            ),
            ("[1,2]", "event must be a JSON object, got [1,2]"),
            (&GOOD.replace(r#""price":19.9,"#, ""), "missing field price"),
            (
                &GOOD.replace("19.9", r#""cheap""#),
                r#"field price must be a number, got "cheap""#,
            ),
            (
                &GOOD.replace("123", "-1"),
                "field user_id must be a non-negative integer, got -1",
            ),
            (
                &GOOD.replace("456", "null"),
                "field product_id must be a non-negative integer, got null",
            ),
            (
                &GOOD.replace("add_to_cart", "wishlist"),
                r#"field action has unknown value "wishlist", expected view, click, add_to_cart or purchase"#,
            ),
            (
                &GOOD.replace("1732460000000", "\"yesterday\""),
                r#"field ts must be an integer (milliseconds since the epoch), got "yesterday""#,
            ),
            (
                &GOOD.replace("19.9", "-19.9"),
                "field price must not be negative, got -19.9",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(expected.to_owned()), "input: {input}");
        }
    }

    #[test]
    fn null_value_is_explained() {
        let batch = TestBatch::new("user-activity", 0).record("k", ());
        let err = Event::parse(&batch.as_batch().get(0).unwrap()).unwrap_err();
        assert!(
            err.message()
                .starts_with("value is null, expected a JSON activity event")
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = format!("\"{}\"", "x".repeat(100));
        let message = parse(&GOOD.replace("19.9", &long)).unwrap_err();
        assert_eq!(
            message,
            format!("field price must be a number, got \"{}...", "x".repeat(39))
        );
    }
}
