//! Handles every batch and emits nothing.
//!
//! Benchmarks use it to measure the runner's pure dispatch cost: it does not
//! even look at the records.

use ingesta::prelude::*;

#[derive(Default)]
struct Noop;

impl Handler for Noop {
    fn on_batch(&mut self, _batch: &Batch<'_>) -> Result<()> {
        Ok(())
    }
}

ingesta::export_handler!(Noop);

#[cfg(test)]
mod tests {
    use super::*;
    use ingesta::testing::{self, TestBatch};

    #[test]
    fn emits_nothing() {
        let batch = TestBatch::new("in", 0).record("k", "v").record((), ());
        assert_eq!(testing::run(&mut Noop, &batch), Ok(vec![]));
    }
}
