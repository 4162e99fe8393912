//! The shop scenario shared by tests, benchmarks and the demo.
//!
//! [`Generator`] makes a deterministic stream of shop [`Event`]s from a seed:
//! mostly views, fewer clicks, fewer cart additions and a few purchases, over
//! a fixed [`CATALOG`] of 50 products of which a handful cost more than
//! 500.00 (so large-purchase alerts happen). [`Expected`] computes what the
//! `activity-stats` guest must output for a list of events, and
//! [`StatsRecord`] / [`AlertRecord`] parse what it did output.
//!
//! The guest's contract (see `guest-examples/rust/activity-stats`): per
//! batch, one stats record per product touched carrying that batch's
//! *increments* (revenue summed in whole cents), and one alert per purchase
//! priced strictly above `alert_purchase_over`.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// What a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    View,
    Click,
    AddToCart,
    Purchase,
}

/// One event on the `user-activity` topic. Serializes exactly as
/// `{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub user_id: u64,
    pub action: Action,
    pub product_id: u64,
    pub product_name: String,
    pub price: f64,
    pub ts: i64,
}

impl Event {
    /// The event as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// The Kafka key events are produced with: the user id, so one user's
    /// events stay in order on one partition.
    pub fn key(&self) -> String {
        self.user_id.to_string()
    }

    /// The event as JSON of exactly `size` bytes, for benchmarks: padded
    /// with an extra `"pad"` field (which consumers ignore) or, when that
    /// does not fit, with spaces; if the event is too long even without
    /// padding, its product name is shortened. Fails if it cannot fit.
    pub fn to_json_sized(&self, size: usize) -> Result<Vec<u8>> {
        const PAD_FIELD: usize = r#","pad":"""#.len();
        let mut event = self.clone();
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
}

/// A product of the shop's fixed catalog.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub id: u64,
    pub name: &'static str,
    /// The price in whole cents.
    pub price_cents: i64,
}

impl Product {
    /// The price in currency units, e.g. `19.9`.
    pub fn price(&self) -> f64 {
        self.price_cents as f64 / 100.0
    }
}

macro_rules! catalog {
    ($(($id:expr, $name:expr, $cents:expr)),* $(,)?) => {
        [$(Product { id: $id, name: $name, price_cents: $cents }),*]
    };
}

/// The shop's 50 products, most popular first. Six cost more than 500.00.
pub const CATALOG: [Product; 50] = catalog![
    (456, "Trekking T-shirt", 1990),
    (101, "Merino Socks", 1450),
    (102, "Water Bottle 1L", 1299),
    (103, "Trail Running Shoes", 12995),
    (104, "Rain Jacket", 8900),
    (105, "Headlamp 300lm", 3499),
    (106, "Buff Neck Gaiter", 1599),
    (107, "Hiking Cap", 2250),
    (108, "Trekking Backpack", 89900),
    (109, "Fleece Pullover", 5995),
    (110, "Camping Mug", 990),
    (111, "Hiking Boots", 17900),
    (112, "Softshell Pants", 7450),
    (113, "Dry Bag 20L", 2199),
    (114, "Sunglasses", 4999),
    (115, "Trekking Poles", 6990),
    (116, "Insect Repellent", 799),
    (117, "First Aid Kit", 2995),
    (118, "Sleeping Bag -5C", 54900),
    (119, "Down Jacket", 24900),
    (120, "Gaiters", 3450),
    (121, "Compass", 1890),
    (122, "Map Case", 1250),
    (123, "Camping Stove", 6499),
    (124, "Gas Canister", 650),
    (125, "Titanium Pot", 4290),
    (126, "Spork", 399),
    (127, "Two-Person Tent", 62900),
    (128, "Sleeping Mat", 8995),
    (129, "Camp Pillow", 2490),
    (130, "Thermal Base Layer", 4590),
    (131, "Gloves", 2790),
    (132, "Beanie", 1890),
    (133, "Sun Cream SPF50", 1199),
    (134, "Energy Bars (12)", 1890),
    (135, "Water Filter", 3990),
    (136, "GPS Watch", 74900),
    (137, "Power Bank", 3499),
    (138, "Carabiner Set", 1490),
    (139, "Climbing Rope 60m", 18900),
    (140, "Harness", 6900),
    (141, "Climbing Helmet", 7990),
    (142, "Chalk Bag", 1790),
    (143, "Belay Device", 2990),
    (144, "Bivy Sack", 15900),
    (145, "Ultralight Tarp", 12900),
    (146, "Satellite Messenger", 52900),
    (147, "Camp Chair", 5490),
    (148, "Lantern", 2990),
    (149, "Expedition Tent", 119900),
];

/// The product with `id`, if it is in [`CATALOG`].
pub fn product(id: u64) -> Option<&'static Product> {
    CATALOG.iter().find(|p| p.id == id)
}

/// SplitMix64: tiny, fast, and stable forever (unlike library RNGs whose
/// streams may change between versions), so a seed always means the same
/// events.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A deterministic, endless stream of plausible shop events.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    ts: i64,
    users: u64,
}

/// The first event's timestamp (2024-11-24, ms since the epoch).
pub const START_TS: i64 = 1_732_460_000_000;

impl Generator {
    /// Events from `seed`, by 5,000 users, starting at [`START_TS`].
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            ts: START_TS,
            users: 5_000,
        }
    }

    /// Use `n` distinct users (ids 1..=n).
    pub fn users(mut self, n: u64) -> Self {
        self.users = n.max(1);
        self
    }

    /// Start timestamps at `ts` (ms since the epoch).
    pub fn start_ts(mut self, ts: i64) -> Self {
        self.ts = ts;
        self
    }

    /// The next event.
    pub fn event(&mut self) -> Event {
        let r = &mut self.rng;
        // ~70% views, ~17% clicks, ~9% cart additions, ~4% purchases.
        let action = match r.below(100) {
            0..70 => Action::View,
            70..87 => Action::Click,
            87..96 => Action::AddToCart,
            _ => Action::Purchase,
        };
        // Popularity skew: squaring a uniform draw favours the front of
        // the catalog while still touching every product.
        let u = r.unit();
        let idx = ((u * u) * CATALOG.len() as f64) as usize;
        let p = CATALOG[idx.min(CATALOG.len() - 1)];
        self.ts += r.below(100) as i64;
        Event {
            user_id: 1 + r.below(self.users),
            action,
            product_id: p.id,
            product_name: p.name.to_owned(),
            price: p.price(),
            ts: self.ts,
        }
    }

    /// The next `n` events.
    pub fn take_events(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.event()).collect()
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        Some(self.event())
    }
}

/// `n` events from `seed` (the usual way tests get their input).
pub fn events(seed: u64, n: usize) -> Vec<Event> {
    Generator::new(seed).take_events(n)
}

/// A malformed event, one of several kinds chosen by `i`: wrong types,
/// missing fields, unknown actions, not JSON at all.
pub fn malformed_event(i: u64) -> String {
    match i % 5 {
        0 => r#"{"user_id":"oops"}"#.to_owned(),
        1 => r#"{"user_id":1,"action":"refund","product_id":101,"product_name":"Merino Socks","price":14.5,"ts":1732460000000}"#.to_owned(),
        2 => r#"{"user_id":1,"action":"view","product_id":101}"#.to_owned(),
        3 => "not json at all".to_owned(),
        _ => r#"{"user_id":1,"action":"purchase","product_id":101,"product_name":"Merino Socks","price":"cheap","ts":1}"#.to_owned(),
    }
}

/// Counts per action and revenue of one product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub views: u64,
    pub clicks: u64,
    pub add_to_cart: u64,
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
    pub user_id: u64,
    pub product_id: u64,
    pub product_name: String,
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
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One record on the stats topic: a product's increments from one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsRecord {
    pub product_id: u64,
    pub product_name: String,
    pub views: u64,
    pub clicks: u64,
    pub add_to_cart: u64,
    pub purchases: u64,
    pub revenue: f64,
    pub source: BatchSource,
}

/// Where an alert's input record came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordSource {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One record on the alerts topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub kind: String,
    pub user_id: u64,
    pub product_id: u64,
    pub product_name: String,
    pub price: f64,
    pub threshold: f64,
    pub source: RecordSource,
}

/// Running totals summed from stats records, ignoring a record seen before
/// for the same input window and product (a redelivered batch).
#[derive(Debug, Clone, Default)]
pub struct StatsSum {
    pub totals: BTreeMap<u64, Totals>,
    /// The latest product name seen per product id.
    pub names: BTreeMap<u64, String>,
    /// How many distinct stats records were summed per product.
    pub records: BTreeMap<u64, usize>,
    /// Records ignored as repeats of an already summed window.
    pub duplicates: usize,
    seen: HashSet<(String, i32, i64, i64, u64)>,
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
        self.totals.entry(s.product_id).or_default().add(s);
        self.names.insert(s.product_id, s.product_name.clone());
        *self.records.entry(s.product_id).or_default() += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_exactly_like_the_documented_example() {
        let e = Event {
            user_id: 123,
            action: Action::AddToCart,
            product_id: 456,
            product_name: "Trekking T-shirt".into(),
            price: 19.9,
            ts: 1_732_460_000_000,
        };
        assert_eq!(
            e.to_json(),
            r#"{"user_id":123,"action":"add_to_cart","product_id":456,"product_name":"Trekking T-shirt","price":19.9,"ts":1732460000000}"#
        );
    }

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
                let bytes = small.to_json_sized(size).unwrap();
                assert_eq!(bytes.len(), size);
                let back: Event = serde_json::from_slice(&bytes).unwrap();
                assert_eq!((back.user_id, back.action), (small.user_id, small.action));
            }
        }
    }

    #[test]
    fn stats_sum_ignores_repeated_windows() {
        let s = StatsRecord {
            product_id: 1,
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
