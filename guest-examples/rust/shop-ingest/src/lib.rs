//! A webhook for shop events: `POST` one event object or an array of them,
//! and each valid event is published to Kafka keyed by its user.
//!
//! A request is all or nothing. Every event is checked against the shop
//! schema before anything is emitted; if any is invalid, the answer is a
//! 400 listing every problem of every event (so a sender can fix a batch in
//! one round trip) and nothing is published. Otherwise the events go out
//! as sent, compacted, with their fields in the order written, and the
//! answer, 202, comes once Kafka has acknowledged all of them.
//!
//! See the crate README for config keys, responses and curl examples.

mod schema;

use ingesta::prelude::*;
use serde_json::json;

use crate::schema::{BodyError, Item};

/// Deployment settings, read from config on the first request.
struct Settings {
    topic: String,
    /// Events accepted in one request; more is refused with 413, so one
    /// request cannot turn into an unbounded burst of records.
    max_events: usize,
}

impl Settings {
    fn load() -> Result<Self> {
        let max_events = config::parse_or("max_events", 1_000)?;
        if max_events == 0 {
            return Err(Error::permanent("config key max_events must be at least 1"));
        }
        Ok(Self {
            topic: config::get_or("topic", "user-activity"),
            max_events,
        })
    }
}

#[derive(Default)]
struct ShopIngest {
    settings: Option<Settings>,
}

impl Producer for ShopIngest {
    fn on_request(&mut self, request: &Request) -> Result<Response> {
        if request.method() != "POST" {
            let message = format!(
                "method {} is not allowed; POST events as JSON",
                request.method()
            );
            return Ok(error(405, message)?.header("allow", "POST"));
        }
        let settings = match self.settings.take() {
            Some(settings) => settings,
            None => Settings::load()?,
        };
        let settings = self.settings.insert(settings);

        let raw_events = match schema::split(request.body()) {
            Ok(raw_events) => raw_events,
            Err(BodyError::NotJson(err)) => {
                return error(400, format!("request body is not valid JSON: {err}"));
            }
            Err(BodyError::WrongShape(got)) => {
                let message =
                    format!("request body must be an event object or an array of them, got {got}");
                return error(400, message);
            }
        };
        if raw_events.len() > settings.max_events {
            let message = format!(
                "{} events in one request; at most {} are accepted",
                raw_events.len(),
                settings.max_events
            );
            return error(413, message);
        }

        let mut problems = Vec::new();
        let mut events = Vec::with_capacity(raw_events.len());
        for (index, raw) in raw_events.iter().enumerate() {
            let item: Item = serde_json::from_str(raw.get())
                .map_err(|e| Error::permanent(format!("cannot re-read event {index}: {e}")))?;
            match schema::check(index, &item) {
                Ok(user_id) => events.push((user_id, raw)),
                Err(found) => problems.extend(found),
            }
        }
        if !problems.is_empty() {
            let mut invalid: Vec<usize> = problems.iter().map(|p| p.event).collect();
            invalid.dedup(); // problems come grouped by event
            let noun = if invalid.len() == 1 {
                "event"
            } else {
                "events"
            };
            let body = json!({
                "error": format!("{} invalid {noun}; nothing was accepted", invalid.len()),
                "problems": problems,
            });
            return Response::json(400, &body);
        }

        for (user_id, raw) in &events {
            Message::to(&settings.topic)
                .key(user_id.to_string())
                .value(schema::compact(raw.get()))
                .header("ingest-path", request.path())
                .emit();
        }
        Response::json(202, &json!({ "accepted": events.len() }))
    }
}

/// A JSON error answer, shaped like the runner's own: `{"error": message}`.
fn error(status: u16, message: String) -> Result<Response> {
    Response::json(status, &json!({ "error": message }))
}

ingesta::export_producer!(ShopIngest);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, Emitted};
    use serde_json::Value;

    const GOOD: &str = r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}"#;

    fn post(body: &str) -> (Response, Vec<Emitted>) {
        post_to("/", body)
    }

    fn post_to(path: &str, body: &str) -> (Response, Vec<Emitted>) {
        let request = Request::new("POST", path, body);
        testing::run_request(&mut ShopIngest::default(), &request).unwrap()
    }

    fn body(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn event(user: u64, action: &str) -> String {
        GOOD.replace("123", &user.to_string())
            .replace("add_to_cart", action)
    }

    #[test]
    fn accepts_a_single_event_keyed_by_user() {
        testing::set_config::<&str, &str>([]);
        let (response, out) = post(GOOD);
        assert_eq!(response.status, 202);
        assert_eq!(body(&response), json!({"accepted": 1}));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "user-activity");
        assert_eq!(out[0].key_str(), Some("123"));
        assert_eq!(out[0].value_str(), Some(GOOD));
        assert_eq!(
            out[0].headers,
            [("ingest-path".to_owned(), Some(b"/".to_vec()))]
        );
    }

    #[test]
    fn accepts_an_array_compacted_with_extra_fields_in_order() {
        testing::set_config([("topic", "shop.activity")]);
        let with_extra = event(8, "purchase").replace('}', r#","utm":{"z":1,"a":[1, 2]}}"#);
        let pretty = format!("[\n  {},\n  {with_extra}\n]\n", event(7, "view"));
        let (response, out) = post_to("/webhooks/store-1", &pretty);
        assert_eq!(response.status, 202);
        assert_eq!(body(&response), json!({"accepted": 2}));
        let keys: Vec<_> = out.iter().map(|e| e.key_str().unwrap()).collect();
        assert_eq!(keys, ["7", "8"]);
        assert!(out.iter().all(|e| e.topic == "shop.activity"));
        assert_eq!(out[0].value_str(), Some(event(7, "view").as_str()));
        assert_eq!(
            out[1].value_str(),
            Some(with_extra.replace("[1, 2]", "[1,2]").as_str())
        );
        assert_eq!(
            out[1].headers[0].1.as_deref(),
            Some(&b"/webhooks/store-1"[..])
        );
    }

    #[test]
    fn an_invalid_event_lists_every_problem_and_emits_nothing() {
        testing::set_config::<&str, &str>([]);
        let events = [
            GOOD.replace("19.9", "\"cheap\""),
            GOOD.to_owned(),
            GOOD.replace("123", "0").replace("Trekking T-shirt", ""),
            GOOD.replace(r#""action":"add_to_cart","#, ""),
            "42".to_owned(),
        ];
        let (response, out) = post(&format!("[{}]", events.join(",")));
        assert_eq!(response.status, 400);
        assert_eq!(out, []);
        assert_eq!(
            body(&response),
            json!({
                "error": "4 invalid events; nothing was accepted",
                "problems": [
                    {"event": 0, "field": "price", "problem": "expected a number >= 0, got \"cheap\""},
                    {"event": 2, "field": "user_id", "problem": "expected a positive integer, got 0"},
                    {"event": 2, "field": "product_name", "problem": "expected a non-empty string, got \"\""},
                    {"event": 3, "field": "action", "problem": "missing"},
                    {"event": 4, "problem": "expected an event object, got 42"},
                ],
            })
        );
        let (response, _) = post(&GOOD.replace("purchase", "x").replace("add_to_cart", "x"));
        assert_eq!(
            body(&response)["error"],
            "1 invalid event; nothing was accepted"
        );
    }

    #[test]
    fn one_event_with_several_problems_reports_each_of_them() {
        testing::set_config::<&str, &str>([]);
        // The demo's (and the README's) invalid example.
        let (response, out) =
            post(r#"{"user_id":"x","action":"refund","product_id":1,"price":-1,"ts":1}"#);
        assert_eq!(response.status, 400);
        assert_eq!(out, []);
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            r#"{"error":"1 invalid event; nothing was accepted","problems":[{"event":0,"field":"user_id","problem":"expected a positive integer, got \"x\""},{"event":0,"field":"action","problem":"expected one of view, click, add_to_cart, purchase, got \"refund\""},{"event":0,"field":"product_name","problem":"missing"},{"event":0,"field":"price","problem":"expected a number >= 0, got -1"}]}"#
        );
    }

    #[test]
    fn a_body_that_is_not_json_names_the_position() {
        testing::set_config::<&str, &str>([]);
        let (response, out) = post("[\n  {\"user_id\": 1,,}\n]");
        assert_eq!(response.status, 400);
        assert_eq!(out, []);
        assert_eq!(
            body(&response)["error"],
            "request body is not valid JSON: key must be a string at line 2 column 17"
        );
        let (response, _) = post("");
        assert_eq!(
            body(&response)["error"],
            "request body is not valid JSON: EOF while parsing a value at line 1 column 0"
        );
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_refused() {
        testing::set_config::<&str, &str>([]);
        let (response, out) = post("\"view\"");
        assert_eq!(response.status, 400);
        assert_eq!(out, []);
        assert_eq!(
            body(&response)["error"],
            "request body must be an event object or an array of them, got \"view\""
        );
    }

    #[test]
    fn only_post_is_allowed() {
        testing::set_config::<&str, &str>([]);
        for method in ["GET", "PUT", "DELETE"] {
            let request = Request::new(method, "/", GOOD);
            let (response, out) =
                testing::run_request(&mut ShopIngest::default(), &request).unwrap();
            assert_eq!(response.status, 405, "{method}");
            assert_eq!(out, []);
            assert!(response.headers.contains(&("allow".into(), "POST".into())));
            assert_eq!(
                body(&response)["error"],
                format!("method {method} is not allowed; POST events as JSON")
            );
        }
    }

    #[test]
    fn too_many_events_are_refused_whole() {
        testing::set_config([("max_events", "2")]);
        let two = format!("[{GOOD},{GOOD}]");
        assert_eq!(post(&two).0.status, 202);
        let three = format!("[{GOOD},{GOOD},{GOOD}]");
        let (response, out) = post(&three);
        assert_eq!(response.status, 413);
        assert_eq!(out, []);
        assert_eq!(
            body(&response),
            json!({"error": "3 events in one request; at most 2 are accepted"})
        );
        assert_eq!(post("[]").0.status, 202, "an empty batch is fine");
    }

    #[test]
    fn bad_config_is_a_permanent_error_naming_the_key() {
        for value in ["0", "lots", "-1"] {
            testing::set_config([("max_events", value)]);
            let request = Request::new("POST", "/", GOOD);
            let err = testing::run_request(&mut ShopIngest::default(), &request).unwrap_err();
            assert!(!err.is_retryable());
            assert!(
                err.message().starts_with("config key max_events "),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn accepted_events_read_back_as_shop_events() {
        testing::set_config::<&str, &str>([]);
        let events = shop_events::events(3, 50);
        let json: Vec<String> = events.iter().map(shop_events::Event::to_json).collect();
        let (response, out) = post(&format!("[{}]", json.join(",")));
        assert_eq!(response.status, 202);
        for (emitted, sent) in out.iter().zip(&events) {
            let back: shop_events::Event =
                serde_json::from_slice(emitted.value.as_deref().unwrap()).unwrap();
            assert_eq!(&back, sent);
            assert_eq!(emitted.key_str(), Some(sent.key().as_str()));
        }
        assert_eq!(out.len(), events.len());
    }
}
