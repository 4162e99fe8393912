//! `ingesta module push|ls|rm`.

use anyhow::Result;

use super::{ApiArgs, ModuleCommand, api_client};

/// Run a module command against the API.
pub(super) fn run(api: &ApiArgs, command: ModuleCommand) -> Result<()> {
    let client = api_client(api)?;
    match command {
        ModuleCommand::Push { file } => {
            let m = client.push_module(&file)?;
            println!("{}  {}  {} bytes", m.digest, m.world, m.size);
        }
        ModuleCommand::Ls => {
            println!("{:<73}  {:<8}  {:>9}  owners", "digest", "world", "bytes");
            for m in client.list_modules()? {
                let owners: Vec<&str> = m.owners.iter().map(String::as_str).collect();
                println!(
                    "{:<73}  {:<8}  {:>9}  {}",
                    m.digest,
                    m.world.to_string(),
                    m.size,
                    owners.join(",")
                );
            }
        }
        ModuleCommand::Rm { digest } => {
            client.delete_module(&digest)?;
            println!("deleted {digest}");
        }
    }
    Ok(())
}
