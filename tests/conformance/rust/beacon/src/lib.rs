//! The conformance suite's `beacon` producer (spec:
//! `tests/conformance/README.md`): a request's body published unchanged,
//! keyed by `x-key`; each tick publishes `tick <seq>` keyed `tick`.

use ingesta::prelude::*;

#[derive(Default)]
struct Beacon;

fn topic() -> Result<String> {
    config::get("topic").ok_or_else(|| Error::permanent("config key topic is not set"))
}

impl Producer for Beacon {
    fn on_request(&mut self, request: &Request) -> Result<Response> {
        emit(&topic()?, request.header("x-key"), request.body());
        Ok(Response::accepted())
    }

    fn on_tick(&mut self, tick: &Tick) -> Result<()> {
        emit(&topic()?, "tick", format!("tick {}", tick.seq));
        Ok(())
    }
}

ingesta::export_producer!(Beacon);
