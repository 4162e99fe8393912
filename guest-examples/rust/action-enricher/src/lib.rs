//! The Kafka tutorial's pipeline as a guest: reads the tutorial's
//! user-action events and writes each one back, validated and enriched, to
//! the topic named by the `output_topic` config key.
//!
//! One record out per record in, keyed by user. What cannot be read fails
//! the batch with a permanent error blaming that record, so the runner
//! dead-letters it (or stops the deployment, per its failure policy) and
//! the rest of the batch goes through. The enrichment itself lives in
//! [`enrich`]; see the crate README for the exact output.

mod enrich;

use ingesta::prelude::*;

use crate::enrich::{Origin, enrich};

/// The one required config key.
const OUTPUT_TOPIC: &str = "output_topic";

/// Reads `output_topic`. Missing is permanent: no retry adds a config key.
fn output_topic() -> Result<String> {
    match config::get(OUTPUT_TOPIC) {
        Some(topic) if !topic.trim().is_empty() => Ok(topic),
        _ => Err(Error::permanent(format!(
            "config key {OUTPUT_TOPIC} is required: the topic enriched events are written to \
             (e.g. --config {OUTPUT_TOPIC}=processed-user-actions-topic)"
        ))),
    }
}

#[derive(Default)]
struct ActionEnricher {
    /// Read on the first batch (configuration cannot change under an instance).
    output_topic: Option<String>,
}

impl Handler for ActionEnricher {
    fn on_batch(&mut self, batch: &Batch<'_>) -> Result<()> {
        let topic = match self.output_topic.take() {
            Some(topic) => topic,
            None => output_topic()?,
        };
        let topic = self.output_topic.insert(topic);

        // Indexed by `Category as usize` (declaration order), for the log line.
        let mut counts = [0usize; 4];
        let mut renamed = 0;
        for record in batch.records() {
            let origin = Origin {
                topic: record.topic(),
                partition: record.partition(),
                offset: record.offset(),
                timestamp: record.timestamp(),
            };
            let event = enrich(record.value(), &origin).map_err(|reason| record.error(reason))?;
            emit_json(topic, event.key, &event.value)?;
            counts[event.category as usize] += 1;
            renamed += usize::from(event.renamed);
        }

        let (Some(first), Some(last)) = (batch.first_offset(), batch.last_offset()) else {
            return Ok(());
        };
        let [browse, cart, purchase, other] = counts;
        ingesta::debug!(
            "{}/{} offsets {first}..={last}: {} events ({browse} browse, {cart} cart, \
             {purchase} purchase, {other} other), {renamed} action names canonicalised",
            batch.topic(),
            batch.partition(),
            batch.len(),
        );
        Ok(())
    }
}

ingesta::export_handler!(ActionEnricher);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, TestBatch};
    use serde_json::json;

    fn tutorial_batch() -> TestBatch {
        TestBatch::new("user-actions-topic", 1)
            .at_offset(10)
            .record((), r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#)
            .record((), r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#)
            .record((), r#"{"user_id":1,"action":"purchase","product_id":2,"product_name":"Tent","price":10.5,"ts":1700000000000}"#)
            .record((), r#"{"user_id":1,"action":"added_to_wishlist","product_id":3}"#)
    }

    #[test]
    fn emits_one_enriched_record_per_event_keyed_by_user() {
        testing::set_config([("output_topic", "processed")]);
        let out = testing::run(&mut ActionEnricher::default(), &tutorial_batch()).unwrap();
        assert!(out.iter().all(|e| e.topic == "processed"));
        let keys: Vec<_> = out.iter().map(|e| e.key_str().unwrap()).collect();
        assert_eq!(keys, ["123", "456", "1", "1"]);
        let values: Vec<_> = out.iter().map(|e| e.value_json()).collect();
        assert_eq!(values[0]["action"], "add_to_cart");
        assert_eq!(values[0]["event_id"], "user-actions-topic-1-10");
        assert_eq!(values[1]["event_id"], 123);
        assert_eq!(
            values[2]["source"],
            json!({"topic": "user-actions-topic", "partition": 1, "offset": 12})
        );
        assert_eq!(
            (&values[3]["category"], &values[3]["product_name"]),
            (&json!("other"), &json!("3"))
        );
        let logs = testing::take_logs();
        assert_eq!(
            logs.last().map(|(_, line)| line.as_str()),
            Some(
                "user-actions-topic/1 offsets 10..=13: 4 events (0 browse, 2 cart, 1 purchase, \
                 1 other), 2 action names canonicalised"
            )
        );
    }

    #[test]
    fn an_unreadable_event_fails_the_batch_blaming_that_record() {
        testing::set_config([("output_topic", "processed")]);
        let batch = tutorial_batch().record((), "not json");
        let err = testing::run(&mut ActionEnricher::default(), &batch).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.record_index(), Some(4));
        assert_eq!(
            err.message(),
            "value is not valid JSON: expected ident at line 1 column 2 \
             (topic user-actions-topic, partition 1, offset 14)"
        );
        let batch = TestBatch::new("user-actions-topic", 0).record("k", ());
        let err = testing::run(&mut ActionEnricher::default(), &batch).unwrap_err();
        assert_eq!(err.record_index(), Some(0));
        assert!(err.message().starts_with("value is null"));
    }

    #[test]
    fn output_topic_is_required() {
        for config in [vec![], vec![("output_topic", " ")]] {
            testing::set_config(config);
            let err = testing::run(&mut ActionEnricher::default(), &tutorial_batch()).unwrap_err();
            assert!(!err.is_retryable());
            assert_eq!(err.record_index(), None, "no record is to blame");
            assert!(
                err.message()
                    .starts_with("config key output_topic is required"),
                "{}",
                err.message()
            );
        }
    }
}
