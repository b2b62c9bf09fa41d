//! `aileron plugins ...`: the operators this install can run.

use super::client::{Client, seg};
use super::{HomeArgs, ServerArgs};
use aileron_model::TenantId;
use aileron_sandbox::OperatorScope;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List every operator: the standard ones, those added to HOME/plugins, and
    /// each tenant's (HOME/plugins/<tenant>); with --tenant, what that tenant's
    /// DAGs may use.
    List {
        #[command(flatten)]
        home: HomeArgs,
        #[arg(long)]
        json: bool,
        /// Only what this tenant's DAGs may use: the global operators and its own.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show an operator's description and params schema (`name`, `name@version` or
    /// `name@sha256:...`).
    Inspect {
        reference: String,
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Check a component implements the operator interface and store it under
    /// HOME/plugins (for every tenant), or HOME/plugins/<tenant> with --tenant
    /// (for that tenant's DAGs alone); a running Aileron picks it up at once.
    Add {
        file: PathBuf,
        #[command(flatten)]
        home: HomeArgs,
        /// Publish it for this tenant only.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Publish a component through a running server: for the tenant you act in
    /// (its Op and up), or for every tenant with --global (platform admins).
    Publish {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        /// Publish it for every tenant.
        #[arg(long)]
        global: bool,
    },
    /// Remove `NAME@VERSION` through a running server: one your tenant published,
    /// or a global one with --global. Refused while an active DAG still runs it.
    Remove {
        /// `NAME@VERSION`, the exact version to remove.
        reference: String,
        #[command(flatten)]
        server: ServerArgs,
        /// Remove a global operator (platform admins).
        #[arg(long)]
        global: bool,
    },
}

pub async fn run(cmd: PluginsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginsCommand::List { home, json, tenant } => {
            let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), None, 1)?;
            let viewer = tenant.as_deref().map(scope_of).transpose()?;
            let list = sandbox.registry().list_scoped(viewer.as_ref());
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(scope, meta)| crate::api::scoped_plugin(scope, meta))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<20} {:<10} {:<8} {:<16} digest",
                    "name", "version", "builtin", "tenant"
                );
                for (scope, p) in list {
                    let owner = scope.tenant().map_or("(global)", |t| t.as_str());
                    println!(
                        "{:<20} {:<10} {:<8} {:<16} {}",
                        p.name, p.version, p.builtin, owner, p.digest
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
        PluginsCommand::Add { file, home, tenant } => {
            let scope = match tenant.as_deref() {
                Some(t) => scope_of(t)?,
                None => OperatorScope::Global,
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), None, 1)?;
            let p = sandbox
                .registry()
                .install_to(&home.home().join("plugins"), &scope, &bytes)
                .with_context(|| format!("{} is not a usable operator", file.display()))?;
            println!(
                "Added {}@{} for {scope} ({}, {} bytes)",
                p.name, p.version, p.digest, p.size
            );
        }
        PluginsCommand::Publish {
            file,
            server,
            global,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let path = if global {
                "/platform/plugins"
            } else {
                "/plugins"
            };
            let p = Client::new(&server)
                .upload(path, "application/wasm", bytes)
                .await
                .with_context(|| format!("{} was not published", file.display()))?;
            let owner = p["tenant"].as_str().unwrap_or("every tenant");
            println!(
                "Published {}@{} for {owner} ({})",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["digest"].as_str().unwrap_or("?")
            );
        }
        PluginsCommand::Remove {
            reference,
            server,
            global,
        } => {
            let Some((name, version)) = reference.split_once('@') else {
                anyhow::bail!("give the exact version to remove: NAME@VERSION");
            };
            let prefix = if global {
                "/platform/plugins"
            } else {
                "/plugins"
            };
            Client::new(&server)
                .request(
                    reqwest::Method::DELETE,
                    &format!("{prefix}/{}/{}", seg(name), seg(version)),
                    None,
                )
                .await?;
            println!("Removed {name}@{version}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The scope of a tenant named on the command line.
fn scope_of(tenant: &str) -> anyhow::Result<OperatorScope> {
    if OperatorScope::reserved_tenant(tenant) {
        anyhow::bail!("`{tenant}` cannot be a tenant: it names the global operator store");
    }
    Ok(OperatorScope::Tenant(TenantId::new(tenant)?))
}
