//! A deployment's dead letters through the control plane: reading pages
//! of them and redriving chosen ones, whatever the caller's topic grants
//! (a tenant works with its own deployments' records only).

use super::{DEAD_LETTER_READS, Error, Service, audit};
use crate::api::{DeadLetterCursor, DeadLetterPage, RedriveReport, RedriveRequest};
use crate::auth::Caller;
use crate::kafka::dead_letters::{Redrive, Selection};

/// How long reading a page of dead letters may take.
const DEAD_LETTER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a redrive may take (reading what was redriven, selecting,
/// writing the copies until acknowledged).
const REDRIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Service {
    /// A page of the deployment's dead letters, whatever the caller's read
    /// grants: its own records, read back from its dead-letter topic.
    pub async fn dead_letters(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        from: DeadLetterCursor,
        limit: usize,
    ) -> Result<DeadLetterPage, Error> {
        let view = self.view(caller, name, tenant)?;
        let topic = dead_letter_topic(name, &view.def.spec)?;
        let _reading = self.dead_letter_permit(name)?;
        let kafka = self.offsets.kafka().clone();
        let deployment = view.def.name.clone();
        let read = tokio::task::spawn_blocking(move || {
            crate::kafka::dead_letters::read_page(
                &kafka,
                &topic,
                &deployment,
                from,
                limit,
                DEAD_LETTER_READ_TIMEOUT,
            )
        });
        match read.await {
            Ok(Ok(page)) => Ok(page),
            Ok(Err(e)) => Err(Error::Unavailable(format!("deployment {name:?}: {e}"))),
            Err(e) => Err(Error::Unavailable(format!(
                "deployment {name:?}: reading its dead letters failed: {e}"
            ))),
        }
    }

    /// Hand the selected dead letters to the deployment again: copies go to
    /// its own redrive topic (created at the first redrive, then read
    /// beside its inputs), so no other group reading its inputs sees them;
    /// a dead letter redriven before is skipped.
    pub async fn redrive(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        request: RedriveRequest,
    ) -> Result<RedriveReport, Error> {
        let result = async {
            self.check_ready()?;
            let record = self.record(caller, name, tenant)?;
            let spec = &record.settings;
            let Some(consumer) = spec.kind.consumer() else {
                return Err(Error::Invalid(format!(
                    "deployment {name:?} is a producer: it has no inputs to redrive into"
                )));
            };
            let dead_letter_topic = dead_letter_topic(name, spec)?;
            let selection = selection(&request)?;
            let _redriving = self.dead_letter_permit(name)?;
            // One redrive at a time on this runner: two at once would both
            // see a dead letter as not yet redriven.
            let _one = self.redrives.lock().await;
            let redrive_topic = self
                .state
                .reserved()
                .redrive_topic(&record.tenant, &record.name);
            let kafka = self.offsets.kafka().clone();
            let (deployment, inputs) = (record.key(), consumer.inputs.clone());
            let (topic, replication) = (redrive_topic.clone(), self.state_replication);
            let report = tokio::task::spawn_blocking(move || {
                crate::kafka::dead_letters::redrive(
                    &kafka,
                    &Redrive {
                        dead_letter_topic: &dead_letter_topic,
                        deployment: &deployment,
                        redrive_topic: &topic,
                        inputs: &inputs,
                        replication,
                        selection,
                        timeout: REDRIVE_TIMEOUT,
                    },
                )
            })
            .await
            .map_err(|e| {
                Error::Internal(format!("deployment {name:?}: the redrive panicked: {e}"))
            })?
            .map_err(|e| Error::Unavailable(format!("deployment {name:?}: {e}")))?;
            if record.redrive_topic.as_deref() != Some(redrive_topic.as_str()) {
                let next = record.with_redrive_topic(redrive_topic, caller.name());
                self.write(&record.key(), Some(&next)).await?;
            }
            tracing::info!(deployment = %record.key(), redriven = report.redriven,
                already_redriven = report.already_redriven, topic = %report.redrive_topic,
                "dead letters redriven");
            Ok(report)
        }
        .await;
        audit(caller, "deployment.redrive", name, &result);
        result
    }

    /// A permit to read dead letters (each read opens Kafka clients), or
    /// 429 while [`DEAD_LETTER_READS`] are under way.
    fn dead_letter_permit(&self, name: &str) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        self.dead_letter_reads.try_acquire().map_err(|_| {
            Error::Busy(format!(
                "deployment {name:?}: {DEAD_LETTER_READS} dead-letter reads are under way on this runner; try again in a moment"
            ))
        })
    }
}

fn dead_letter_topic(name: &str, spec: &crate::deployment::Spec) -> Result<String, Error> {
    spec.failure.dead_letter_topic.clone().ok_or_else(|| {
        Error::NotFound(format!(
            "deployment {name:?} has no dead-letter topic, so it keeps no dead letters; give it one with `ingesta update {name} --dead-letter <topic>`"
        ))
    })
}

/// The request as a selection; one that selects nothing by itself is
/// refused rather than read as "everything".
fn selection(r: &RedriveRequest) -> Result<Selection, Error> {
    let ranged = r.partition.is_some() || r.from_offset.is_some() || r.to_offset.is_some();
    if !r.all && !ranged && r.class.is_none() {
        return Err(Error::Invalid(
            "a redrive must say what it takes: a partition and offsets (from_offset, to_offset), an error class, or all: true".into(),
        ));
    }
    let (from, to) = (r.from_offset.unwrap_or(0), r.to_offset.unwrap_or(i64::MAX));
    if r.partition.is_some_and(|p| p < 0) || from < 0 || to < from {
        return Err(Error::Invalid(format!(
            "a redrive's offsets must be a range within one partition of at least 0 (partition {:?}, from_offset {from}, to_offset {to})",
            r.partition
        )));
    }
    Ok(Selection {
        partition: r.partition,
        from,
        to,
        class: r.class.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redrive_must_select_and_its_range_must_be_one() {
        let nothing = RedriveRequest::default();
        assert!(
            selection(&nothing)
                .unwrap_err()
                .to_string()
                .contains("all: true")
        );
        let all = selection(&RedriveRequest {
            all: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((all.partition, all.from, all.to), (None, 0, i64::MAX));
        let range = RedriveRequest {
            partition: Some(2),
            from_offset: Some(10),
            to_offset: Some(12),
            ..Default::default()
        };
        let s = selection(&range).unwrap();
        assert_eq!((s.partition, s.from, s.to), (Some(2), 10, 12));
        let backwards = RedriveRequest {
            from_offset: Some(5),
            to_offset: Some(4),
            ..range
        };
        assert!(
            selection(&backwards)
                .unwrap_err()
                .to_string()
                .contains("from_offset 5")
        );
        let class = RedriveRequest {
            class: Some("permanent".into()),
            ..Default::default()
        };
        assert_eq!(
            selection(&class).unwrap().class.as_deref(),
            Some("permanent")
        );
    }
}
