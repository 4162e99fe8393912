//! The `ingesta` command line (see [`ingesta_runtime::cli`]).

use std::process::ExitCode;

/// mimalloc, overriding malloc for librdkafka too: the consume path makes
/// several small allocations per record inside librdkafka, and this is worth
/// ~60% throughput on it (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ingesta_runtime::cli::main()
}
