//! Topics through ingesta (`ingesta topic ...` and `/v1/topics`) on the
//! real broker, as the tutorial's operator sets them: a tenant creates
//! topics within its `create_topics` grant and maxima, with the tutorial's
//! retention and segment settings; every refusal names the grant, the
//! maximum or both numbers; an alter changes only what it names
//! (incremental); a topic in use cannot be deleted.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_runtime::api::TopicInfo;
use ingesta_tests::control::{self, Api, TENANT_B, error_of};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess, toml_str};
use reqwest::{Method, StatusCode};

const TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "token-of-the-topics-tenant";

#[test]
#[allow(clippy::too_many_lines, reason = "one walk through the topic commands")]
fn a_tenant_manages_its_topics_within_its_grant_and_maxima() -> Result<()> {
    let port = control::free_port()?;
    let prefix = format!("{}-", kafka::unique("t"));
    let p = toml_str(&prefix);
    // Maxima: 4 partitions a topic, 6 in all, 168 h of retention, 10 MB of
    // retention.bytes × partitions in all.
    let config = format!(
        "{}\n[[control.tenant]]\nname = \"topics\"\ntoken_sha256 = \"{}\"\nread_topics = [{p}]\nwrite_topics = [{p}]\ngroups = [{p}]\ncreate_topics = [{p}]\nmax_topic_partitions = 4\nmax_total_partitions = 6\nmax_retention_ms = 604800000\nmax_retention_bytes_total = 10000000\n",
        control::config_toml(port, &control::state_prefix(), 8),
        ingesta_runtime::auth::hash_token(TOKEN)
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let cli = |args: &[&str]| -> Result<(bool, String)> {
        let out = control::cli(api.base(), Some(TOKEN), args)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    };
    let describe = |name: &str| -> Result<TopicInfo> {
        let (ok, text) = cli(&["topic", "describe", name])?;
        ensure!(ok, "describe {name}: {text}");
        serde_json::from_str(&text).with_context(|| format!("describe {name}: {text}"))
    };
    let refused = |args: &[&str], needle: &str| -> Result<()> {
        let (ok, text) = cli(args)?;
        ensure!(
            !ok && text.contains(needle),
            "{args:?} should be refused naming {needle:?}: {text}"
        );
        Ok(())
    };

    // The tutorial's settings: 7 days, bounded bytes, and 100 MiB segments
    // (not the broker's default, so the reset below shows).
    let actions = format!("{prefix}user-actions-topic");
    let (ok, text) = cli(&[
        "topic",
        "create",
        &actions,
        "--partitions",
        "3",
        "--retention-hours",
        "168",
        "--config",
        "segment.bytes=104857600",
        "--config",
        "retention.bytes=1000000",
    ])?;
    ensure!(ok && text.contains("created"), "create: {text}");
    let t = describe(&actions)?;
    ensure!(
        t.partitions == 3
            && t.replication_factor == 1
            && t.configs["retention.ms"] == "604800000"
            && t.configs["segment.bytes"] == "104857600"
            && t.configs["retention.bytes"] == "1000000",
        "as created: {t:?}"
    );
    refused(
        &["topic", "create", &actions, "--partitions", "3"],
        "exists already",
    )?;
    let (ok, text) = cli(&[
        "topic",
        "create",
        &actions,
        "--partitions",
        "3",
        "--if-not-exists",
    ])?;
    ensure!(
        ok && text.contains("left as it is"),
        "--if-not-exists: {text}"
    );

    // Each refusal names what refused it.
    let other = format!("{prefix}other");
    refused(
        &["topic", "create", &other, "--partitions", "5"],
        "5 partitions is over tenant \"topics\"'s maximum of 4",
    )?;
    // `topic create <other>` with these flags, and what the refusal names.
    let creates: [(&[&str], &str); 6] = [
        (
            &["--partitions", "4", "--config", "retention.bytes=1"],
            "max_total_partitions",
        ),
        (
            &["--partitions", "1", "--retention-hours", "200"],
            "max_retention_ms",
        ),
        (
            &["--partitions", "1", "--config", "retention.bytes=8000000"],
            "max_retention_bytes_total",
        ),
        (
            &["--partitions", "1", "--replication-factor", "3"],
            "replication factor 3 needs 3 brokers, and the cluster has 1",
        ),
        (
            &["--partitions", "1", "--config", "min.insync.replicas=2"],
            "min.insync.replicas 2 is more than its replication factor 1",
        ),
        (
            &["--partitions", "1", "--config", "log.retention.hours=168"],
            "cannot be set through ingesta",
        ),
    ];
    for (flags, needle) in creates {
        let args: Vec<&str> = ["topic", "create", other.as_str()]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        refused(&args, needle)?;
    }
    refused(
        &["topic", "create", "a-not-granted", "--partitions", "1"],
        &format!("matches none of its grants [prefix {prefix:?}]"),
    )?;
    ensure!(
        kafka::partitions(&other).map_or(true, |p| p.is_empty()),
        "a refused topic was created"
    );

    // Altering changes only what is named.
    let (ok, text) = cli(&[
        "topic",
        "alter",
        &actions,
        "--config",
        "cleanup.policy=compact,delete",
    ])?;
    ensure!(ok, "alter: {text}");
    let t = describe(&actions)?;
    ensure!(
        t.configs["cleanup.policy"] == "compact,delete"
            && t.configs["retention.ms"] == "604800000"
            && t.configs["segment.bytes"] == "104857600"
            && t.configs["retention.bytes"] == "1000000",
        "an alter of cleanup.policy changed more: {t:?}"
    );
    let (ok, text) = cli(&[
        "topic",
        "alter",
        &actions,
        "--reset",
        "segment.bytes",
        "--partitions",
        "4",
    ])?;
    ensure!(ok, "reset and grow: {text}");
    let t = describe(&actions)?;
    ensure!(
        t.partitions == 4
            // Back to the broker's log.segment.bytes.
            && t.configs["segment.bytes"] != "104857600"
            && t.configs["cleanup.policy"] == "compact,delete",
        "after the reset: {t:?}"
    );
    refused(
        &["topic", "alter", &actions, "--partitions", "2"],
        "can only add partitions",
    )?;
    refused(
        &["topic", "alter", &actions, "--retention-hours", "1000"],
        "max_retention_ms",
    )?;

    // Seen by its tenant, not by another.
    let (ok, text) = cli(&["topic", "ls"])?;
    ensure!(
        ok && text.contains(&actions) && !text.contains("a-not-granted"),
        "ls: {text}"
    );
    let (code, body) = api.call(
        Method::GET,
        &format!("/v1/topics/{actions}"),
        Some(TENANT_B.token),
        None,
    )?;
    ensure!(
        code == StatusCode::NOT_FOUND,
        "tenant B describing it: {code} {body}"
    );

    // In use: not deleted, the deployment named.
    let identity = runner::guest_wasm("identity")?.display().to_string();
    let group = format!("{prefix}g");
    let processed = format!("{prefix}processed-user-actions-topic");
    let (ok, text) = cli(&[
        "topic",
        "create",
        &processed,
        "--partitions",
        "1",
        "--config",
        "retention.bytes=1000000",
    ])?;
    ensure!(ok, "create {processed}: {text}");
    let out_config = format!("output_topic={processed}");
    let (ok, text) = cli(&[
        "deploy",
        "--name",
        "reader",
        "--module",
        &identity,
        "--input",
        &actions,
        "--group",
        &group,
        "--output",
        &processed,
        "--config",
        &out_config,
    ])?;
    ensure!(ok, "deploy: {text}");
    refused(
        &["topic", "rm", &actions],
        "used by deployments [\"reader\"]",
    )?;
    let (ok, text) = cli(&["rm", "reader"])?;
    ensure!(ok, "rm reader: {text}");
    let (ok, text) = cli(&["topic", "rm", &actions])?;
    ensure!(ok, "topic rm: {text}");
    let (ok, text) = cli(&["topic", "rm", &processed])?;
    ensure!(ok, "topic rm {processed}: {text}");
    let (code, body) = api.call(
        Method::GET,
        &format!("/v1/topics/{actions}"),
        Some(TOKEN),
        None,
    )?;
    ensure!(
        code == StatusCode::NOT_FOUND && error_of(&body).contains(&actions),
        "after rm: {code} {body}"
    );
    Ok(())
}
