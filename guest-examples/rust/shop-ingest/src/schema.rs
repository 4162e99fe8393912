//! The request body and the shop event schema: splitting a body into its
//! events, as written, and checking each event so that every problem, not
//! just the first, can be reported back.

use std::fmt;

use serde::de::value::SeqAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The actions the schema allows, in the order error messages list them.
use shop_events::excerpt;

const ACTIONS: [&str; 4] = shop_events::Action::NAMES;

/// A JSON object with its fields in written order and repeats kept, so a
/// field written twice, which typed readers downstream would reject, is
/// caught.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(pub Vec<(String, Value)>);

impl Object {
    /// The first value of field `name`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Reads a JSON object's entries into an [`Object`].
fn read_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Object, A::Error> {
    let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
    while let Some(entry) = map.next_entry::<String, Value>()? {
        fields.push(entry);
    }
    Ok(Object(fields))
}

/// One event of a body, parsed to be checked: an object, or anything else
/// (kept to be quoted in the problem report).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Object(Object),
    Other(Value),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        read_object(map).map(Item::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Item::Other)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Item, E> {
        Ok(Item::Other(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
        Ok(Item::Other(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
        Ok(Item::Other(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
        Ok(Item::Other(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Item, E> {
        Ok(Item::Other(v.into()))
    }

    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::Other(Value::Null))
    }
}

/// Why a body holds no events to check.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON at all; the parser's error says where.
    NotJson(serde_json::Error),
    /// JSON, but neither an object nor an array; holds an excerpt of it.
    WrongShape(String),
}

/// The events of a body holding one event object or an array of items, as
/// written (each item's exact text, whitespace included).
pub fn split(body: &[u8]) -> Result<Vec<&RawValue>, BodyError> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(BodyError::NotJson)?;
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Ok(vec![raw]),
        // Already valid JSON, so splitting it cannot fail.
        Some(b'[') => serde_json::from_str(raw.get()).map_err(BodyError::NotJson),
        _ => {
            let value: Value = serde_json::from_str(raw.get()).map_err(BodyError::NotJson)?;
            Err(BodyError::WrongShape(excerpt(&value)))
        }
    }
}

/// `json` (valid JSON) without the whitespace between its tokens: the same
/// text, fields in the same order, numbers exactly as written.
pub fn compact(json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    // Byte-wise is safe: no byte of a multi-byte UTF-8 character is ASCII.
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(b);
    }
    out
}

/// What is wrong with one event (or one field of it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// The event's position in the body, from 0 (0 for a single object).
    pub event: usize,
    /// The field at fault; absent when the event is not an object at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub problem: String,
}

/// Checks `item`, the body's `index`th event: its `user_id` (the key it is
/// published with) if it is valid, else every problem, in schema order.
pub fn check(index: usize, item: &Item) -> Result<u64, Vec<Problem>> {
    let problem = |field: Option<&str>, problem: String| Problem {
        event: index,
        field: field.map(str::to_owned),
        problem,
    };
    let object = match item {
        Item::Object(object) => object,
        Item::Other(value) => {
            return Err(vec![problem(
                None,
                format!("expected an event object, got {}", excerpt(value)),
            )]);
        }
    };
    let mut problems = Vec::new();
    for (field, valid, expected) in FIELDS {
        match object.get(field) {
            None => problems.push(problem(Some(field), "missing".to_owned())),
            Some(value) if !valid(value) => {
                let mut text = format!("expected {expected}, got {}", excerpt(value));
                // The tutorial's action names: say which one we mean.
                if let Some(ours) = (field == "action")
                    .then(|| value.as_str().and_then(shop_events::Action::named))
                    .flatten()
                {
                    text.push_str(&format!(" (write {:?})", ours.name()));
                }
                problems.push(problem(Some(field), text));
            }
            Some(_) => {}
        }
    }
    // Reported once per name, at its first appearance.
    for (i, (name, _)) in object.0.iter().enumerate() {
        let earlier = object.0[..i].iter().any(|(k, _)| k == name);
        let later = object.0[i + 1..].iter().any(|(k, _)| k == name);
        if !earlier && later {
            problems.push(problem(Some(name), "appears more than once".to_owned()));
        }
    }
    match object.get("user_id").and_then(Value::as_u64) {
        Some(user_id) if problems.is_empty() => Ok(user_id),
        _ => Err(problems),
    }
}

/// A field of the schema: its name, its test, and what the test expects.
type Field = (&'static str, fn(&Value) -> bool, &'static str);

const FIELDS: [Field; 6] = [
    ("user_id", is_positive_integer, "a positive integer"),
    (
        "action",
        |v| v.as_str().is_some_and(|a| ACTIONS.contains(&a)),
        "one of view, click, add_to_cart, purchase",
    ),
    ("product_id", is_positive_integer, "a positive integer"),
    (
        "product_name",
        |v| v.as_str().is_some_and(|name| !name.is_empty()),
        "a non-empty string",
    ),
    (
        "price",
        |v| v.as_f64().is_some_and(|price| price >= 0.0),
        "a number >= 0",
    ),
    (
        "ts",
        |v| v.as_i64().is_some(),
        "an integer (ms since the epoch)",
    ),
];

fn is_positive_integer(value: &Value) -> bool {
    value.as_u64().is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}"#;

    fn problems(json: &str) -> Vec<(Option<String>, String)> {
        let item: Item = serde_json::from_str(json).unwrap();
        let problems = check(0, &item).err().unwrap_or_default();
        problems.into_iter().map(|p| (p.field, p.problem)).collect()
    }

    fn one(field: &str, problem: &str) -> Vec<(Option<String>, String)> {
        vec![(Some(field.to_owned()), problem.to_owned())]
    }

    #[test]
    fn the_tutorials_events_get_every_missing_field_and_the_action_we_mean() {
        assert_eq!(
            problems(
                r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#
            ),
            [
                (
                    Some("action".to_owned()),
                    r#"expected one of view, click, add_to_cart, purchase, got "added_to_cart" (write "add_to_cart")"#.to_owned()
                ),
                (Some("price".to_owned()), "missing".to_owned()),
                (Some("ts".to_owned()), "missing".to_owned()),
            ]
        );
        assert_eq!(
            problems(r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#),
            [
                (
                    Some("action".to_owned()),
                    r#"expected one of view, click, add_to_cart, purchase, got "product_added_to_cart" (write "add_to_cart")"#.to_owned()
                ),
                (Some("product_id".to_owned()), "missing".to_owned()),
                (Some("product_name".to_owned()), "missing".to_owned()),
                (Some("price".to_owned()), "missing".to_owned()),
                (Some("ts".to_owned()), "missing".to_owned()),
            ]
        );
    }

    #[test]
    fn a_good_event_has_no_problems_and_gives_its_user() {
        let item: Item = serde_json::from_str(GOOD).unwrap();
        assert_eq!(check(0, &item), Ok(123));
        let with_extra = GOOD.replace(r#""user_id":123,"#, r#""utm":{"b":1},"user_id":123,"#);
        assert_eq!(problems(&with_extra), []);
    }

    #[test]
    fn each_field_is_checked_against_the_schema() {
        let cases = [
            ("123", "0", "user_id", "expected a positive integer, got 0"),
            (
                "123",
                "-4",
                "user_id",
                "expected a positive integer, got -4",
            ),
            (
                "123",
                "1.5",
                "user_id",
                "expected a positive integer, got 1.5",
            ),
            (
                "456",
                "\"456\"",
                "product_id",
                r#"expected a positive integer, got "456""#,
            ),
            (
                "\"add_to_cart\"",
                "\"refund\"",
                "action",
                r#"expected one of view, click, add_to_cart, purchase, got "refund""#,
            ),
            (
                "\"Trekking T-shirt\"",
                "\"\"",
                "product_name",
                r#"expected a non-empty string, got """#,
            ),
            (
                "19.9",
                "\"cheap\"",
                "price",
                r#"expected a number >= 0, got "cheap""#,
            ),
            (
                "19.9",
                "-0.01",
                "price",
                "expected a number >= 0, got -0.01",
            ),
            (
                "1732460000000",
                "null",
                "ts",
                "expected an integer (ms since the epoch), got null",
            ),
        ];
        for (good, bad, field, problem) in cases {
            let json = GOOD.replacen(good, bad, 1);
            assert_eq!(problems(&json), one(field, problem), "{json}");
        }
        assert_eq!(problems(&GOOD.replace("19.9", "0")), [], "free is fine");
    }

    #[test]
    fn reports_missing_and_repeated_fields_and_non_objects() {
        assert_eq!(
            problems(r#"{"user_id":1,"user_id":2,"price":3}"#),
            [
                (Some("action".to_owned()), "missing".to_owned()),
                (Some("product_id".to_owned()), "missing".to_owned()),
                (Some("product_name".to_owned()), "missing".to_owned()),
                (Some("ts".to_owned()), "missing".to_owned()),
                (
                    Some("user_id".to_owned()),
                    "appears more than once".to_owned()
                ),
            ]
        );
        assert_eq!(
            problems(r#"[1,"two"]"#),
            [(
                None,
                r#"expected an event object, got [1,"two"]"#.to_owned()
            )]
        );
        assert_eq!(
            problems(&format!("{:?}", "x".repeat(60))),
            [(
                None,
                format!("expected an event object, got \"{}...", "x".repeat(39))
            )]
        );
    }

    #[test]
    fn a_body_is_one_object_or_an_array_of_items_as_written() {
        let texts = |body: &str| -> Vec<String> {
            let items = split(body.as_bytes()).unwrap();
            items.iter().map(|raw| raw.get().to_owned()).collect()
        };
        assert_eq!(texts(&format!(" {GOOD}\n")), [GOOD]);
        assert_eq!(
            texts(&format!("[{GOOD}, 7 ,null,\n [ ] ]")),
            [GOOD, "7", "null", "[ ]"]
        );
        assert!(matches!(split(b"\"view\""), Err(BodyError::WrongShape(s)) if s == "\"view\""));
        assert!(matches!(split(b"{\"a\":"), Err(BodyError::NotJson(_))));
        assert!(matches!(split(b"[1] 2"), Err(BodyError::NotJson(_))));
    }

    #[test]
    fn compacting_keeps_everything_but_the_whitespace_between_tokens() {
        let pretty = "{\n  \"b\": [1, 2.50, 1E3],\n\t\"a b\": \"x \\\" y\\\\\",\r\n  \"é\": {}\n}";
        assert_eq!(
            String::from_utf8(compact(pretty)).unwrap(),
            r#"{"b":[1,2.50,1E3],"a b":"x \" y\\","é":{}}"#
        );
        assert_eq!(compact(GOOD), GOOD.as_bytes());
    }
}
