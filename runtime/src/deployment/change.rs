//! What going from one spec to another means for a running deployment:
//! the one place that decides what is swapped in at a batch boundary and
//! what needs a restart.

use super::settings::StartPosition;
use super::spec::{Kind, Spec};

/// What a running deployment does to follow a new spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same spec: keep running.
    Nothing,
    /// A new module, outputs, limits, failure policy, config, ingestion
    /// or schedule: swapped in at each partition's next batch (a
    /// producer's next request or tick), nothing lost or handled twice.
    Swap,
    /// New inputs, group or batching, or another kind: drain, commit and
    /// start again with a new consumer.
    Restart,
    /// Move the group to this position (even backwards) and start there.
    Replay(StartPosition),
}

/// What following `new` from `old` means, with `replay` asked for.
pub fn change(old: &Spec, new: &Spec, replay: Option<StartPosition>) -> Change {
    if let Some(from) = replay {
        return Change::Replay(from);
    }
    if old == new {
        return Change::Nothing;
    }
    match (&old.kind, &new.kind) {
        (Kind::Consumer(a), Kind::Consumer(b))
            if a.inputs == b.inputs && a.group == b.group && a.batch == b.batch =>
        {
            // `start` matters only when a group is new or replayed.
            Change::Swap
        }
        (Kind::Producer(_), Kind::Producer(_)) => Change::Swap,
        _ => Change::Restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn consumer() -> serde_json::Value {
        json!({"module": D1, "inputs": ["in"], "group": "g", "outputs": ["out"]})
    }

    fn producer() -> serde_json::Value {
        json!({"module": D1, "outputs": ["out"], "schedule": {"interval_ms": 100}})
    }

    fn with(mut base: serde_json::Value, key: &str, value: serde_json::Value) -> Spec {
        base[key] = value;
        serde_json::from_value(base).unwrap()
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one table of cases and its check")]
    fn what_each_change_does() {
        let c = || serde_json::from_value::<Spec>(consumer()).unwrap();
        let p = || serde_json::from_value::<Spec>(producer()).unwrap();
        let cases: Vec<(&str, Spec, Spec, Option<StartPosition>, Change)> = vec![
            ("same spec", c(), c(), None, Change::Nothing),
            (
                "module",
                c(),
                with(consumer(), "module", json!(D2)),
                None,
                Change::Swap,
            ),
            (
                "outputs",
                c(),
                with(consumer(), "outputs", json!(["o2"])),
                None,
                Change::Swap,
            ),
            (
                "limits",
                c(),
                with(consumer(), "limits", json!({"memory_mib": 8})),
                None,
                Change::Swap,
            ),
            (
                "failure",
                c(),
                with(consumer(), "failure", json!({"max_attempts": 9})),
                None,
                Change::Swap,
            ),
            (
                "config",
                c(),
                with(consumer(), "config", json!({"k": 1})),
                None,
                Change::Swap,
            ),
            (
                "start alone",
                c(),
                with(consumer(), "start", json!("latest")),
                None,
                Change::Swap,
            ),
            (
                "inputs",
                c(),
                with(consumer(), "inputs", json!(["in2"])),
                None,
                Change::Restart,
            ),
            (
                "group",
                c(),
                with(consumer(), "group", json!("g2")),
                None,
                Change::Restart,
            ),
            (
                "batch",
                c(),
                with(consumer(), "batch", json!({"max_records": 1})),
                None,
                Change::Restart,
            ),
            ("consumer to producer", c(), p(), None, Change::Restart),
            (
                "schedule",
                p(),
                with(producer(), "schedule", json!({"interval_ms": 50})),
                None,
                Change::Swap,
            ),
            (
                "ingest",
                p(),
                with(producer(), "ingest", json!({"max_concurrency": 2})),
                None,
                Change::Swap,
            ),
            (
                "a replay, whatever else",
                c(),
                c(),
                Some(StartPosition::Earliest),
                Change::Replay(StartPosition::Earliest),
            ),
        ];
        for (what, old, new, replay, expected) in cases {
            assert_eq!(change(&old, &new, replay), expected, "{what}");
        }
    }
}
