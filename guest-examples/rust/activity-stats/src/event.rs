//! The `user-activity` event schema: parsing and validation with error
//! messages that name the offending field. Lenient where the shop
//! tutorial's producers differ from ours (action names, optional fields),
//! strict about what cannot be read.

use std::borrow::Cow;

use ingesta::{Record, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use shop_events::excerpt;

/// What an event's `action` counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    View,
    Click,
    AddToCart,
    Purchase,
    /// Any other action: counted apart, never refused.
    Other,
}

impl Action {
    /// The action named `name`, by our names and the tutorial's.
    pub fn named(name: &str) -> Self {
        match shop_events::Action::named(name) {
            Some(shop_events::Action::View) => Self::View,
            Some(shop_events::Action::Click) => Self::Click,
            Some(shop_events::Action::AddToCart) => Self::AddToCart,
            Some(shop_events::Action::Purchase) => Self::Purchase,
            None => Self::Other,
        }
    }
}

/// An event's `event_id`, carried into alerts as it was given.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EventId<'a> {
    Int(i64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

/// A string borrowed from the batch unless it has escapes. (A `Cow` field
/// borrows only when it is not inside an `Option`; this newtype carries
/// `#[serde(borrow)]` through one.)
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The event as written: `user_id` and `action` required, the rest
/// optional (missing and `null` alike). Unknown extra fields are ignored,
/// so producers can add fields without breaking this handler.
#[derive(Deserialize)]
struct Wire<'a> {
    user_id: u64,
    #[serde(borrow)]
    action: Cow<'a, str>,
    product_id: Option<u64>,
    #[serde(borrow)]
    product_name: Option<Text<'a>>,
    price: Option<f64>,
    ts: Option<i64>,
    #[serde(borrow)]
    event_id: Option<EventId<'a>>,
}

/// One shop event, read.
#[derive(Debug, PartialEq)]
pub struct Event<'a> {
    pub user_id: u64,
    pub action: Action,
    /// `None`: the unknown product.
    pub product_id: Option<u64>,
    pub product_name: Option<Cow<'a, str>>,
    /// `None`: no revenue and no alert.
    pub price: Option<f64>,
    /// The event's `ts`, else the record's timestamp.
    pub ts: Option<i64>,
    pub event_id: Option<EventId<'a>>,
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
            Ok(text) => serde_json::from_str::<Wire<'a>>(text),
            Err(_) => serde_json::from_slice::<Wire<'a>>(bytes),
        };
        let wire = match parsed {
            Ok(wire) if wire.price.is_none_or(|p| p >= 0.0) => wire,
            // Good input takes the fast typed path; only a bad record pays
            // for a second, untyped parse that can say which field is wrong.
            Ok(_) => return Err(record.error(diagnose(bytes, None))),
            Err(err) => return Err(record.error(diagnose(bytes, Some(&err)))),
        };
        Ok(Event {
            user_id: wire.user_id,
            action: Action::named(&wire.action),
            product_id: wire.product_id,
            product_name: wire.product_name.map(|Text(name)| name),
            price: wire.price,
            ts: wire.ts.or_else(|| record.timestamp()),
            event_id: wire.event_id,
        })
    }
}

/// Explains why `bytes` is not a valid event, naming the first bad field
/// in schema order.
fn diagnose(bytes: &[u8], err: Option<&serde_json::Error>) -> String {
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value,
        Err(e) => return format!("value is not valid JSON: {}", err.unwrap_or(&e)),
    };
    let Some(object) = value.as_object() else {
        return format!("event must be a JSON object, got {}", excerpt(&value));
    };
    if let Some(problem) = shop_events::contract_problem(object) {
        return problem;
    }
    match err {
        Some(err) => format!("invalid event: {err}"),
        None => "invalid event".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::TimestampType;
    use ingesta::testing::{TestBatch, TestRecord};

    const GOOD: &str = r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}"#;

    fn read(value: &str) -> std::result::Result<Event<'static>, String> {
        let batch = TestBatch::new("user-activity", 3).at_offset(120).push(
            TestRecord::new((), value).timestamp(1_700_000_000_000, TimestampType::CreateTime),
        );
        let record = batch.as_batch().get(0).unwrap();
        Event::parse(&record)
            .map(|e| Event {
                product_name: e.product_name.map(|n| Cow::Owned(n.into_owned())),
                event_id: e.event_id.map(|id| match id {
                    EventId::Int(i) => EventId::Int(i),
                    EventId::Text(t) => EventId::Text(Cow::Owned(t.into_owned())),
                }),
                ..e
            })
            .map_err(|e| {
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
        let event = read(GOOD).unwrap();
        assert_eq!(event.user_id, 123);
        assert_eq!(event.action, Action::AddToCart);
        assert_eq!(event.product_id, Some(456));
        assert_eq!(event.product_name.as_deref(), Some("Trekking T-shirt"));
        assert_eq!(event.price, Some(19.9));
        assert_eq!(event.ts, Some(1_732_460_000_000));
        assert_eq!(event.event_id, None);
    }

    #[test]
    fn borrows_names_without_escapes() {
        let batch = TestBatch::new("user-activity", 3).record((), GOOD);
        let record = batch.as_batch().get(0).unwrap();
        let event = Event::parse(&record).unwrap();
        assert!(matches!(
            event.product_name,
            Some(Cow::Borrowed("Trekking T-shirt"))
        ));
    }

    #[test]
    fn reads_the_tutorials_events() {
        let first = read(r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#).unwrap();
        assert_eq!(first.action, Action::AddToCart);
        assert_eq!(first.product_id, Some(456));
        assert_eq!(first.price, None);
        assert_eq!(first.ts, Some(1_700_000_000_000), "the record's timestamp");
        let second =
            read(r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#)
                .unwrap();
        assert_eq!(second.user_id, 456);
        assert_eq!(second.action, Action::AddToCart);
        assert_eq!(second.product_id, None);
        assert_eq!(second.product_name, None);
        assert_eq!(second.event_id, Some(EventId::Int(123)));
    }

    #[test]
    fn every_action_name_counts_as_its_action() {
        let names = [
            ("view", Action::View),
            ("page_view", Action::View),
            ("product_view", Action::View),
            ("viewed", Action::View),
            ("click", Action::Click),
            ("clicked", Action::Click),
            ("product_click", Action::Click),
            ("add_to_cart", Action::AddToCart),
            ("added_to_cart", Action::AddToCart),
            ("product_added_to_cart", Action::AddToCart),
            ("cart_add", Action::AddToCart),
            ("purchase", Action::Purchase),
            ("purchased", Action::Purchase),
            ("order", Action::Purchase),
            ("checkout", Action::Purchase),
            ("refund", Action::Other),
            ("View", Action::Other),
            ("", Action::Other),
        ];
        for (name, action) in names {
            let event = read(&GOOD.replace("add_to_cart", name)).unwrap();
            assert_eq!(event.action, action, "{name}");
        }
    }

    #[test]
    fn missing_and_null_optional_fields_are_absent() {
        let bare = r#"{"user_id":1,"action":"purchase"}"#;
        let nulls = r#"{"user_id":1,"action":"purchase","product_id":null,"product_name":null,"price":null,"ts":null,"event_id":null}"#;
        for value in [bare, nulls] {
            let e = read(value).unwrap();
            assert_eq!(
                (e.product_id, e.product_name, e.price, e.ts, e.event_id),
                (None, None, None, Some(1_700_000_000_000), None),
                "{value}"
            );
        }
        let text_id = read(&GOOD.replace('{', r#"{"event_id":"e-\"81\"","#)).unwrap();
        assert_eq!(text_id.event_id, Some(EventId::Text("e-\"81\"".into())));
    }

    #[test]
    fn explains_what_cannot_be_read() {
        let cases = [
            (
                "{not json",
                "value is not valid JSON: key must be a string at line 1 column 2",
            ),
            ("[1,2]", "event must be a JSON object, got [1,2]"),
            (r#"{"action":"view"}"#, "missing field user_id"),
            (r#"{"user_id":1}"#, "missing field action"),
            (
                &GOOD.replace("123", "-1"),
                "field user_id must be a non-negative integer, got -1",
            ),
            (
                &GOOD.replace("123", "null"),
                "field user_id must be a non-negative integer, got null",
            ),
            (
                &GOOD.replace(r#""add_to_cart""#, "5"),
                "field action must be a string, got 5",
            ),
            (
                &GOOD.replace("456", r#""abc""#),
                r#"field product_id must be a non-negative integer, got "abc""#,
            ),
            (
                &GOOD.replace(r#""Trekking T-shirt""#, "7"),
                "field product_name must be a string, got 7",
            ),
            (
                &GOOD.replace("19.9", r#""cheap""#),
                r#"field price must be a number, got "cheap""#,
            ),
            (
                &GOOD.replace("19.9", "-19.9"),
                "field price must not be negative, got -19.9",
            ),
            (
                &GOOD.replace("1732460000000", "\"yesterday\""),
                r#"field ts must be an integer (milliseconds since the epoch), got "yesterday""#,
            ),
            (
                &GOOD.replace('{', r#"{"event_id":[1],"#),
                "field event_id must be an integer or a string, got [1]",
            ),
            (
                &GOOD.replace('{', r#"{"event_id":1.5,"#),
                "field event_id must be an integer or a string, got 1.5",
            ),
            // Schema order: the negative price is named before the bad ts.
            (
                &GOOD
                    .replace("19.9", "-1.0")
                    .replace("1732460000000", "true"),
                "field price must not be negative, got -1",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                read(input).map(drop),
                Err(expected.to_owned()),
                "input: {input}"
            );
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
        let message = read(&GOOD.replace("19.9", &long)).map(drop).unwrap_err();
        assert_eq!(
            message,
            format!("field price must be a number, got \"{}...", "x".repeat(39))
        );
    }
}
