//! The `ingesta` command line (see [`ingesta_runtime::cli`]).

use std::process::ExitCode;

/// mimalloc, overriding malloc for librdkafka too: the consume path makes
/// several small allocations per record inside librdkafka, and this is worth
/// ~60% throughput on it (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (v3's `mi_option_e`).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// By default mimalloc commits a whole arena as soon as it reserves one,
/// and every thread's heap grows its own: with a few threads per
/// deployment that was ~8 MiB of resident memory per idle deployment
/// (docs/benchmarks.md, "Density"). Committing on demand keeps only what is
/// used, at no measurable cost to throughput. Set before anything is
/// allocated (a constructor that runs ahead of the program's own), since
/// the first arenas are reserved early; `MIMALLOC_ARENA_EAGER_COMMIT` in
/// the environment still overrides it.
extern "C" fn commit_on_demand() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets an allocator option; no memory is touched.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
}

#[used]
#[unsafe(link_section = ".init_array.00101")]
static COMMIT_ON_DEMAND: extern "C" fn() = commit_on_demand;

fn main() -> ExitCode {
    ingesta_runtime::cli::main()
}
