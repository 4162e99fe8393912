//! One user-action event in, one enriched event out: the event contract's
//! checks (the same fields, order and messages as `activity-stats`) and
//! the enrichment itself, as pure functions of a record's value and where
//! it was read, so all of it is tested natively.

use serde_json::{Map, Value, json};
use shop_events::{Action, excerpt};

/// Where a record was read. It becomes the event's `source`, the
/// `event_id` of an event that has none, and the fallback `ts`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The record's timestamp in ms since the epoch, if Kafka had one.
    pub(crate) timestamp: Option<i64>,
}

/// What an action means to someone reading the enriched stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// Views and clicks.
    Browse,
    /// Cart additions.
    Cart,
    /// Purchases.
    Purchase,
    /// An action none of the shop's names or aliases stands for.
    Other,
}

impl Category {
    fn of(action: Option<Action>) -> Self {
        match action {
            Some(Action::View | Action::Click) => Self::Browse,
            Some(Action::AddToCart) => Self::Cart,
            Some(Action::Purchase) => Self::Purchase,
            None => Self::Other,
        }
    }

    /// The category as written in the enriched event.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Browse => "browse",
            Self::Cart => "cart",
            Self::Purchase => "purchase",
            Self::Other => "other",
        }
    }
}

/// An event, enriched.
#[derive(Debug)]
pub(crate) struct Enriched {
    /// The record key: the user id in decimal, so one user's events keep
    /// their order on one partition of the output topic.
    pub(crate) key: String,
    pub(crate) category: Category,
    /// Whether the action was sent under another name (an alias).
    pub(crate) renamed: bool,
    /// Every field of the input event, with the enrichment's fields set.
    pub(crate) value: Map<String, Value>,
}

/// Reads `value` (a record's value, `None` for a null one) as a
/// user-action event and enriches it. The error names the first field, in
/// the contract's order, that cannot be read; the caller adds the record.
pub(crate) fn enrich(value: Option<&[u8]>, origin: &Origin<'_>) -> Result<Enriched, String> {
    let bytes = value.ok_or("value is null, expected a JSON user-action event")?;
    let mut event = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(event)) => event,
        Ok(other) => {
            return Err(format!(
                "event must be a JSON object, got {}",
                excerpt(&other)
            ));
        }
        Err(e) => return Err(format!("value is not valid JSON: {e}")),
    };
    check(&event)?;

    let user_id = event["user_id"].as_u64().unwrap_or_default();
    let sent = event["action"].as_str().unwrap_or_default().to_owned();
    let action = Action::named(&sent);
    let category = Category::of(action);
    // An unknown action keeps its name: the stream says what was sent
    // rather than guessing, and `category` marks it `other`.
    let renamed = action.is_some_and(|a| a.name() != sent);
    if let (true, Some(action)) = (renamed, action) {
        event.insert("action".into(), action.name().into());
        event.insert("action_as_sent".into(), sent.into());
    }
    event.insert("category".into(), category.name().into());
    if absent(&event, "product_name")
        && let Some(id) = event.get("product_id").and_then(Value::as_u64)
    {
        event.insert("product_name".into(), id.to_string().into());
    }
    if absent(&event, "ts") {
        event.insert("ts".into(), origin.timestamp.into());
    }
    // Kafka's coordinates name a record uniquely, and a redelivered record
    // gets the same id, so readers can drop duplicates by `event_id`.
    if absent(&event, "event_id") {
        let derived = format!("{}-{}-{}", origin.topic, origin.partition, origin.offset);
        event.insert("event_id".into(), derived.into());
    }
    event.insert(
        "source".into(),
        json!({"topic": origin.topic, "partition": origin.partition, "offset": origin.offset}),
    );
    Ok(Enriched {
        key: user_id.to_string(),
        category,
        renamed,
        value: event,
    })
}

/// Missing and `null` alike: the contract treats them the same.
fn absent(event: &Map<String, Value>, field: &str) -> bool {
    event.get(field).is_none_or(Value::is_null)
}

/// The contract's checks, in its order; the first failure is the message.
fn check(event: &Map<String, Value>) -> Result<(), String> {
    shop_events::contract_problem(event).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        topic: "user-actions-topic",
        partition: 2,
        offset: 41,
        timestamp: Some(1_700_000_000_000),
    };

    fn enriched(input: &str) -> Value {
        let e = enrich(Some(input.as_bytes()), &ORIGIN).unwrap();
        Value::Object(e.value)
    }

    fn refused(input: &str) -> String {
        enrich(Some(input.as_bytes()), &ORIGIN).unwrap_err()
    }

    const SOURCE: &str = r#"{"topic":"user-actions-topic","partition":2,"offset":41}"#;

    fn source() -> Value {
        serde_json::from_str(SOURCE).unwrap()
    }

    #[test]
    fn the_tutorials_cart_event_is_canonicalised_and_completed() {
        let input = r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#;
        let e = enrich(Some(input.as_bytes()), &ORIGIN).unwrap();
        assert_eq!(e.key, "123");
        assert_eq!(e.category, Category::Cart);
        assert!(e.renamed);
        assert_eq!(
            Value::Object(e.value),
            json!({
                "user_id": 123, "action": "add_to_cart", "action_as_sent": "added_to_cart",
                "category": "cart", "product_id": 456, "product_name": "Camiseta de Trekking",
                "ts": 1_700_000_000_000_i64, "event_id": "user-actions-topic-2-41",
                "source": source(),
            })
        );
    }

    #[test]
    fn the_tutorials_event_without_a_product_keeps_its_event_id() {
        let out =
            enriched(r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#);
        assert_eq!(
            out,
            json!({
                "event_id": 123, "user_id": 456, "action": "add_to_cart",
                "action_as_sent": "product_added_to_cart", "category": "cart",
                "ts": 1_700_000_000_000_i64, "source": source(),
            }),
            "no product: no product_name is made up"
        );
    }

    #[test]
    fn the_shops_own_event_keeps_every_field() {
        let input = r#"{"user_id":1,"action":"purchase","product_id":2,"product_name":"Tent","price":10.5,"ts":1700000000001,"coupon":"SUMMER","extra":{"a":[1,2]}}"#;
        let e = enrich(Some(input.as_bytes()), &ORIGIN).unwrap();
        assert!(
            !e.renamed,
            "no action_as_sent when the name was already ours"
        );
        assert_eq!(
            Value::Object(e.value),
            json!({
                "user_id": 1, "action": "purchase", "category": "purchase", "product_id": 2,
                "product_name": "Tent", "price": 10.5, "ts": 1_700_000_000_001_i64,
                "coupon": "SUMMER", "extra": {"a": [1, 2]},
                "event_id": "user-actions-topic-2-41", "source": source(),
            })
        );
    }

    #[test]
    fn every_name_gets_its_canonical_action_and_category() {
        let cases = [
            ("view", "view", "browse"),
            ("page_view", "view", "browse"),
            ("product_view", "view", "browse"),
            ("viewed", "view", "browse"),
            ("click", "click", "browse"),
            ("clicked", "click", "browse"),
            ("product_click", "click", "browse"),
            ("add_to_cart", "add_to_cart", "cart"),
            ("added_to_cart", "add_to_cart", "cart"),
            ("product_added_to_cart", "add_to_cart", "cart"),
            ("cart_add", "add_to_cart", "cart"),
            ("purchase", "purchase", "purchase"),
            ("purchased", "purchase", "purchase"),
            ("order", "purchase", "purchase"),
            ("checkout", "purchase", "purchase"),
            ("added_to_wishlist", "added_to_wishlist", "other"),
            ("View", "View", "other"),
            ("", "", "other"),
        ];
        for (sent, action, category) in cases {
            let out = enriched(&json!({"user_id": 7, "action": sent}).to_string());
            assert_eq!(out["action"], action, "{sent}");
            assert_eq!(out["category"], category, "{sent}");
            let as_sent = (sent != action).then_some(sent);
            assert_eq!(out["action_as_sent"].as_str(), as_sent, "{sent}");
        }
    }

    #[test]
    fn product_name_falls_back_to_the_product_id() {
        let out = enriched(r#"{"user_id":5,"action":"view","product_id":108}"#);
        assert_eq!(out["product_name"], "108");
        let out = enriched(r#"{"user_id":5,"action":"view","product_id":108,"product_name":null}"#);
        assert_eq!(out["product_name"], "108", "null counts as missing");
        let out = enriched(r#"{"user_id":5,"action":"view","product_id":null}"#);
        assert_eq!(out["product_id"], Value::Null, "kept as sent");
        assert!(out.get("product_name").is_none());
    }

    #[test]
    fn ts_falls_back_to_the_records_timestamp_or_null() {
        let out = enriched(r#"{"user_id":5,"action":"view","ts":null}"#);
        assert_eq!(out["ts"], 1_700_000_000_000_i64);
        let untimed = Origin {
            timestamp: None,
            ..ORIGIN
        };
        let e = enrich(Some(br#"{"user_id":5,"action":"view"}"#), &untimed).unwrap();
        assert_eq!(e.value["ts"], Value::Null);
    }

    #[test]
    fn event_ids_are_kept_as_given_or_derived_from_the_record() {
        let out = enriched(r#"{"user_id":5,"action":"view","event_id":"e-\"9\""}"#);
        assert_eq!(out["event_id"], "e-\"9\"");
        let out = enriched(r#"{"user_id":5,"action":"view","event_id":null}"#);
        assert_eq!(out["event_id"], "user-actions-topic-2-41");
    }

    #[test]
    fn the_enrichments_own_fields_replace_what_was_sent() {
        let out = enriched(
            r#"{"user_id":5,"action":"view","category":"x","source":"web","action_as_sent":"seen"}"#,
        );
        assert_eq!(out["category"], "browse");
        assert_eq!(out["source"], source());
        assert_eq!(out["action_as_sent"], "seen", "not ours to drop");
    }

    #[test]
    fn enriching_twice_changes_only_the_source() {
        let once = enriched(r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456}"#);
        let other = Origin {
            topic: "processed-user-actions-topic",
            offset: 7,
            ..ORIGIN
        };
        let twice = enrich(Some(once.to_string().as_bytes()), &other).unwrap();
        let mut expected = once.clone();
        expected["source"] =
            json!({"topic": "processed-user-actions-topic", "partition": 2, "offset": 7});
        assert_eq!(Value::Object(twice.value), expected);
        assert!(!twice.renamed);
    }

    #[test]
    fn large_user_ids_are_keys_in_decimal() {
        let e = enrich(
            Some(br#"{"user_id":18446744073709551615,"action":"view"}"#),
            &ORIGIN,
        )
        .unwrap();
        assert_eq!(e.key, "18446744073709551615");
    }

    #[test]
    fn explains_what_cannot_be_read_naming_the_field() {
        let good = r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"T","price":19.9,"ts":1732460000000}"#;
        let cases = [
            (
                "not json".to_owned(),
                "value is not valid JSON: expected ident at line 1 column 2",
            ),
            ("[1,2]".to_owned(), "event must be a JSON object, got [1,2]"),
            (
                "\"view\"".to_owned(),
                "event must be a JSON object, got \"view\"",
            ),
            (r#"{"action":"view"}"#.to_owned(), "missing field user_id"),
            (r#"{"user_id":1}"#.to_owned(), "missing field action"),
            (
                good.replace("123", "null"),
                "field user_id must be a non-negative integer, got null",
            ),
            (
                good.replace("123", "-1"),
                "field user_id must be a non-negative integer, got -1",
            ),
            (
                good.replace("123", "\"123\""),
                "field user_id must be a non-negative integer, got \"123\"",
            ),
            (
                good.replace(r#""add_to_cart""#, "null"),
                "field action must be a string, got null",
            ),
            (
                good.replace("456", r#""abc""#),
                r#"field product_id must be a non-negative integer, got "abc""#,
            ),
            (
                good.replace(r#""T""#, "7"),
                "field product_name must be a string, got 7",
            ),
            (
                good.replace("19.9", r#""cheap""#),
                r#"field price must be a number, got "cheap""#,
            ),
            (
                good.replace("19.9", "-19.9"),
                "field price must not be negative, got -19.9",
            ),
            (
                good.replace("1732460000000", "1.5"),
                "field ts must be an integer (milliseconds since the epoch), got 1.5",
            ),
            (
                good.replace('{', r#"{"event_id":[1],"#),
                "field event_id must be an integer or a string, got [1]",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(refused(&input), expected, "input: {input}");
        }
        assert_eq!(
            enrich(None, &ORIGIN).unwrap_err(),
            "value is null, expected a JSON user-action event"
        );
        assert!(
            enrich(Some(b"{\"user_id\":1,\"action\":\"\xff\"}"), &ORIGIN)
                .unwrap_err()
                .starts_with("value is not valid JSON: ")
        );
    }
}
