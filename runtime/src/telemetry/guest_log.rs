//! A deployment's bounded guest log.
//!
//! Everything a guest says — `log` calls and stdout/stderr lines — goes
//! through one [`GuestLog`] per deployment, shared by all its instances and
//! kept across hot swaps and restarts. A token bucket bounds the lines per
//! second (with a burst), so a chatty or hostile guest cannot flood the
//! runner's log or slow its neighbours with formatting and I/O. Dropped
//! lines are counted and reported, never silent.
//!
//! Admitted lines go to the runner's log (target `ingesta::guest`) and into
//! a ring of the last [`KEPT_LINES`], numbered, from which the API serves a
//! tenant its own deployment's log and followers are woken. In a fleet,
//! kept lines are also mirrored to the other runners ([`LogMirror`], see
//! `crate::fleet`), which add them to their ring of the deployment, so the
//! log reads the same on any runner.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Guest lines longer than this are cut, so one line cannot make the
/// runner buffer or print megabytes.
pub const MAX_LINE: usize = 4096;
/// Lines kept per deployment for the logs API.
pub const KEPT_LINES: usize = 1000;

/// Severity of a guest line, as the guest gave it.
///
/// Every admitted line is kept for the logs API whatever its level; the
/// runner's own log filter (`RUST_LOG`, default `info`) decides which also
/// reach the runner's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestLevel {
    /// Finest detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation; also every line the guest writes to stdout.
    Info,
    /// Something looks wrong; also every line written to stderr.
    Warn,
    /// The guest reports a failure. Logged by the runner at WARN (with
    /// `guest_level = "error"`), since it is the tenant's to act on.
    Error,
}

/// Where a guest line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The `log` import.
    Log,
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
    /// The runner's own notes (dropped lines, traps).
    Ingesta,
}

impl Stream {
    /// The name, as serialized and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Log => "log",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Ingesta => "ingesta",
        }
    }
}

/// One kept line, as the logs API serves it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Numbers every kept line of the deployment on this runner, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Severity, as the guest gave it (stdout lines are `info`, stderr
    /// lines `warn`).
    pub level: GuestLevel,
    /// Where it came from.
    pub stream: Stream,
    /// The text, at most [`MAX_LINE`] bytes; captured output is split at
    /// newlines, without them.
    pub message: String,
    /// Whether the message was cut at [`MAX_LINE`] bytes.
    pub truncated: bool,
    /// The runner the guest ran on (`runtime.runner_id`), in a fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
}

/// Where a fleet's runner sends its kept guest lines for the others:
/// `(deployment key, line)`, through a bounded queue (a full queue drops
/// the copy, counted in `dropped`; the line stays in this runner's log).
#[derive(Debug, Clone)]
pub struct LogMirror {
    /// This runner's id, written into every line.
    pub runner: Arc<str>,
    /// The fleet's publisher.
    pub lines: tokio::sync::mpsc::Sender<(Arc<str>, LogLine)>,
    /// Copies dropped because the queue was full.
    pub dropped: IntCounter,
}

/// The bounded log of one deployment.
#[derive(Debug)]
pub struct GuestLog {
    deployment: Arc<str>,
    mirror: OnceLock<LogMirror>,
    bucket: Mutex<Bucket>,
    ring: Mutex<Ring>,
    /// Woken for every kept line.
    appended: Notify,
    lines: IntCounter,
    dropped: IntCounter,
}

#[derive(Debug)]
struct Bucket {
    lines_per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    /// Lines dropped and not yet reported.
    dropped: u64,
    /// When drops were last reported.
    reported: Option<Instant>,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    last_seq: u64,
}

impl GuestLog {
    /// A log allowing `lines_per_second` on average and `burst` at once;
    /// `lines` and `dropped` count what it keeps and drops.
    pub fn new(
        deployment: Arc<str>,
        lines_per_second: u32,
        burst: u32,
        lines: IntCounter,
        dropped: IntCounter,
    ) -> Self {
        Self {
            deployment,
            mirror: OnceLock::new(),
            bucket: Mutex::new(Bucket {
                lines_per_second: f64::from(lines_per_second),
                burst: f64::from(burst.max(1)),
                tokens: f64::from(burst.max(1)),
                refilled: Instant::now(),
                dropped: 0,
                reported: None,
            }),
            ring: Mutex::new(Ring::default()),
            appended: Notify::new(),
            lines,
            dropped,
        }
    }

    /// Mirror every line kept from now on to the fleet (set once).
    pub fn mirror_to(&self, mirror: LogMirror) {
        let _ = self.mirror.set(mirror);
    }

    /// Keep a line another runner of the fleet kept for this deployment:
    /// numbered here, not rate-limited again, not logged again (its runner
    /// did both).
    pub fn add_remote(&self, mut line: LogLine) {
        let clipped = clip(&line.message).len();
        if clipped < line.message.len() {
            line.message.truncate(clipped);
            line.truncated = true;
        }
        self.push(line);
    }

    /// Change the budget (a new revision may set other limits).
    pub fn set_rate(&self, lines_per_second: u32, burst: u32) {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.lines_per_second = f64::from(lines_per_second);
        b.burst = f64::from(burst.max(1));
        b.tokens = b.tokens.min(b.burst);
    }

    /// Lines dropped by the rate limit since the deployment started.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Logs one guest line, if the budget allows.
    pub fn line(&self, level: GuestLevel, stream: Stream, message: &str) {
        let (admitted, report) = self.admit();
        let deployment = &*self.deployment;
        if let Some((dropped, lines_per_second, burst)) = report {
            tracing::warn!(target: "ingesta::guest", deployment, dropped,
                dropped_total = self.dropped(), lines_per_second, burst,
                "guest log lines were dropped: the deployment logs faster than limits.log_lines_per_second");
            self.keep(
                GuestLevel::Warn,
                Stream::Ingesta,
                &format!("{dropped} guest log line(s) dropped: the deployment logs faster than limits.log_lines_per_second ({lines_per_second}/s, burst {burst})"),
            );
        }
        if !admitted {
            return;
        }
        self.lines.inc();
        let message = self.keep(level, stream, message);
        let stream = stream.as_str();
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

    /// Append a line to the ring (clipped), wake followers, and return the
    /// clipped message.
    fn keep<'m>(&self, level: GuestLevel, stream: Stream, message: &'m str) -> &'m str {
        let clipped = clip(message);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mirror = self.mirror.get();
        let line = LogLine {
            seq: 0,
            time_ms,
            level,
            stream,
            message: clipped.to_owned(),
            truncated: clipped.len() < message.len(),
            runner: mirror.map(|m| m.runner.to_string()),
        };
        if let Some(m) = mirror
            && m.lines
                .try_send((self.deployment.clone(), line.clone()))
                .is_err()
        {
            m.dropped.inc();
        }
        self.push(line);
        clipped
    }

    /// Number `line`, append it to the ring and wake followers.
    fn push(&self, mut line: LogLine) {
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.last_seq += 1;
            line.seq = ring.last_seq;
            if ring.lines.len() == KEPT_LINES {
                ring.lines.pop_front();
            }
            ring.lines.push_back(line);
        }
        self.appended.notify_waiters();
    }

    /// Kept lines numbered above `after`, at most the last `limit` of them.
    pub fn lines_after(&self, after: u64, limit: usize) -> Vec<LogLine> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newer = ring.lines.iter().filter(|l| l.seq > after);
        let skip = newer.clone().count().saturating_sub(limit);
        newer.skip(skip).cloned().collect()
    }

    /// Resolves when a line is kept after this call; call before
    /// [`lines_after`](Self::lines_after) so none slips between the two.
    pub fn appended(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut n = Box::pin(self.appended.notified());
        n.as_mut().enable();
        n
    }

    /// Takes a token if there is one (`.0`), and says how many dropped
    /// lines to report now with the budget (`.1`): drops are reported as
    /// they happen, but at most once a second, so the reports cannot become
    /// a flood of their own.
    fn admit(&self) -> (bool, Option<(u64, f64, f64)>) {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.refilled).as_secs_f64() * b.lines_per_second;
        b.tokens = (b.tokens + refill).min(b.burst);
        b.refilled = now;
        let admitted = b.tokens >= 1.0;
        if admitted {
            b.tokens -= 1.0;
        } else {
            b.dropped += 1;
            self.dropped.inc();
        }
        let due = b
            .reported
            .is_none_or(|t| now.duration_since(t).as_secs() >= 1);
        if b.dropped > 0 && due {
            b.reported = Some(now);
            let dropped = std::mem::take(&mut b.dropped);
            return (admitted, Some((dropped, b.lines_per_second, b.burst)));
        }
        (admitted, None)
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

    fn log(lines_per_second: u32, burst: u32) -> GuestLog {
        let c = || IntCounter::new("c", "c").unwrap();
        GuestLog::new("t".into(), lines_per_second, burst, c(), c())
    }

    #[test]
    fn burst_then_drops_are_counted() {
        let log = log(1, 5);
        let admitted = (0..20).filter(|_| log.admit().0).count();
        // Five from the burst, at most one more refilled while looping.
        assert!((5..=6).contains(&admitted), "admitted {admitted}");
        assert_eq!(log.dropped(), 20 - admitted as u64);
    }

    #[test]
    fn drops_are_reported_at_once_then_at_most_once_a_second() {
        let log = log(0, 1);
        assert_eq!(log.admit(), (true, None));
        assert_eq!(
            log.admit(),
            (false, Some((1, 0.0, 1.0))),
            "the first drop is reported at once"
        );
        assert_eq!(log.admit(), (false, None), "the next report waits a second");
        assert_eq!(log.admit(), (false, None));
        assert_eq!(log.dropped(), 3);
    }

    #[test]
    fn kept_lines_are_numbered_bounded_and_clipped() {
        let log = log(1_000_000, 1_000_000);
        for i in 0..KEPT_LINES + 5 {
            log.line(GuestLevel::Info, Stream::Log, &format!("line {i}"));
        }
        log.line(GuestLevel::Warn, Stream::Stderr, &"x".repeat(MAX_LINE + 10));
        let all = log.lines_after(0, usize::MAX);
        assert_eq!(all.len(), KEPT_LINES, "the ring is bounded");
        assert_eq!(all[0].message, "line 6");
        assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        let last = all.last().unwrap();
        assert_eq!((last.message.len(), last.truncated), (MAX_LINE, true));
        let tail = log.lines_after(0, 2);
        assert_eq!(tail[0].message, format!("line {}", KEPT_LINES + 4));
        assert!(log.lines_after(last.seq, 10).is_empty());
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(MAX_LINE);
        let c = clip(&s);
        assert!(c.len() <= MAX_LINE && c.len() >= MAX_LINE - 1);
        assert_eq!(clip("short"), "short");
    }
}
