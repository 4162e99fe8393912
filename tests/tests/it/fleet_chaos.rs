//! Chaos in a fleet, on the real broker with runner processes sharing one
//! control plane, an identity deployment on a 6-partition topic and a
//! steady load (200 records/s) produced while things happen. Each case
//! counts every input's output, fails on any missing and reports the
//! duplicates (at-least-once redelivery):
//! - three runners; a fourth joins, then one leaves cleanly: the longest
//!   commit pause of the partitions that stayed on their runner is
//!   measured and reported beside the moved ones';
//! - three runners; one is killed with SIGKILL mid-stream, its partitions
//!   move once the consumer session times out, and it is started again
//!   later and takes partitions again;
//! - a rolling restart of all three runners (SIGTERM, start again);
//! - a rolling restart that moves the fleet from the classic group
//!   protocol (librdkafka's eager default) to KIP-848's
//!   (`group.protocol = "consumer"`) without stopping it, as the README's
//!   fleet section says to.
//!
//! The consumers' session timeout is lowered to 6 s (heartbeats every
//! second) through `[kafka.consumer]`, so a killed runner's partitions
//! move within seconds rather than librdkafka's default 45 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, DeploymentStatus, TENANT_A};
use ingesta_tests::fleet::{self, Load, Member, PauseWatch};
use ingesta_tests::{kafka, runner};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 6;
const RATE: usize = 200;
/// Lowered for these cases (see the module doc).
const SESSION_MS: u64 = 6_000;

/// A runner in the KIP-848 group protocol (whose session timeout is the
/// broker's to set, so none is given).
fn kip848_member(prefix: &str, id: &str) -> Result<Member> {
    Member::start(
        prefix,
        &format!(
            "[runtime]\nrunner_id = \"{id}\"\n\n[kafka.consumer]\n\"group.protocol\" = \"consumer\"\n"
        ),
        TIMEOUT,
    )
}

fn member(prefix: &str, id: &str) -> Result<Member> {
    Member::start(
        prefix,
        &format!(
            "[runtime]\nrunner_id = \"{id}\"\n\n[kafka.consumer]\n\"session.timeout.ms\" = {SESSION_MS}\n\"heartbeat.interval.ms\" = 1000\n"
        ),
        TIMEOUT,
    )
}

/// A deployment of identity from `input` to `output` in a fresh group,
/// created through `m`; the group's id.
fn deploy(m: &Member, name: &str, input: &str, output: &str) -> Result<String> {
    let group = kafka::unique(&format!("a-{name}"));
    control::deploy_module(
        &m.api,
        TENANT_A.token,
        &runner::guest_wasm("identity")?,
        json!({
            "name": name, "inputs": [input], "group": group,
            "outputs": [output], "config": { "output_topic": output },
        }),
    )?;
    Ok(group)
}

/// Which runner consumes each partition, once `runners` runners are
/// listed (by `m`'s status) and every partition is assigned to one of
/// them.
fn owners(m: &Member, name: &str, runners: usize) -> Result<BTreeMap<i32, String>> {
    let settled = |s: &DeploymentStatus| {
        let listed: usize = s.runners.iter().map(|r| r.partitions.len()).sum();
        s.runners.len() == runners
            && s.runners.iter().all(|r| !r.partitions.is_empty())
            && listed == PARTITIONS as usize
    };
    let s = control::wait_status(
        &m.api,
        TENANT_A.token,
        name,
        "partitions settled",
        TIMEOUT,
        settled,
    )?;
    Ok(s.runners
        .iter()
        .flat_map(|r| r.partitions.iter().map(|p| (p.partition, r.runner.clone())))
        .collect())
}

/// Stop the load, wait until `group` committed everything, and check the
/// outputs; returns the duplicates.
fn finish(load: Load, group: &str, input: &str, output: &str) -> Result<usize> {
    let sent = load.stop()?;
    kafka::wait_until_committed_to_end(group, input, TIMEOUT)?;
    fleet::check_outputs(output, sent, TIMEOUT).with_context(|| format!("after {sent} records"))
}

#[test]
fn a_fourth_runner_joins_and_one_leaves_under_load() -> Result<()> {
    let prefix = control::state_prefix();
    let mut members = ["join-1", "join-2", "join-3"]
        .iter()
        .map(|id| member(&prefix, id))
        .collect::<Result<Vec<_>>>()?;
    let [input, output] = kafka::fresh_topics(["a-join-in", "a-join-out"], PARTITIONS)?;
    let group = deploy(&members[0], "join", &input, &output)?;
    let before = owners(&members[0], "join", 3)?;
    let load = Load::start(&input, PARTITIONS, RATE);
    std::thread::sleep(Duration::from_secs(2));

    let watch = PauseWatch::start(&group, &input)?;
    members.push(member(&prefix, "join-4")?);
    let joined = owners(&members[0], "join", 4)?;
    let join_pauses = watch.stop()?;

    let watch = PauseWatch::start(&group, &input)?;
    let leaving = members.remove(1);
    leaving.stop(TIMEOUT)?;
    let left = owners(&members[0], "join", 3)?;
    let leave_pauses = watch.stop()?;

    let duplicates = finish(load, &group, &input, &output)?;
    report("join", &before, &joined, &join_pauses);
    report("leave", &joined, &left, &leave_pauses);
    eprintln!("join and leave under load: nothing missing, {duplicates} duplicates");
    for m in members {
        m.stop(TIMEOUT)?;
    }
    Ok(())
}

/// Print the longest pause of the partitions that stayed on their runner
/// and of those that moved.
fn report(
    what: &str,
    before: &BTreeMap<i32, String>,
    after: &BTreeMap<i32, String>,
    pauses: &BTreeMap<i32, Duration>,
) {
    let (stayed, moved): (Vec<i32>, Vec<i32>) =
        (0..PARTITIONS).partition(|p| before.get(p) == after.get(p));
    let worst = |ps: &[i32]| {
        ps.iter()
            .filter_map(|p| pauses.get(p))
            .max()
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "{what}: {} partitions stayed (longest commit pause {:?}), {} moved (longest {:?}); commits are every second",
        stayed.len(),
        worst(&stayed),
        moved.len(),
        worst(&moved)
    );
}

#[test]
fn a_killed_runner_loses_nothing_and_comes_back() -> Result<()> {
    let prefix = control::state_prefix();
    let mut members = ["kill-1", "kill-2", "kill-3"]
        .iter()
        .map(|id| member(&prefix, id))
        .collect::<Result<Vec<_>>>()?;
    let [input, output] = kafka::fresh_topics(["a-kill-in", "a-kill-out"], PARTITIONS)?;
    let group = deploy(&members[0], "kill", &input, &output)?;
    let before = owners(&members[0], "kill", 3)?;
    let load = Load::start(&input, PARTITIONS, RATE);
    std::thread::sleep(Duration::from_secs(2));

    let watch = PauseWatch::start(&group, &input)?;
    let mut victim = members.remove(2);
    let killed = Instant::now();
    victim.process.sigkill()?;
    drop(victim);
    // Its report stops; the group gives its partitions to the others once
    // its session times out.
    let after = owners(&members[0], "kill", 2)?;
    let moved_in = killed.elapsed();
    let pauses = watch.stop()?;
    report("SIGKILL", &before, &after, &pauses);
    eprintln!(
        "SIGKILL: partitions on two runners {moved_in:?} after the kill (session {SESSION_MS} ms)"
    );
    ensure!(
        after.values().all(|r| r != "kill-3"),
        "the killed runner still has partitions: {after:?}"
    );

    // Started again with the same id, it takes partitions again.
    members.push(member(&prefix, "kill-3")?);
    let back = owners(&members[0], "kill", 3)?;
    ensure!(
        back.values().any(|r| r == "kill-3"),
        "the restarted runner has no partition: {back:?}"
    );
    let duplicates = finish(load, &group, &input, &output)?;
    eprintln!("SIGKILL and restart under load: nothing missing, {duplicates} duplicates");
    for m in members {
        m.stop(TIMEOUT)?;
    }
    Ok(())
}

#[test]
fn a_rolling_restart_of_every_runner_loses_nothing() -> Result<()> {
    let prefix = control::state_prefix();
    let ids = ["roll-1", "roll-2", "roll-3"];
    let mut members = ids
        .iter()
        .map(|id| member(&prefix, id))
        .collect::<Result<Vec<_>>>()?;
    let [input, output] = kafka::fresh_topics(["a-roll-in", "a-roll-out"], PARTITIONS)?;
    let group = deploy(&members[0], "roll", &input, &output)?;
    owners(&members[0], "roll", 3)?;
    let load = Load::start(&input, PARTITIONS, RATE);
    std::thread::sleep(Duration::from_secs(2));
    let watch = PauseWatch::start(&group, &input)?;
    for id in ids {
        // The oldest member goes, a new one with its id comes.
        let old = members.remove(0);
        old.stop(TIMEOUT)?;
        members.push(member(&prefix, id)?);
        owners(&members[0], "roll", 3)?;
    }
    let pauses = watch.stop()?;
    let worst = pauses.values().max().copied().unwrap_or_default();
    let duplicates = finish(load, &group, &input, &output)?;
    eprintln!(
        "rolling restart under load: nothing missing, {duplicates} duplicates, longest commit pause {worst:?}"
    );
    for m in members {
        m.stop(TIMEOUT)?;
    }
    Ok(())
}

#[test]
fn a_rolling_restart_moves_the_fleet_to_the_kip848_protocol() -> Result<()> {
    let prefix = control::state_prefix();
    let ids = ["kip-1", "kip-2", "kip-3"];
    let mut members = ids
        .iter()
        .map(|id| member(&prefix, id))
        .collect::<Result<Vec<_>>>()?;
    let [input, output] = kafka::fresh_topics(["a-kip-in", "a-kip-out"], PARTITIONS)?;
    let group = deploy(&members[0], "kip", &input, &output)?;
    owners(&members[0], "kip", 3)?;
    ensure!(
        kafka::group_type(&group)? == "Classic",
        "the group starts classic"
    );
    let load = Load::start(&input, PARTITIONS, RATE);
    std::thread::sleep(Duration::from_secs(2));
    let watch = PauseWatch::start(&group, &input)?;
    for id in ids {
        let old = members.remove(0);
        old.stop(TIMEOUT)?;
        members.push(kip848_member(&prefix, id)?);
        owners(&members[0], "kip", 3)?;
    }
    let pauses = watch.stop()?;
    let worst = pauses.values().max().copied().unwrap_or_default();
    let duplicates = finish(load, &group, &input, &output)?;
    let kind = kafka::group_type(&group)?;
    ensure!(
        kind == "Consumer",
        "the group is of type {kind:?} after every runner moved to group.protocol=consumer"
    );
    eprintln!(
        "classic to KIP-848 by rolling restart under load: nothing missing, {duplicates} duplicates, longest commit pause {worst:?}"
    );
    for m in members {
        m.stop(TIMEOUT)?;
    }
    Ok(())
}
