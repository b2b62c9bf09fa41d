//! `aileron dags ...` and `aileron tasks ...`.

use super::client::{Client, seg};
use super::{HomeArgs, ServerArgs, parse_conf};
use crate::app::{self, AppConfig};
// `dags test` runs a top-level DAG file: the DAG processor's folder rule gives it
// the default tenant.
use crate::dag_processor::DEFAULT_TENANT;
use crate::scheduler::{SchedulerConfig, Update};
use aileron_model::clock::SystemClock;
use aileron_model::dag::parse_user_datetime as parse_datetime;
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum DagsCommand {
    /// List the DAGs of a running server.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Trigger a DagRun on a running server.
    Trigger {
        dag_id: String,
        #[arg(long)]
        conf: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        #[arg(long)]
        logical_date: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Pause a DAG: no new runs, no new tasks of its runs.
    Pause {
        dag_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Unpause a DAG.
    Unpause {
        dag_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Backfill a DAG on a running server: one run per schedule interval whose
    /// logical date is in [--from, --to], followed to the end with a progress bar
    /// (exit 1 if any run fails) unless --no-wait.
    Backfill(super::backfill::BackfillArgs),
    /// List the DAG files that failed to import.
    ListImportErrors {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run one DagRun in this process with no server (real sandbox, retry delays
    /// honoured); exits 0 only if the run succeeds.
    Test {
        dag_id: String,
        /// Logical date of the run (default: now).
        logical_date_pos: Option<String>,
        #[command(flatten)]
        home: HomeArgs,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        conf: Option<String>,
        #[arg(long)]
        logical_date: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Run one task of a DAG in this process, ignoring its upstream tasks and
    /// recording nothing; prints its log and outcome.
    Test {
        dag_id: String,
        task_id: String,
        logical_date_pos: Option<String>,
        #[command(flatten)]
        home: HomeArgs,
        #[arg(long)]
        logical_date: Option<String>,
        /// Params for the task, as a JSON object merged over its own.
        #[arg(long)]
        params: Option<String>,
    },
    /// Clear TaskInstances of a DagRun on a running server so they run again.
    Clear {
        dag_id: String,
        run_id: String,
        /// The tasks to clear, comma-separated (default: every task of the run).
        #[arg(long, value_delimiter = ',')]
        task_ids: Vec<String>,
        /// Also clear the tasks downstream of those.
        #[arg(long, short = 'd')]
        downstream: bool,
        /// Also clear the tasks upstream of those.
        #[arg(long, short = 'u')]
        upstream: bool,
        /// Only failed and upstream_failed TaskInstances.
        #[arg(long, short = 'f')]
        only_failed: bool,
        /// Print what would be cleared and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: DagsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DagsCommand::List { server, json } => {
            let v = Client::new(&server).get("/dags?limit=10000").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["dags"])?);
            } else {
                println!(
                    "{:<30} {:<20} {:<7} fileloc",
                    "dag_id", "schedule", "paused"
                );
                for d in v["dags"].as_array().into_iter().flatten() {
                    println!(
                        "{:<30} {:<20} {:<7} {}",
                        d["dag_id"].as_str().unwrap_or(""),
                        d["timetable_summary"].as_str().unwrap_or("manual"),
                        d["is_paused"],
                        d["fileloc"].as_str().unwrap_or("")
                    );
                }
            }
        }
        DagsCommand::Trigger {
            dag_id,
            conf,
            run_id,
            logical_date,
            server,
        } => {
            let conf = parse_conf(conf.as_deref())?;
            // Airflow 3's body: `logical_date` is given, `null` for now.
            let mut body = json!({"conf": conf, "logical_date": logical_date});
            if let Some(r) = run_id {
                body["dag_run_id"] = Value::String(r);
            }
            let v = Client::new(&server)
                .request(
                    reqwest::Method::POST,
                    &format!("/dags/{}/dagRuns", seg(&dag_id)),
                    Some(body),
                )
                .await?;
            println!(
                "Created DagRun {} of {} (state {})",
                v["dag_run_id"].as_str().unwrap_or(""),
                dag_id,
                v["state"].as_str().unwrap_or("")
            );
        }
        DagsCommand::Backfill(a) => return super::backfill::run(a).await,
        DagsCommand::Pause { dag_id, server } => set_paused(&server, &dag_id, true).await?,
        DagsCommand::Unpause { dag_id, server } => set_paused(&server, &dag_id, false).await?,
        DagsCommand::ListImportErrors { server, json } => {
            let v = Client::new(&server)
                .get("/importErrors?limit=10000")
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v["import_errors"])?);
            } else {
                let errors = v["import_errors"].as_array().cloned().unwrap_or_default();
                if errors.is_empty() {
                    println!("No import errors.");
                }
                for e in errors {
                    println!("{}", e["stack_trace"].as_str().unwrap_or(""));
                }
            }
        }
        DagsCommand::Test {
            dag_id,
            logical_date_pos,
            home,
            json,
            conf,
            logical_date,
        } => return test(dag_id, logical_date.or(logical_date_pos), home, json, conf).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_paused(server: &ServerArgs, dag_id: &str, paused: bool) -> anyhow::Result<()> {
    Client::new(server)
        .request(
            reqwest::Method::PATCH,
            &format!("/dags/{}", seg(dag_id)),
            Some(json!({"is_paused": paused})),
        )
        .await?;
    println!(
        "DAG {dag_id} is {}",
        if paused { "paused" } else { "unpaused" }
    );
    Ok(())
}

/// Outcome of a `dags test` run, as `--json` prints it (CONTRACT).
pub fn test_report(
    run: &crate::metastore::DagRun,
    tis: &[crate::metastore::TaskInstance],
) -> Value {
    json!({
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state.as_str(),
        "task_instances": tis.iter().map(|ti| json!({
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": ti.state.to_json(),
            "try_number": ti.try_number,
        })).collect::<Vec<_>>(),
    })
}

async fn test(
    dag_id: String,
    logical_date: Option<String>,
    home: HomeArgs,
    json_out: bool,
    conf: Option<String>,
) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(conf.as_deref())?;
    let logical_date = logical_date
        .map(|d| parse_datetime(&d))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut app = app::start(AppConfig {
        home: home.home(),
        dags: home.dags(),
        in_memory: true,
        watch: false,
        scheduler: SchedulerConfig {
            create_scheduled_runs: false,
            ..Default::default()
        },
        clock: Arc::new(SystemClock),
        cache_dir: home.cache_dir.clone(),
        admin_password: None,
    })
    .await?;
    let mut updates = app.scheduler.subscribe();
    let run = match app
        .scheduler
        .trigger(DEFAULT_TENANT, &dag_id, None, logical_date, conf)
        .await
    {
        Ok(run) => run,
        Err(e) => {
            for err in app.metastore.import_errors()? {
                eprintln!("import error: {}: {}", err.filename, err.message);
            }
            if matches!(e, crate::scheduler::SchedulerError::DagNotFound(_)) {
                anyhow::bail!("{e} in {}", home.dags().display());
            }
            anyhow::bail!("{e}");
        }
    };
    loop {
        let update = tokio::select! {
            u = updates.recv() => u,
            stopped = &mut app.task => {
                anyhow::bail!("the scheduler stopped before the run finished: {stopped:?}")
            }
        };
        match update {
            Ok(Update::DagRun { run_id, state, .. })
                if run_id == run.run_id && state.is_finished() =>
            {
                break;
            }
            Ok(Update::TaskInstance {
                run_id,
                task_id,
                map_index,
                state,
                try_number,
                ..
            }) if run_id == run.run_id && !json_out && state.is_finished() => {
                let m = if map_index >= 0 {
                    format!("[{map_index}]")
                } else {
                    String::new()
                };
                eprintln!("{task_id}{m}: {state} (try {try_number})");
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                if app
                    .metastore
                    .dag_run(DEFAULT_TENANT, &dag_id, &run.run_id)?
                    .is_some_and(|r| r.state.is_finished())
                {
                    break;
                }
            }
            Err(_) => anyhow::bail!("the scheduler stopped before the run finished"),
        }
    }
    // Callbacks fired by the run's end run after it: let them finish (bounded)
    // so their outcome is part of the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let callbacks = app
            .metastore
            .callbacks(DEFAULT_TENANT, &dag_id, &run.run_id)?;
        let pending = callbacks
            .iter()
            .any(|c| c.state == "queued" || c.state == "running");
        if !pending || std::time::Instant::now() > deadline {
            if !json_out {
                for c in &callbacks {
                    let on = c.task_id.as_deref().unwrap_or("the DAG");
                    eprintln!(
                        "callback {} of {on} ({}): {}{}",
                        c.event,
                        c.operator,
                        c.state,
                        c.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                    for line in c.log.lines() {
                        eprintln!("  | {line}");
                    }
                }
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.scheduler.shutdown();
    let run = app
        .metastore
        .dag_run(DEFAULT_TENANT, &dag_id, &run.run_id)?
        .expect("the run was committed");
    let tis = app
        .metastore
        .task_instances(DEFAULT_TENANT, &dag_id, &run.run_id)?;
    if json_out {
        println!("{}", serde_json::to_string(&test_report(&run, &tis))?);
    } else {
        for ti in &tis {
            let m = if ti.map_index >= 0 {
                format!("[{}]", ti.map_index)
            } else {
                String::new()
            };
            let state = ti.state.as_str();
            println!(
                "{:<30} {:<16} try {}",
                format!("{}{m}", ti.task_id),
                state,
                ti.try_number
            );
            for t in &ti.tries {
                if let Some(e) = &t.error {
                    println!("    try {}: {e}", t.try_number);
                }
            }
        }
        println!("DagRun {} of {}: {}", run.run_id, dag_id, run.state);
    }
    Ok(if run.state == aileron_model::DagRunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn run_tasks(cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TasksCommand::Test {
            dag_id,
            task_id,
            logical_date_pos,
            home,
            logical_date,
            params,
        } => {
            test_task(
                dag_id,
                task_id,
                logical_date.or(logical_date_pos),
                home,
                params,
            )
            .await
        }
        TasksCommand::Clear {
            dag_id,
            run_id,
            task_ids,
            downstream,
            upstream,
            only_failed,
            dry_run,
            server,
        } => {
            let mut body = json!({
                "dag_run_id": run_id,
                "include_downstream": downstream,
                "include_upstream": upstream,
                "only_failed": only_failed,
                "dry_run": dry_run,
            });
            if !task_ids.is_empty() {
                body["task_ids"] = json!(task_ids);
            }
            let v = Client::new(&server)
                .request(
                    reqwest::Method::POST,
                    &format!("/dags/{}/clearTaskInstances", seg(&dag_id)),
                    Some(body),
                )
                .await?;
            let tis = v["task_instances"].as_array().cloned().unwrap_or_default();
            let verb = if dry_run { "Would clear" } else { "Cleared" };
            println!(
                "{verb} {} TaskInstance{} of DagRun {run_id} of {dag_id}{}",
                tis.len(),
                if tis.len() == 1 { "" } else { "s" },
                if tis.is_empty() { "." } else { ":" }
            );
            for ti in &tis {
                let m = match ti["map_index"].as_i64() {
                    Some(i) if i >= 0 => format!("[{i}]"),
                    _ => String::new(),
                };
                println!(
                    "  {:<30} was {}",
                    format!("{}{m}", ti["task_id"].as_str().unwrap_or("")),
                    ti["state"].as_str().unwrap_or("no status")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn test_task(
    dag_id: String,
    task_id: String,
    logical_date: Option<String>,
    home: HomeArgs,
    params: Option<String>,
) -> anyhow::Result<ExitCode> {
    let logical_date = logical_date
        .map(|d| parse_datetime(&d))
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or_else(jiff::Timestamp::now);
    let extra = parse_conf(params.as_deref())?;
    let sandbox = aileron_sandbox::Sandbox::open_home(&home.home(), home.cache_dir.clone(), 1)?;
    let folder = crate::dag_processor::DagFolder::new(&home.dags());
    let spec = folder
        .scan(sandbox.registry())
        .into_values()
        .find_map(|r| match r {
            crate::dag_processor::FileResult::Dag(d) if d.dag_id == dag_id => Some(d),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("DAG `{dag_id}` not found in {}", home.dags().display()))?;
    let task = spec
        .task(&task_id)
        .ok_or_else(|| anyhow::anyhow!("DAG `{dag_id}` has no task `{task_id}`"))?
        .clone();
    let report = crate::scheduler::test_task(&sandbox, &spec, &task, logical_date, extra).await?;
    print!("{}", report.log);
    println!("{task_id}: {}", report.summary);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
