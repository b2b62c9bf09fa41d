//! `aileron plugins ...`: the operators this install can run.

use super::client::{Client, seg};
use super::project;
use super::{HomeArgs, ServerArgs};
use aileron_model::TenantId;
use aileron_sandbox::OperatorScope;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Make a new operator project: source, a test, a manifest with the
    /// toolchain pinned, a README, and the SDK (under .aileron/, or
    /// node_modules/ for JavaScript).
    New {
        /// The operator's name, as DAG files will write it.
        name: String,
        #[arg(long, value_enum)]
        lang: project::Lang,
        /// Where to make it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the operator project in DIR into dist/<name>.wasm with its
    /// language's toolchain, and check it implements the operator world.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Run the operator project's tests (cargo test, pytest, node --test).
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
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
        /// Replace another build of the same name and version (a rebuild of
        /// the same source, with a new digest). Refused while an unfinished
        /// run still needs the old build, and while a server holds HOME (use
        /// `plugins publish --replace` then).
        #[arg(long)]
        replace: bool,
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
        /// Replace another build of the same name and version. Refused while
        /// an unfinished run still needs the old build.
        #[arg(long)]
        replace: bool,
    },
    /// Remove `NAME@VERSION` through a running server: one your tenant published,
    /// or a global one with --global. Refused while an active DAG still runs it.
    /// With --local, from HOME with no server running (--tenant, or
    /// AILERON_TENANT: the one that tenant published; else the global one).
    Remove {
        /// `NAME@VERSION`, the exact version to remove.
        reference: String,
        #[command(flatten)]
        server: ServerArgs,
        /// Remove a global operator (platform admins).
        #[arg(long)]
        global: bool,
        /// Remove it from HOME/plugins directly, as `plugins add` adds.
        #[arg(long, conflicts_with = "global")]
        local: bool,
        #[command(flatten)]
        home: HomeArgs,
    },
}

pub async fn run(cmd: PluginsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginsCommand::New { name, lang, dir } => return project::new(&name, lang, dir),
        PluginsCommand::Build { dir, home } => return project::build(&dir, &home),
        PluginsCommand::Test { dir } => return project::test(&dir),
        PluginsCommand::List { home, json, tenant } => {
            let sandbox =
                aileron_sandbox::Sandbox::open_home(&home.home(), home.cache_dir.clone(), 1)?;
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
            let sandbox =
                aileron_sandbox::Sandbox::open_home(&home.home(), home.cache_dir.clone(), 1)?;
            let p = sandbox.registry().resolve(&reference)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::api::plugin_json(&p))?
            );
        }
        PluginsCommand::Add {
            file,
            home,
            tenant,
            replace,
        } => {
            let scope = optional_scope(tenant.as_deref())?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sandbox =
                aileron_sandbox::Sandbox::open_home(&home.home(), home.cache_dir.clone(), 1)?;
            let home = home.home();
            let registry = sandbox.registry();
            let plugins = home.join("plugins");
            let not_usable = || format!("{} is not a usable operator", file.display());
            if replace {
                // Held open until the replacement is done, so no run starts
                // with the old build meanwhile.
                let metastore = open_metastore(&home)?;
                if let Some(old) = registry
                    .would_replace(&scope, &bytes)
                    .with_context(not_usable)?
                {
                    refuse_while_runs_need(metastore.as_ref(), &scope, &old)?;
                }
                let (p, old) = registry
                    .install_replacing(&plugins, &scope, &bytes)
                    .with_context(not_usable)?;
                if let Some(old) = old {
                    println!("Removed {}@{} ({})", old.name, old.version, old.digest);
                }
                println!("Added {}@{} for {scope} ({})", p.name, p.version, p.digest);
            } else {
                let p = registry
                    .install_to(&plugins, &scope, &bytes)
                    .with_context(not_usable)?;
                println!(
                    "Added {}@{} for {scope} ({}, {} bytes)",
                    p.name, p.version, p.digest, p.size
                );
            }
        }
        PluginsCommand::Publish {
            file,
            server,
            global,
            replace,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let path = match (global, replace) {
                (true, false) => "/platform/operators",
                (true, true) => "/platform/operators?replace=true",
                (false, false) => "/operators",
                (false, true) => "/operators?replace=true",
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
            local,
            home,
        } => {
            let Some((name, version)) = reference.split_once('@') else {
                anyhow::bail!("give the exact version to remove: NAME@VERSION");
            };
            if local {
                remove_local(&home, server.tenant.as_deref(), name, version)?;
                println!("Removed {name}@{version}");
                return Ok(ExitCode::SUCCESS);
            }
            let prefix = if global {
                "/platform/operators"
            } else {
                "/operators"
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

/// `plugins remove --local`: as the API's removal, from HOME with no server.
fn remove_local(
    home_args: &HomeArgs,
    tenant: Option<&str>,
    name: &str,
    version: &str,
) -> anyhow::Result<()> {
    let scope = optional_scope(tenant)?;
    let home = &home_args.home();
    let sandbox = aileron_sandbox::Sandbox::open_home(home, home_args.cache_dir.clone(), 1)?;
    let registry = sandbox.registry();
    let old = registry.resolve_exact(&scope, name, version)?;
    // Held open until the removal is done, so no run starts meanwhile.
    let metastore = open_metastore(home)?;
    if let Some(metastore) = &metastore {
        let dags = crate::api::dags_running(metastore, scope.tenant(), &old.digest)?;
        if !dags.is_empty() {
            anyhow::bail!(
                "{name}@{version} is still run by {}; change or delete those DAGs first",
                dags.join(", ")
            );
        }
    }
    refuse_while_runs_need(metastore.as_ref(), &scope, &old)?;
    registry.remove(&home.join("plugins"), &scope, name, version)?;
    Ok(())
}

/// HOME's metastore, if it has one. It is opened by one process at a time, so
/// this fails while a server holds HOME: the server's own checks apply then.
fn open_metastore(home: &std::path::Path) -> anyhow::Result<Option<crate::metastore::Metastore>> {
    let path = crate::app::metastore_path(home);
    if !path.exists() {
        return Ok(None);
    }
    let metastore = crate::metastore::Metastore::open(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e} (is the server running? then go through it: `aileron plugins publish \
             --replace` or `aileron plugins remove`)"
        )
    })?;
    Ok(Some(metastore))
}

/// Refuses while an unfinished run of HOME's metastore (if it has one) needs
/// `old`.
fn refuse_while_runs_need(
    metastore: Option<&crate::metastore::Metastore>,
    scope: &OperatorScope,
    old: &aileron_sandbox::OperatorMeta,
) -> anyhow::Result<()> {
    let Some(metastore) = metastore else {
        return Ok(());
    };
    let runs = crate::api::runs_running(metastore, scope.tenant(), &old.digest)?;
    if !runs.is_empty() {
        anyhow::bail!(
            "{}@{} ({}) is still needed by unfinished runs: {}; let them finish or mark them first",
            old.name,
            old.version,
            old.digest,
            runs.join(", ")
        );
    }
    Ok(())
}

/// The scope `--tenant` names, global without it.
fn optional_scope(tenant: Option<&str>) -> anyhow::Result<OperatorScope> {
    match tenant {
        Some(t) => scope_of(t),
        None => Ok(OperatorScope::Global),
    }
}

/// The scope of a tenant named on the command line.
fn scope_of(tenant: &str) -> anyhow::Result<OperatorScope> {
    if OperatorScope::reserved_tenant(tenant) {
        anyhow::bail!("`{tenant}` cannot be a tenant: it names the global operator store");
    }
    Ok(OperatorScope::Tenant(TenantId::new(tenant)?))
}
