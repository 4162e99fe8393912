//! The shop scenario shared by tests, benchmarks and the demo.
//!
//! The events themselves come from the `shop-events` crate (re-exported
//! here, so callers keep writing `shop::Event`): [`Generator`] makes a
//! deterministic stream of shop [`Event`]s from a seed over a fixed
//! [`CATALOG`] of 50 products of which a handful cost more than 500.00 (so
//! large-purchase alerts happen). The `shop-generator` guest makes the same
//! stream live.
//!
//! This module adds what only the tests need: [`sized_json`] and
//! [`malformed_event`] for input, [`Expected`] to compute what the
//! `activity-stats` guest must output for a list of events, and
//! [`StatsRecord`] / [`AlertRecord`] to parse what it did output.
//!
//! The guest's contract (see `guest-examples/rust/activity-stats`): per
//! batch, one stats record per product touched carrying that batch's
//! *increments* (revenue summed in whole cents), and one alert per purchase
//! priced strictly above `alert_purchase_over`.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
pub use shop_events::{Action, CATALOG, Event, Generator, Product, Rng, START_TS, events, product};

/// `event` as JSON of exactly `size` bytes, for benchmarks: padded with an
/// extra `"pad"` field (which consumers ignore) or, when that does not fit,
/// with spaces; if the event is too long even without padding, its product
/// name is shortened. Fails if it cannot fit.
pub fn sized_json(event: &Event, size: usize) -> Result<Vec<u8>> {
    const PAD_FIELD: usize = r#","pad":"""#.len();
    let mut event = event.clone();
    let mut json = event.to_json();
    if json.len() > size {
        let excess = json.len() - size;
        let keep = event.product_name.len().saturating_sub(excess);
        if event.product_name.len() < excess || !event.product_name.is_char_boundary(keep) {
            bail!("event {json} cannot be made {size} bytes long");
        }
        event.product_name.truncate(keep);
        json = event.to_json();
    }
    let body = &json[..json.len() - 1]; // without the closing brace
    let out = if json.len() + PAD_FIELD <= size {
        let pad = "x".repeat(size - json.len() - PAD_FIELD);
        format!(r#"{body},"pad":"{pad}"}}"#)
    } else {
        format!("{body}{}}}", " ".repeat(size - json.len()))
    };
    debug_assert_eq!(out.len(), size);
    Ok(out.into_bytes())
}

/// `n` events from `seed`, the i-th stamped `START_TS + i`, so each can be
/// told apart (and found again with [`event_number`]) wherever it lands.
pub fn numbered_events(seed: u64, n: usize) -> Vec<Event> {
    let mut events = events(seed, n);
    for (i, e) in events.iter_mut().enumerate() {
        e.ts = START_TS + i as i64;
    }
    events
}

/// The number of an event from [`numbered_events`].
pub fn event_number(event: &Event) -> usize {
    (event.ts - START_TS) as usize
}

/// A malformed event, one of several kinds chosen by `i`: wrong types,
/// a missing user, not JSON at all. (Missing optional fields and unknown
/// actions are not malformed: `activity-stats` counts them.)
pub fn malformed_event(i: u64) -> String {
    match i % 5 {
        0 => r#"{"user_id":"oops"}"#.to_owned(),
        1 => r#"{"user_id":1,"action":5,"product_id":101,"product_name":"Merino Socks","price":14.5,"ts":1732460000000}"#.to_owned(),
        2 => r#"{"action":"view","product_id":101}"#.to_owned(),
        3 => "not json at all".to_owned(),
        _ => r#"{"user_id":1,"action":"purchase","product_id":101,"product_name":"Merino Socks","price":"cheap","ts":1}"#.to_owned(),
    }
}

/// Counts per action and revenue of one product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// `view` events.
    pub views: u64,
    /// `click` events.
    pub clicks: u64,
    /// `add_to_cart` events.
    pub add_to_cart: u64,
    /// `purchase` events (each also adds its price to the revenue).
    pub purchases: u64,
    /// Revenue in whole cents (the guest sums cents, so this is exact).
    pub revenue_cents: i64,
}

impl Totals {
    /// Revenue in currency units.
    pub fn revenue(&self) -> f64 {
        self.revenue_cents as f64 / 100.0
    }

    fn record(&mut self, e: &Event) {
        match e.action {
            Action::View => self.views += 1,
            Action::Click => self.clicks += 1,
            Action::AddToCart => self.add_to_cart += 1,
            Action::Purchase => {
                self.purchases += 1;
                self.revenue_cents += to_cents(e.price);
            }
        }
    }

    fn add(&mut self, s: &StatsRecord) {
        self.views += s.views;
        self.clicks += s.clicks;
        self.add_to_cart += s.add_to_cart;
        self.purchases += s.purchases;
        self.revenue_cents += to_cents(s.revenue);
    }
}

/// `price` rounded to whole cents.
pub fn to_cents(price: f64) -> i64 {
    (price * 100.0).round() as i64
}

/// A large-purchase alert `activity-stats` must raise.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedAlert {
    /// Index of the purchase in the event list (map it to a partition and
    /// offset with [`crate::kafka::Produced::positions`]).
    pub index: usize,
    /// The buyer; also the alert record's key.
    pub user_id: u64,
    /// The product bought.
    pub product_id: u64,
    /// Its name, as the event carried it.
    pub product_name: String,
    /// The purchase price in currency units, above the threshold.
    pub price: f64,
}

/// What `activity-stats` must output for a list of events.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Totals per product id.
    pub totals: BTreeMap<u64, Totals>,
    /// Product names by id.
    pub names: BTreeMap<u64, String>,
    /// Purchases priced strictly above the threshold, in event order.
    pub alerts: Vec<ExpectedAlert>,
    /// The guest's `alert_purchase_over` these were computed with, in
    /// currency units.
    pub threshold: f64,
}

impl Expected {
    /// Compute the expected totals and alerts for `events` with the
    /// `alert_purchase_over` threshold.
    pub fn compute(events: &[Event], threshold: f64) -> Expected {
        let mut x = Expected {
            threshold,
            ..Expected::default()
        };
        for (index, e) in events.iter().enumerate() {
            x.totals.entry(e.product_id).or_default().record(e);
            x.names.insert(e.product_id, e.product_name.clone());
            if e.action == Action::Purchase && e.price > threshold {
                x.alerts.push(ExpectedAlert {
                    index,
                    user_id: e.user_id,
                    product_id: e.product_id,
                    product_name: e.product_name.clone(),
                    price: e.price,
                });
            }
        }
        x
    }
}

/// Where a stats record's input batch came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSource {
    /// Input topic of the batch.
    pub topic: String,
    /// Input partition of the batch.
    pub partition: i32,
    /// Offset of the batch's first record.
    pub first_offset: i64,
    /// Offset of the batch's last record (inclusive).
    pub last_offset: i64,
}

/// One record on the stats topic: a product's increments from one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsRecord {
    /// The product; `None` for the unknown product (events without a
    /// `product_id`, as the shop tutorial's producers send them).
    pub product_id: Option<u64>,
    /// Its name, from the batch's last event about it.
    pub product_name: String,
    /// `view` events of the product in the batch.
    pub views: u64,
    /// `click` events of the product in the batch.
    pub clicks: u64,
    /// `add_to_cart` events of the product in the batch.
    pub add_to_cart: u64,
    /// `purchase` events of the product in the batch.
    pub purchases: u64,
    /// Events of the product in the batch with any other action.
    #[serde(default)]
    pub other_actions: u64,
    /// The batch's purchase revenue in currency units, summed in whole
    /// cents by the guest (compare with [`to_cents`]).
    pub revenue: f64,
    /// The input window the increments come from.
    pub source: BatchSource,
}

impl StatsRecord {
    /// The record's key: the product id in decimal, or `unknown`.
    pub fn key(&self) -> String {
        self.product_id
            .map_or_else(|| "unknown".to_owned(), |id| id.to_string())
    }
}

/// Where an alert's input record came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordSource {
    /// Input topic of the purchase event.
    pub topic: String,
    /// Input partition of the purchase event.
    pub partition: i32,
    /// Offset of the purchase event.
    pub offset: i64,
}

/// One record on the alerts topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Always `large_purchase` today.
    pub kind: String,
    /// The event's own id, as it was given (integer or string), if any.
    #[serde(default)]
    pub event_id: serde_json::Value,
    /// The buyer; also the record's key.
    pub user_id: u64,
    /// The product bought; `None` when the event named none.
    pub product_id: Option<u64>,
    /// Its name, as the event carried it.
    pub product_name: String,
    /// The purchase price in currency units.
    pub price: f64,
    /// The deployment's `alert_purchase_over` the price exceeded.
    pub threshold: f64,
    /// The event's `ts`, else its record's timestamp.
    #[serde(default)]
    pub ts: Option<i64>,
    /// The purchase event this alert is about.
    pub source: RecordSource,
}

/// Running totals summed from stats records, ignoring a record seen before
/// for the same input window and product (a redelivered batch).
#[derive(Debug, Clone, Default)]
pub struct StatsSum {
    /// Totals per product id, summed over distinct stats records.
    pub totals: BTreeMap<u64, Totals>,
    /// The latest product name seen per product id.
    pub names: BTreeMap<u64, String>,
    /// How many distinct stats records were summed per product.
    pub records: BTreeMap<u64, usize>,
    /// Totals of the unknown product (events without a `product_id`).
    pub unknown: Totals,
    /// Records ignored as repeats of an already summed window.
    pub duplicates: usize,
    seen: HashSet<(String, i32, i64, i64, Option<u64>)>,
}

impl StatsSum {
    /// Add one stats record; returns false if it repeated a window.
    pub fn add(&mut self, s: &StatsRecord) -> bool {
        let key = (
            s.source.topic.clone(),
            s.source.partition,
            s.source.first_offset,
            s.source.last_offset,
            s.product_id,
        );
        if !self.seen.insert(key) {
            self.duplicates += 1;
            return false;
        }
        let Some(id) = s.product_id else {
            self.unknown.add(s);
            return true;
        };
        self.totals.entry(id).or_default().add(s);
        self.names.insert(id, s.product_name.clone());
        *self.records.entry(id).or_default() += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_plausible() {
        let a = events(7, 20_000);
        assert_eq!(a, events(7, 20_000));
        assert_ne!(a, events(8, 20_000));
        let count = |act| a.iter().filter(|e| e.action == act).count();
        let (v, c, k, p) = (
            count(Action::View),
            count(Action::Click),
            count(Action::AddToCart),
            count(Action::Purchase),
        );
        assert!(v > 3 * c && c > k && k > p && p > 0, "{v} {c} {k} {p}");
        let products: HashSet<u64> = a.iter().map(|e| e.product_id).collect();
        assert_eq!(products.len(), CATALOG.len());
        let x = Expected::compute(&a, 500.0);
        assert!(x.alerts.len() > 10, "{} alerts", x.alerts.len());
        assert!(
            a.iter()
                .all(|e| to_cents(e.price) as f64 / 100.0 == e.price)
        );
    }

    #[test]
    fn sized_json_has_the_exact_size_and_still_parses() {
        for e in events(1, 200) {
            for size in [100, 128, 1024] {
                let mut small = e.clone();
                small.ts = 12_345;
                let bytes = sized_json(&small, size).unwrap();
                assert_eq!(bytes.len(), size);
                let back: Event = serde_json::from_slice(&bytes).unwrap();
                assert_eq!((back.user_id, back.action), (small.user_id, small.action));
            }
        }
    }

    #[test]
    fn stats_sum_ignores_repeated_windows() {
        let s = StatsRecord {
            product_id: Some(1),
            other_actions: 0,
            product_name: "x".into(),
            views: 1,
            clicks: 0,
            add_to_cart: 0,
            purchases: 1,
            revenue: 0.1,
            source: BatchSource {
                topic: "t".into(),
                partition: 0,
                first_offset: 0,
                last_offset: 9,
            },
        };
        let mut sum = StatsSum::default();
        assert!(sum.add(&s));
        assert!(!sum.add(&s));
        assert_eq!(sum.totals[&1].revenue_cents, 10);
        assert_eq!(sum.duplicates, 1);
    }
}
