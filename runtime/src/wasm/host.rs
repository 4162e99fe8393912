//! The host side of our WIT imports: what a guest may do, and nothing more.
//!
//! A [`HostState`] lives inside each instance's store. It buffers the records
//! a call emits (they are published only if the call succeeds), enforces the
//! deployment's topic grants, answers config reads and turns guest log lines
//! and stdout/stderr into the deployment's bounded guest log. WASI is
//! present only so ordinary toolchain output runs: no preopened directories,
//! no environment, no sockets; clocks and random are allowed. The
//! component-model limits on what one host call may carry are set low.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::ingesta::runtime::{config, emit, log};
use ingesta_abi::{HEADER_ENTRY_SIZE, HeaderEntry, OUTGOING_ENTRY_SIZE, OutgoingEntry, Span};

use super::bindings::{Consumer, Outbox};
use super::share::{CallTurn, HeldSlot};
use crate::deployment::LimitsConfig;
use crate::telemetry::guest_log::{GuestLevel, MAX_LINE, Stream};
use crate::telemetry::{DeploymentMetrics, DeploymentTelemetry};

/// Most bytes one guest-to-host call may carry (component-model "hostcall
/// fuel"). The SDKs flush their outboxes at 4 MiB, so only a misbehaving
/// guest reaches this; it traps with [`TrapKind::HostCallLimit`].
///
/// [`TrapKind::HostCallLimit`]: super::TrapKind::HostCallLimit
pub const MAX_HOSTCALL_BYTES: usize = 16 << 20;
/// Most live resource handles (WASI streams, pollables...) per instance;
/// a handler needs a handful.
pub const MAX_RESOURCE_HANDLES: usize = 1_000;
/// Largest `wasi:random` request.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// What one deployment's instances are allowed to see and do.
#[derive(Debug)]
pub struct DeploymentGrants {
    /// Deployment name, for logs and errors.
    pub deployment: Arc<str>,
    /// Topics the deployment may emit to.
    pub outputs: HashSet<String>,
    /// The deployment's config map, served to the `config` import.
    pub config: BTreeMap<String, String>,
    /// Cap on an instance's linear memories and tables, all together.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call.
    pub deadline: Duration,
    /// Fuel one call may burn, if metered.
    pub fuel: Option<u64>,
    /// Most records one call may emit.
    pub max_output_records: u64,
    /// Most key+value+header bytes one call may emit.
    pub max_output_bytes: u64,
    /// `sha256:...` of the module, for dead-letter headers.
    pub module_digest: String,
    /// The deployment's metrics, and its rate-limited guest log (where log
    /// lines and stdout/stderr go).
    pub telemetry: Arc<DeploymentTelemetry>,
}

impl DeploymentGrants {
    /// Grants with `limits` and no outputs or config yet.
    pub fn new(
        deployment: &str,
        limits: &LimitsConfig,
        module_digest: String,
        telemetry: Arc<DeploymentTelemetry>,
    ) -> Self {
        let deployment: Arc<str> = deployment.into();
        Self {
            telemetry,
            deployment,
            outputs: HashSet::new(),
            config: BTreeMap::new(),
            memory_bytes: (limits.memory_mib as usize) << 20,
            deadline: Duration::from_millis(limits.deadline_ms),
            fuel: limits.fuel,
            max_output_records: limits.max_output_records,
            max_output_bytes: limits.max_output_bytes,
            module_digest,
        }
    }
}

/// Per-instance host state (the `T` of `Store<T>`).
pub struct HostState {
    grants: Arc<DeploymentGrants>,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MeteredLimits,
    /// Outboxes emitted during the current call, in order.
    outboxes: Vec<Outbox>,
    /// The first emit refused during the current call; it fails the call
    /// even if the guest ignores the error it was given.
    refused: Option<String>,
    /// When the current call started, for the deadline.
    call_started: Instant,
    /// The long-call slot of the current call, if it ran past a tick.
    long_slot: HeldSlot,
    /// Records and payload bytes emitted in the current call, against the
    /// per-call caps (they bound what the host buffers for a guest).
    emitted_records: u64,
    emitted_bytes: u64,
}

impl HostState {
    /// Fresh state for a new instance of the deployment.
    pub fn new(grants: Arc<DeploymentGrants>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput {
            grants: grants.clone(),
            stream: Stream::Stdout,
        })
        .stderr(GuestOutput {
            grants: grants.clone(),
            stream: Stream::Stderr,
        })
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
        let limits = MeteredLimits::new(
            StoreLimitsBuilder::new()
                .memory_size(grants.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            grants.memory_bytes,
            &grants.telemetry.metrics,
        );
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCE_HANDLES);
        Self {
            grants,
            wasi: wasi.build(),
            table,
            limits,
            outboxes: Vec::new(),
            refused: None,
            call_started: Instant::now(),
            long_slot: Arc::new(std::sync::Mutex::new(CallTurn::instantiating())),
            emitted_records: 0,
            emitted_bytes: 0,
        }
    }

    /// The deployment's grants.
    pub fn grants(&self) -> &DeploymentGrants {
        &self.grants
    }

    pub(super) fn limits_mut(&mut self) -> &mut MeteredLimits {
        &mut self.limits
    }

    /// Reset per-call state before a call.
    pub(super) fn begin_call(&mut self) {
        self.outboxes.clear();
        self.refused = None;
        self.call_started = Instant::now();
        *self.long_slot.lock().unwrap() = CallTurn::default();
        self.emitted_records = 0;
        self.emitted_bytes = 0;
    }

    /// Where the current call keeps its long-call slot.
    pub(super) fn long_slot(&self) -> &HeldSlot {
        &self.long_slot
    }

    /// Whether the current call has used up its wall-clock budget.
    pub(super) fn deadline_passed(&self) -> bool {
        self.call_started.elapsed() >= self.grants.deadline
    }

    /// The outboxes of the call that just returned, and any refused emit.
    pub(super) fn finish_call(&mut self) -> (Vec<Outbox>, Option<String>) {
        // The call is over: its turn at long calls goes to the next.
        *self.long_slot.lock().unwrap() = CallTurn::default();
        (std::mem::take(&mut self.outboxes), self.refused.take())
    }

    fn check_outbox(&self, outbox: &Outbox) -> Result<(), emit::EmitError> {
        for topic in &outbox.topics {
            if !self.grants.outputs.contains(topic) {
                return Err(emit::EmitError::TopicNotAllowed(topic.clone()));
            }
        }
        let malformed = |what: String| Err(emit::EmitError::Malformed(what));
        if !outbox.records.len().is_multiple_of(OUTGOING_ENTRY_SIZE) {
            return malformed(format!(
                "outbox records are {} bytes, not a multiple of the {OUTGOING_ENTRY_SIZE}-byte entry",
                outbox.records.len()
            ));
        }
        if !outbox.headers.len().is_multiple_of(HEADER_ENTRY_SIZE) {
            return malformed(format!(
                "outbox headers are {} bytes, not a multiple of the {HEADER_ENTRY_SIZE}-byte entry",
                outbox.headers.len()
            ));
        }
        let data = &outbox.data;
        let in_data = |s: Option<Span>| s.is_none_or(|s| s.get(data).is_some());
        let headers = HeaderEntry::count(&outbox.headers) as u64;
        for i in 0..OutgoingEntry::count(&outbox.records) {
            let r = OutgoingEntry::read(&outbox.records, i).expect("length checked above");
            let bad = (r.topic as usize) >= outbox.topics.len()
                || !in_data(r.key)
                || !in_data(r.value)
                || u64::from(r.header_start) + u64::from(r.header_count) > headers;
            if bad {
                return malformed(format!("outbox record {i} points outside the outbox"));
            }
        }
        for i in 0..HeaderEntry::count(&outbox.headers) {
            let h = HeaderEntry::read(&outbox.headers, i).expect("length checked above");
            let name_ok = h
                .name
                .get(data)
                .is_some_and(|n| std::str::from_utf8(n).is_ok());
            if !name_ok || !in_data(h.value) {
                return malformed(format!(
                    "outbox header {i} is out of range or its name is not UTF-8"
                ));
            }
        }
        Ok(())
    }
}

impl HostState {
    /// Count a checked outbox against the per-call caps. Bytes are what
    /// Kafka will be asked to store, not the outbox's size: entries may
    /// all point at the same bytes, and each is produced in full.
    fn count_outbox(&mut self, outbox: &Outbox) -> Result<(), emit::EmitError> {
        let records = self.emitted_records + OutgoingEntry::count(&outbox.records) as u64;
        let bytes = self.emitted_bytes.saturating_add(outbox_bytes(outbox));
        let g = &self.grants;
        if records > g.max_output_records {
            return Err(emit::EmitError::LimitExceeded(format!(
                "a call may emit at most {} records (limits.max_output_records)",
                g.max_output_records
            )));
        }
        if bytes > g.max_output_bytes {
            return Err(emit::EmitError::LimitExceeded(format!(
                "a call may emit at most {} bytes of keys, values and headers (limits.max_output_bytes)",
                g.max_output_bytes
            )));
        }
        self.emitted_records = records;
        self.emitted_bytes = bytes;
        Ok(())
    }
}

/// The bytes `outboxes` ask Kafka to produce (see [`outbox_bytes`]): what
/// the `bytes_out` metric counts.
pub fn produced_bytes(outboxes: &[Outbox]) -> u64 {
    outboxes
        .iter()
        .map(outbox_bytes)
        .fold(0, u64::saturating_add)
}

/// The bytes `outbox` asks Kafka to produce: every record's key, value
/// and headers (names and values), counted per record even where records
/// share bytes. The one definition for the output caps and the
/// `bytes_out` metric. Expects a checked outbox (spans in range); out of
/// range parts count by their stated length, so it never undercounts.
fn outbox_bytes(outbox: &Outbox) -> u64 {
    let span = |s: Option<Span>| s.map_or(0, |s| u64::from(s.len));
    // Header bytes as prefix sums: a record's headers are a range of
    // entries, and ranges may overlap, so each record adds its range's sum.
    let mut header_prefix = Vec::with_capacity(HeaderEntry::count(&outbox.headers) + 1);
    let mut total = 0u64;
    header_prefix.push(0);
    for i in 0..HeaderEntry::count(&outbox.headers) {
        if let Some(h) = HeaderEntry::read(&outbox.headers, i) {
            total += u64::from(h.name.len) + span(h.value);
        }
        header_prefix.push(total);
    }
    let headers_of = |start: u32, count: u32| {
        let start = (start as usize).min(header_prefix.len() - 1);
        let end = start
            .saturating_add(count as usize)
            .min(header_prefix.len() - 1);
        header_prefix[end] - header_prefix[start]
    };
    (0..OutgoingEntry::count(&outbox.records))
        .filter_map(|i| OutgoingEntry::read(&outbox.records, i))
        .map(|r| span(r.key) + span(r.value) + headers_of(r.header_start, r.header_count))
        .fold(0u64, u64::saturating_add)
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl emit::Host for HostState {
    fn emit(&mut self, records: Outbox) -> Result<(), emit::EmitError> {
        if let Some(reason) = &self.refused {
            return Err(emit::EmitError::Malformed(format!(
                "an earlier emit in this call was refused: {reason}"
            )));
        }
        match self
            .check_outbox(&records)
            .and_then(|()| self.count_outbox(&records))
        {
            Ok(()) => {
                self.outboxes.push(records);
                Ok(())
            }
            Err(e) => {
                self.refused = Some(describe_emit_error(&e));
                Err(e)
            }
        }
    }
}

/// A sentence for logs, status and dead-letter headers.
fn describe_emit_error(e: &emit::EmitError) -> String {
    match e {
        emit::EmitError::TopicNotAllowed(t) => {
            format!("emit to topic {t:?} refused: the deployment is not granted it")
        }
        emit::EmitError::Malformed(m) => format!("malformed emit: {m}"),
        emit::EmitError::LimitExceeded(m) => format!("emit limit exceeded: {m}"),
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => GuestLevel::Trace,
            log::Level::Debug => GuestLevel::Debug,
            log::Level::Info => GuestLevel::Info,
            log::Level::Warn => GuestLevel::Warn,
            log::Level::Error => GuestLevel::Error,
        };
        self.grants.telemetry.log.line(level, Stream::Log, &message);
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.grants.config.get(&key).cloned()
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        self.grants
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl super::bindings::ingesta::runtime::types::Host for HostState {}

/// The linker for consumer components: our imports plus the WASI subset.
pub fn consumer_linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Consumer::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Guest stdout/stderr, turned into log lines of the deployment.
struct GuestOutput {
    grants: Arc<DeploymentGrants>,
    stream: Stream,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            grants: self.grants.clone(),
            stream: self.stream,
            pending: Vec::new(),
        })
    }
}

/// Splits written bytes into lines and logs each (clipped) line.
struct LineWriter {
    grants: Arc<DeploymentGrants>,
    stream: Stream,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let level = match self.stream {
            Stream::Stderr => GuestLevel::Warn,
            _ => GuestLevel::Info,
        };
        self.grants
            .telemetry
            .log
            .line(level, self.stream, text.trim_end_matches('\r'));
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut self.pending);
                self.emit_line(&line);
            } else if self.pending.len() <= MAX_LINE {
                // One byte over the bound, so the clip marks it truncated.
                self.pending.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit_line(&line);
        }
        Poll::Ready(Ok(()))
    }
}

/// The store's limits, also reporting the instance and its linear memory to
/// the deployment's metrics (wasmtime asks the limiter for every memory
/// and table, the initial allocation included).
///
/// `limits.memory_mib` caps the instance as a whole: a component may hold
/// several core instances, each with its own memories and tables, and
/// their sum is what the host pays for. Table elements count at
/// [`TABLE_ELEMENT_BYTES`] each.
pub(super) struct MeteredLimits {
    inner: StoreLimits,
    /// The cap on `memory_bytes + table_bytes`.
    cap: usize,
    memory_bytes: usize,
    table_bytes: usize,
    memory_gauge: prometheus::IntGauge,
    instances_gauge: prometheus::IntGauge,
}

/// What one table element costs the host (a function reference).
const TABLE_ELEMENT_BYTES: usize = 8;

impl MeteredLimits {
    fn new(inner: StoreLimits, cap: usize, metrics: &DeploymentMetrics) -> Self {
        metrics.instances.inc();
        Self {
            inner,
            cap,
            memory_bytes: 0,
            table_bytes: 0,
            memory_gauge: metrics.instance_memory_bytes.clone(),
            instances_gauge: metrics.instances.clone(),
        }
    }

    /// Refuse growth by `grown` bytes past the cap on the whole instance.
    /// The text says "growing memory", which classifies the trap as
    /// out-of-memory (see `instance::classify_trap`).
    fn check_total(&self, what: &str, grown: usize) -> wasmtime::Result<()> {
        let total = self.memory_bytes + self.table_bytes + grown;
        if total > self.cap {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing memory: this {what} would bring the instance's memories and tables to {total} bytes, over limits.memory_mib ({} bytes in all)",
                self.cap
            )));
        }
        Ok(())
    }
}

impl Drop for MeteredLimits {
    fn drop(&mut self) {
        self.memory_gauge.sub(self.memory_bytes as i64);
        self.instances_gauge.dec();
    }
}

impl ResourceLimiter for MeteredLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            let grown = desired.saturating_sub(current);
            self.check_total("memory", grown)?;
            self.memory_bytes += grown;
            self.memory_gauge.add(grown as i64);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum)?;
        if allowed {
            let grown = desired.saturating_sub(current) * TABLE_ELEMENT_BYTES;
            self.check_total("table", grown)?;
            self.table_bytes += grown;
        }
        Ok(allowed)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox of `records` entries that all point at the same key,
    /// value and `headers` header entries.
    fn aliased(records: usize, value_len: usize, headers: usize) -> Outbox {
        let mut data = Vec::new();
        let key = Span::append(&mut data, b"k");
        let value = Span::append(&mut data, &vec![b'v'; value_len]);
        let mut header_entries = Vec::new();
        for _ in 0..headers {
            let name = Span::append(&mut data, b"name");
            let value = Some(Span::append(&mut data, b"value!"));
            HeaderEntry { name, value }.encode(&mut header_entries);
        }
        let mut entries = Vec::new();
        for _ in 0..records {
            OutgoingEntry {
                topic: 0,
                key: Some(key),
                value: Some(value),
                header_start: 0,
                header_count: headers as u32,
            }
            .encode(&mut entries);
        }
        Outbox {
            topics: vec!["out".into()],
            data,
            records: entries,
            headers: header_entries,
        }
    }

    #[test]
    fn produced_bytes_count_every_record_in_full_even_when_they_share_bytes() {
        // The measured attack: 60,000 entries over one 1,000-byte value.
        let outbox = aliased(60_000, 1_000, 0);
        assert!(outbox.data.len() < 1_100);
        assert_eq!(
            produced_bytes(std::slice::from_ref(&outbox)),
            60_000 * 1_001
        );
        // Shared headers count for every record that carries them.
        let with_headers = aliased(3, 10, 2);
        assert_eq!(produced_bytes(&[with_headers]), 3 * (1 + 10 + 2 * (4 + 6)));
        // Null keys and values count nothing; an empty outbox is free.
        let mut empty = aliased(0, 0, 0);
        assert_eq!(produced_bytes(std::slice::from_ref(&empty)), 0);
        empty.records.clear();
        OutgoingEntry {
            topic: 0,
            key: None,
            value: None,
            header_start: 0,
            header_count: 0,
        }
        .encode(&mut empty.records);
        assert_eq!(produced_bytes(&[empty]), 0);
    }

    #[test]
    fn the_output_byte_cap_counts_produced_bytes_not_the_buffer() {
        let limits = crate::deployment::LimitsConfig {
            max_output_records: 100_000,
            max_output_bytes: 1 << 20,
            ..crate::deployment::LimitsConfig::default()
        };
        let mut grants = DeploymentGrants::new(
            "d",
            &limits,
            "sha256:test".into(),
            crate::telemetry::DeploymentTelemetry::new("d"),
        );
        grants.outputs.insert("out".into());
        let grants = Arc::new(grants);
        let mut host = HostState::new(grants);
        host.begin_call();
        // 2,000 records × 1,001 bytes ≈ 1.9 MiB from a 1 KB buffer.
        let err = emit::Host::emit(&mut host, aliased(2_000, 1_000, 0)).unwrap_err();
        let text = describe_emit_error(&err);
        assert!(text.contains("limits.max_output_bytes"), "{text}");
        let (outboxes, refused) = host.finish_call();
        assert!(outboxes.is_empty(), "a refused outbox must not be kept");
        assert!(refused.is_some());
        // Just under the cap passes.
        host.begin_call();
        emit::Host::emit(&mut host, aliased(1_000, 1_000, 0)).unwrap();
        assert_eq!(host.finish_call().0.len(), 1);
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    /// A component of two core instances, each with `pages` pages of
    /// linear memory from the start (64 KiB a page).
    fn two_memories(pages: u32) -> Vec<u8> {
        wat::parse_str(format!(
            "(component
               (core module $a (memory {pages}))
               (core module $b (memory {pages}))
               (core instance (instantiate $a))
               (core instance (instantiate $b)))"
        ))
        .unwrap()
    }

    fn instantiate(cap_mib: u64, component: &[u8]) -> wasmtime::Result<()> {
        let engine = Engine::default();
        let limits = crate::deployment::LimitsConfig {
            memory_mib: cap_mib,
            ..crate::deployment::LimitsConfig::default()
        };
        let grants = Arc::new(DeploymentGrants::new(
            "d",
            &limits,
            "sha256:test".into(),
            crate::telemetry::DeploymentTelemetry::new("d"),
        ));
        let mut store = wasmtime::Store::new(&engine, HostState::new(grants));
        store.limiter(|s| s.limits_mut());
        let component = wasmtime::component::Component::new(&engine, component)?;
        Linker::<HostState>::new(&engine).instantiate(&mut store, &component)?;
        Ok(())
    }

    #[test]
    fn the_memory_cap_is_the_total_over_every_memory_of_an_instance() {
        // Two memories of 40 MiB: each under a 64 MiB cap, together over.
        let over = instantiate(64, &two_memories(640)).unwrap_err();
        let text = format!("{over:#}");
        assert!(text.contains("growing memory"), "{text}");
        assert!(text.contains("limits.memory_mib"), "{text}");
        // Two of 16 MiB fit.
        instantiate(64, &two_memories(256)).unwrap();
    }
}
