//! The Kafka tutorial's pipeline end to end, driven by the tutorial's own
//! kafka-python scripts (`deploy/demo/tutorial`, run with the virtualenv
//! `make setup` makes) against `action-enricher` deployed through the
//! control API with a dead-letter topic:
//! - every event `producer.py` sent is read back by `consumer.py` from the
//!   processed topic exactly once (by `event_id`), and nothing else is
//!   there;
//! - each matches its input record field by field: the action under the
//!   shop's name with `action_as_sent` for an alias, its `category`,
//!   `product_name` and `ts` filled in where missing, `event_id` kept or
//!   derived from the record, `source`, keyed by user;
//! - the unreadable record is in the dead-letter topic as a permanent
//!   error saying why, and the deployment is still running.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A, wait_status};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde_json::{Map, Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The producer's two tutorial events and 38 generated ones: every shape
/// it makes, several times over.
const EVENTS: usize = 40;
/// The first of the tutorial's events, exactly as `producer.py` sends it.
const TUTORIAL_CART_EVENT: &str = r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#;
/// Fields the enricher adds or sets; every other field is the input's.
const ENRICHMENT: [&str; 6] = [
    "action_as_sent",
    "category",
    "product_name",
    "ts",
    "event_id",
    "source",
];

/// The tutorial virtualenv's Python, as `deploy/setup.sh` makes it.
fn tutorial_python() -> Result<PathBuf> {
    let cache = match std::env::var_os("INGESTA_CACHE").filter(|c| !c.is_empty()) {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache")
            .join("ingesta"),
    };
    let python = cache.join("python/tutorial-venv/bin/python");
    ensure!(
        python.is_file(),
        "{} is missing: run `make setup` (deploy/setup.sh installs kafka-python into the tutorial's virtualenv)",
        python.display()
    );
    Ok(python)
}

/// Runs the tutorial script `name` with `args`; its stdout if it exits 0
/// within `timeout`, else an error showing both of its outputs.
fn run_script(python: &Path, name: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let dir = tempfile::tempdir()?;
    // Files rather than pipes: nothing to drain while waiting.
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let script = runner::workspace_root()
        .join("deploy/demo/tutorial")
        .join(name);
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(File::create(&err)?)
        .spawn()
        .with_context(|| format!("cannot run {} {}", python.display(), script.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out)?;
    let stderr = std::fs::read_to_string(&err)?;
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => {
            bail!("{name} {args:?} exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
        None => bail!(
            "{name} {args:?} did not finish within {timeout:?} (killed)\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
}

/// What a reader of the processed topic sees for one input record.
struct Input {
    event: Option<Map<String, Value>>,
    timestamp: Option<i64>,
}

/// The input topic's records by (partition, offset).
fn inputs(messages: &[OwnedMessage]) -> BTreeMap<(i32, i64), Input> {
    messages
        .iter()
        .map(|m| {
            let event = m
                .payload()
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                .and_then(|v| v.as_object().cloned());
            let input = Input {
                event,
                timestamp: m.timestamp().to_millis(),
            };
            ((m.partition(), m.offset()), input)
        })
        .collect()
}

/// How often the enricher filled something in, over all events.
#[derive(Default, Debug)]
struct Filled {
    renamed: usize,
    product_names: usize,
    timestamps: usize,
    event_ids: usize,
}

/// Checks `out` (a processed event with its `key`) against the input
/// record its `source` names: every input field kept, the enrichment as
/// `action-enricher`'s README says.
fn check_enriched(
    out: &Value,
    key: &Value,
    topic: &str,
    inputs: &BTreeMap<(i32, i64), Input>,
    filled: &mut Filled,
) -> Result<()> {
    let source = &out["source"];
    let (Some(partition), Some(offset)) = (source["partition"].as_i64(), source["offset"].as_i64())
    else {
        bail!("no source: {out}");
    };
    ensure!(source["topic"] == topic, "source topic: {out}");
    let at = (i32::try_from(partition)?, offset);
    let input = inputs
        .get(&at)
        .with_context(|| format!("no input at {at:?}: {out}"))?;
    let event = input
        .event
        .as_ref()
        .with_context(|| format!("an unreadable input was enriched: {out}"))?;
    let fields = out.as_object().context("not an object")?;

    for (name, value) in event {
        if name == "action" {
            continue;
        }
        ensure!(fields.get(name) == Some(value), "{name} not kept: {out}");
    }
    for name in fields.keys() {
        ensure!(
            event.contains_key(name) || ENRICHMENT.contains(&name.as_str()),
            "unexpected field {name}: {out}"
        );
    }
    ensure!(
        *key == json!(event["user_id"].as_u64().context("user_id")?.to_string()),
        "key {key}: {out}"
    );

    let sent = event["action"].as_str().context("action")?;
    let named = shop_events::Action::named(sent);
    let canonical: &str = named.map_or(sent, |a| a.name());
    ensure!(out["action"] == canonical, "action: {out}");
    if canonical == sent {
        ensure!(
            fields.get("action_as_sent").is_none(),
            "action_as_sent: {out}"
        );
    } else {
        ensure!(out["action_as_sent"] == sent, "action_as_sent: {out}");
        filled.renamed += 1;
    }
    let category = match named {
        Some(shop_events::Action::View | shop_events::Action::Click) => "browse",
        Some(shop_events::Action::AddToCart) => "cart",
        Some(shop_events::Action::Purchase) => "purchase",
        None => "other",
    };
    ensure!(out["category"] == category, "category: {out}");

    match (event.get("product_name"), event.get("product_id")) {
        (None, Some(id)) => {
            ensure!(
                out["product_name"] == json!(id.to_string()),
                "product_name: {out}"
            );
            filled.product_names += 1;
        }
        (None, None) => ensure!(fields.get("product_name").is_none(), "product_name: {out}"),
        (Some(_), _) => {}
    }
    if !event.contains_key("ts") {
        ensure!(
            out["ts"] == json!(input.timestamp),
            "ts should be the record's timestamp {:?}: {out}",
            input.timestamp
        );
        filled.timestamps += 1;
    }
    if !event.contains_key("event_id") {
        let derived = format!("{topic}-{partition}-{offset}");
        ensure!(out["event_id"] == derived, "event_id: {out}");
        filled.event_ids += 1;
    }
    Ok(())
}

#[test]
fn the_tutorials_scripts_run_through_action_enricher() -> Result<()> {
    let python = tutorial_python()?;
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8);
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let token = TENANT_A.token;
    // Tenant A is granted topics and groups starting with `a-`.
    let [input, processed] =
        kafka::fresh_topics(["a-user-actions", "a-processed-user-actions"], 3)?;
    let [dlq] = kafka::fresh_topics(["a-user-actions-dlq"], 1)?;
    control::deploy_module(
        &api,
        token,
        &runner::guest_wasm("action-enricher")?,
        json!({
            "name": "action-enricher",
            "inputs": [input],
            "group": kafka::unique("a-user-action-consumer-group"),
            "outputs": [processed],
            "config": { "output_topic": processed },
            "failure": { "dead_letter_topic": dlq },
        }),
    )?;
    wait_status(&api, token, "action-enricher", "running", TIMEOUT, |s| {
        s.state == State::Running
    })?;
    ingesta.wait_for_log("partitions assigned", TIMEOUT)?;

    // The tutorial's producer: its two events, 38 generated ones, one
    // unreadable record.
    let id_prefix = kafka::unique("tutorial");
    let bootstrap = kafka::bootstrap();
    let count = EVENTS.to_string();
    let sent = run_script(
        &python,
        "producer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            &input,
            "--count",
            &count,
            "--bad",
            "1",
            "--rate",
            "0",
            "--seed",
            "18",
            "--id-prefix",
            &id_prefix,
        ],
        TIMEOUT,
    )?;
    ensure!(
        sent.contains(&format!(
            "done: {EVENTS} events and 1 unreadable records sent"
        )),
        "producer: {sent}"
    );

    // The tutorial's consumer, in a group of its own, prints each
    // processed record as JSON.
    let consumed = run_script(
        &python,
        "consumer.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            &processed,
            "--group",
            &kafka::unique("tutorial-consumer"),
            "--json",
            "--max-records",
            &count,
            "--timeout",
            "60",
        ],
        TIMEOUT + Duration::from_secs(30),
    )?;

    let sent_records = kafka::read_to_end(&input, TIMEOUT)?;
    ensure!(
        sent_records.len() == EVENTS + 1,
        "input records: {}",
        sent_records.len()
    );
    let inputs = inputs(&sent_records);
    let mut filled = Filled::default();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for line in consumed.lines() {
        let record: Value =
            serde_json::from_str(line).with_context(|| format!("consumer line: {line}"))?;
        ensure!(record["topic"] == processed.as_str(), "{record}");
        let out = &record["value"];
        check_enriched(out, &record["key"], &input, &inputs, &mut filled)?;
        let id = out["event_id"].to_string();
        *ids.entry(id.clone()).or_default() += 1;
        by_id.insert(id, out.clone());
    }

    // Every event exactly once: the generated ones by their ids, the
    // tutorial's by theirs (123, and one derived from its record).
    let (cart_at, _) = inputs
        .iter()
        .find(|(_, i)| {
            i.event.as_ref().map(|e| Value::Object(e.clone()))
                == serde_json::from_str(TUTORIAL_CART_EVENT).ok()
        })
        .context("the tutorial's cart event is not in the input topic")?;
    let cart_id = json!(format!("{input}-{}-{}", cart_at.0, cart_at.1)).to_string();
    let expected: BTreeSet<String> = (3..=EVENTS)
        .map(|n| json!(format!("{id_prefix}-{n}")).to_string())
        .chain([cart_id.clone(), "123".to_owned()])
        .collect();
    let seen: BTreeSet<String> = ids.keys().cloned().collect();
    ensure!(
        seen == expected,
        "missing: {:?}; unexpected: {:?}",
        expected.difference(&seen).collect::<Vec<_>>(),
        seen.difference(&expected).collect::<Vec<_>>()
    );
    let repeated: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        repeated.is_empty(),
        "events read more than once: {repeated:?}"
    );

    // The tutorial's two events, canonicalised; every kind of filling-in
    // happened.
    let cart = &by_id[&cart_id];
    ensure!(
        cart["action"] == "add_to_cart"
            && cart["action_as_sent"] == "added_to_cart"
            && cart["category"] == "cart"
            && cart["product_name"] == "Camiseta de Trekking",
        "the tutorial's cart event: {cart}"
    );
    let second = &by_id["123"];
    ensure!(
        second["action"] == "add_to_cart"
            && second["action_as_sent"] == "product_added_to_cart"
            && second["user_id"] == 456
            && second.get("product_name").is_none(),
        "the tutorial's event without a product: {second}"
    );
    ensure!(
        filled.renamed >= 2
            && filled.product_names >= 1
            && filled.timestamps >= 2
            && filled.event_ids == 1,
        "not every enrichment was exercised: {filled:?}"
    );

    // Caught up (everything committed) with one dead letter; then the
    // processed topic holds exactly the events, nothing more.
    let status = wait_status(&api, token, "action-enricher", "caught up", TIMEOUT, |s| {
        s.total_lag() == Some(0) && s.counters.dead_lettered >= 1
    })?;
    ensure!(
        status.counters.dead_lettered == 1 && status.state == State::Running,
        "after the run: {status:?}"
    );
    let all_processed = kafka::read_to_end(&processed, TIMEOUT)?;
    ensure!(
        all_processed.len() == EVENTS,
        "processed records: {} (expected {EVENTS})",
        all_processed.len()
    );

    let dead = kafka::read_all(&dlq, 1, TIMEOUT)?;
    ensure!(dead.len() == 1, "dead letters: {}", dead.len());
    let letter = &dead[0];
    let header = |name: &str| {
        letter
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    ensure!(
        letter.payload() == Some(b"not json".as_slice())
            && header("ingesta.source.topic").as_deref() == Some(input.as_str())
            && header("ingesta.error.class").as_deref() == Some("permanent")
            && header("ingesta.error.message")
                .is_some_and(|m| m.starts_with("value is not valid JSON")),
        "the dead letter: {:?} {:?} {:?}",
        letter.payload().map(String::from_utf8_lossy),
        header("ingesta.error.class"),
        header("ingesta.error.message")
    );
    let status = api.status(token, "action-enricher")?;
    ensure!(
        status.state == State::Running,
        "the deployment should still run: {status:?}"
    );

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    kafka::delete_topics(&[&input, &processed, &dlq]);
    Ok(())
}
