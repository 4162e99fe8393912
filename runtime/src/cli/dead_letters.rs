//! `ingesta dlq ls|show`: a deployment's dead letters through the API.

use anyhow::{Result, bail};

use super::{ApiArgs, DlqCommand, api_client};
use crate::api::DeadLetterCursor;

/// Run a dead-letter command against the API.
pub(super) fn run(api: &ApiArgs, command: DlqCommand) -> Result<()> {
    let client = api_client(api)?;
    let tenant = api.tenant.as_deref();
    match command {
        DlqCommand::Ls {
            name,
            partition,
            offset,
            limit,
        } => {
            let from = DeadLetterCursor { partition, offset };
            let page = client.dead_letters(&name, tenant, from, limit)?;
            println!(
                "{:<12} {:<32} {:<14} {:>8}  message",
                "at", "from", "class", "attempts"
            );
            for d in &page.dead_letters {
                let from = format!(
                    "{}/{}@{}",
                    d.source.topic, d.source.partition, d.source.offset
                );
                println!(
                    "{:<12} {:<32} {:<14} {:>8}  {}",
                    format!("{}@{}", d.partition, d.offset),
                    from,
                    d.error.class,
                    d.error.attempts,
                    one_line(&d.error.message, 100)
                );
            }
            match page.next {
                Some(n) => println!(
                    "more: ingesta dlq ls {name} --partition {} --offset {}",
                    n.partition, n.offset
                ),
                None if page.dead_letters.is_empty() => {
                    println!("(no dead letters in {})", page.topic);
                }
                None => {}
            }
        }
        DlqCommand::Show {
            name,
            partition,
            offset,
        } => {
            let from = DeadLetterCursor { partition, offset };
            let page = client.dead_letters(&name, tenant, from, 1)?;
            let Some(d) = page
                .dead_letters
                .into_iter()
                .find(|d| d.partition == partition && d.offset == offset)
            else {
                bail!(
                    "deployment {name:?} has no dead letter at partition {partition} offset {offset} of {} (list them with `ingesta dlq ls {name}`)",
                    page.topic
                );
            };
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
    }
    Ok(())
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}
