//! The conformance suite's `echo` consumer (spec: `tests/conformance/README.md`):
//! every record accessor, emit with key and headers, config, logging and
//! both error classes, with an output every SDK must reproduce byte for byte.

use std::collections::HashMap;

use ingesta::TimestampType;
use ingesta::prelude::*;
use serde_json::{Value, json};

#[derive(Default)]
struct Echo {
    /// Retryable failures so far per `retryable:<id>:<n>` id.
    failures: HashMap<String, u32>,
}

fn text(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(b).into_owned())
    })
}

impl Handler for Echo {
    fn on_record(&mut self, record: &Record) -> Result<()> {
        let output = config::get("output_topic")
            .ok_or_else(|| Error::permanent("config key output_topic is not set"))?;
        let greeting = config::get_or("greeting", "hello");
        let value = record.value_str()?;
        if let Some(message) = value.strip_prefix("permanent:") {
            return Err(Error::permanent(message));
        }
        if let Some(spec) = value.strip_prefix("retryable:")
            && let Some((id, n)) = spec.rsplit_once(':')
            && let Ok(n) = n.parse::<u32>()
        {
            let count = self.failures.entry(id.to_owned()).or_default();
            if *count < n {
                *count += 1;
                return Err(Error::retryable(format!("retry {id} ({count} of {n})")));
            }
        }
        if let Some(message) = value.strip_prefix("log:") {
            ingesta::info!("{message}");
        }
        let headers: Vec<Value> = record
            .headers()
            .map(|(name, value)| json!([name, text(value)]))
            .collect();
        let timestamp_type = match record.timestamp_type() {
            TimestampType::NotAvailable => Value::Null,
            TimestampType::CreateTime => "create".into(),
            TimestampType::LogAppendTime => "log_append".into(),
        };
        // serde_json's `json!` sorts keys; the spec fixes their order, so
        // the object is written field by field.
        let body = format!(
            "{{\"topic\":{},\"partition\":{},\"offset\":{},\"timestamp\":{},\"timestamp_type\":{},\
             \"key\":{},\"value\":{},\"headers\":{},\"greeting\":{}}}",
            Value::from(record.topic()),
            record.partition(),
            record.offset(),
            record.timestamp().map_or(Value::Null, Value::from),
            timestamp_type,
            text(record.key()),
            Value::from(value),
            Value::Array(headers),
            Value::from(greeting.as_str()),
        );
        Message::to(&output)
            .key(record.key())
            .headers_from(record)
            .header("echo-greeting", greeting.as_str())
            .value(body)
            .emit();
        Ok(())
    }
}

ingesta::export_handler!(Echo);
