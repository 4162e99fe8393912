//! Topics through Kafka's admin API, for the control plane's `/v1/topics`:
//! the cluster's topics with their partitions, replication and the
//! settings ingesta manages; creating, growing, altering (incrementally,
//! through librdkafka's `IncrementalAlterConfigs`, which rust-rdkafka does
//! not wrap) and deleting them. Who may do what is the service's concern.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

/// The settings a topic may be given through ingesta.
pub const SETTABLE: [&str; 6] = [
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "cleanup.policy",
    "min.insync.replicas",
    "max.message.bytes",
];

/// Why a topic operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TopicError {
    /// No such topic.
    #[error("topic {0:?} does not exist")]
    NotFound(String),
    /// Creating a topic that exists.
    #[error("topic {0:?} exists already")]
    Exists(String),
    /// Kafka refused the request as invalid (a setting's value, a
    /// partition count); carries Kafka's message.
    #[error("Kafka refused the change to topic {topic:?}: {message}")]
    Refused {
        /// The topic.
        topic: String,
        /// Kafka's error and message.
        message: String,
    },
    /// Kafka could not be asked, or did not answer in time.
    #[error("cannot reach Kafka about topic {topic:?}: {message}")]
    Unavailable {
        /// The topic (or `*` for the cluster).
        topic: String,
        /// What failed.
        message: String,
    },
}

/// The cluster as the topic rules need it.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Live brokers.
    pub brokers: usize,
    /// Every topic but Kafka's internal ones: partitions and replication
    /// factor.
    pub topics: BTreeMap<String, (i32, i32)>,
}

/// A Kafka admin client for topics.
pub struct TopicAdmin {
    client: AdminClient<DefaultClientContext>,
    timeout: Duration,
}

impl TopicAdmin {
    /// A client with the `[kafka]` settings; each request may take
    /// `timeout`.
    pub fn new(kafka: &KafkaConfig, timeout: Duration) -> Result<Self, TopicError> {
        let client = super::admin_config(kafka)
            .create()
            .map_err(|e| unavailable("*", e))?;
        Ok(Self { client, timeout })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    /// The brokers and topics. Blocking.
    pub fn cluster(&self) -> Result<Cluster, TopicError> {
        let metadata = self
            .client
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| unavailable("*", e))?;
        let topics = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| {
                let rf = t
                    .partitions()
                    .first()
                    .map_or(0, |p| p.replicas().len() as i32);
                (t.name().to_owned(), (t.partitions().len() as i32, rf))
            })
            .collect();
        Ok(Cluster {
            brokers: metadata.brokers().len(),
            topics,
        })
    }

    /// The managed settings of each topic, as in effect.
    pub async fn configs(
        &self,
        topics: &[String],
    ) -> Result<HashMap<String, BTreeMap<String, String>>, TopicError> {
        if topics.is_empty() {
            return Ok(HashMap::new());
        }
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let results = self
            .client
            .describe_configs(&specs, &self.options())
            .await
            .map_err(|e| unavailable("*", e))?;
        let mut out = HashMap::new();
        for (topic, result) in topics.iter().zip(results) {
            let resource = result.map_err(|code| match code {
                RDKafkaErrorCode::UnknownTopicOrPartition => TopicError::NotFound(topic.clone()),
                code => unavailable(topic, code),
            })?;
            let configs = resource
                .entries
                .iter()
                .filter(|e| SETTABLE.contains(&e.name.as_str()))
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect();
            out.insert(topic.clone(), configs);
        }
        Ok(out)
    }

    /// The broker's `default.replication.factor` (1 when it cannot say).
    pub async fn default_replication(&self) -> i32 {
        let Ok(cluster) = self.client.inner().fetch_metadata(None, self.timeout) else {
            return 1;
        };
        let Some(broker) = cluster.brokers().first().map(|b| b.id()) else {
            return 1;
        };
        let spec = [ResourceSpecifier::Broker(broker)];
        let found = self.client.describe_configs(&spec, &self.options()).await;
        found
            .ok()
            .and_then(|mut r| r.pop())
            .and_then(Result::ok)
            .and_then(|r| r.get("default.replication.factor")?.value.clone())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Create `name`.
    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        replication: Option<i32>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let mut topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(replication.unwrap_or(-1)),
        );
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let result = self
            .client
            .create_topics([&topic], &self.options())
            .await
            .map_err(|e| unavailable(name, e))?;
        match result.into_iter().next() {
            Some(Ok(_)) | None => Ok(()),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                Err(TopicError::Exists(name.to_owned()))
            }
            Some(Err((_, code))) => Err(refused(name, code)),
        }
    }

    /// Grow `name` to `partitions` in all.
    pub async fn add_partitions(&self, name: &str, partitions: usize) -> Result<(), TopicError> {
        let more = NewPartitions::new(name, partitions);
        let result = self
            .client
            .create_partitions([&more], &self.options())
            .await
            .map_err(|e| unavailable(name, e))?;
        match result.into_iter().next() {
            Some(Ok(_)) | None => Ok(()),
            Some(Err((_, code))) => Err(refused(name, code)),
        }
    }

    /// Delete `name`.
    pub async fn delete(&self, name: &str) -> Result<(), TopicError> {
        let result = self
            .client
            .delete_topics(&[name], &self.options())
            .await
            .map_err(|e| unavailable(name, e))?;
        match result.into_iter().next() {
            Some(Ok(_)) | None => Ok(()),
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                Err(TopicError::NotFound(name.to_owned()))
            }
            Some(Err((_, code))) => Err(refused(name, code)),
        }
    }

    /// Set (`Some`) or return to the default (`None`) each named setting
    /// of `name`, leaving every other setting as it is. Blocking.
    pub fn alter(
        &self,
        name: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<(), TopicError> {
        let c = |s: &str| {
            CString::new(s).map_err(|_| TopicError::Refused {
                topic: name.to_owned(),
                message: format!("{s:?} contains a NUL byte"),
            })
        };
        let topic = c(name)?;
        let mut entries = Vec::new();
        for (k, v) in changes {
            entries.push((c(k)?, v.as_deref().map(c).transpose()?));
        }
        let rk = self.client.inner().native_ptr();
        let ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: every librdkafka object made here is destroyed before
        // returning; the C strings outlive the calls that copy them.
        unsafe {
            let resource = rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                topic.as_ptr(),
            );
            for (k, v) in &entries {
                let (op, value) = match v {
                    Some(v) => (
                        rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                        v.as_ptr(),
                    ),
                    None => (
                        rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                        std::ptr::null(),
                    ),
                };
                let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                    resource,
                    k.as_ptr(),
                    op,
                    value,
                );
                if !error.is_null() {
                    let message = text(rd::rd_kafka_error_string(error));
                    rd::rd_kafka_error_destroy(error);
                    rd::rd_kafka_ConfigResource_destroy(resource);
                    return Err(TopicError::Refused {
                        topic: name.to_owned(),
                        message,
                    });
                }
            }
            let options = rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            );
            let mut err = [0 as c_char; 256];
            rd::rd_kafka_AdminOptions_set_request_timeout(options, ms, err.as_mut_ptr(), err.len());
            let queue = rd::rd_kafka_queue_new(rk);
            let mut resources = [resource];
            rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, options, queue);
            // The request's own timeout bounds the wait; the margin covers
            // the result's delivery.
            let event = rd::rd_kafka_queue_poll(queue, ms.saturating_add(5_000));
            let outcome = if event.is_null() {
                Err(TopicError::Unavailable {
                    topic: name.to_owned(),
                    message: format!("no answer within {:?}", self.timeout),
                })
            } else {
                let outcome = alter_outcome(name, event);
                rd::rd_kafka_event_destroy(event);
                outcome
            };
            rd::rd_kafka_queue_destroy(queue);
            rd::rd_kafka_AdminOptions_destroy(options);
            rd::rd_kafka_ConfigResource_destroy(resource);
            outcome
        }
    }
}

/// The outcome an `IncrementalAlterConfigs` result event reports.
///
/// # Safety
/// `event` must be a live result event of that request.
unsafe fn alter_outcome(name: &str, event: *mut rd::rd_kafka_event_t) -> Result<(), TopicError> {
    unsafe {
        let code = rd::rd_kafka_event_error(event);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(TopicError::Unavailable {
                topic: name.to_owned(),
                message: text(rd::rd_kafka_event_error_string(event)),
            });
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
        let mut count = 0usize;
        let resources = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let r = *resources.add(i);
            let code = rd::rd_kafka_ConfigResource_error(r);
            if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
                return Err(TopicError::NotFound(name.to_owned()));
            }
            if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(TopicError::Refused {
                    topic: name.to_owned(),
                    message: format!(
                        "{}: {}",
                        text(rd::rd_kafka_err2str(code)),
                        text(rd::rd_kafka_ConfigResource_error_string(r))
                    ),
                });
            }
        }
        Ok(())
    }
}

fn unavailable(topic: &str, e: impl std::fmt::Display) -> TopicError {
    TopicError::Unavailable {
        topic: topic.to_owned(),
        message: e.to_string(),
    }
}

fn refused(topic: &str, code: RDKafkaErrorCode) -> TopicError {
    TopicError::Refused {
        topic: topic.to_owned(),
        message: code.to_string(),
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

/// Create the runner's own one-partition `topics` (each with its
/// settings) where missing.
pub async fn ensure_own(
    kafka_config: &KafkaConfig,
    topics: &[(&str, &[(&str, &str)])],
    replication: Option<i32>,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka_config)
        .create()
        .map_err(|e| anyhow::anyhow!("invalid Kafka admin client settings: {e}"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, settings)| {
            settings.iter().fold(
                NewTopic::new(t, 1, TopicReplication::Fixed(replication.unwrap_or(-1))),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot create the runner's own topics (is Kafka reachable?): {e}")
        })?;
    for r in results {
        match r {
            Ok(topic) => tracing::info!(%topic, "created control-plane topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!(
                "cannot create the control-plane topic {topic:?}: {code}; create it with one partition (see the README, \"Running a fleet\") or grant the runner CreateTopics"
            ),
        }
    }
    Ok(())
}
