//! The shop scenario: turns `user-activity` events into per-product
//! activity stats and large-purchase alerts.
//!
//! Each batch is validated as a whole first: one malformed event fails the
//! batch with a permanent error blaming that record, and nothing of the
//! batch is emitted. A good batch then yields
//!
//! * one stats record per product touched, in ascending `product_id` order
//!   and events without one (the unknown product) last: the batch's
//!   increments, so summing a product's stats records gives its totals, and
//!   `source` identifies the input window so a reader can recognise a
//!   redelivered batch;
//! * one alert per purchase priced strictly above `alert_purchase_over`.
//!
//! Events in the shapes of the shop tutorial our users come from (other
//! action names, no price, no timestamp, no product) are counted, not
//! refused; only what cannot be read fails the batch.
//!
//! See the crate README for config keys and exact output formats.

mod event;

use std::borrow::Cow;
use std::collections::BTreeMap;

use ingesta::prelude::*;
use serde::Serialize;

use crate::event::{Action, Event, EventId};

/// Deployment settings, read from config on the first batch.
struct Settings {
    stats_topic: String,
    alerts_topic: String,
    alert_purchase_over: f64,
}

impl Settings {
    fn load() -> Result<Self> {
        let alert_purchase_over = config::parse_or("alert_purchase_over", 500.0)?;
        if !f64::is_finite(alert_purchase_over) {
            return Err(Error::permanent(
                "config key alert_purchase_over must be a finite number",
            ));
        }
        Ok(Self {
            stats_topic: config::get_or("stats_topic", "user-activity-stats"),
            alerts_topic: config::get_or("alerts_topic", "user-activity-alerts"),
            alert_purchase_over,
        })
    }
}

/// Counts per action plus revenue, for one product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    views: u64,
    clicks: u64,
    add_to_cart: u64,
    purchases: u64,
    other_actions: u64,
    /// Whole cents, so sums are exact (each price is rounded to cents).
    revenue_cents: i64,
}

impl Counts {
    fn record(&mut self, event: &Event<'_>) {
        match event.action {
            Action::View => self.views += 1,
            Action::Click => self.clicks += 1,
            Action::AddToCart => self.add_to_cart += 1,
            Action::Other => self.other_actions += 1,
            Action::Purchase => {
                self.purchases += 1;
                // `as` saturates, and so does the sum: absurd prices cannot wrap.
                let cents = (event.price.unwrap_or(0.0) * 100.0).round() as i64;
                self.revenue_cents = self.revenue_cents.saturating_add(cents);
            }
        }
    }

    fn add(&mut self, other: &Counts) {
        self.views += other.views;
        self.clicks += other.clicks;
        self.add_to_cart += other.add_to_cart;
        self.purchases += other.purchases;
        self.other_actions += other.other_actions;
        self.revenue_cents = self.revenue_cents.saturating_add(other.revenue_cents);
    }

    fn revenue(&self) -> f64 {
        self.revenue_cents as f64 / 100.0
    }
}

/// A product as stats count it: known by id, or unknown (events without
/// a `product_id`), which sorts after every id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Product {
    Id(u64),
    Unknown,
}

impl Product {
    fn of(event: &Event<'_>) -> Self {
        event.product_id.map_or(Self::Unknown, Self::Id)
    }

    fn id(self) -> Option<u64> {
        match self {
            Self::Id(id) => Some(id),
            Self::Unknown => None,
        }
    }

    /// The record key: the id in decimal, or `unknown`.
    fn key(self) -> String {
        self.id()
            .map_or_else(|| "unknown".to_owned(), |id| id.to_string())
    }

    /// The name shown when no event gave one.
    fn fallback_name(self) -> Cow<'static, str> {
        match self {
            Self::Id(id) => Cow::Owned(id.to_string()),
            Self::Unknown => Cow::Borrowed("unknown product"),
        }
    }

    /// The name to show for `given` (an event's `product_name`).
    fn name<'a>(self, given: Option<&'a str>) -> Cow<'a, str> {
        match (self, given) {
            (Self::Id(_), Some(name)) => Cow::Borrowed(name),
            _ => self.fallback_name(),
        }
    }
}

/// One product's activity within a batch.
struct ProductBatch<'a> {
    /// The name on the product's last event in the batch that has one.
    name: Option<&'a str>,
    counts: Counts,
}

#[derive(Serialize)]
struct StatsRecord<'a> {
    product_id: Option<u64>,
    product_name: Cow<'a, str>,
    views: u64,
    clicks: u64,
    add_to_cart: u64,
    purchases: u64,
    other_actions: u64,
    revenue: f64,
    source: BatchSource<'a>,
}

#[derive(Serialize)]
struct BatchSource<'a> {
    topic: &'a str,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Serialize)]
struct AlertRecord<'a> {
    kind: &'static str,
    event_id: Option<&'a EventId<'a>>,
    user_id: u64,
    product_id: Option<u64>,
    product_name: Cow<'a, str>,
    price: f64,
    threshold: f64,
    ts: Option<i64>,
    source: RecordSource<'a>,
}

#[derive(Serialize)]
struct RecordSource<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Default)]
struct ActivityStats {
    settings: Option<Settings>,
    /// Running totals for this instance's partition since it started. Only
    /// an in-memory view: lost on recycle, and counts redelivered batches twice.
    /// (A BTreeMap rather than a HashMap: no random seed, so the component
    /// imports no `wasi:random`.)
    totals: BTreeMap<Product, Counts>,
}

impl Handler for ActivityStats {
    fn on_batch(&mut self, batch: &Batch<'_>) -> Result<()> {
        let settings = match self.settings.take() {
            Some(settings) => settings,
            None => Settings::load()?,
        };
        let settings = self.settings.insert(settings);

        // Validate and aggregate everything before emitting anything.
        let mut products: BTreeMap<Product, ProductBatch<'_>> = BTreeMap::new();
        let mut alerts = Vec::new();
        let events: Vec<(Event<'_>, i64)> = batch
            .records()
            .map(|record| Event::parse(&record).map(|event| (event, record.offset())))
            .collect::<Result<_>>()?;
        for (event, offset) in &events {
            let product = products.entry(Product::of(event)).or_insert(ProductBatch {
                name: None,
                counts: Counts::default(),
            });
            if let Some(name) = &event.product_name {
                product.name = Some(name);
            }
            product.counts.record(event);
            let priced_over = event
                .price
                .is_some_and(|p| p > settings.alert_purchase_over);
            if event.action == Action::Purchase && priced_over {
                alerts.push((event, *offset));
            }
        }

        let (Some(first_offset), Some(last_offset)) = (batch.first_offset(), batch.last_offset())
        else {
            return Ok(());
        };
        for (&id, product) in &products {
            let c = &product.counts;
            let stats = StatsRecord {
                product_id: id.id(),
                product_name: id.name(product.name),
                views: c.views,
                clicks: c.clicks,
                add_to_cart: c.add_to_cart,
                purchases: c.purchases,
                other_actions: c.other_actions,
                revenue: c.revenue(),
                source: BatchSource {
                    topic: batch.topic(),
                    partition: batch.partition(),
                    first_offset,
                    last_offset,
                },
            };
            emit_json(&settings.stats_topic, id.key(), &stats)?;
        }
        for (event, offset) in &alerts {
            let alert = AlertRecord {
                kind: "large_purchase",
                event_id: event.event_id.as_ref(),
                user_id: event.user_id,
                product_id: event.product_id,
                product_name: Product::of(event).name(event.product_name.as_deref()),
                price: event.price.unwrap_or_default(),
                threshold: settings.alert_purchase_over,
                ts: event.ts,
                source: RecordSource {
                    topic: batch.topic(),
                    partition: batch.partition(),
                    offset: *offset,
                },
            };
            emit_json(&settings.alerts_topic, event.user_id.to_string(), &alert)?;
        }

        for (product_id, product) in &products {
            self.totals
                .entry(*product_id)
                .or_default()
                .add(&product.counts);
        }
        ingesta::debug!(
            "{}/{} offsets {first_offset}..={last_offset}: {} events, {} products, {} alerts; \
             {} products seen by this instance",
            batch.topic(),
            batch.partition(),
            events.len(),
            products.len(),
            alerts.len(),
            self.totals.len(),
        );
        Ok(())
    }
}

ingesta::export_handler!(ActivityStats);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, Emitted, TestBatch};
    use serde_json::json;

    fn event(user: u64, action: &str, product: u64, name: &str, price: f64) -> String {
        json!({
            "user_id": user, "action": action, "product_id": product,
            "product_name": name, "price": price, "ts": 1_732_460_000_000_i64,
        })
        .to_string()
    }

    fn values(out: &[Emitted], topic: &str) -> Vec<String> {
        out.iter()
            .filter(|e| e.topic == topic)
            .map(|e| e.value_str().unwrap().to_owned())
            .collect()
    }

    fn shop_batch() -> TestBatch {
        TestBatch::new("user-activity", 3)
            .at_offset(100)
            .record("u1", event(123, "view", 456, "Trekking T-shirt", 19.9))
            .record(
                "u1",
                event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9),
            )
            .record("u2", event(7, "view", 12, "Tent", 899.0))
            .record(
                "u1",
                event(123, "add_to_cart", 456, "Trekking T-shirt", 19.9),
            )
            .record("u2", event(7, "purchase", 12, "Tent", 899.0))
            .record("u1", event(123, "purchase", 456, "Trekking T-shirt", 19.9))
            .record("u3", event(9, "click", 12, "Tent", 899.0))
            .record("u3", event(9, "purchase", 99, "Gift card", 500.0))
    }

    #[test]
    fn emits_stats_per_product_and_alerts() {
        testing::set_config::<&str, &str>([]);
        let out = testing::run(&mut ActivityStats::default(), &shop_batch()).unwrap();
        let stats: Vec<_> = out
            .iter()
            .filter(|e| e.topic == "user-activity-stats")
            .collect();
        let keys: Vec<_> = stats.iter().map(|e| e.key_str().unwrap()).collect();
        assert_eq!(keys, ["12", "99", "456"], "ascending product_id");
        assert_eq!(
            values(&out, "user-activity-stats")[2],
            r#"{"product_id":456,"product_name":"Trekking T-shirt","views":1,"clicks":0,"add_to_cart":2,"purchases":1,"other_actions":0,"revenue":19.9,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}"#
        );
        assert_eq!(
            values(&out, "user-activity-stats")[0],
            r#"{"product_id":12,"product_name":"Tent","views":1,"clicks":1,"add_to_cart":0,"purchases":1,"other_actions":0,"revenue":899.0,"source":{"topic":"user-activity","partition":3,"first_offset":100,"last_offset":107}}"#
        );
        // 500.0 is not strictly above the default threshold.
        assert_eq!(
            values(&out, "user-activity-alerts"),
            [
                r#"{"kind":"large_purchase","event_id":null,"user_id":7,"product_id":12,"product_name":"Tent","price":899.0,"threshold":500.0,"ts":1732460000000,"source":{"topic":"user-activity","partition":3,"offset":104}}"#
            ]
        );
        let alert = out
            .iter()
            .find(|e| e.topic == "user-activity-alerts")
            .unwrap();
        assert_eq!(alert.key_str(), Some("7"));
    }

    #[test]
    fn honours_config() {
        testing::set_config([
            ("stats_topic", "s"),
            ("alerts_topic", "a"),
            ("alert_purchase_over", "10"),
        ]);
        let out = testing::run(&mut ActivityStats::default(), &shop_batch()).unwrap();
        assert_eq!(values(&out, "s").len(), 3);
        let alerts = values(&out, "a");
        assert_eq!(alerts.len(), 3, "Tent, T-shirt and the gift card exceed 10");
        assert!(
            alerts[1].contains(r#""price":19.9,"threshold":10.0"#),
            "{}",
            alerts[1]
        );
    }

    #[test]
    fn bad_threshold_is_a_permanent_config_error() {
        testing::set_config([("alert_purchase_over", "lots")]);
        let err = testing::run(&mut ActivityStats::default(), &shop_batch()).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message()
                .starts_with("config key alert_purchase_over has invalid value")
        );
        testing::set_config([("alert_purchase_over", "inf")]);
        let err = testing::run(&mut ActivityStats::default(), &shop_batch()).unwrap_err();
        assert_eq!(
            err.message(),
            "config key alert_purchase_over must be a finite number"
        );
    }

    #[test]
    fn one_bad_event_fails_the_batch_and_emits_nothing() {
        testing::set_config::<&str, &str>([]);
        let batch = shop_batch().record("u4", r#"{"action":"refund","product_id":5}"#);
        let err = testing::run(&mut ActivityStats::default(), &batch).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.record_index(), Some(8));
        assert_eq!(
            err.message(),
            "missing field user_id (topic user-activity, partition 3, offset 108)"
        );
    }

    #[test]
    fn counts_the_tutorials_events_without_refusing_them() {
        testing::set_config([("alert_purchase_over", "100")]);
        let batch = TestBatch::new("user-activity", 1)
            .record((), r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#)
            .record((), r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#)
            .record((), r#"{"user_id": 5, "action": "wishlist"}"#)
            .record((), r#"{"user_id": 5, "action": "checkout", "product_id": 456}"#)
            .record((), r#"{"event_id": "e-9", "user_id": 6, "action": "order", "price": 250}"#)
            .push(
                testing::TestRecord::new((), r#"{"user_id": 7, "action": "purchased", "product_id": 7, "price": 120.5}"#)
                    .timestamp(1_700_000_000_000, ingesta::TimestampType::CreateTime),
            );
        let out = testing::run(&mut ActivityStats::default(), &batch).unwrap();
        let keys: Vec<_> = out
            .iter()
            .filter(|e| e.topic == "user-activity-stats")
            .map(|e| e.key_str().unwrap())
            .collect();
        assert_eq!(keys, ["7", "456", "unknown"], "the unknown product last");
        let stats = values(&out, "user-activity-stats");
        assert_eq!(
            stats[1],
            r#"{"product_id":456,"product_name":"Camiseta de Trekking","views":0,"clicks":0,"add_to_cart":1,"purchases":1,"other_actions":0,"revenue":0.0,"source":{"topic":"user-activity","partition":1,"first_offset":0,"last_offset":5}}"#,
            "a purchase without a price counts, with no revenue"
        );
        assert_eq!(
            stats[2],
            r#"{"product_id":null,"product_name":"unknown product","views":0,"clicks":0,"add_to_cart":1,"purchases":1,"other_actions":1,"revenue":250.0,"source":{"topic":"user-activity","partition":1,"first_offset":0,"last_offset":5}}"#
        );
        assert_eq!(
            stats[0],
            r#"{"product_id":7,"product_name":"7","views":0,"clicks":0,"add_to_cart":0,"purchases":1,"other_actions":0,"revenue":120.5,"source":{"topic":"user-activity","partition":1,"first_offset":0,"last_offset":5}}"#,
            "no name: the id"
        );
        assert_eq!(
            values(&out, "user-activity-alerts"),
            [
                r#"{"kind":"large_purchase","event_id":"e-9","user_id":6,"product_id":null,"product_name":"unknown product","price":250.0,"threshold":100.0,"ts":null,"source":{"topic":"user-activity","partition":1,"offset":4}}"#,
                r#"{"kind":"large_purchase","event_id":null,"user_id":7,"product_id":7,"product_name":"7","price":120.5,"threshold":100.0,"ts":1700000000000,"source":{"topic":"user-activity","partition":1,"offset":5}}"#,
            ]
        );
    }

    #[test]
    fn revenue_is_summed_in_cents() {
        testing::set_config::<&str, &str>([]);
        let mut batch = TestBatch::new("user-activity", 0);
        for _ in 0..10 {
            batch = batch.record((), event(1, "purchase", 1, "Pin", 0.1));
        }
        let out = testing::run(&mut ActivityStats::default(), &batch).unwrap();
        // Ten f64 0.1s sum to 0.9999999999999999; cents keep it exact.
        assert_eq!(out[0].value_json()["revenue"], json!(1.0));
    }

    #[test]
    fn keeps_running_totals_and_logs_once_per_batch() {
        testing::set_config::<&str, &str>([]);
        let mut handler = ActivityStats::default();
        testing::run(&mut handler, &shop_batch()).unwrap();
        testing::run(&mut handler, &shop_batch().at_offset(108)).unwrap();
        let tshirt = handler.totals[&Product::Id(456)];
        assert_eq!(
            (tshirt.add_to_cart, tshirt.purchases, tshirt.revenue()),
            (4, 2, 39.8)
        );
        let logs = testing::take_logs();
        assert_eq!(logs.len(), 2);
        assert_eq!(
            logs[0].1,
            "user-activity/3 offsets 100..=107: 8 events, 3 products, 1 alerts; 3 products seen by this instance"
        );
    }

    #[test]
    fn latest_product_name_wins_within_a_batch() {
        testing::set_config::<&str, &str>([]);
        let batch = TestBatch::new("user-activity", 0)
            .record((), event(1, "view", 1, "Old name", 1.0))
            .record((), event(1, "view", 1, "New name", 1.0));
        let out = testing::run(&mut ActivityStats::default(), &batch).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value_json()["product_name"], "New name");
    }
}
