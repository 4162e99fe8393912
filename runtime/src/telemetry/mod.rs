//! What the runner tells operators and tenants: its own log output
//! (`tracing`, text or JSON), Prometheus metrics ([`metrics`]) and each
//! deployment's bounded guest log ([`guest_log`]).

pub mod guest_log;
pub mod metrics;
pub mod scrape;

use std::io::IsTerminal;
use std::sync::Arc;

pub use guest_log::{GuestLevel, GuestLog, LogLine};
pub use metrics::{DeploymentMetrics, KafkaClientMetrics, RunnerMetrics};

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured when stderr is a terminal).
    Text,
    /// One JSON object per line, event fields flattened, for log shippers.
    Json,
}

/// Install the global subscriber. `RUST_LOG` overrides the default `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A deployment's metrics and guest log. The supervisor creates one per
/// deployment and keeps it across hot swaps, pauses and restarts.
pub struct DeploymentTelemetry {
    /// The deployment's Prometheus families (constant `deployment` label).
    pub metrics: DeploymentMetrics,
    /// The deployment's rate-limited guest log; counts its lines into
    /// `metrics`.
    pub log: GuestLog,
}

impl std::fmt::Debug for DeploymentTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentTelemetry")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl DeploymentTelemetry {
    /// Fresh telemetry for `deployment` (its metrics label and log field),
    /// with the default log budget until the deployment's program sets its
    /// own limits.
    pub fn new(deployment: &str) -> Arc<Self> {
        let metrics = DeploymentMetrics::new(deployment);
        // Until a program takes effect and sets its own budget.
        let limits = crate::deployment::LimitsConfig::default();
        let log = GuestLog::new(
            deployment.into(),
            limits.log_lines_per_second,
            limits.log_burst_lines,
            metrics.guest_log_lines.clone(),
            metrics.guest_log_dropped.clone(),
        );
        Arc::new(Self { metrics, log })
    }
}
