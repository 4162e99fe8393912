//! Batched broker look-ups rust-rdkafka does not offer, through
//! librdkafka's admin API directly: the earliest and latest offsets of many
//! partitions in one `ListOffsets` request each, and the committed offsets
//! of many groups in `ListConsumerGroupOffsets` requests sent together.
//! Blocking: call from a blocking task.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// A topic and partition.
pub type Tp = (String, i32);

/// A look-up that failed as a whole.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created from the `[kafka]` settings;
    /// carries librdkafka's message.
    #[error("invalid Kafka settings for the offsets client: {0}")]
    Client(String),
    /// Not every answer of a batched look-up arrived within its timeout
    /// (carried); nothing of it is used.
    #[error("Kafka did not answer the offsets look-up within {0:?}")]
    Timeout(Duration),
    /// The cluster's topic metadata could not be read, or the blocking
    /// task of a look-up failed; carries the reason.
    #[error("cannot fetch topic metadata from Kafka: {0}")]
    Metadata(String),
}

/// What one [`Admin::fetch`] found.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    /// `(low, high)` watermarks of the partitions asked for (a partition
    /// Kafka refused is missing, its reason in `failed`).
    pub watermarks: HashMap<Tp, (i64, i64)>,
    /// Per group: committed offset of each partition asked for (`None`:
    /// no commit), or why the group could not be read.
    pub committed: HashMap<String, Result<HashMap<Tp, Option<i64>>, String>>,
    /// Partitions whose offsets Kafka refused, and why.
    pub failed: HashMap<Tp, String>,
}

/// One admin client, shared by everything that reads offsets.
pub(super) struct Admin {
    client: AdminClient<DefaultClientContext>,
}

/// Tells the two `ListOffsets` results apart.
const EARLIEST: usize = 1;
const LATEST: usize = 2;

impl Admin {
    /// The runner's offsets client.
    pub(super) fn new(kafka: &KafkaConfig) -> Result<Self, AdminError> {
        let client = crate::kafka::admin_config(kafka)
            .set("client.id", "ingesta-offsets")
            .create()
            .map_err(|e| AdminError::Client(e.to_string()))?;
        Ok(Self { client })
    }

    /// Each topic's `max.message.bytes` (the largest record batch it
    /// accepts), in one `DescribeConfigs` request. A topic Kafka has no
    /// answer for is missing from the map.
    pub(super) async fn max_message_bytes(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<HashMap<String, i64>, AdminError> {
        use rdkafka::admin::{AdminOptions, OwnedResourceSpecifier, ResourceSpecifier};
        let asked: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let options = AdminOptions::new().request_timeout(Some(timeout));
        let described =
            tokio::time::timeout(timeout, self.client.describe_configs(&asked, &options))
                .await
                .map_err(|_| AdminError::Timeout(timeout))?
                .map_err(|e| AdminError::Metadata(e.to_string()))?;
        Ok(described
            .into_iter()
            .flatten()
            .filter_map(|resource| {
                let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else {
                    return None;
                };
                let bytes = resource
                    .get("max.message.bytes")?
                    .value
                    .as_deref()?
                    .parse()
                    .ok()?;
                Some((topic.clone(), bytes))
            })
            .collect())
    }

    /// The partitions of every topic in `topics` that exists.
    pub(super) fn partitions(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<HashMap<String, Vec<i32>>, AdminError> {
        let metadata = self
            .client
            .inner()
            .fetch_metadata(None, timeout)
            .map_err(|e| AdminError::Metadata(e.to_string()))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && topics.iter().any(|w| w == t.name()))
            .map(|t| {
                let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                (t.name().to_owned(), ids)
            })
            .collect())
    }

    /// The watermarks of `partitions` and the committed offsets of each
    /// group on its partitions, in `2 + groups` requests sent at once.
    pub(super) fn fetch(
        &self,
        partitions: &[Tp],
        groups: &[(String, Vec<Tp>)],
        timeout: Duration,
    ) -> Result<Fetched, AdminError> {
        let rk = self.client.inner().native_ptr();
        let deadline = Instant::now() + timeout;
        let mut fetched = Fetched::default();
        // SAFETY: every librdkafka object made here is destroyed before
        // returning; lists passed to requests are copied by librdkafka
        // and kept alive (`_keep`) until the results are in anyway.
        unsafe {
            let queue = rd::rd_kafka_queue_new(rk);
            let mut pending = 0usize;
            let mut _keep = Vec::new();
            let mut options = Vec::new();
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            let mut request = |opaque: usize| {
                let o = rd::rd_kafka_AdminOptions_new(
                    rk,
                    rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ANY,
                );
                let mut err = [0 as c_char; 256];
                rd::rd_kafka_AdminOptions_set_request_timeout(o, ms, err.as_mut_ptr(), err.len());
                rd::rd_kafka_AdminOptions_set_opaque(o, opaque as *mut std::ffi::c_void);
                options.push(o);
                o
            };
            if !partitions.is_empty() {
                for (which, spec) in [(EARLIEST, Offset::Beginning), (LATEST, Offset::End)] {
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in partitions {
                        let _ = tpl.add_partition_offset(t, *p, spec);
                    }
                    rd::rd_kafka_ListOffsets(rk, tpl.ptr(), request(which), queue);
                    _keep.push(tpl);
                    pending += 1;
                }
            }
            let mut names = Vec::new();
            for (group, tps) in groups {
                let Ok(name) = CString::new(group.as_str()) else {
                    continue;
                };
                let mut tpl = TopicPartitionList::new();
                for (t, p) in tps {
                    tpl.add_partition(t, *p);
                }
                let mut req = rd::rd_kafka_ListConsumerGroupOffsets_new(name.as_ptr(), tpl.ptr());
                rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut req, 1, request(0), queue);
                rd::rd_kafka_ListConsumerGroupOffsets_destroy(req);
                names.push(name);
                _keep.push(tpl);
                pending += 1;
            }
            let mut outcome = Ok(());
            while pending > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    outcome = Err(AdminError::Timeout(timeout));
                    break;
                }
                let event = rd::rd_kafka_queue_poll(queue, left.as_millis().max(1) as i32);
                if event.is_null() {
                    continue;
                }
                pending -= 1;
                read_event(event, &mut fetched);
                rd::rd_kafka_event_destroy(event);
            }
            for o in options {
                rd::rd_kafka_AdminOptions_destroy(o);
            }
            rd::rd_kafka_queue_destroy(queue);
            outcome.map(|()| fetched)
        }
    }
}

/// Take in one result event.
///
/// # Safety
/// `event` must be a live event of a `ListOffsets` or
/// `ListConsumerGroupOffsets` request.
unsafe fn read_event(event: *mut rd::rd_kafka_event_t, fetched: &mut Fetched) {
    unsafe {
        let failure = (rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| text(rd::rd_kafka_event_error_string(event)));
        match rd::rd_kafka_event_type(event) {
            rd::RD_KAFKA_EVENT_LISTOFFSETS_RESULT => {
                let which = rd::rd_kafka_event_opaque(event) as usize;
                let result = rd::rd_kafka_event_ListOffsets_result(event);
                if let Some(why) = failure.or_else(|| result.is_null().then(|| "no result".into()))
                {
                    tracing::debug!(error = %why, "ListOffsets failed");
                    return;
                }
                let mut n = 0usize;
                let infos = rd::rd_kafka_ListOffsets_result_infos(result, &mut n);
                for i in 0..n {
                    let tp = &*rd::rd_kafka_ListOffsetsResultInfo_topic_partition(*infos.add(i));
                    let key = (text(tp.topic), tp.partition);
                    if tp.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        fetched
                            .failed
                            .insert(key, text(rd::rd_kafka_err2str(tp.err)));
                        continue;
                    }
                    let marks = fetched.watermarks.entry(key).or_insert((-1, -1));
                    if which == EARLIEST {
                        marks.0 = tp.offset;
                    } else {
                        marks.1 = tp.offset;
                    }
                }
            }
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT => {
                let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event);
                if result.is_null() {
                    return;
                }
                let mut n = 0usize;
                let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n);
                for i in 0..n {
                    let g = *groups.add(i);
                    let name = text(rd::rd_kafka_group_result_name(g));
                    let error = rd::rd_kafka_group_result_error(g);
                    if let Some(why) = failure.clone() {
                        fetched.committed.insert(name, Err(why));
                        continue;
                    }
                    if !error.is_null() {
                        fetched
                            .committed
                            .insert(name, Err(text(rd::rd_kafka_error_string(error))));
                        continue;
                    }
                    let list = &*rd::rd_kafka_group_result_partitions(g);
                    let mut offsets = HashMap::new();
                    for j in 0..list.cnt as usize {
                        let tp = &*list.elems.add(j);
                        let committed = (tp.offset >= 0).then_some(tp.offset);
                        offsets.insert((text(tp.topic), tp.partition), committed);
                    }
                    fetched.committed.insert(name, Ok(offsets));
                }
            }
            _ => {}
        }
    }
}

/// A C string librdkafka owns, copied.
///
/// # Safety
/// `s` must be null or a NUL-terminated string.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}
