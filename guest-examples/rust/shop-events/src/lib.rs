//! The shop scenario's events: their model and a deterministic generator.
//!
//! This crate owns what a `user-activity` [`Event`] is (its fields and exact
//! JSON form), the shop's fixed [`CATALOG`] of 50 products, and
//! [`Generator`], which makes a plausible, endless stream of events from a
//! seed: mostly views, fewer clicks, fewer cart additions and a few
//! purchases, skewed towards popular products, of which a handful cost more
//! than 500.00 (so large-purchase alerts happen).
//!
//! It is a plain library with no dependency on the SDK, so the same stream
//! comes out of the `shop-generator` guest (in wasm) and the test kit,
//! benchmark and demo tools (natively): a seed always means the same events.

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

impl Action {
    /// Every action's name as it is written in JSON, in schema order.
    pub const NAMES: [&'static str; 4] = ["view", "click", "add_to_cart", "purchase"];

    /// Other names for the actions, as the shop tutorial our users come
    /// from (and its readers' producers) write them.
    pub const ALIASES: [(&'static str, Action); 11] = [
        ("page_view", Action::View),
        ("product_view", Action::View),
        ("viewed", Action::View),
        ("clicked", Action::Click),
        ("product_click", Action::Click),
        ("added_to_cart", Action::AddToCart),
        ("product_added_to_cart", Action::AddToCart),
        ("cart_add", Action::AddToCart),
        ("purchased", Action::Purchase),
        ("order", Action::Purchase),
        ("checkout", Action::Purchase),
    ];

    /// The action `name` stands for, by its own name or an alias
    /// (case-sensitive); `None` for anything else.
    pub fn named(name: &str) -> Option<Action> {
        // A match rather than a scan of NAMES and ALIASES: it runs once per
        // record in the guests. The test below keeps the two in step.
        Some(match name {
            "view" | "page_view" | "product_view" | "viewed" => Action::View,
            "click" | "clicked" | "product_click" => Action::Click,
            "add_to_cart" | "added_to_cart" | "product_added_to_cart" | "cart_add" => {
                Action::AddToCart
            }
            "purchase" | "purchased" | "order" | "checkout" => Action::Purchase,
            _ => return None,
        })
    }

    /// The action's name as written in JSON.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `value` as JSON, cut to 40 characters, for error messages that quote
/// what a producer sent.
pub fn excerpt(value: &serde_json::Value) -> String {
    const MAX: usize = 40;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The first way `event` breaks the event contract the examples share
/// (guest-examples/rust/activity-stats/README.md), checking fields in
/// schema order: a required field missing, a field of the wrong type, a
/// negative price. `None` when it keeps it.
pub fn contract_problem(event: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    use serde_json::Value;
    type Valid = fn(&Value) -> bool;
    // (field, required, valid, what it must be)
    let fields: [(&str, bool, Valid, &str); 7] = [
        (
            "user_id",
            true,
            |v| v.as_u64().is_some(),
            "a non-negative integer",
        ),
        ("action", true, Value::is_string, "a string"),
        (
            "product_id",
            false,
            |v| v.as_u64().is_some(),
            "a non-negative integer",
        ),
        ("product_name", false, Value::is_string, "a string"),
        ("price", false, Value::is_number, "a number"),
        (
            "ts",
            false,
            |v| v.as_i64().is_some(),
            "an integer (milliseconds since the epoch)",
        ),
        (
            "event_id",
            false,
            |v| v.as_i64().is_some() || v.is_string(),
            "an integer or a string",
        ),
    ];
    for (name, required, valid, expected) in fields {
        match event.get(name) {
            None if required => return Some(format!("missing field {name}")),
            None => {}
            Some(Value::Null) if !required => {}
            Some(v) if !valid(v) => {
                return Some(format!(
                    "field {name} must be {expected}, got {}",
                    excerpt(v)
                ));
            }
            Some(v) => {
                if let Some(price) = v.as_f64().filter(|p| name == "price" && *p < 0.0) {
                    return Some(format!("field price must not be negative, got {price}"));
                }
            }
        }
    }
    None
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
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
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
    /// The last event's timestamp; each event adds a random gap to it.
    ts: i64,
    users: u64,
    /// Set by [`set_clock`](Self::set_clock): the next event is stamped
    /// with `ts` as it is, without a gap.
    clock_set: bool,
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
            clock_set: false,
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

    /// Moves the clock to `ts` (ms since the epoch): the next event is
    /// stamped exactly `ts`, later ones count on from it with the usual
    /// random gaps. A live generator calls this with wall-clock time.
    ///
    /// Only timestamps change: the random draws are the same, so a seed
    /// still yields the same users, actions and products.
    pub fn set_clock(&mut self, ts: i64) {
        self.ts = ts;
        self.clock_set = true;
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
        // The gap is drawn even after `set_clock`, to keep the stream.
        let gap = r.below(100) as i64;
        if !std::mem::take(&mut self.clock_set) {
            self.ts += gap;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_knows_every_name_and_alias_and_nothing_else() {
        for (i, name) in Action::NAMES.iter().enumerate() {
            assert_eq!(Action::named(name).map(|a| a as usize), Some(i), "{name}");
        }
        for (alias, action) in Action::ALIASES {
            assert_eq!(Action::named(alias), Some(action), "{alias}");
        }
        for other in ["View", "refund", "", "add-to-cart"] {
            assert_eq!(Action::named(other), None, "{other:?}");
        }
    }

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
        assert_eq!(e.key(), "123");
        let back: Event = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_seed_always_means_the_same_events() {
        // Pinned: tests, benchmarks and the demo rely on this exact stream.
        assert_eq!(
            events(42, 2).iter().map(Event::to_json).collect::<Vec<_>>(),
            [
                r#"{"user_id":765,"action":"view","product_id":101,"product_name":"Merino Socks","price":14.5,"ts":1732460000058}"#,
                r#"{"user_id":909,"action":"view","product_id":137,"product_name":"Power Bank","price":34.99,"ts":1732460000083}"#,
            ]
        );
        let digest = events(99, 100_000).iter().fold(0u64, |h, e| {
            h.wrapping_mul(31)
                .wrapping_add(e.user_id ^ e.product_id ^ e.ts as u64)
        });
        assert_eq!(digest, 18_413_568_008_811_616_284);
        assert_eq!(events(7, 1000), events(7, 1000));
        assert_ne!(events(7, 1000), events(8, 1000));
    }

    #[test]
    fn users_and_start_ts_shape_the_stream() {
        let mut g = Generator::new(3).users(10).start_ts(1_000);
        let batch = g.take_events(500);
        assert!(batch.iter().all(|e| (1..=10).contains(&e.user_id)));
        assert!(batch.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(batch[0].ts >= 1_000 && batch[0].ts < 1_100);
        assert!(batch.iter().all(|e| product(e.product_id).is_some()));
    }

    #[test]
    fn set_clock_stamps_the_next_event_exactly_and_keeps_the_stream() {
        let plain = events(5, 3);
        let mut g = Generator::new(5);
        g.set_clock(2_000_000_000_000);
        let first = g.event();
        let second = g.event();
        assert_eq!(first.ts, 2_000_000_000_000);
        assert!((0..100).contains(&(second.ts - first.ts)));
        g.set_clock(3_000_000_000_000);
        let third = g.event();
        assert_eq!(third.ts, 3_000_000_000_000);
        for (clocked, plain) in [first, second, third].iter().zip(&plain) {
            assert_eq!(
                (clocked.user_id, clocked.action, clocked.product_id),
                (plain.user_id, plain.action, plain.product_id)
            );
        }
    }

    #[test]
    fn the_catalog_has_unique_ids_and_a_few_expensive_products() {
        let mut ids: Vec<u64> = CATALOG.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len());
        let expensive = CATALOG.iter().filter(|p| p.price_cents > 50_000).count();
        assert_eq!(expensive, 6);
        assert_eq!(product(456).map(Product::price), Some(19.9));
        assert!(product(1).is_none());
    }
}
