//! {{name}}: an ingesta handler. It upper-cases each record's value and
//! publishes it, with the record's key and headers, to the topic named by
//! the deployment's `output_topic` config.

use ingesta::prelude::*;

#[derive(Default)]
struct Handler {
    /// Read from config on the first record (config is only there at call time).
    output_topic: Option<String>,
}

impl ingesta::Handler for Handler {
    fn on_record(&mut self, record: &Record) -> Result<()> {
        let topic = match &self.output_topic {
            Some(topic) => topic,
            None => {
                let topic = config::get("output_topic")
                    .ok_or_else(|| Error::permanent("config key output_topic is not set"))?;
                self.output_topic.insert(topic)
            }
        };
        // A value that is not UTF-8 can never succeed: a permanent error
        // naming the record sends it to the dead-letter topic.
        let text = record.value_str()?.to_uppercase();
        Message::to(topic)
            .key(record.key())
            .headers_from(record)
            .value(text)
            .emit();
        Ok(())
    }
}

ingesta::export_handler!(Handler);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, TestBatch};

    #[test]
    fn upper_cases_values_to_the_output_topic() {
        testing::set_config([("output_topic", "shouty")]);
        let batch = TestBatch::new("in", 0).record("k1", "hello").record((), "world");
        let out = testing::run(&mut Handler::default(), &batch).unwrap();
        let got: Vec<_> = out.iter().map(|e| (e.topic.as_str(), e.key_str(), e.value_str())).collect();
        assert_eq!(
            got,
            [("shouty", Some("k1"), Some("HELLO")), ("shouty", None, Some("WORLD"))]
        );
    }

    #[test]
    fn a_missing_output_topic_is_a_permanent_error() {
        testing::set_config::<&str, &str>([]);
        let batch = TestBatch::new("in", 0).record((), "x");
        let err = testing::run(&mut Handler::default(), &batch).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("output_topic"), "{}", err.message());
    }
}
