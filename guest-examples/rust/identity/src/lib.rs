//! Re-publishes every record unchanged (key, value and headers) to the topic
//! named by the `output_topic` config key.
//!
//! Crash tests use it to check that output matches input one to one, and
//! benchmarks use it as the 1:1 map workload.

use ingesta::prelude::*;

#[derive(Default)]
struct Identity {
    /// Resolved on the first batch: config cannot change under an instance.
    output_topic: Option<String>,
}

impl Handler for Identity {
    fn on_batch(&mut self, batch: &Batch<'_>) -> Result<()> {
        let topic = match self.output_topic.take() {
            Some(topic) => topic,
            None => config::get("output_topic")
                .ok_or_else(|| Error::permanent("config key output_topic is not set"))?,
        };
        let topic = self.output_topic.insert(topic);
        for record in batch.records() {
            forward(topic, &record);
        }
        Ok(())
    }
}

ingesta::export_handler!(Identity);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, TestBatch, TestRecord};

    #[test]
    fn forwards_records_byte_for_byte() {
        testing::set_config([("output_topic", "mirror")]);
        let batch = TestBatch::new("in", 2)
            .push(
                TestRecord::new("k", &[0u8, 255])
                    .header("h", "1")
                    .header("nul", ()),
            )
            .record((), ())
            .record("", "");
        let out = testing::run(&mut Identity::default(), &batch).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|e| e.topic == "mirror"));
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].value.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(
            out[0].headers,
            [
                ("h".to_owned(), Some(b"1".to_vec())),
                ("nul".to_owned(), None)
            ]
        );
        assert_eq!(
            (out[1].key.as_deref(), out[1].value.as_deref()),
            (None, None)
        );
        assert_eq!(out[2].key.as_deref(), Some(&b""[..]), "empty is not null");
    }

    #[test]
    fn missing_output_topic_is_permanent() {
        testing::set_config::<&str, &str>([]);
        let batch = TestBatch::new("in", 0).record("k", "v");
        let err = testing::run(&mut Identity::default(), &batch).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.message(), "config key output_topic is not set");
        assert_eq!(err.record_index(), None);
    }
}
