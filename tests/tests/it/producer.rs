//! Producer deployments, end to end on a runner process and the real
//! broker:
//! - 10,000 shop events posted concurrently (bounded, loopback) through the
//!   `shop-ingest` module each land in Kafka exactly once, keyed and so
//!   partitioned by user, and every 202 came after Kafka had them;
//! - invalid payloads are refused with every reason and produce nothing;
//!   callers are checked (tenant token, ingest key, nobody else);
//! - the `shop-generator` module on a schedule produces at its configured
//!   rate, `schedule.max_records_per_second` caps it, a PATCH moves it to
//!   a new topic and interval at the next tick, and pausing stops it;
//! - a module's world must match the deployment's shape;
//! - a hostile producer (loop, panic, errors, an ungranted topic, a slow
//!   call beside a full pool) gets the matching status, publishes nothing
//!   of a failed call and keeps serving;
//! - a producer swaps config at the next request, pauses (503 +
//!   `Retry-After`), resumes and rolls back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ingesta_tests::control::{self, Api, TENANT_A, TENANT_B, error_of, upload};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner::{self, RunnerProcess};
use ingesta_tests::shop::{self, Event};
use rdkafka::Message;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A runner with the control plane, ready, and its API.
fn runner() -> Result<(RunnerProcess, Api)> {
    control::start_runner(8, "")
}

/// Uploads guest example `guest` as tenant A and creates a deployment of it
/// from `body` (the module filled in).
fn deploy(api: &Api, guest: &str, body: Value) -> Result<control::DeploymentStatus> {
    control::deploy_module(api, TENANT_A.token, &runner::guest_wasm(guest)?, body)
}

/// POSTs `body` to the deployment's ingest endpoint with `token`.
fn post(api: &Api, name: &str, token: Option<&str>, body: &str) -> Result<(StatusCode, Value)> {
    api.call(
        Method::POST,
        &format!("/v1/ingest/{name}"),
        token,
        Some(body.as_bytes().to_vec()),
    )
}

#[test]
fn ten_thousand_concurrent_events_land_exactly_once_partitioned_by_user() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [topic] = kafka::fresh_topics(["a-activity"], 4)?;
    deploy(
        &api,
        "shop-ingest",
        json!({ "name": "ingest", "outputs": [topic], "config": { "topic": topic } }),
    )?;

    // Every event is told apart by its timestamp.
    const EVENTS: usize = 10_000;
    const CLIENTS: usize = 16;
    let events = shop::numbered_events(7, EVENTS);
    let next = AtomicUsize::new(0);
    let refused: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut refused = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(e) = events.get(i) else {
                            return refused;
                        };
                        match post(&api, "ingest", Some(TENANT_A.token), &e.to_json()) {
                            Ok((StatusCode::ACCEPTED, body)) if body["accepted"] == 1 => {}
                            Ok((status, body)) => {
                                refused.push(format!("event {i}: {status} {body}"))
                            }
                            Err(err) => refused.push(format!("event {i}: {err:#}")),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread panicked"))
            .collect()
    });
    ensure!(
        refused.is_empty(),
        "{} of {EVENTS} requests were not accepted, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );

    // Each 202 came after Kafka acknowledged the record, so the topic holds
    // all of them right away: exactly one record per event.
    let ends = kafka::high_watermarks(&topic)?;
    ensure!(
        ends.values().sum::<i64>() == EVENTS as i64,
        "after {EVENTS} accepted requests the topic holds {ends:?}"
    );
    let records = kafka::read_all(&topic, EVENTS, TIMEOUT)?;
    let mut seen = BTreeSet::new();
    let mut partition_of_user: BTreeMap<String, i32> = BTreeMap::new();
    for m in &records {
        let event: Event = serde_json::from_str(kafka::value_str(m)?)?;
        let i = shop::event_number(&event);
        ensure!(seen.insert(i), "event {i} is in the topic twice");
        ensure!(
            event == events[i],
            "event {i} changed on the way: {event:?}"
        );
        let key = std::str::from_utf8(m.key().context("record without key")?)?.to_owned();
        ensure!(
            key == event.user_id.to_string(),
            "event {i} keyed {key:?}, not by its user"
        );
        let p = *partition_of_user
            .entry(key.clone())
            .or_insert(m.partition());
        ensure!(
            p == m.partition(),
            "user {key}'s events are on partitions {p} and {}",
            m.partition()
        );
    }
    ensure!(seen.len() == EVENTS, "{} distinct events", seen.len());
    ensure!(
        kafka::partitions_of(&records).len() == 4,
        "keyed by user, the events spread over all 4 partitions"
    );

    // The deployment's metrics agree.
    let scrape = metrics::scrape(&api)?;
    let d = [("deployment", "tenant-a/ingest")];
    let published = scrape.sum("ingesta_records_out_total", &d);
    ensure!(
        published == EVENTS as f64,
        "records_out {published}, not {EVENTS}"
    );
    let ok = scrape.sum(
        "ingesta_ingest_requests_total",
        &[("deployment", "tenant-a/ingest"), ("status", "2xx")],
    );
    ensure!(ok == EVENTS as f64, "{ok} requests counted as 2xx");
    Ok(())
}

#[test]
fn invalid_payloads_are_refused_with_reasons_and_produce_nothing() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [topic] = kafka::fresh_topics(["a-activity"], 2)?;
    let key = "ingest-key-for-webhooks";
    deploy(
        &api,
        "shop-ingest",
        json!({
            "name": "hook", "outputs": [topic], "config": { "topic": topic },
            "ingest": { "key_sha256": ingesta_runtime::auth::hash_token(key),
                        "max_body_bytes": 4096 }
        }),
    )?;

    // Two bad events among good ones: every problem is listed, nothing is
    // published (all or nothing per request).
    let good = shop::events(1, 1)[0].to_json();
    let batch = format!(
        r#"[{good}, {{"user_id":"oops","action":"view","product_id":1,"product_name":"x","price":1,"ts":1}}, {good}, {{"user_id":3,"action":"refund","product_id":1,"product_name":"x","price":-2,"ts":1}}]"#
    );
    let (status, body) = post(&api, "hook", Some(key), &batch)?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status} {body}");
    let problems = body["problems"].as_array().context("no problems listed")?;
    let listed: BTreeSet<(u64, String)> = problems
        .iter()
        .map(|p| {
            (
                p["event"].as_u64().unwrap_or(u64::MAX),
                p["field"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(u64, String)> = [(1, "user_id"), (3, "action"), (3, "price")]
        .into_iter()
        .map(|(i, f)| (i, f.to_owned()))
        .collect();
    ensure!(listed == expected, "problems listed: {body}");

    let (status, body) = post(&api, "hook", Some(key), "{not json")?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status} {body}");
    ensure!(
        body.to_string().contains("column"),
        "the parse error says where: {body}"
    );

    // Callers: the key works; a wrong key, no token and the operator do
    // not; tenant B does not see tenant A's deployment.
    let (status, body) = post(&api, "hook", Some("wrong-key"), &good)?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status} {body}");
    let (status, _) = post(&api, "hook", None, &good)?;
    ensure!(status == StatusCode::UNAUTHORIZED, "no token: {status}");
    let (status, body) = post(&api, "hook", Some(TENANT_B.token), &good)?;
    ensure!(status == StatusCode::NOT_FOUND, "tenant B: {status} {body}");
    let (status, _) = post(&api, "hook", Some(control::OPERATOR_TOKEN), &good)?;
    ensure!(status == StatusCode::FORBIDDEN, "operator: {status}");

    // A key picks its deployment on its own, so another tenant cannot
    // claim the same key for a deployment of the same name.
    let [b_topic] = kafka::fresh_topics(["b-activity"], 1)?;
    let module = upload(
        &api,
        TENANT_B.token,
        std::fs::read(runner::guest_wasm("shop-ingest")?)?,
    )?;
    let (status, answer) = api.json(
        Method::POST,
        "/v1/deployments",
        Some(TENANT_B.token),
        &json!({
            "name": "hook", "module": module, "outputs": [b_topic],
            "config": { "topic": b_topic },
            "ingest": { "key_sha256": ingesta_runtime::auth::hash_token(key) }
        }),
    )?;
    ensure!(
        status == StatusCode::CONFLICT && error_of(&answer).contains("ingest.key_sha256"),
        "tenant B reusing tenant A's ingest key: {status} {answer}"
    );

    // A body over ingest.max_body_bytes is refused before the module runs.
    let big = format!("[{}]", vec![good.as_str(); 100].join(","));
    let (status, body) = post(&api, "hook", Some(key), &big)?;
    ensure!(
        status == StatusCode::PAYLOAD_TOO_LARGE,
        "{} bytes: {status} {body}",
        big.len()
    );

    ensure!(
        kafka::total_records(&topic)? == 0,
        "refused requests produced records"
    );
    let (status, body) = post(&api, "hook", Some(key), &good)?;
    ensure!(
        status == StatusCode::ACCEPTED,
        "a good event with the key: {status} {body}"
    );
    ensure!(kafka::total_records(&topic)? == 1, "the good event is in");
    Ok(())
}

#[test]
fn generator_produces_at_its_rate_and_the_cap_holds() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [free, capped] = kafka::fresh_topics(["a-gen", "a-capped"], 2)?;
    // Before the deployments start, so the rates below are upper bounds.
    let started = Instant::now();
    deploy(
        &api,
        "shop-generator",
        json!({
            "name": "gen", "outputs": [free],
            "schedule": { "interval_ms": 100 },
            "config": { "topic": free, "rate": 200 }
        }),
    )?;
    deploy(
        &api,
        "shop-generator",
        json!({
            "name": "capped", "outputs": [capped],
            "schedule": { "interval_ms": 100, "max_records_per_second": 50 },
            "config": { "topic": capped, "rate": 1000 }
        }),
    )?;
    std::thread::sleep(Duration::from_secs(4));
    let (free_n, capped_n) = (kafka::total_records(&free)?, kafka::total_records(&capped)?);
    let scrape = metrics::scrape(&api)?;
    let seconds = started.elapsed().as_secs_f64();

    // Loosely: the deployments start a little after `started` (module
    // upload, creation), and late ticks are not made up.
    let expected = 200.0 * seconds;
    ensure!(
        (free_n as f64) > 0.5 * expected && (free_n as f64) < 1.2 * expected,
        "at 200/s for {seconds:.1} s the generator produced {free_n}"
    );
    // Each capped tick makes 100 records, then waits 2 s: at most 2 ticks
    // in 4 s (plus one in flight) instead of 40.
    ensure!(
        capped_n > 0 && (capped_n as f64) <= 50.0 * seconds + 100.0,
        "capped at 50/s for {seconds:.1} s it produced {capped_n}"
    );
    let one = kafka::read_all(&free, 1, TIMEOUT)?;
    let event: Event = serde_json::from_str(kafka::value_str(&one[0])?)?;
    ensure!(
        one[0].key() == Some(event.user_id.to_string().as_bytes()),
        "generated events are keyed by user"
    );
    let ticks = scrape.sum("ingesta_ticks_total", &[("deployment", "tenant-a/gen")]);
    ensure!(
        ticks > 0.5 * seconds * 10.0 && ticks <= seconds * 10.0 + 1.0,
        "{ticks} ticks of 100 ms in {seconds:.1} s"
    );

    // A swap takes effect at the next tick: a new topic and interval; the
    // old topic stops growing, the new one grows.
    let [moved] = kafka::fresh_topics(["a-moved"], 2)?;
    let (status, answer) = api.json(
        Method::PATCH,
        "/v1/deployments/gen",
        Some(TENANT_A.token),
        &json!({ "outputs": [free, moved], "config": { "topic": moved, "rate": 200 },
                 "schedule": { "interval_ms": 50 } }),
    )?;
    ensure!(status == StatusCode::OK, "patch: {status} {answer}");
    let settled = |topic: &str| -> Result<i64> {
        // Whatever the old revision's tick in flight published lands first.
        std::thread::sleep(Duration::from_millis(300));
        kafka::total_records(topic)
    };
    let (before, moved_before) = (settled(&free)?, kafka::total_records(&moved)?);
    std::thread::sleep(Duration::from_millis(700));
    let (after, moved_after) = (kafka::total_records(&free)?, kafka::total_records(&moved)?);
    ensure!(
        after == before && moved_after > moved_before && moved_before > 0,
        "after the swap: old topic {before} → {after}, new topic {moved_before} → {moved_after}"
    );

    // Pausing stops the schedule.
    let (status, body) = api.call(
        Method::POST,
        "/v1/deployments/gen/pause",
        Some(TENANT_A.token),
        None,
    )?;
    ensure!(status == StatusCode::OK, "pause: {status} {body}");
    let paused_at = kafka::total_records(&moved)?;
    std::thread::sleep(Duration::from_millis(600));
    let later = kafka::total_records(&moved)?;
    ensure!(
        later == paused_at,
        "a paused generator went on: {paused_at} → {later}"
    );
    Ok(())
}

#[test]
fn module_world_and_deployment_shape_must_match() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [topic] = kafka::fresh_topics(["a-shape"], 1)?;
    let producer = upload(
        &api,
        TENANT_A.token,
        std::fs::read(runner::guest_wasm("shop-generator")?)?,
    )?;
    let (status, info) = api.call(
        Method::GET,
        &format!("/v1/modules/{producer}"),
        Some(TENANT_A.token),
        None,
    )?;
    ensure!(
        status == StatusCode::OK && info["world"] == "producer",
        "{status} {info}"
    );
    let consumer = upload(
        &api,
        TENANT_A.token,
        std::fs::read(runner::guest_wasm("identity")?)?,
    )?;
    let cases = [
        (
            json!({ "name": "p", "module": producer, "inputs": [topic], "group": "a-g" }),
            "is a producer",
        ),
        (
            json!({ "name": "c", "module": consumer, "outputs": [topic] }),
            "is a consumer",
        ),
        (
            json!({ "name": "s", "module": producer, "schedule": { "interval_ms": 1 } }),
            "schedule.interval_ms",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) =
            api.json(Method::POST, "/v1/deployments", Some(TENANT_A.token), &body)?;
        let message = error_of(&answer);
        if status != StatusCode::BAD_REQUEST || !message.contains(needle) {
            bail!("{body} answered {status} {answer}; expected 400 naming {needle:?}");
        }
    }
    // A consumer deployment has no ingest endpoint.
    deploy(
        &api,
        "identity",
        json!({ "name": "mirror", "inputs": [topic], "group": kafka::unique("a-grp"),
                "config": { "output_topic": "a-elsewhere" } }),
    )?;
    let (status, body) = post(&api, "mirror", Some(TENANT_A.token), "{}")?;
    ensure!(
        status == StatusCode::NOT_FOUND && error_of(&body).contains("consumer"),
        "ingest into a consumer: {status} {body}"
    );
    Ok(())
}

#[test]
fn a_hostile_producer_publishes_nothing_it_failed_and_keeps_serving() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [topic] = kafka::fresh_topics(["a-hostile"], 1)?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile_producer")?,
        json!({
            "name": "hostile", "outputs": [topic],
            "config": { "output_topic": topic },
            "limits": { "deadline_ms": 1000 },
            "ingest": { "max_concurrency": 1 }
        }),
    )?;

    let cases = [
        ("loop", StatusCode::INTERNAL_SERVER_ERROR, "deadline"),
        ("panic", StatusCode::INTERNAL_SERVER_ERROR, "panic"),
        (
            "retry",
            StatusCode::SERVICE_UNAVAILABLE,
            "asked to fail for now",
        ),
        ("permanent", StatusCode::BAD_REQUEST, "asked to refuse"),
        ("teapot", StatusCode::IM_A_TEAPOT, ""),
        ("forbidden", StatusCode::BAD_REQUEST, "not-granted-topic"),
    ];
    for (marker, want, needle) in cases {
        let response = api
            .request(Method::POST, "/v1/ingest/hostile", Some(TENANT_A.token))
            .body(marker)
            .send()?;
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let text = response.text()?;
        ensure!(
            status == want && text.contains(needle),
            "{marker}: {status} {text}; expected {want} saying {needle:?}"
        );
        ensure!(
            retry_after == (status == StatusCode::SERVICE_UNAVAILABLE),
            "{marker}: Retry-After present: {retry_after}"
        );
    }

    // One request at a time: a second one meanwhile is turned away.
    let (slow, second) = std::thread::scope(|s| {
        let slow = s.spawn(|| post(&api, "hostile", Some(TENANT_A.token), "slow:800"));
        std::thread::sleep(Duration::from_millis(300));
        let second = post(&api, "hostile", Some(TENANT_A.token), "meanwhile");
        (slow.join().expect("client thread panicked"), second)
    });
    let (status, body) = slow?;
    ensure!(status == StatusCode::ACCEPTED, "slow: {status} {body}");
    let (status, body) = second?;
    ensure!(
        status == StatusCode::TOO_MANY_REQUESTS,
        "a second request beside the slow one: {status} {body}"
    );

    let (status, body) = post(&api, "hostile", Some(TENANT_A.token), "good")?;
    ensure!(
        status == StatusCode::ACCEPTED,
        "after all that: {status} {body}"
    );
    let records = kafka::read_to_end(&topic, TIMEOUT)?;
    let values: Vec<&str> = records
        .iter()
        .map(kafka::value_str)
        .collect::<Result<_>>()?;
    ensure!(
        values == ["slow:800", "good"],
        "only the successful calls' records are published: {values:?}"
    );
    let scrape = metrics::scrape(&api)?;
    let d = |class| [("deployment", "tenant-a/hostile"), ("class", class)];
    for (class, n) in [
        ("trap:deadline", 1.0),
        ("trap:panic", 1.0),
        ("retryable", 1.0),
    ] {
        let got = scrape.sum("ingesta_handler_errors_total", &d(class));
        ensure!(got == n, "errors{{class={class}}} = {got}, not {n}");
    }
    Ok(())
}

#[test]
fn a_producer_swaps_pauses_resumes_and_rolls_back() -> Result<()> {
    let (_ingesta, api) = runner()?;
    let [first, second] = kafka::fresh_topics(["a-first", "a-second"], 1)?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile_producer")?,
        json!({
            "name": "swap", "outputs": [first, second],
            "config": { "output_topic": first }
        }),
    )?;
    let send = |value: &str| -> Result<()> {
        let (status, body) = post(&api, "swap", Some(TENANT_A.token), value)?;
        ensure!(status == StatusCode::ACCEPTED, "{value}: {status} {body}");
        Ok(())
    };
    let patch = |body: Value| -> Result<()> {
        let (status, answer) = api.json(
            Method::PATCH,
            "/v1/deployments/swap",
            Some(TENANT_A.token),
            &body,
        )?;
        ensure!(status == StatusCode::OK, "{body}: {status} {answer}");
        Ok(())
    };
    let transition = |action: &str| -> Result<()> {
        let (status, answer) = api.call(
            Method::POST,
            &format!("/v1/deployments/swap/{action}"),
            Some(TENANT_A.token),
            None,
        )?;
        ensure!(status == StatusCode::OK, "{action}: {status} {answer}");
        Ok(())
    };

    send("one")?;
    // A new config takes effect at the next request: revision 2.
    patch(json!({ "config": { "output_topic": second } }))?;
    send("two")?;
    transition("pause")?;
    let response = api
        .request(Method::POST, "/v1/ingest/swap", Some(TENANT_A.token))
        .body("while paused")
        .send()?;
    ensure!(
        response.status() == StatusCode::SERVICE_UNAVAILABLE
            && response.headers().contains_key("retry-after"),
        "paused: {} {:?}",
        response.status(),
        response.text()
    );
    transition("resume")?;
    send("three")?;
    // Back to revision 1's config.
    transition("rollback")?;
    send("four")?;

    let values = |topic: &str| -> Result<Vec<String>> {
        kafka::read_to_end(topic, TIMEOUT)?
            .iter()
            .map(|m| kafka::value_str(m).map(str::to_owned))
            .collect()
    };
    ensure!(
        values(&first)? == ["one", "four"],
        "first: {:?}",
        values(&first)?
    );
    ensure!(
        values(&second)? == ["two", "three"],
        "second: {:?}",
        values(&second)?
    );
    Ok(())
}

/// An outbox with one record (`value`, no key) for `topic`.
fn one_record(topic: &str, value: &str) -> ingesta_runtime::wasm::bindings::Outbox {
    use ingesta_abi::{OutgoingEntry, Span};
    let mut data = Vec::new();
    let value = Span::append(&mut data, value.as_bytes());
    let mut records = Vec::new();
    OutgoingEntry {
        topic: 0,
        key: None,
        value: Some(value),
        header_start: 0,
        header_count: 0,
    }
    .encode(&mut records);
    ingesta_runtime::wasm::bindings::Outbox {
        topics: vec![topic.to_owned()],
        data,
        records,
        headers: Vec::new(),
    }
}

/// An idempotent producer in librdkafka's fatal state refuses every record
/// for good (seen after broker restarts: a sequence desynchronisation). The
/// runner's shared producer replaces such a client at the next publish, so
/// publishing goes on, and counts the replacement.
#[test]
fn a_shared_producer_in_a_fatal_state_is_replaced_and_publishing_goes_on() -> Result<()> {
    use ingesta_runtime::kafka::Producers;
    use ingesta_runtime::telemetry::RunnerMetrics;
    use std::sync::Arc;

    let [topic] = kafka::fresh_topics(["fatal"], 1)?;
    let config = ingesta_runtime::config::Config::parse(&format!(
        "[kafka]\nbootstrap_servers = {}\n",
        runner::toml_str(&kafka::bootstrap())
    ))
    .map_err(anyhow::Error::msg)?;
    let metrics = Arc::new(RunnerMetrics::new());
    let producers = Producers::new(&config.kafka, &metrics)?;
    for (name, producer) in [
        ("outputs", &producers.outputs),
        ("ingest", &producers.ingest),
    ] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let publish = |value: String| {
                let outbox = one_record(&topic, &value);
                async move {
                    tokio::time::timeout(TIMEOUT, async {
                        producer.publish(&[outbox]).await.wait().await
                    })
                    .await
                    .with_context(|| format!("{value}: no acknowledgement within {TIMEOUT:?}"))?
                    .with_context(|| format!("{value}: not published"))
                }
            };
            publish(format!("{name}: before")).await?;
            producer.inject_fatal_error("injected by the test");
            publish(format!("{name}: after the fatal error")).await?;
            publish(format!("{name}: and on")).await
        })?;
        ensure!(
            metrics.producer_replacements(name) == 1,
            "the {name} producer was replaced {} times, expected once",
            metrics.producer_replacements(name)
        );
    }
    let values: Vec<String> = kafka::read_all(&topic, 6, TIMEOUT)?
        .iter()
        .map(|m| kafka::value_str(m).map(str::to_owned))
        .collect::<Result<_>>()?;
    ensure!(
        values
            == [
                "outputs: before",
                "outputs: after the fatal error",
                "outputs: and on",
                "ingest: before",
                "ingest: after the fatal error",
                "ingest: and on",
            ],
        "the topic holds {values:?}"
    );
    Ok(())
}
