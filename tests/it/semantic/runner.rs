//! The runner of one case: its `Env`, the scheduler updates it records, waiting for
//! runs and callbacks to finish, and which run a selector names.

use super::case::{Case, PoolSetup, RunSel, label, ts};
use aileron::metastore::DagRun;
use aileron::scheduler::Update;
use aileron_model::TenantId;
use aileron_model::{DagRunState, TaskInstanceState};
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;

/// A TaskInstance change as the scheduler announced it.
#[derive(Clone)]
pub(super) struct Event {
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) label: String,
    pub(super) state: TaskInstanceState,
}

/// A DagRun change as the scheduler announced it.
pub(super) struct RunEvent {
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) state: DagRunState,
}

pub(super) struct Runner {
    pub(super) name: String,
    pub(super) env: Env,
    pub(super) updates: tokio::sync::broadcast::Receiver<Update>,
    pub(super) events: Vec<Event>,
    /// Each TaskInstance's last state in `events` and where it is, by (dag,
    /// run, label).
    last_state: HashMap<(String, String, String), (TaskInstanceState, usize)>,
    pub(super) run_events: Vec<RunEvent>,
    pub(super) lagged: u64,
    /// `version` label → the DAG version (content hash) it names.
    pub(super) versions: HashMap<String, String>,
    /// DAG → id of its latest backfill.
    pub(super) backfills: HashMap<String, u64>,
}

pub(super) const WAIT: Duration = Duration::from_secs(60);
pub(super) const POLL: Duration = Duration::from_millis(5);

impl Runner {
    pub(super) async fn start(name: &str, case: &Case) -> Runner {
        let mut b = Env::builder();
        for (key, dag) in &case.dags {
            let file = dag.file.clone().unwrap_or_else(|| format!("{key}.toml"));
            b = b.dag(&file, &dag.source);
        }
        if case.setup.scheduled {
            b = b.scheduled();
        }
        if let Some(t) = &case.setup.start_at {
            b = b.start_at(ts(t));
        }
        if let Some(n) = case.setup.parallelism {
            b = b.parallelism(n);
        }
        let env = b.start().await;
        let updates = env.app.scheduler.subscribe();
        let errors = env.import_errors();
        assert!(
            errors.is_empty(),
            "{name}: DAG files do not import: {errors:?}"
        );
        for (key, value) in &case.setup.variables {
            env.app
                .metastore
                .set_variable(TenantId::DEFAULT, key, value)
                .unwrap();
        }
        for pool in &case.setup.pools {
            make_pool(&env, pool).await;
        }
        let mut r = Runner {
            name: name.to_owned(),
            env,
            updates,
            events: Vec::new(),
            last_state: HashMap::new(),
            run_events: Vec::new(),
            lagged: 0,
            versions: HashMap::new(),
            backfills: HashMap::new(),
        };
        for (key, dag) in &case.dags {
            if let Some(label) = &dag.version {
                let file = dag.file.clone().unwrap_or_else(|| format!("{key}.toml"));
                r.label_version(&file, label)
                    .unwrap_or_else(|e| panic!("{name}: [dags.{key}]: {e}"));
            }
        }
        r
    }

    /// Remembers the current DAG version of the DAG in `file` under `label`.
    pub(super) fn label_version(&mut self, file: &str, label: &str) -> Result<(), String> {
        let dag = self
            .env
            .app
            .metastore
            .dags()
            .unwrap()
            .into_iter()
            .find(|d| d.fileloc == file && d.is_active)
            .ok_or_else(|| format!("no active DAG comes from {file}"))?;
        if let Some(old) = self.versions.insert(label.to_owned(), dag.version.clone())
            && old != dag.version
        {
            return Err(format!("version label `{label}` is used twice"));
        }
        Ok(())
    }

    /// Waits (bounded) until no callback of any run is queued or running.
    pub(super) async fn wait_callbacks(&mut self, context: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.sync_events().await;
            let unfinished = self.env.app.metastore.unfinished_callbacks().unwrap();
            if unfinished.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let what: Vec<String> = unfinished
                    .iter()
                    .map(|c| format!("{} of {} ({})", c.event, c.run_id, c.state))
                    .collect();
                panic!(
                    "semantic case `{}`, {context}: gave up waiting for callbacks: {what:?}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Picks a run. Without a selector: the latest run for steps (`latest`), the only
    /// run for expectations.
    /// The latest run `sel` picks, or the step fails.
    pub(super) fn step_run(&self, step: usize, what: &str, sel: &RunSel) -> DagRun {
        self.find_run(sel, true)
            .unwrap_or_else(|e| self.fail(step, what, e))
    }

    pub(super) fn find_run(&self, sel: &RunSel, latest: bool) -> Result<DagRun, String> {
        let runs = self
            .env
            .app
            .metastore
            .dag_runs(TenantId::DEFAULT, sel.dag)
            .map_err(|e| e.to_string())?;
        let ids = || runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>();
        let found = match (sel.run_id, sel.logical_date, sel.nth) {
            (Some(id), ld, None) => {
                let found = runs.iter().find(|r| r.run_id == id);
                // With both, the logical date is checked too.
                if let (Some(run), Some(ld)) = (found, ld)
                    && run.logical_date != ts(ld)
                {
                    return Err(format!(
                        "run `{id}` of `{}` has logical date {}, not {}",
                        sel.dag,
                        run.logical_date,
                        ts(ld)
                    ));
                }
                found
            }
            (None, Some(ld), None) => {
                let ld = ts(ld);
                let mut hits = runs.iter().filter(|r| r.logical_date == ld);
                let first = hits.next();
                if hits.next().is_some() {
                    return Err(format!(
                        "several runs of `{}` have logical date {ld}: {:?}",
                        sel.dag,
                        ids()
                    ));
                }
                first
            }
            (None, None, Some(nth)) => runs.get(nth),
            (None, None, None) if latest => runs.last(),
            (None, None, None) if runs.len() <= 1 => runs.first(),
            (None, None, None) => {
                return Err(format!(
                    "`{}` has {} runs {:?}: select one with run_id, logical_date or nth",
                    sel.dag,
                    runs.len(),
                    ids()
                ));
            }
            _ => return Err("nth cannot be combined with run_id or logical_date".into()),
        };
        found.cloned().ok_or_else(|| {
            let by = match (sel.run_id, sel.logical_date, sel.nth) {
                (Some(id), _, _) => format!("run_id {id}"),
                (_, Some(ld), _) => format!("logical date {ld}"),
                (_, _, Some(nth)) => format!("nth {nth}"),
                _ => "any".to_owned(),
            };
            format!(
                "no run of `{}` with {by}; runs: {:?}",
                sel.dag,
                runs.iter()
                    .map(|r| format!("{} @ {}", r.run_id, r.logical_date))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Records `event`, with the `running` its try went through without an
    /// update of its own: the local executor reports a try that ends within
    /// 10 ms by its end alone, so its TaskInstance goes from `queued` straight
    /// to the outcome. Cases describe Airflow's states, in which every try
    /// runs. The try started when it was queued (a slot was free, or it would
    /// not have ended so soon), so its `running` goes right after its `queued`,
    /// not after whatever finished in between: start orders stay true.
    fn record(&mut self, event: Event) {
        use TaskInstanceState as S;
        let key = (
            event.dag_id.clone(),
            event.run_id.clone(),
            event.label.clone(),
        );
        let outcome = matches!(
            event.state,
            S::Success | S::Failed | S::UpForRetry | S::UpForReschedule | S::Skipped
        );
        if let Some(&(S::Queued, queued_at)) = self.last_state.get(&key)
            && outcome
        {
            let at = queued_at + 1;
            self.events.insert(
                at,
                Event {
                    state: S::Running,
                    ..event.clone()
                },
            );
            for (_, index) in self.last_state.values_mut() {
                if *index >= at {
                    *index += 1;
                }
            }
        }
        self.last_state
            .insert(key, (event.state, self.events.len()));
        self.events.push(event);
    }

    pub(super) fn drain_events(&mut self) {
        loop {
            match self.updates.try_recv() {
                Ok(Update::TaskInstance {
                    dag_id,
                    run_id,
                    task_id,
                    map_index,
                    state,
                    ..
                }) => {
                    let event = Event {
                        dag_id,
                        run_id,
                        label: label(&task_id, map_index),
                        state,
                    };
                    self.record(event);
                }
                Ok(Update::DagRun {
                    dag_id,
                    run_id,
                    state,
                    ..
                }) => self.run_events.push(RunEvent {
                    dag_id,
                    run_id,
                    state,
                }),
                Ok(_) => {}
                Err(TryRecvError::Lagged(n)) => self.lagged += n,
                Err(_) => break,
            }
        }
    }

    /// Every update of every turn so far has been announced and received.
    pub(super) async fn sync_events(&mut self) {
        self.env.app.scheduler.sync().await.unwrap();
        self.drain_events();
    }

    /// None once the run and all its TaskInstances are finished; else what is not.
    fn run_pending(&self, dag: &str, run_id: &str) -> Option<String> {
        let m = &self.env.app.metastore;
        let Some(run) = m.dag_run(TenantId::DEFAULT, dag, run_id).unwrap() else {
            return Some(format!("run `{run_id}` of `{dag}` does not exist"));
        };
        let tis = m.task_instances(TenantId::DEFAULT, dag, run_id).unwrap();
        // A finished run may keep TaskInstances that never got a state (Airflow's
        // backfill cancel fails queued runs and leaves them so): nothing moves them.
        let unfinished: Vec<String> = tis
            .iter()
            .filter(|t| !t.state.is_finished())
            .filter(|t| !(run.state.is_finished() && t.state == TaskInstanceState::NoStatus))
            .map(|t| format!("{} {}", label(&t.task_id, t.map_index), t.state))
            .collect();
        if run.state.is_finished() && unfinished.is_empty() {
            return None;
        }
        Some(format!(
            "run `{run_id}` of `{dag}` is {}; unfinished: {unfinished:?}",
            run.state
        ))
    }

    pub(super) async fn wait_run(&mut self, dag: &str, run_id: &str, context: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.drain_events();
            let Some(pending) = self.run_pending(dag, run_id) else {
                return;
            };
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "semantic case `{}`, {context}: gave up waiting: {pending}\n{}",
                    self.name,
                    self.describe_dag(dag)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What keeps runs of unpaused DAGs from being finished (empty: nothing).
    fn pending_runs(&self) -> Vec<String> {
        let m = &self.env.app.metastore;
        let mut pending = Vec::new();
        for dag in m.dags().unwrap() {
            if dag.is_paused {
                continue;
            }
            for run in m.dag_runs(&dag.tenant, &dag.dag_id).unwrap() {
                if let Some(p) = self.run_pending(&run.dag_id, &run.run_id) {
                    pending.push(p);
                }
            }
        }
        pending
    }

    /// Waits until every run of every unpaused DAG is finished, and a scheduler turn
    /// after that changed no run (say, by creating the next run of a catchup).
    pub(super) async fn settle(&mut self, context: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let snapshot = |r: &Runner| -> Vec<(String, String, DagRunState)> {
            r.env
                .app
                .metastore
                .all_dag_runs()
                .unwrap()
                .into_iter()
                .map(|run| (run.dag_id, run.run_id, run.state))
                .collect()
        };
        loop {
            self.drain_events();
            let mut pending = self.pending_runs();
            if pending.is_empty() {
                let before = snapshot(self);
                self.env.app.scheduler.sync().await.unwrap();
                pending = self.pending_runs();
                if pending.is_empty() && snapshot(self) == before {
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "semantic case `{}`, {context}: gave up waiting for runs to settle: {pending:#?}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Creates (or resizes) a pool through the REST API, as an operator would.
pub(super) async fn make_pool(env: &Env, pool: &PoolSetup) {
    let body = json!({ "name": pool.name, "slots": pool.slots, "description": pool.description });
    let (status, answer) =
        crate::api::call(env, Method::POST, "/api/v1/pools", Some(&body.to_string())).await;
    if status == StatusCode::CONFLICT {
        let patch = json!({ "slots": pool.slots });
        let uri = format!("/api/v1/pools/{}", pool.name);
        let (status, answer) =
            crate::api::call(env, Method::PATCH, &uri, Some(&patch.to_string())).await;
        assert_eq!(status, StatusCode::OK, "PATCH {uri}: {answer}");
        return;
    }
    assert_eq!(status, StatusCode::OK, "POST /api/v1/pools: {answer}");
}
