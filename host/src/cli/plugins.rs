//! `aileron plugins ...`: the operators this install can run.

use super::HomeArgs;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List every operator: the standard ones and those added to HOME/plugins.
    List {
        #[command(flatten)]
        home: HomeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show an operator's description and params schema (`name`, `name@version` or
    /// `name@sha256:...`).
    Inspect {
        reference: String,
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Check a component implements the operator interface and store it under
    /// HOME/plugins; a running Aileron picks it up at once.
    Add {
        file: PathBuf,
        #[command(flatten)]
        home: HomeArgs,
    },
}

pub async fn run(cmd: PluginsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginsCommand::List { home, json } => {
            let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), None, 1)?;
            let list = sandbox.registry().list();
            if json {
                let v: Vec<_> = list.iter().map(crate::api::plugin_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<20} {:<10} {:<8} digest", "name", "version", "builtin");
                for p in list {
                    println!(
                        "{:<20} {:<10} {:<8} {}",
                        p.name, p.version, p.builtin, p.digest
                    );
                }
            }
        }
        PluginsCommand::Inspect { reference, home } => {
            let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), None, 1)?;
            let p = sandbox.registry().resolve(&reference)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::api::plugin_json(&p))?
            );
        }
        PluginsCommand::Add { file, home } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), None, 1)?;
            let p = sandbox
                .registry()
                .install(&home.home().join("plugins"), &bytes)
                .with_context(|| format!("{} is not a usable operator", file.display()))?;
            println!(
                "Added {}@{} ({}, {} bytes)",
                p.name, p.version, p.digest, p.size
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
