//! Topics through the control plane: a tenant creates, alters and deletes
//! the topics its `create_topics` grants name, within its maxima; lists
//! and describes the ones it may read, write or create. Every rule is
//! checked before Kafka is asked, and refusals name the grant, maximum or
//! numbers at fault.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Error, Service, audit};
use crate::api::{AlterTopic, CreateTopic, TopicInfo};
use crate::auth::{Caller, TenantConfig};
use crate::kafka::topics::{Cluster, SETTABLE, TopicAdmin, TopicError};

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most partitions of one topic, whoever asks.
const MAX_PARTITIONS: i32 = 10_000;

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        match e {
            TopicError::NotFound(_) => Error::NotFound(e.to_string()),
            TopicError::Exists(_) => Error::Conflict(e.to_string()),
            TopicError::Refused { .. } => Error::Invalid(e.to_string()),
            TopicError::Unavailable { .. } => Error::Unavailable(e.to_string()),
        }
    }
}

impl Service {
    fn topic_admin(&self) -> Result<TopicAdmin, Error> {
        Ok(TopicAdmin::new(self.offsets.kafka(), ADMIN_TIMEOUT)?)
    }

    /// The cluster's brokers and topics, read in a blocking task.
    async fn cluster(&self) -> Result<(TopicAdmin, Cluster), Error> {
        let admin = self.topic_admin()?;
        let (admin, cluster) = tokio::task::spawn_blocking(move || {
            let cluster = admin.cluster();
            (admin, cluster)
        })
        .await
        .map_err(|e| Error::Internal(format!("reading the cluster's topics panicked: {e}")))?;
        Ok((admin, cluster?))
    }

    /// The topics the caller may see (read, write or create), described.
    pub async fn topics(&self, caller: &Caller) -> Result<Vec<TopicInfo>, Error> {
        let (admin, cluster) = self.cluster().await?;
        let reserved = self.state.reserved();
        let names: Vec<String> = cluster
            .topics
            .keys()
            .filter(|t| caller.sees_topic(t))
            .filter(|t| matches!(caller, Caller::Operator) || !reserved.contains(t))
            .cloned()
            .collect();
        let mut configs = admin.configs(&names).await?;
        Ok(names
            .into_iter()
            .map(|name| {
                let (partitions, replication_factor) = cluster.topics[&name];
                TopicInfo {
                    configs: configs.remove(&name).unwrap_or_default(),
                    name,
                    partitions,
                    replication_factor,
                }
            })
            .collect())
    }

    /// One topic the caller may see.
    pub async fn topic(&self, caller: &Caller, name: &str) -> Result<TopicInfo, Error> {
        let (admin, cluster) = self.cluster().await?;
        describe(caller, &admin, &cluster, name, &self.state.reserved()).await
    }

    /// Create a topic within the caller's grants and maxima.
    pub async fn create_topic(
        &self,
        caller: &Caller,
        body: CreateTopic,
    ) -> Result<TopicInfo, Error> {
        let name = body.name.clone();
        let result = async {
            self.check_topic_name(caller, &name)?;
            check_configs(&name, body.configs.iter().map(|(k, v)| (k, Some(v))))?;
            if !(1..=MAX_PARTITIONS).contains(&body.partitions) {
                return Err(Error::Invalid(format!(
                    "topic {name:?}: partitions must be 1 to {MAX_PARTITIONS}, not {}",
                    body.partitions
                )));
            }
            let (admin, cluster) = self.cluster().await?;
            if cluster.topics.contains_key(&name) {
                return Err(Error::Conflict(format!("topic {name:?} exists already")));
            }
            let replication = match body.replication_factor {
                Some(r) => r,
                None => admin.default_replication().await,
            };
            check_replication(&name, replication, cluster.brokers, body.configs.get("min.insync.replicas"))?;
            let mut configs = body.configs.clone();
            if let Caller::Tenant(t) = caller {
                apply_default_retention(t, &mut configs);
                let totals = self.tenant_totals(t, &admin, &cluster, None).await?;
                check_maxima(t, &name, body.partitions, &configs, totals)?;
            }
            admin
                .create(&name, body.partitions, body.replication_factor, &configs)
                .await?;
            // The new topic's metadata may take a moment to show.
            for _ in 0..50 {
                let (admin, cluster) = self.cluster().await?;
                if cluster.topics.contains_key(&name) {
                    return describe(caller, &admin, &cluster, &name, &self.state.reserved()).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(Error::Unavailable(format!(
                "topic {name:?} was created but does not show in Kafka's metadata yet; describe it again in a moment"
            )))
        }
        .await;
        audit(caller, "topic.create", &name, &result);
        result
    }

    /// Change only what `change` names: more partitions, settings set or
    /// returned to the broker's default.
    pub async fn alter_topic(
        &self,
        caller: &Caller,
        name: &str,
        change: AlterTopic,
    ) -> Result<TopicInfo, Error> {
        let result = async {
            self.check_topic_name(caller, name)?;
            check_configs(name, change.configs.iter().map(|(k, v)| (k, v.as_ref())))?;
            let (admin, cluster) = self.cluster().await?;
            let current = describe(caller, &admin, &cluster, name, &self.state.reserved()).await?;
            let partitions = change.partitions.unwrap_or(current.partitions);
            if partitions < current.partitions || partitions > MAX_PARTITIONS {
                return Err(Error::Invalid(format!(
                    "topic {name:?} has {} partitions; Kafka can only add partitions (up to {MAX_PARTITIONS}), not go to {partitions}",
                    current.partitions
                )));
            }
            let mut after = current.configs.clone();
            for (k, v) in &change.configs {
                match v {
                    Some(v) => after.insert(k.clone(), v.clone()),
                    None => after.remove(k),
                };
            }
            if let Some(min) = change.configs.get("min.insync.replicas").and_then(Option::as_ref) {
                check_replication(name, current.replication_factor, cluster.brokers, Some(min))?;
            }
            if let Caller::Tenant(t) = caller {
                let totals = self.tenant_totals(t, &admin, &cluster, Some(name)).await?;
                check_maxima(t, name, partitions, &after, totals)?;
            }
            if !change.configs.is_empty() {
                let (changes, topic) = (change.configs.clone(), name.to_owned());
                let admin = self.topic_admin()?;
                tokio::task::spawn_blocking(move || admin.alter(&topic, &changes))
                    .await
                    .map_err(|e| Error::Internal(format!("altering topic {name:?} panicked: {e}")))??;
            }
            if partitions > current.partitions {
                admin.add_partitions(name, partitions as usize).await?;
            }
            let (admin, cluster) = self.cluster().await?;
            describe(caller, &admin, &cluster, name, &self.state.reserved()).await
        }
        .await;
        audit(caller, "topic.alter", name, &result);
        result
    }

    /// Delete a topic no deployment uses.
    pub async fn delete_topic(&self, caller: &Caller, name: &str) -> Result<(), Error> {
        let result = async {
            self.check_topic_name(caller, name)?;
            let users: Vec<String> = self
                .supervisor
                .snapshot()
                .into_iter()
                .filter(|v| v.def.spec.topics().any(|(_, t)| t == name))
                .map(|v| match &v.record {
                    Some(r) if caller.sees(&r.tenant) => r.name.clone(),
                    _ => "(another tenant's)".to_owned(),
                })
                .collect();
            if !users.is_empty() {
                return Err(Error::Conflict(format!(
                    "topic {name:?} is used by deployments {users:?}; remove them (or their use of it) first"
                )));
            }
            self.topic_admin()?.delete(name).await.map_err(Error::from)
        }
        .await;
        audit(caller, "topic.delete", name, &result);
        result
    }

    /// A name Kafka takes, not reserved, within the caller's create grants.
    fn check_topic_name(&self, caller: &Caller, name: &str) -> Result<(), Error> {
        if !crate::deployment::is_valid_topic(name) {
            return Err(Error::Invalid(format!(
                "{name:?} is not a topic name Kafka takes: 1-249 characters of a-z, A-Z, 0-9, '.', '_' or '-'"
            )));
        }
        if name.starts_with("__") || self.state.reserved().contains(name) {
            return Err(Error::Forbidden(format!(
                "topic {name:?} is reserved (Kafka's internal topics and ingesta's state and redrive topics)"
            )));
        }
        caller.check_create_topic(name).map_err(Error::from)
    }

    /// What the tenant's existing topics (those its create grants match,
    /// except `leaving_out`) hold: partitions, and retention bytes over
    /// all partitions (`None`: one of them keeps unlimited bytes).
    async fn tenant_totals(
        &self,
        t: &TenantConfig,
        admin: &TopicAdmin,
        cluster: &Cluster,
        leaving_out: Option<&str>,
    ) -> Result<Totals, Error> {
        let own: Vec<String> = cluster
            .topics
            .keys()
            .filter(|n| Some(n.as_str()) != leaving_out)
            .filter(|n| t.create_topics.iter().any(|g| g.matches(n)))
            .cloned()
            .collect();
        let partitions: u64 = own.iter().map(|n| cluster.topics[n].0 as u64).sum();
        let mut bytes = Some(0u64);
        if t.max_retention_bytes_total.is_some() {
            let configs = admin.configs(&own).await?;
            for n in &own {
                let per = configs
                    .get(n)
                    .and_then(|c| c.get("retention.bytes"))
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-1);
                bytes = match (bytes, u64::try_from(per)) {
                    (Some(b), Ok(per)) => {
                        Some(b.saturating_add(per.saturating_mul(cluster.topics[n].0 as u64)))
                    }
                    _ => None,
                };
            }
        }
        Ok(Totals { partitions, bytes })
    }
}

/// A tenant's existing topics, for its maxima.
#[derive(Debug, Clone, Copy)]
struct Totals {
    partitions: u64,
    bytes: Option<u64>,
}

async fn describe(
    caller: &Caller,
    admin: &TopicAdmin,
    cluster: &Cluster,
    name: &str,
    reserved: &super::Reserved<'_>,
) -> Result<TopicInfo, Error> {
    let hidden = !caller.sees_topic(name)
        || (matches!(caller, Caller::Tenant(_)) && reserved.contains(name));
    let Some(&(partitions, replication_factor)) = cluster.topics.get(name).filter(|_| !hidden)
    else {
        return Err(Error::NotFound(format!("topic {name:?}")));
    };
    let configs = admin
        .configs(&[name.to_owned()])
        .await?
        .remove(name)
        .unwrap_or_default();
    Ok(TopicInfo {
        name: name.to_owned(),
        partitions,
        replication_factor,
        configs,
    })
}

/// Only the managed settings, each with a value of its kind.
fn check_configs<'a>(
    topic: &str,
    configs: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) -> Result<(), Error> {
    for (key, value) in configs {
        if !SETTABLE.contains(&key.as_str()) {
            return Err(Error::Invalid(format!(
                "topic {topic:?}: setting {key:?} cannot be set through ingesta (settable: {})",
                SETTABLE.join(", ")
            )));
        }
        let Some(value) = value else { continue };
        let ok = match key.as_str() {
            "cleanup.policy" => matches!(
                value.as_str(),
                "delete" | "compact" | "compact,delete" | "delete,compact"
            ),
            "retention.ms" | "retention.bytes" => value.parse::<i64>().is_ok_and(|v| v >= -1),
            _ => value.parse::<i64>().is_ok_and(|v| v >= 1),
        };
        if !ok {
            return Err(Error::Invalid(format!(
                "topic {topic:?}: {key} = {value:?} is not valid ({})",
                match key.as_str() {
                    "cleanup.policy" => "delete, compact or compact,delete",
                    "retention.ms" | "retention.bytes" => "a whole number, -1 for unlimited",
                    _ => "a whole number of at least 1",
                }
            )));
        }
    }
    Ok(())
}

/// A replication factor the cluster can place, and at least as many
/// replicas as `min.insync.replicas` asks to be in sync.
fn check_replication(
    topic: &str,
    replication: i32,
    brokers: usize,
    min_insync: Option<&String>,
) -> Result<(), Error> {
    if replication < 1 || replication as usize > brokers {
        return Err(Error::Invalid(format!(
            "topic {topic:?}: replication factor {replication} needs {replication} brokers, and the cluster has {brokers}"
        )));
    }
    if let Some(min) = min_insync.and_then(|m| m.parse::<i32>().ok())
        && min > replication
    {
        return Err(Error::Invalid(format!(
            "topic {topic:?}: min.insync.replicas {min} is more than its replication factor {replication}: no write with acks=all could ever succeed"
        )));
    }
    Ok(())
}

/// A tenant with a retention maximum gets it as the topic's retention when
/// it names none (the broker's default could be over it).
fn apply_default_retention(t: &TenantConfig, configs: &mut BTreeMap<String, String>) {
    if let Some(max) = t.max_retention_ms {
        configs
            .entry("retention.ms".into())
            .or_insert_with(|| max.to_string());
    }
}

/// The tenant's maxima, for a topic of `partitions` with `configs` in
/// effect beside `others`.
fn check_maxima(
    t: &TenantConfig,
    topic: &str,
    partitions: i32,
    configs: &BTreeMap<String, String>,
    others: Totals,
) -> Result<(), Error> {
    let tenant = &t.name;
    let partitions = partitions as u64;
    let over = |what: String, max: u64| {
        Err(Error::Forbidden(format!(
            "topic {topic:?}: {what} is over tenant {tenant:?}'s maximum of {max}"
        )))
    };
    if let Some(max) = t.max_topic_partitions
        && partitions > max
    {
        return over(format!("{partitions} partitions"), max);
    }
    if let Some(max) = t.max_total_partitions
        && others.partitions + partitions > max
    {
        return over(
            format!(
                "{} partitions in all ({partitions} here, {} in its other topics; max_total_partitions)",
                others.partitions + partitions,
                others.partitions
            ),
            max,
        );
    }
    let number = |key: &str| configs.get(key).and_then(|v| v.parse::<i64>().ok());
    if let Some(max) = t.max_retention_ms {
        match number("retention.ms") {
            Some(ms) if ms >= 0 && ms as u64 <= max => {}
            Some(ms) => {
                return over(
                    format!("retention.ms {ms} (max_retention_ms; -1 is unlimited)"),
                    max,
                );
            }
            None => return over("unset retention.ms".into(), max),
        }
    }
    if let Some(max) = t.max_retention_bytes_total {
        let Some(held) = others.bytes else {
            return Err(Error::Forbidden(format!(
                "topic {topic:?}: another topic of tenant {tenant:?} keeps unlimited retention.bytes, so max_retention_bytes_total ({max}) cannot be kept; set retention.bytes on it first"
            )));
        };
        match number("retention.bytes") {
            Some(b) if b >= 0 && held + b as u64 * partitions <= max => {}
            Some(b) if b >= 0 => {
                return over(
                    format!(
                        "retention.bytes {b} × {partitions} partitions + {held} held by its other topics (max_retention_bytes_total)"
                    ),
                    max,
                );
            }
            _ => {
                return over(
                    "unlimited retention.bytes (set retention.bytes; max_retention_bytes_total)"
                        .into(),
                    max,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        TenantConfig {
            name: "shop".into(),
            max_topic_partitions: Some(8),
            max_total_partitions: Some(12),
            max_retention_ms: Some(604_800_000),
            max_retention_bytes_total: Some(1_000),
            ..Default::default()
        }
    }

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn refused(r: Result<(), Error>, needle: &str) {
        let e = r.expect_err("should be refused").to_string();
        assert!(e.contains(needle), "{e} should name {needle:?}");
    }

    #[test]
    fn maxima_are_checked_and_named() {
        let t = tenant();
        let ok = configs(&[("retention.ms", "604800000"), ("retention.bytes", "100")]);
        let none = Totals {
            partitions: 0,
            bytes: Some(0),
        };
        assert!(check_maxima(&t, "x", 4, &ok, none).is_ok());
        refused(
            check_maxima(&t, "x", 9, &ok, none),
            "9 partitions is over tenant \"shop\"'s maximum of 8",
        );
        let held = Totals {
            partitions: 10,
            bytes: Some(0),
        };
        refused(check_maxima(&t, "x", 4, &ok, held), "max_total_partitions");
        let long = configs(&[("retention.ms", "-1"), ("retention.bytes", "100")]);
        refused(check_maxima(&t, "x", 4, &long, none), "retention.ms -1");
        let big = configs(&[("retention.ms", "1"), ("retention.bytes", "300")]);
        refused(check_maxima(&t, "x", 4, &big, none), "300 × 4 partitions");
        let unlimited = Totals {
            partitions: 0,
            bytes: None,
        };
        refused(
            check_maxima(&t, "x", 1, &ok, unlimited),
            "keeps unlimited retention.bytes",
        );
        let mut defaulted = BTreeMap::new();
        apply_default_retention(&t, &mut defaulted);
        assert_eq!(defaulted["retention.ms"], "604800000");
    }

    #[test]
    fn settings_and_replication_are_checked_with_both_numbers() {
        let set = |k: &str, v: &str| {
            check_configs("x", [(&k.to_owned(), Some(&v.to_owned()))].into_iter())
        };
        assert!(set("retention.ms", "604800000").is_ok());
        assert!(set("cleanup.policy", "compact,delete").is_ok());
        refused(
            set("retention.hours", "168"),
            "\"retention.hours\" cannot be set",
        );
        refused(set("segment.bytes", "0"), "segment.bytes = \"0\"");
        refused(set("cleanup.policy", "forever"), "cleanup.policy");
        refused(
            check_replication("x", 3, 1, None),
            "replication factor 3 needs 3 brokers, and the cluster has 1",
        );
        refused(
            check_replication("x", 1, 1, Some(&"2".to_owned())),
            "min.insync.replicas 2 is more than its replication factor 1",
        );
        assert!(check_replication("x", 3, 3, Some(&"2".to_owned())).is_ok());
    }
}
