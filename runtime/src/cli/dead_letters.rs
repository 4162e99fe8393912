//! `ingesta dlq ls|show|redrive`: a deployment's dead letters through the
//! API.

use anyhow::{Result, bail};

use super::{ApiArgs, DlqCommand, api_client};
use crate::api::{DeadLetterCursor, RedriveRequest};
use crate::client::ApiClient;

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
            list(&client, tenant, &name, from, limit)
        }
        DlqCommand::Show {
            name,
            partition,
            offset,
        } => show(
            &client,
            tenant,
            &name,
            DeadLetterCursor { partition, offset },
        ),
        DlqCommand::Redrive {
            name,
            partition,
            from,
            to,
            class,
            all,
        } => {
            let request = RedriveRequest {
                partition,
                from_offset: from,
                to_offset: to,
                class,
                all,
            };
            redrive(&client, tenant, &name, &request)
        }
    }
}

fn list(
    client: &ApiClient,
    tenant: Option<&str>,
    name: &str,
    from: DeadLetterCursor,
    limit: usize,
) -> Result<()> {
    let page = client.dead_letters(name, tenant, from, limit)?;
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
    Ok(())
}

fn show(client: &ApiClient, tenant: Option<&str>, name: &str, at: DeadLetterCursor) -> Result<()> {
    let page = client.dead_letters(name, tenant, at, 1)?;
    let Some(d) = page
        .dead_letters
        .into_iter()
        .find(|d| d.partition == at.partition && d.offset == at.offset)
    else {
        bail!(
            "deployment {name:?} has no dead letter at partition {} offset {} of {} (list them with `ingesta dlq ls {name}`)",
            at.partition,
            at.offset,
            page.topic
        );
    };
    println!("{}", serde_json::to_string_pretty(&d)?);
    Ok(())
}

fn redrive(
    client: &ApiClient,
    tenant: Option<&str>,
    name: &str,
    request: &RedriveRequest,
) -> Result<()> {
    let report = client.redrive(name, tenant, request)?;
    println!(
        "redriven: {} dead letters of {} into {} ({} redriven before, skipped)",
        report.redriven, report.dead_letter_topic, report.redrive_topic, report.already_redriven
    );
    if let Some(n) = report.more {
        println!(
            "more: stopped at partition {} offset {}; run the same command again to go on",
            n.partition, n.offset
        );
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
