//! The smallest producer: every request to the deployment's ingest
//! endpoint is published, body unchanged, as one record to the topic in
//! config key `topic`, keyed by the request's `x-key` header (null without
//! one), and answered `202 Accepted` once Kafka has it.
//!
//! It does not look inside the body: no parsing, no validation, any method.
//! That makes it the starting point for a producer of your own and the
//! "no-op module" of the ingest benchmark (`ingest-bench`), where it
//! measures what the runner's HTTP path and the Kafka acknowledgement cost
//! on their own.
//!
//! See the crate README for the config key and curl examples.

use ingesta::prelude::*;

#[derive(Default)]
struct Beacon {
    /// Config key `topic`, read on the first request that finds it.
    topic: Option<String>,
}

impl Producer for Beacon {
    fn on_request(&mut self, request: &Request) -> Result<Response> {
        let topic = match &self.topic {
            Some(topic) => topic,
            None => {
                let topic = config::get("topic")
                    .ok_or_else(|| Error::permanent("config key topic is not set"))?;
                self.topic.insert(topic)
            }
        };
        emit(topic, request.header("x-key"), request.body());
        Ok(Response::accepted())
    }
}

ingesta::export_producer!(Beacon);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, Emitted};

    fn call(request: &Request) -> Result<(Response, Vec<Emitted>)> {
        testing::run_request(&mut Beacon::default(), request)
    }

    #[test]
    fn publishes_the_body_unchanged_keyed_by_x_key() {
        testing::set_config([("topic", "page-views")]);
        let body = "{\"page\": \"/\",\n \"ms\": 12}";
        let request = Request::new("POST", "/", body).with_header("X-Key", "user-7");
        let (response, out) = call(&request).unwrap();
        assert_eq!(response, Response::accepted());
        assert_eq!(
            out,
            [Emitted {
                topic: "page-views".into(),
                key: Some(b"user-7".to_vec()),
                value: Some(body.as_bytes().to_vec()),
                headers: vec![],
            }]
        );
    }

    #[test]
    fn without_x_key_the_key_is_null() {
        testing::set_config([("topic", "page-views")]);
        let request = Request::new("POST", "/any/path?x=1", "hello").with_header("x-other", "1");
        let (response, out) = call(&request).unwrap();
        assert_eq!(response.status, 202);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, None);
        assert_eq!(out[0].value_str(), Some("hello"));
    }

    #[test]
    fn bytes_that_are_not_text_or_json_go_out_as_they_came() {
        testing::set_config([("topic", "raw")]);
        let body = vec![0, 0xff, 0xfe, b'{', 0x80];
        let request = Request::new("PUT", "/", body.clone()).with_header("x-key", vec![0xc3]);
        let (_, out) = call(&request).unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&body[..]));
        assert_eq!(out[0].key.as_deref(), Some(&[0xc3][..]));
        let (_, out) = call(&Request::new("POST", "/", "")).unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&b""[..]), "empty, not null");
    }

    #[test]
    fn one_instance_serves_many_requests() {
        testing::set_config([("topic", "page-views")]);
        let mut beacon = Beacon::default();
        for i in 0..3 {
            let request = Request::new("POST", "/", format!("event {i}"));
            let (_, out) = testing::run_request(&mut beacon, &request).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].value_str(), Some(format!("event {i}").as_str()));
        }
    }

    #[test]
    fn a_missing_topic_is_a_permanent_error_naming_the_key() {
        testing::set_config([("output_topic", "page-views")]);
        let err = call(&Request::new("POST", "/", "hello")).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.message(), "config key topic is not set");
    }
}
