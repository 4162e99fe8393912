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
/// Lowered for these cases (see the module doc and [`CLASSIC`]).
const SESSION_MS: u64 = 6_000;

/// `[kafka.consumer]` of the classic protocol's runners: the lowered
/// session (see the module doc).
const CLASSIC: &str = "\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 1000\n";
/// `[kafka.consumer]` of a runner in the KIP-848 protocol, whose session
/// timeout is the broker's to set.
const KIP848: &str = "\"group.protocol\" = \"consumer\"\n";

/// Runner `id` sharing `prefix`, its consumers set by `consumer`.
fn member(prefix: &str, id: &str, consumer: &str) -> Result<Member> {
    Member::start(
        prefix,
        &format!("[runtime]\nrunner_id = \"{id}\"\n\n[kafka.consumer]\n{consumer}"),
        TIMEOUT,
    )
}

/// A case under way: the runners, an identity deployment `name` from
/// `input` to `output` in `group`, and the load on `input`.
struct Scenario {
    prefix: String,
    name: &'static str,
    members: Vec<Member>,
    input: String,
    output: String,
    group: String,
    load: Load,
}

impl Scenario {
    /// Classic runners `ids`, the deployment spread over all of them
    /// (which runner has which partition: `.1`), and the load running
    /// for two seconds.
    fn start(name: &'static str, ids: &[&str]) -> Result<(Scenario, BTreeMap<i32, String>)> {
        let prefix = control::state_prefix();
        let members = ids
            .iter()
            .map(|id| member(&prefix, id, CLASSIC))
            .collect::<Result<Vec<_>>>()?;
        let [input, output] = kafka::fresh_topics(
            [&format!("a-{name}-in"), &format!("a-{name}-out")],
            PARTITIONS,
        )?;
        let group = kafka::unique(&format!("a-{name}"));
        control::deploy_module(
            &members[0].api,
            TENANT_A.token,
            &runner::guest_wasm("identity")?,
            json!({
                "name": name, "inputs": [input], "group": group,
                "outputs": [output], "config": { "output_topic": output },
            }),
        )?;
        let owners = owners(&members[0], name, ids.len())?;
        let load = Load::start(&input, PARTITIONS, RATE);
        std::thread::sleep(Duration::from_secs(2));
        let scenario = Scenario {
            prefix,
            name,
            members,
            input,
            output,
            group,
            load,
        };
        Ok((scenario, owners))
    }

    /// Which runner consumes each partition, once `runners` share them.
    fn owners(&self, runners: usize) -> Result<BTreeMap<i32, String>> {
        owners(&self.members[0], self.name, runners)
    }

    fn watch(&self) -> Result<PauseWatch> {
        PauseWatch::start(&self.group, &self.input)
    }

    /// Restart every runner in turn (the oldest goes, a new one with its
    /// id comes, consumers set by `consumer`), waiting each time until the
    /// partitions are spread again; the longest commit pause meanwhile.
    fn rolling_restart(&mut self, ids: &[&str], consumer: &str) -> Result<Duration> {
        let watch = self.watch()?;
        for id in ids {
            let old = self.members.remove(0);
            old.stop(TIMEOUT)?;
            self.members.push(member(&self.prefix, id, consumer)?);
            self.owners(ids.len())?;
        }
        Ok(watch.stop()?.values().max().copied().unwrap_or_default())
    }

    /// Stop the load, wait until the group committed everything, check
    /// the outputs and stop the runners; the duplicates.
    fn finish(self) -> Result<usize> {
        let sent = self.load.stop()?;
        kafka::wait_until_committed_to_end(&self.group, &self.input, TIMEOUT)?;
        let duplicates = fleet::check_outputs(&self.output, sent, TIMEOUT)
            .with_context(|| format!("after {sent} records"))?;
        for m in self.members {
            m.stop(TIMEOUT)?;
        }
        Ok(duplicates)
    }
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

#[test]
fn a_fourth_runner_joins_and_one_leaves_under_load() -> Result<()> {
    let (mut s, before) = Scenario::start("join", &["join-1", "join-2", "join-3"])?;

    let watch = s.watch()?;
    s.members.push(member(&s.prefix, "join-4", CLASSIC)?);
    let joined = s.owners(4)?;
    let join_pauses = watch.stop()?;

    let watch = s.watch()?;
    let leaving = s.members.remove(1);
    leaving.stop(TIMEOUT)?;
    let left = s.owners(3)?;
    let leave_pauses = watch.stop()?;

    let duplicates = s.finish()?;
    report("join", &before, &joined, &join_pauses);
    report("leave", &joined, &left, &leave_pauses);
    eprintln!("join and leave under load: nothing missing, {duplicates} duplicates");
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
    let (mut s, before) = Scenario::start("kill", &["kill-1", "kill-2", "kill-3"])?;

    let watch = s.watch()?;
    let mut victim = s.members.remove(2);
    let killed = Instant::now();
    victim.process.sigkill()?;
    drop(victim);
    // Its report stops; the group gives its partitions to the others once
    // its session times out.
    let after = s.owners(2)?;
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
    s.members.push(member(&s.prefix, "kill-3", CLASSIC)?);
    let back = s.owners(3)?;
    ensure!(
        back.values().any(|r| r == "kill-3"),
        "the restarted runner has no partition: {back:?}"
    );
    let duplicates = s.finish()?;
    eprintln!("SIGKILL and restart under load: nothing missing, {duplicates} duplicates");
    Ok(())
}

#[test]
fn a_rolling_restart_of_every_runner_loses_nothing() -> Result<()> {
    let ids = ["roll-1", "roll-2", "roll-3"];
    let (mut s, _) = Scenario::start("roll", &ids)?;
    let worst = s.rolling_restart(&ids, CLASSIC)?;
    let duplicates = s.finish()?;
    eprintln!(
        "rolling restart under load: nothing missing, {duplicates} duplicates, longest commit pause {worst:?}"
    );
    Ok(())
}

#[test]
fn a_rolling_restart_moves_the_fleet_to_the_kip848_protocol() -> Result<()> {
    let ids = ["kip-1", "kip-2", "kip-3"];
    let (mut s, _) = Scenario::start("kip", &ids)?;
    ensure!(
        kafka::group_type(&s.group)? == "Classic",
        "the group starts classic"
    );
    let worst = s.rolling_restart(&ids, KIP848)?;
    let kind = kafka::group_type(&s.group)?;
    ensure!(
        kind == "Consumer",
        "the group is of type {kind:?} after every runner moved to group.protocol=consumer"
    );
    let duplicates = s.finish()?;
    eprintln!(
        "classic to KIP-848 by rolling restart under load: nothing missing, {duplicates} duplicates, longest commit pause {worst:?}"
    );
    Ok(())
}
