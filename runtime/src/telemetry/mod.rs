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
        LogFormat::Text => builder.fmt_fields(one_line_fields()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Text-mode fields with control characters escaped. Messages and fields
/// carry text tenants choose (guest log lines, error messages, topic
/// names); a newline or terminal escape in them must not start a forged
/// runner log line or repaint an operator's terminal. (JSON mode escapes
/// by construction.)
fn one_line_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with every control character (newline, carriage return, escape,
/// ...) written as its Rust escape.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn tenant_text_cannot_forge_log_lines_or_terminal_escapes() {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(one_line_fields())
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let message = "hello\nERROR ingesta: forged\r\u{1b}[2J";
            tracing::warn!(target: "ingesta::guest", deployment = "d", reason = %message, "{message}");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.matches('\n').count(),
            1,
            "one event, one line: {text:?}"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(
            text.contains("hello\\nERROR ingesta: forged\\r\\u{1b}[2J"),
            "{text:?}"
        );
        assert!(text.contains("reason=hello\\n"), "{text:?}");
    }

    /// A `MakeWriter` into a shared buffer.
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
