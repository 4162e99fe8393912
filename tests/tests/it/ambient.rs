//! No ambient authority, and the component-model limits, checked
//! in-process against the runner's own engine and linker: a guest that
//! tries files, environment variables, sockets or name resolution is
//! refused every one (while the clock works), and one host call carrying
//! more than the limit traps as `host-call-limit` while a call just under
//! it succeeds.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::wasm::{
    CallOutcome, ConsumerInstance, MAX_HOSTCALL_BYTES, TrapKind, WasmEngine, WasmEngineConfig,
};
use ingesta_tests::inproc::{self, batch, emitted_values};

fn engine(cache: &std::path::Path) -> Result<WasmEngine> {
    WasmEngine::new(WasmEngineConfig::new(
        Duration::from_millis(10),
        cache.to_owned(),
    ))
}

#[test]
fn guests_reach_no_files_environment_or_network_but_have_a_clock() -> Result<()> {
    inproc::block_on(async {
        let cache = tempfile::tempdir()?;
        let engine = engine(cache.path())?;
        let template = inproc::hostile(&engine, cache.path(), "ambient", &Default::default())?;
        let mut instance = ConsumerInstance::new(&template).await?;
        let probes = [
            "probe:fs",
            "probe:env",
            "probe:net",
            "probe:dns",
            "probe:clock",
        ];
        let outboxes = match instance.handle(&batch(probes)).await {
            CallOutcome::Ok((), outboxes) => outboxes,
            CallOutcome::Failed(e) => bail!("the probes failed: {}", e.message),
            CallOutcome::Trapped { kind, message } => {
                bail!("the probes trapped ({kind:?}): {message}")
            }
        };
        let reports: Vec<String> = emitted_values(&outboxes)
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned())
            .collect();
        for r in &reports {
            println!("{r}");
        }
        ensure!(
            reports.len() == probes.len(),
            "one report per probe: {reports:?}"
        );
        for (what, report) in ["fs", "env", "net", "dns"].iter().zip(&reports) {
            ensure!(
                report.starts_with(&format!("{what}:denied:")),
                "the guest reached {what}: {report}"
            );
        }
        ensure!(
            reports[4].starts_with("clock:allowed:"),
            "the wall clock should work: {}",
            reports[4]
        );
        Ok(())
    })
}

#[test]
fn a_host_call_over_the_limit_traps_and_one_under_it_succeeds() -> Result<()> {
    inproc::block_on(async {
        let cache = tempfile::tempdir()?;
        let engine = engine(cache.path())?;
        let limits = LimitsConfig {
            memory_mib: 256,
            max_output_bytes: 256 << 20,
            ..LimitsConfig::default()
        };
        let template = inproc::hostile(&engine, cache.path(), "hostcall", &limits)?;
        let limit_mib = MAX_HOSTCALL_BYTES >> 20;

        let mut instance = ConsumerInstance::new(&template).await?;
        let under = format!("bigcall:{}", limit_mib / 2);
        match instance.handle(&batch([under.as_str()])).await {
            CallOutcome::Ok((), outboxes) => {
                let values = emitted_values(&outboxes);
                ensure!(
                    values.len() == 1
                        && values[0].as_ref().map(Vec::len) == Some((limit_mib / 2) << 20),
                    "expected one {} MiB record",
                    limit_mib / 2
                );
            }
            CallOutcome::Failed(e) => bail!("{under} failed: {}", e.message),
            CallOutcome::Trapped { kind, message } => {
                bail!("{under} trapped ({kind:?}): {message}")
            }
        }

        let over = format!("bigcall:{}", limit_mib + 4);
        match instance.handle(&batch([over.as_str()])).await {
            CallOutcome::Trapped {
                kind: TrapKind::HostCallLimit,
                message,
            } => {
                println!("{over}: {message}");
                ensure!(
                    message.contains("too much data is being copied"),
                    "the message should name the cause: {message}"
                );
            }
            CallOutcome::Trapped { kind, message } => {
                bail!("{over} trapped as {kind:?}, not host-call-limit: {message}")
            }
            CallOutcome::Ok((), _) => bail!("{over} went through"),
            CallOutcome::Failed(e) => bail!("{over} failed instead of trapping: {}", e.message),
        }
        Ok(())
    })
}
