//! The conformance suite: the same modules written with each SDK (Rust, Go,
//! Python), fed the same input on the real broker, must publish the same
//! bytes and get the same treatment from the runner. The modules and their
//! spec are in `tests/conformance/README.md`; `activity-stats` is the shop
//! example of `guest-examples/<lang>/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ingesta_tests::control::{self, Api, TENANT_A};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner::{self, RunnerProcess};
use ingesta_tests::shop;
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Generous: a Python component compiles in ~10 s on a busy 2-core machine
/// the first time the runner sees it.
const TIMEOUT: Duration = Duration::from_secs(180);
const LANGS: [&str; 3] = ["rust", "go", "python"];

/// The module `name` written with `lang`'s SDK.
fn module(lang: &str, name: &str) -> Result<PathBuf> {
    match (lang, name) {
        ("rust", "activity-stats") => runner::guest_wasm("activity-stats"),
        ("rust", _) => runner::fixture_wasm(&format!("conformance_{name}")),
        _ => runner::built_wasm(lang, name),
    }
}

/// A runner with the control plane (uploads up to 64 MiB: Python
/// components carry CPython), ready, and its API.
fn runner() -> Result<(RunnerProcess, Api)> {
    control::start_runner(64, "")
}

type Head = Vec<(String, Option<Vec<u8>>)>;

/// One record as published: key, value and headers, bytes exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Head,
}

impl Published {
    fn of(m: &OwnedMessage) -> Self {
        let headers = m.headers().map_or_else(Vec::new, |h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        Published {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    fn value_json(&self) -> Result<Value> {
        serde_json::from_slice(self.value.as_deref().unwrap_or_default())
            .with_context(|| format!("not JSON: {self:?}"))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &Option<Vec<u8>>| {
            b.as_deref().map_or("null".to_owned(), |b| {
                format!("{:?}", String::from_utf8_lossy(b))
            })
        };
        write!(f, "key {} value {}", text(&self.key), text(&self.value))
    }
}

/// Fails naming the first record where `got` (from `lang`) differs from
/// the Rust module's `want`.
fn same(what: &str, lang: &str, want: &[Published], got: &[Published]) -> Result<()> {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        ensure!(
            w == g,
            "{what}: record {i} from {lang} differs from Rust's\n  rust:  {w}\n  {lang}: {g}\n  \
             headers rust {:?}\n  headers {lang} {:?}",
            w.headers,
            g.headers
        );
    }
    ensure!(
        want.len() == got.len(),
        "{what}: Rust published {} records, {lang} {}",
        want.len(),
        got.len()
    );
    Ok(())
}

/// Produces `records` (key, value, headers) to partition 0 of `topic`, in
/// order, and waits for every ack.
/// A record to produce: key, value, headers.
type Input<'a> = (Option<&'a str>, &'a str, Vec<(&'a str, Option<&'a str>)>);

fn produce(topic: &str, records: &[Input<'_>]) -> Result<()> {
    let producer: BaseProducer = kafka::client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    for (key, value, headers) in records {
        let mut h = OwnedHeaders::new();
        for (name, v) in headers {
            h = h.insert(Header {
                key: name,
                value: v.map(str::as_bytes),
            });
        }
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .partition(0)
            .payload(*value)
            .headers(h);
        if let Some(k) = key {
            r = r.key(*k);
        }
        producer.send(r).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    let end = kafka::high_watermarks(topic)?;
    ensure!(
        end.get(&0) == Some(&(records.len() as i64)),
        "produced {} records to {topic}, the broker has {end:?}",
        records.len()
    );
    Ok(())
}

/// What must agree between two SDKs' dead letters: the input record, the
/// error class and, if `message`, the error message (the module digest and
/// deployment name differ by construction).
#[derive(Debug, PartialEq, Eq)]
struct DeadLetter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    class: Option<String>,
    message: Option<String>,
}

fn dead_letters(records: &[Published], message: bool) -> Vec<DeadLetter> {
    records
        .iter()
        .map(|p| DeadLetter {
            key: p.key.clone(),
            value: p.value.clone(),
            class: p.header("ingesta.error.class"),
            message: message.then(|| p.header("ingesta.error.message")).flatten(),
        })
        .collect()
}

/// Everything in `topic`, as published.
fn published(topic: &str) -> Result<Vec<Published>> {
    Ok(kafka::read_to_end(topic, TIMEOUT)?
        .iter()
        .map(Published::of)
        .collect())
}

/// The deployment's guest log lines (their messages).
fn guest_log(api: &Api, name: &str) -> Result<Vec<String>> {
    let response = api
        .request(
            Method::GET,
            &format!("/v1/deployments/{name}/logs?limit=1000"),
            Some(TENANT_A.token),
        )
        .send()?;
    ensure!(
        response.status().is_success(),
        "logs of {name}: {}",
        response.status()
    );
    let mut out = Vec::new();
    for line in response.text()?.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        out.push(v["message"].as_str().unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// Stats or alert records grouped by the input partition they came from,
/// in the order they were published (lanes of different partitions
/// interleave differently from run to run; within one they do not).
fn by_source_partition(records: &[Published]) -> Result<BTreeMap<i64, Vec<Published>>> {
    let mut out: BTreeMap<i64, Vec<Published>> = BTreeMap::new();
    for r in records {
        let p = r.value_json()?["source"]["partition"]
            .as_i64()
            .with_context(|| format!("no source.partition in {r}"))?;
        out.entry(p).or_default().push(r.clone());
    }
    Ok(out)
}

/// Events as the shop tutorial's readers send them: its two examples, then
/// every action name it may use, optional fields missing or `null`,
/// `event_id` as an integer and as a string, an unknown action.
const TUTORIAL_EVENTS: [&str; 22] = [
    r#"{"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"}"#,
    r#"{"event_id": 123, "action": "product_added_to_cart", "user_id": 456}"#,
    r#"{"user_id": 1, "action": "page_view", "product_id": 456}"#,
    r#"{"user_id": 1, "action": "product_view", "product_id": 457, "product_name": null}"#,
    r#"{"user_id": 1, "action": "viewed"}"#,
    r#"{"user_id": 1, "action": "clicked", "product_id": 456, "ts": 1732460000123}"#,
    r#"{"user_id": 1, "action": "product_click", "product_id": 457, "product_name": "Botas \"Alpinas\" ñ"}"#,
    r#"{"user_id": 2, "action": "cart_add", "product_id": 458, "price": 12.5}"#,
    r#"{"user_id": 2, "action": "purchased", "product_id": 456, "price": 450}"#,
    r#"{"user_id": 2, "action": "order", "product_id": 458, "price": 401.25, "event_id": "ord-1"}"#,
    r#"{"user_id": 3, "action": "checkout", "price": 999.99, "event_id": 77}"#,
    r#"{"user_id": 3, "action": "checkout", "product_id": 459}"#,
    r#"{"user_id": 3, "action": "purchase", "product_id": 459, "price": null, "ts": null}"#,
    r#"{"user_id": 4, "action": "wishlist", "product_id": 456}"#,
    r#"{"user_id": 4, "action": "View"}"#,
    r#"{"user_id": 4, "action": "refund", "product_id": 101, "product_name": "Merino Socks", "price": 14.5, "ts": 1732460000000}"#,
    r#"{"user_id": 5, "action": "view", "product_id": 460, "event_id": null}"#,
    r#"{"user_id": 5, "action": "click", "product_id": 460, "product_name": "Mochila 30L"}"#,
    r#"{"user_id": 5, "action": "add_to_cart", "product_id": 460}"#,
    r#"{"user_id": 6, "action": "purchase", "product_id": 460, "product_name": "Mochila 30L", "price": 89.9, "event_id": "e-\u00e9"}"#,
    r#"{"user_id": 6, "action": "purchase", "product_id": 460, "price": 1200, "event_id": -5}"#,
    r#"{"user_id": 7, "action": "purchase", "product_id": 461, "product_name": "Saco", "price": 400.0}"#,
];

#[test]
fn activity_stats_publishes_the_same_bytes_in_rust_go_and_python() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [input] = kafka::fresh_topics(["a-conf-activity"], 2)?;

    // Generated shop traffic, names the JSON writers must escape alike
    // (quotes, backslashes, `&`/`<`, non-ASCII) and prices whose sums and
    // roundings differ between careless implementations, then two
    // malformed events.
    let mut events: Vec<(String, String)> = shop::numbered_events(11, 600)
        .iter()
        .map(|e| (e.key(), e.to_json()))
        .collect();
    let tricky = [
        (
            7,
            "purchase",
            9001,
            r#"Crème brûlée \"deluxe\" & <tag> \\ ☕"#,
            1000.005,
        ),
        (
            7,
            "purchase",
            9001,
            r#"Crème brûlée \"deluxe\" & <tag> \\ ☕"#,
            0.1,
        ),
        (8, "purchase", 9001, "Ünïcode name/with slash", 0.2),
        (8, "purchase", 9002, "Tab\\tand\\nnewline", 899.0),
        (9, "add_to_cart", 9002, "x", 19.9),
        (9, "purchase", 9003, "half cent", 2.675),
    ];
    for (i, (user, action, product, name, price)) in tricky.into_iter().enumerate() {
        events.push((
            user.to_string(),
            format!(
                r#"{{"user_id":{user},"action":"{action}","product_id":{product},"product_name":"{name}","price":{price},"ts":{}}}"#,
                1_732_460_000_000_i64 + i as i64
            ),
        ));
    }
    // The tutorial's events (kafka-python's `json.dumps` spacing), every
    // action name it may use, and each optional field missing or null.
    events.extend(
        TUTORIAL_EVENTS
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("t{i}"), (*e).to_owned())),
    );
    events.push(("13".into(), shop::malformed_event(0)));
    events.push(("14".into(), shop::malformed_event(3)));
    kafka::produce(&input, events.iter().map(|(k, v)| (k, v, None)))?;
    let good = events.len() - 2;

    let mut groups = Vec::new();
    let mut topics = BTreeMap::new();
    for lang in LANGS {
        let [stats, alerts, dlq] = kafka::fresh_topics(
            [
                &format!("a-conf-stats-{lang}"),
                &format!("a-conf-alerts-{lang}"),
                &format!("a-conf-dlq-{lang}"),
            ],
            1,
        )?;
        let group = kafka::unique(&format!("a-conf-{lang}"));
        // Batches of 50 records that wait up to 3 s to fill: the input is
        // all there before the deployments start, so every language sees
        // the same batches and the per-batch stats are comparable.
        control::deploy_module(
            &api,
            TENANT_A.token,
            &module(lang, "activity-stats")?,
            json!({
                "name": format!("stats-{lang}"),
                "inputs": [input],
                "group": group,
                "outputs": [stats, alerts, dlq],
                "batch": { "max_records": 50, "max_wait_ms": 3000 },
                "failure": { "dead_letter_topic": dlq, "max_attempts": 2, "backoff_initial_ms": 10 },
                "config": {
                    "stats_topic": stats,
                    "alerts_topic": alerts,
                    "alert_purchase_over": "400",
                },
            }),
        )
        .with_context(|| format!("deploying the {lang} activity-stats"))?;
        groups.push(group);
        topics.insert(lang, (stats, alerts, dlq));
    }
    for group in &groups {
        kafka::wait_until_committed_to_end(group, &input, TIMEOUT)?;
    }

    let mut outputs = BTreeMap::new();
    for (lang, (stats, alerts, dlq)) in &topics {
        let mut dead = published(dlq)?;
        dead.sort();
        outputs.insert(
            *lang,
            (
                by_source_partition(&published(stats)?)?,
                by_source_partition(&published(alerts)?)?,
                dead,
            ),
        );
    }

    // Rust's output is right (so agreeing with it means something): every
    // good event counted once, every large purchase alerted, both bad
    // events dead-lettered as permanent.
    let (stats, alerts, dead) = &outputs["rust"];
    let mut counted = 0;
    let mut unknown_rows = 0;
    for r in stats.values().flatten() {
        let v = r.value_json()?;
        counted += [
            "views",
            "clicks",
            "add_to_cart",
            "purchases",
            "other_actions",
        ]
        .iter()
        .map(|f| v[f].as_u64().unwrap_or(0))
        .sum::<u64>();
        if v["product_id"].is_null() {
            unknown_rows += 1;
        }
    }
    ensure!(
        counted == good as u64,
        "Rust counted {counted} events of {good}"
    );
    ensure!(
        unknown_rows > 0,
        "the tutorial's events without a product_id gave no unknown-product row"
    );
    let purchase = ["purchase", "purchased", "order", "checkout"];
    let large = events[..good]
        .iter()
        .filter_map(|(_, e)| serde_json::from_str::<Value>(e).ok())
        .filter(|e| {
            e["action"].as_str().is_some_and(|a| purchase.contains(&a))
                && e["price"].as_f64().unwrap_or(0.0) > 400.0
        })
        .count();
    let alerted: usize = alerts.values().map(Vec::len).sum();
    ensure!(
        alerted == large && large > 0,
        "Rust alerted {alerted} of {large} large purchases"
    );
    ensure!(
        dead.len() == 2,
        "Rust dead-lettered {} records, not 2",
        dead.len()
    );
    for d in dead {
        ensure!(
            d.header("ingesta.error.class").as_deref() == Some("permanent"),
            "dead letter {d} is not classed permanent: {:?}",
            d.headers
        );
    }

    for lang in ["go", "python"] {
        let (s, a, d) = &outputs[lang];
        for (p, want) in stats {
            same(
                &format!("stats from partition {p}"),
                lang,
                want,
                s.get(p).map_or(&[], Vec::as_slice),
            )?;
        }
        ensure!(
            s.len() == stats.len(),
            "{lang} stats cover partitions {:?}",
            s.keys()
        );
        for (p, want) in alerts {
            same(
                &format!("alerts from partition {p}"),
                lang,
                want,
                a.get(p).map_or(&[], Vec::as_slice),
            )?;
        }
        ensure!(
            a.len() == alerts.len(),
            "{lang} alerts cover partitions {:?}",
            a.keys()
        );
        // The dead letters are the input records: same key and value; the
        // class must match, the message wording is the SDK's.
        ensure!(
            dead_letters(d, false) == dead_letters(dead, false),
            "{lang} dead letters differ from Rust's:\n  rust: {:?}\n  {lang}: {:?}",
            dead.iter().map(ToString::to_string).collect::<Vec<_>>(),
            d.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[test]
fn echo_accessors_emits_errors_and_logs_behave_the_same_in_every_sdk() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [input] = kafka::fresh_topics(["a-conf-echo-in"], 1)?;
    produce(
        &input,
        &[
            (
                Some("k1"),
                "hello",
                vec![("h1", Some("v1")), ("empty", None)],
            ),
            (None, "log:hi from the conformance test", vec![]),
            (Some("k3"), "permanent:bad input", vec![("h", Some("x"))]),
            (Some("k4"), "retryable:r1:2", vec![]),
            (
                Some("k5"),
                "plain ünïcode ✓ & <b> \"q\" \\ /",
                vec![("dup", Some("1")), ("dup", Some("2"))],
            ),
        ],
    )?;
    let mut topics = BTreeMap::new();
    for lang in LANGS {
        let [out, dlq] = kafka::fresh_topics(
            [
                &format!("a-conf-echo-{lang}"),
                &format!("a-conf-echo-dlq-{lang}"),
            ],
            1,
        )?;
        let group = kafka::unique(&format!("a-conf-echo-{lang}"));
        control::deploy_module(
            &api,
            TENANT_A.token,
            &module(lang, "echo")?,
            json!({
                "name": format!("echo-{lang}"),
                "inputs": [input],
                "group": group,
                "outputs": [out, dlq],
                "failure": { "dead_letter_topic": dlq, "max_attempts": 5, "backoff_initial_ms": 10 },
                "config": { "output_topic": out, "greeting": "grüß dich" },
            }),
        )
        .with_context(|| format!("deploying the {lang} echo"))?;
        topics.insert(lang, (group, out, dlq));
    }
    let mut outputs = BTreeMap::new();
    for (lang, (group, out, dlq)) in &topics {
        kafka::wait_until_committed_to_end(group, &input, TIMEOUT)?;
        outputs.insert(*lang, (published(out)?, published(dlq)?));
    }

    // Rust's echo is right: four records echoed in order with key,
    // headers (a null header value kept) and the greeting; the retryable
    // one after two failures; the permanent one dead-lettered.
    let (echoed, dead) = &outputs["rust"];
    let values: Vec<String> = echoed
        .iter()
        .map(|r| {
            Ok(r.value_json()?["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        })
        .collect::<Result<_>>()?;
    ensure!(
        values
            == [
                "hello",
                "log:hi from the conformance test",
                "retryable:r1:2",
                "plain ünïcode ✓ & <b> \"q\" \\ /"
            ],
        "Rust echoed {values:?}"
    );
    ensure!(
        echoed[0].headers
            == [
                ("h1".to_owned(), Some(b"v1".to_vec())),
                ("empty".to_owned(), None),
                (
                    "echo-greeting".to_owned(),
                    Some("grüß dich".as_bytes().to_vec())
                ),
            ],
        "Rust's first echo has headers {:?}",
        echoed[0].headers
    );
    ensure!(echoed[1].key.is_none(), "a null key stays null");
    ensure!(
        dead.len() == 1
            && dead[0].key.as_deref() == Some(b"k3")
            && dead[0].header("ingesta.error.class").as_deref() == Some("permanent"),
        "Rust dead-lettered {dead:?}"
    );
    let scrape = metrics::scrape(&api)?;
    let retries = |lang: &str| {
        scrape.sum(
            "ingesta_retries_total",
            &[("deployment", &format!("tenant-a/echo-{lang}"))],
        )
    };
    ensure!(
        retries("rust") >= 2.0,
        "Rust's echo was retried {} times",
        retries("rust")
    );

    for lang in ["go", "python"] {
        let (e, d) = &outputs[lang];
        same("echoed records", lang, echoed, e)?;
        // Same record, class and message; only the module digest differs.
        ensure!(
            dead_letters(d, true) == dead_letters(dead, true),
            "{lang} dead letters differ from Rust's: {d:?} vs {dead:?}"
        );
        ensure!(
            retries(lang) == retries("rust"),
            "{lang}'s echo was retried {} times, Rust's {}",
            retries(lang),
            retries("rust")
        );
    }
    for lang in LANGS {
        let log = guest_log(&api, &format!("echo-{lang}"))?;
        ensure!(
            log.iter().any(|l| l == "hi from the conformance test"),
            "{lang}'s guest log lacks the logged line: {log:?}"
        );
    }
    Ok(())
}

#[test]
fn beacon_requests_and_ticks_publish_the_same_records_in_every_sdk() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let body = r#"{"page":"/cart","items":[1,2],"note":"ünïcode"}"#;
    let mut seen = BTreeMap::new();
    for lang in LANGS {
        let [topic] = kafka::fresh_topics([&format!("a-conf-beacon-{lang}")], 1)?;
        let name = format!("beacon-{lang}");
        control::deploy_module(
            &api,
            TENANT_A.token,
            &module(lang, "beacon")?,
            json!({
                "name": name,
                "outputs": [topic],
                "config": { "topic": topic },
                "schedule": { "interval_ms": 300 },
            }),
        )
        .with_context(|| format!("deploying the {lang} beacon"))?;
        let response = api
            .request(
                Method::POST,
                &format!("/v1/ingest/{name}"),
                Some(TENANT_A.token),
            )
            .header("x-key", "user-7")
            .body(body)
            .send()?;
        let status = response.status();
        let answer = response.bytes()?.to_vec();
        ensure!(
            status == StatusCode::ACCEPTED,
            "{lang} beacon answered {status}"
        );

        // The request's record, and ticks 0 and 1 in order.
        let deadline = Instant::now() + TIMEOUT;
        let records = loop {
            let records = published(&topic)?;
            if records
                .iter()
                .filter(|r| r.key.as_deref() == Some(b"tick"))
                .count()
                >= 2
            {
                break records;
            }
            if Instant::now() > deadline {
                bail!("{lang} beacon published {records:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let requested: Vec<&Published> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(b"user-7"))
            .collect();
        ensure!(
            requested.len() == 1 && requested[0].value.as_deref() == Some(body.as_bytes()),
            "{lang} beacon published {requested:?} for the request"
        );
        let ticks: Vec<&Published> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(b"tick"))
            .take(2)
            .collect();
        ensure!(
            ticks[0].value.as_deref() == Some(b"tick 0")
                && ticks[1].value.as_deref() == Some(b"tick 1"),
            "{lang} beacon's first ticks: {ticks:?}"
        );
        seen.insert(
            lang,
            (status, answer, requested[0].clone(), ticks[0].clone()),
        );
    }
    for lang in ["go", "python"] {
        ensure!(
            seen[lang] == seen["rust"],
            "{lang} beacon differs from Rust's: {:?} vs {:?}",
            seen[lang],
            seen["rust"]
        );
    }
    Ok(())
}
