//! A deployment's bounded guest log.
//!
//! Everything a guest says — `log` calls and stdout/stderr lines — goes
//! through one [`GuestLog`] per deployment, shared by all its instances. A
//! token bucket bounds the lines per second (with a burst), so a chatty or
//! hostile guest cannot flood the runner's log or slow its neighbours with
//! formatting and I/O. Dropped lines are counted and reported, never silent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Guest lines longer than this are cut, so one line cannot make the
/// runner buffer or print megabytes.
pub const MAX_LINE: usize = 4096;

/// Severity of a guest line, as the guest gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The bounded log of one deployment.
#[derive(Debug)]
pub struct GuestLog {
    deployment: std::sync::Arc<str>,
    lines_per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    dropped_total: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Lines dropped and not yet reported.
    dropped: u64,
    /// When drops were last reported.
    reported: Option<Instant>,
}

impl GuestLog {
    /// A log allowing `lines_per_second` on average and `burst` at once.
    pub fn new(deployment: std::sync::Arc<str>, lines_per_second: u32, burst: u32) -> Self {
        Self {
            deployment,
            lines_per_second: f64::from(lines_per_second),
            burst: f64::from(burst.max(1)),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst.max(1)),
                refilled: Instant::now(),
                dropped: 0,
                reported: None,
            }),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Lines dropped by the rate limit since the deployment started.
    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Logs one guest line (`stream` is `stdout`/`stderr` for captured
    /// output, `None` for the `log` import), if the budget allows.
    pub fn line(&self, level: GuestLevel, stream: Option<&'static str>, message: &str) {
        let (admitted, report) = self.admit();
        let deployment = &*self.deployment;
        if report > 0 {
            tracing::warn!(target: "ingesta::guest", deployment, dropped = report,
                dropped_total = self.dropped(), lines_per_second = self.lines_per_second,
                burst = self.burst,
                "guest log lines were dropped: the deployment logs faster than limits.log_lines_per_second");
        }
        if !admitted {
            return;
        }
        let message = clip(message);
        let stream = stream.unwrap_or("log");
        match level {
            GuestLevel::Trace => {
                tracing::trace!(target: "ingesta::guest", deployment, stream, "{message}")
            }
            GuestLevel::Debug => {
                tracing::debug!(target: "ingesta::guest", deployment, stream, "{message}")
            }
            GuestLevel::Info => {
                tracing::info!(target: "ingesta::guest", deployment, stream, "{message}")
            }
            GuestLevel::Warn => {
                tracing::warn!(target: "ingesta::guest", deployment, stream, "{message}")
            }
            // A guest's error is the tenant's business, not data loss in
            // the runner: keep it below the runner's own ERROR level.
            GuestLevel::Error => {
                tracing::warn!(target: "ingesta::guest", deployment, stream, guest_level = "error", "{message}")
            }
        }
    }

    /// Takes a token if there is one (`.0`), and says how many dropped
    /// lines to report now (`.1`, 0 for none): drops are reported as they
    /// happen, but at most once a second, so the reports cannot become a
    /// flood of their own.
    fn admit(&self) -> (bool, u64) {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.refilled).as_secs_f64() * self.lines_per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.refilled = now;
        let admitted = b.tokens >= 1.0;
        if admitted {
            b.tokens -= 1.0;
        } else {
            b.dropped += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        let due = b
            .reported
            .is_none_or(|t| now.duration_since(t).as_secs() >= 1);
        if b.dropped > 0 && due {
            b.reported = Some(now);
            return (admitted, std::mem::take(&mut b.dropped));
        }
        (admitted, 0)
    }
}

/// `message` cut to at most [`MAX_LINE`] bytes on a character boundary.
pub fn clip(message: &str) -> &str {
    if message.len() <= MAX_LINE {
        return message;
    }
    let mut end = MAX_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_drops_are_counted() {
        let log = GuestLog::new("t".into(), 1, 5);
        let admitted = (0..20).filter(|_| log.admit().0).count();
        // Five from the burst, at most one more refilled while looping.
        assert!((5..=6).contains(&admitted), "admitted {admitted}");
        assert_eq!(log.dropped(), 20 - admitted as u64);
    }

    #[test]
    fn drops_are_reported_at_once_then_at_most_once_a_second() {
        let log = GuestLog::new("t".into(), 0, 1);
        assert_eq!(log.admit(), (true, 0));
        assert_eq!(
            log.admit(),
            (false, 1),
            "the first drop is reported at once"
        );
        assert_eq!(log.admit(), (false, 0), "the next report waits a second");
        assert_eq!(log.admit(), (false, 0));
        assert_eq!(log.dropped(), 3);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(MAX_LINE);
        let c = clip(&s);
        assert!(c.len() <= MAX_LINE && c.len() >= MAX_LINE - 1);
        assert_eq!(clip("short"), "short");
    }
}
