//! `ingesta topic create|ls|describe|alter|rm`: Kafka topics through the
//! API.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::{ApiArgs, TopicCommand, api_client};
use crate::api::{AlterTopic, CreateTopic, TopicInfo};

/// Run a topic command against the API.
pub(super) fn run(api: &ApiArgs, command: TopicCommand) -> Result<()> {
    let client = api_client(api)?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            retention_hours,
            configs,
            if_not_exists,
        } => {
            let body = CreateTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                configs: settings(&configs, retention_hours)?,
            };
            match client.create_topic(&body)? {
                Some(topic) => println!("created {}", line(&topic)),
                None if if_not_exists => println!("topic {name} exists already; left as it is"),
                None => bail!(
                    "topic {name:?} exists already (change it with `ingesta topic alter {name}`, or pass --if-not-exists)"
                ),
            }
        }
        TopicCommand::Ls => {
            for topic in client.topics()? {
                println!("{}", line(&topic));
            }
        }
        TopicCommand::Describe { name } => {
            println!("{}", serde_json::to_string_pretty(&client.topic(&name)?)?);
        }
        TopicCommand::Alter {
            name,
            partitions,
            retention_hours,
            configs,
            resets,
        } => {
            let mut change = AlterTopic {
                partitions,
                configs: settings(&configs, retention_hours)?
                    .into_iter()
                    .map(|(k, v)| (k, Some(v)))
                    .collect(),
            };
            for key in resets {
                change.configs.insert(key, None);
            }
            if change == AlterTopic::default() {
                bail!(
                    "nothing to change: name --partitions, --retention-hours, --config or --reset"
                );
            }
            println!("altered {}", line(&client.alter_topic(&name, &change)?));
        }
        TopicCommand::Rm { name } => {
            client.delete_topic(&name)?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

/// `--config KEY=VALUE` flags and `--retention-hours`, as settings.
fn settings(configs: &[String], retention_hours: Option<u64>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for c in configs {
        let Some((k, v)) = c.split_once('=') else {
            bail!("--config {c:?}: expected KEY=VALUE, e.g. retention.ms=604800000");
        };
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if let Some(h) = retention_hours {
        let ms = h
            .checked_mul(3_600_000)
            .ok_or_else(|| anyhow::anyhow!("--retention-hours {h} is too large"))?;
        if out.insert("retention.ms".into(), ms.to_string()).is_some() {
            bail!("give either --retention-hours or --config retention.ms, not both");
        }
    }
    Ok(out)
}

/// One line: name, partitions, replication, settings.
fn line(t: &TopicInfo) -> String {
    let configs: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}  partitions={} replication={}  {}",
        t.name,
        t.partitions,
        t.replication_factor,
        configs.join(" ")
    )
}
