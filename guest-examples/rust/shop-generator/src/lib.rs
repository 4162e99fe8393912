//! A producer that generates plausible shop traffic on a schedule: each
//! tick emits the next events of a seeded [`shop_events::Generator`] as
//! JSON to one topic, keyed by user, at a configured rate.
//!
//! Per tick it owes `rate * interval_ms / 1000` events. The fraction it
//! cannot emit is carried to the next tick, so over time the rate is exact
//! even when one tick's share is not a whole number (15 events/s every
//! 100 ms emits 1, 2, 1, 2...). Events are stamped with the tick's
//! scheduled time, spread evenly across its interval.
//!
//! See the crate README for config keys and how the demo deploys it.

use ingesta::prelude::*;
use shop_events::Generator;

/// The highest accepted `rate`, in events per second. It keeps the carry
/// arithmetic below in `u64` for any interval a tick can have.
const MAX_RATE: f64 = 1_000_000.0;

/// Rates are kept in thousandths of an event per second, so `rate = 0.5`
/// or `12.25` is exact and the carry stays an integer.
const MILLI: u64 = 1_000;

/// Deployment settings and the event stream, set up on the first tick.
struct State {
    topic: String,
    /// Events per second, in thousandths.
    rate_milli: u64,
    /// Kept from tick to tick: the stream goes on where the last tick left it.
    generator: Generator,
    /// Events owed but not yet emitted, in millionths (thousandths of an
    /// event per second times milliseconds): the fractional carry.
    owed: u64,
}

impl State {
    fn load() -> Result<Self> {
        let rate: f64 = config::parse_or("rate", 200.0)?;
        if !(0.0..=MAX_RATE).contains(&rate) {
            return Err(Error::permanent(format!(
                "config key rate must be a number of events per second from 0 to {MAX_RATE}, got {rate}"
            )));
        }
        let users: u64 = config::parse_or("users", 5_000)?;
        if users == 0 {
            return Err(Error::permanent("config key users must be at least 1"));
        }
        let seed: u64 = config::parse_or("seed", 42)?;
        let topic = config::get_or("topic", "user-activity");
        ingesta::info!("generating {rate} events/s for {users} users to {topic} (seed {seed})");
        Ok(Self {
            topic,
            rate_milli: (rate * MILLI as f64).round() as u64,
            generator: Generator::new(seed).users(users),
            owed: 0,
        })
    }

    /// How many events this tick emits; the remainder waits for the next.
    fn take_due(&mut self, interval_ms: u32) -> u64 {
        // At most 1e9 * 4.3e9 + 1e6: well inside u64.
        self.owed += self.rate_milli * u64::from(interval_ms);
        let due = self.owed / (MILLI * MILLI);
        self.owed %= MILLI * MILLI;
        due
    }
}

#[derive(Default)]
struct ShopGenerator {
    state: Option<State>,
}

impl Producer for ShopGenerator {
    fn on_tick(&mut self, tick: &Tick) -> Result<()> {
        let state = match self.state.take() {
            Some(state) => state,
            None => State::load()?,
        };
        let state = self.state.insert(state);

        let due = state.take_due(tick.interval_ms);
        let interval = i64::from(tick.interval_ms);
        for i in 0..due {
            // i < due, so the stamp stays inside [scheduled, scheduled + interval).
            let offset = (i128::from(i) * i128::from(interval) / i128::from(due)) as i64;
            state.generator.set_clock(tick.scheduled_ms + offset);
            let event = state.generator.event();
            emit_json(&state.topic, event.key(), &event)?;
        }
        Ok(())
    }
}

ingesta::export_producer!(ShopGenerator);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, Emitted};
    use shop_events::Event;

    const T0: i64 = 1_764_000_000_000;

    fn tick(seq: u64, interval_ms: u32) -> Tick {
        Tick {
            seq,
            scheduled_ms: T0 + seq as i64 * i64::from(interval_ms),
            interval_ms,
        }
    }

    /// Events emitted by each of `ticks` consecutive ticks.
    fn counts_per_tick(config: &[(&str, &str)], interval_ms: u32, ticks: u64) -> Vec<usize> {
        testing::set_config(config.iter().copied());
        let mut generator = ShopGenerator::default();
        (0..ticks)
            .map(|seq| {
                testing::run_tick(&mut generator, &tick(seq, interval_ms))
                    .unwrap()
                    .len()
            })
            .collect()
    }

    fn event(emitted: &Emitted) -> Event {
        serde_json::from_slice(emitted.value.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn emits_rate_times_interval_per_tick() {
        assert_eq!(counts_per_tick(&[("rate", "250")], 100, 3), [25, 25, 25]);
        assert_eq!(counts_per_tick(&[], 1_000, 2), [200, 200], "default rate");
    }

    #[test]
    fn carries_the_fraction_so_the_long_run_rate_is_exact() {
        assert_eq!(
            counts_per_tick(&[("rate", "15")], 100, 6),
            [1, 2, 1, 2, 1, 2]
        );
        assert_eq!(counts_per_tick(&[("rate", "0.5")], 1_000, 4), [0, 1, 0, 1]);
        assert_eq!(counts_per_tick(&[("rate", "0")], 1_000, 3), [0, 0, 0]);
        // 7.3 events/s every 250 ms: 1.825 per tick, 73 over 40 ticks (10 s).
        let counts = counts_per_tick(&[("rate", "7.3")], 250, 40);
        assert_eq!(counts.iter().sum::<usize>(), 73);
        assert!(counts.iter().all(|&n| n == 1 || n == 2), "{counts:?}");
    }

    #[test]
    fn emits_shop_events_keyed_by_user_and_stamped_within_the_tick() {
        testing::set_config([("rate", "40"), ("users", "7")]);
        let out = testing::run_tick(&mut ShopGenerator::default(), &tick(3, 500)).unwrap();
        assert_eq!(out.len(), 20);
        let start = T0 + 1_500;
        let mut last_ts = start;
        for emitted in &out {
            assert_eq!(emitted.topic, "user-activity");
            let event = event(emitted);
            assert_eq!(emitted.key_str(), Some(event.user_id.to_string().as_str()));
            assert!((1..=7).contains(&event.user_id));
            assert!(
                event.ts >= last_ts && event.ts < start + 500,
                "{}",
                event.ts
            );
            last_ts = event.ts;
        }
        assert_eq!(event(&out[0]).ts, start);
        assert_eq!(event(&out[1]).ts, start + 25, "evenly spread");
    }

    #[test]
    fn follows_the_seeded_stream_from_tick_to_tick() {
        testing::set_config([("rate", "10"), ("seed", "9"), ("topic", "shop.activity")]);
        let mut generator = ShopGenerator::default();
        let mut out = testing::run_tick(&mut generator, &tick(0, 1_000)).unwrap();
        out.extend(testing::run_tick(&mut generator, &tick(1, 1_000)).unwrap());
        assert!(out.iter().all(|e| e.topic == "shop.activity"));
        let expected = shop_events::events(9, 20);
        let got: Vec<Event> = out.iter().map(event).collect();
        for (got, want) in got.iter().zip(&expected) {
            assert_eq!(
                (got.user_id, got.action, got.product_id, got.price),
                (want.user_id, want.action, want.product_id, want.price)
            );
        }
        assert_eq!(got.len(), expected.len());
    }

    #[test]
    fn bad_config_is_a_permanent_error_naming_the_key() {
        let cases = [
            ("rate", "fast"),
            ("rate", "-5"),
            ("rate", "NaN"),
            ("rate", "2000000"),
            ("users", "0"),
            ("users", "many"),
            ("seed", "-1"),
        ];
        for (key, value) in cases {
            testing::set_config([(key, value)]);
            let err =
                testing::run_tick(&mut ShopGenerator::default(), &tick(0, 1_000)).unwrap_err();
            assert!(!err.is_retryable(), "{key}={value}");
            assert!(
                err.message().starts_with(&format!("config key {key} ")),
                "{key}={value}: {}",
                err.message()
            );
        }
    }

    #[test]
    fn refuses_requests() {
        testing::set_config::<&str, &str>([]);
        let request = Request::new("POST", "/", "{}");
        let err = testing::run_request(&mut ShopGenerator::default(), &request).unwrap_err();
        assert!(!err.is_retryable());
    }
}
