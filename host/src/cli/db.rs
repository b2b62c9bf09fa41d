//! `aileron db clean`: Airflow's `db clean` against a running server, which deletes
//! finished runs older than a cut-off with everything they hold (TaskInstances,
//! XCom, logs, callbacks) without stopping. `aileron db rotate-key`: the key
//! connections are encrypted with, replaced on a stopped server's HOME.

use super::ServerArgs;
use super::client::Client;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum DbCommand {
    /// Delete finished DagRuns older than a cut-off, with their TaskInstances,
    /// XCom and logs. Each DAG keeps its latest scheduled run.
    Clean(CleanArgs),
    /// Encrypt every connection again under a new key, which replaces
    /// HOME/connections.key. Run it with the server stopped.
    RotateKey {
        #[command(flatten)]
        home: super::HomeArgs,
    },
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("cutoff").required(true))]
pub struct CleanArgs {
    /// How old a run must be, counted back from the server's now: `30d`, `12h`.
    #[arg(long, group = "cutoff", value_name = "AGE")]
    older_than: Option<String>,
    /// Delete what is older than this date or RFC 3339 date-time (Airflow's flag).
    #[arg(long, group = "cutoff", value_name = "TIMESTAMP")]
    clean_before_timestamp: Option<String>,
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Accepted for Airflow's scripts: the command never asks.
    #[arg(short = 'y', long)]
    yes: bool,
    /// Print the server's JSON answer instead of a sentence.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(c: DbCommand) -> anyhow::Result<ExitCode> {
    match c {
        DbCommand::Clean(a) => clean(a).await,
        DbCommand::RotateKey { home } => {
            let path = crate::app::metastore_path(&home.home());
            let metastore = crate::metastore::Metastore::open(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{e} (is the server running? stop it first: the metastore file is \
                     opened by one process at a time)"
                )
            })?;
            let count = metastore.rotate_connections_key()?;
            println!(
                "sealed {count} connection(s) under a new key in {}",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn clean(a: CleanArgs) -> anyhow::Result<ExitCode> {
    // Checked here too, so a typo fails before the server is asked.
    if let Some(age) = &a.older_than {
        aileron_model::units::parse_duration(age)
            .map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
    }
    let mut body = json!({ "dry_run": a.dry_run });
    if let Some(age) = &a.older_than {
        body["older_than"] = json!(age);
    }
    if let Some(t) = &a.clean_before_timestamp {
        body["clean_before_timestamp"] = json!(t);
    }
    let client = Client::new(&a.server);
    let answer = client
        .request(reqwest::Method::POST, "/dbClean", Some(body))
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let count = |field: &str| answer.get(field).and_then(Value::as_u64).unwrap_or(0);
    let before = answer
        .get("clean_before_timestamp")
        .and_then(Value::as_str)
        .unwrap_or("?");
    println!(
        "{} {} DagRuns and {} TaskInstances finished before {before}",
        if a.dry_run { "would delete" } else { "deleted" },
        count("dag_runs"),
        count("task_instances"),
    );
    let _ = a.yes;
    Ok(ExitCode::SUCCESS)
}
