//! The case file format: the types a `tests/semantic/*.toml` file deserializes into,
//! and the small parsers for the strings in it (timestamps, states, labels).

use aileron::metastore::ReprocessBehavior;
use aileron_model::{DagRunState, TaskInstanceState};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Case {
    pub(super) about: String,
    pub(super) doc: Option<Docs>,
    #[serde(default)]
    pub(super) setup: Setup,
    pub(super) dags: BTreeMap<String, DagFile>,
    #[serde(default)]
    pub(super) steps: Vec<Step>,
    #[serde(default)]
    pub(super) expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Docs {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Setup {
    #[serde(default)]
    pub(super) scheduled: bool,
    pub(super) start_at: Option<String>,
    pub(super) parallelism: Option<usize>,
    /// Pools, made through the REST API (as an operator would) before any step.
    #[serde(default)]
    pub(super) pools: Vec<PoolSetup>,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolSetup {
    pub(super) name: String,
    pub(super) slots: u32,
    pub(super) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DagFile {
    pub(super) source: String,
    /// A label for this file's DAG version, for `dag_version` checks.
    pub(super) version: Option<String>,
    /// Path in the DAGs folder (a first-level folder names the tenant); default
    /// `<key>.toml`.
    pub(super) file: Option<String>,
}

fn yes() -> bool {
    true
}

/// Airflow's default `max_active_runs` of a backfill.
fn ten() -> u32 {
    10
}

#[derive(Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Step {
    Trigger {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        #[serde(default)]
        conf: Map<String, Value>,
        #[serde(default = "yes")]
        wait: bool,
        /// The trigger must be refused with an error containing this text.
        expect_error: Option<String>,
    },
    Wait {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
    },
    /// Waits until one TaskInstance (`task` or `task[i]`) is in `state`.
    WaitTask {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
        task: String,
        state: String,
    },
    Settle {},
    Advance {
        by: Option<String>,
        to: Option<String>,
        #[serde(default = "yes")]
        settle: bool,
    },
    Clear {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
        tasks: Option<Vec<String>>,
        #[serde(default)]
        downstream: bool,
        #[serde(default)]
        upstream: bool,
        #[serde(default)]
        only_failed: bool,
        /// What the clear must report as cleared (labels, any order).
        cleared: Option<Vec<String>>,
        #[serde(default = "yes")]
        wait: bool,
    },
    MarkTask {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
        /// `task` (every map index) or `task[i]`.
        task: String,
        state: String,
        #[serde(default)]
        downstream: bool,
        #[serde(default)]
        upstream: bool,
        /// What the mark must report as changed (labels, any order).
        changed: Option<Vec<String>>,
        #[serde(default = "yes")]
        wait: bool,
    },
    MarkRun {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
        state: String,
        #[serde(default = "yes")]
        wait: bool,
    },
    Pause {
        dag: String,
    },
    Unpause {
        dag: String,
        #[serde(default = "yes")]
        settle: bool,
    },
    SetVariable {
        key: String,
        value: String,
    },
    DeleteRun {
        dag: String,
        run_id: Option<String>,
        logical_date: Option<String>,
        nth: Option<usize>,
    },
    Expect(Box<Expect>),
    /// The DAG's runs, in creation order, have exactly these logical dates.
    ExpectRuns {
        dag: String,
        logical_dates: Vec<String>,
    },
    /// Airflow 3's backfill (`airflow backfill create`), then settle unless `wait =
    /// false`. `actions` lists what the backfill must plan per logical date, in its
    /// order: `create`, `reprocess` or `skip`.
    Backfill {
        dag: String,
        from: String,
        to: String,
        #[serde(default)]
        reprocess: ReprocessBehavior,
        #[serde(default = "ten")]
        max_active_runs: u32,
        #[serde(default)]
        run_backwards: bool,
        #[serde(default)]
        conf: Map<String, Value>,
        actions: Option<Vec<String>>,
        #[serde(default = "yes")]
        wait: bool,
    },
    /// Cancels the DAG's latest backfill (Airflow's `backfill cancel`).
    CancelBackfill {
        dag: String,
    },
    /// Rewrites the DAG file of `dag` (a `[dags.*]` key, or `file`) and rescans
    /// the folder; `version` labels the new DAG version.
    PutDag {
        dag: String,
        file: Option<String>,
        source: String,
        version: Option<String>,
    },
    /// Creates (or resizes) a pool through the REST API.
    Pool {
        name: String,
        slots: u32,
    },
    /// Checks the DAG rather than one run (see the module docs).
    ExpectDag {
        dag: String,
        paused: Option<bool>,
        max_running_runs: Option<usize>,
        #[serde(default)]
        max_active: BTreeMap<String, usize>,
        sequence: Option<Vec<OrderItem>>,
    },
}

impl Step {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Step::Trigger { .. } => "trigger",
            Step::Wait { .. } => "wait",
            Step::WaitTask { .. } => "wait_task",
            Step::Settle {} => "settle",
            Step::Advance { .. } => "advance",
            Step::Clear { .. } => "clear",
            Step::MarkTask { .. } => "mark_task",
            Step::MarkRun { .. } => "mark_run",
            Step::Pause { .. } => "pause",
            Step::Unpause { .. } => "unpause",
            Step::SetVariable { .. } => "set_variable",
            Step::DeleteRun { .. } => "delete_run",
            Step::Expect(_) => "expect",
            Step::ExpectRuns { .. } => "expect_runs",
            Step::Backfill { .. } => "backfill",
            Step::CancelBackfill { .. } => "cancel_backfill",
            Step::PutDag { .. } => "put_dag",
            Step::Pool { .. } => "pool",
            Step::ExpectDag { .. } => "expect_dag",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Expect {
    pub(super) dag: String,
    pub(super) run_id: Option<String>,
    pub(super) logical_date: Option<String>,
    pub(super) nth: Option<usize>,
    /// The DagRun's state.
    pub(super) state: String,
    /// Every TaskInstance: label → "state/try_number".
    #[serde(default)]
    pub(super) tasks: BTreeMap<String, String>,
    pub(super) data_interval: Option<[String; 2]>,
    pub(super) run_type: Option<String>,
    /// label → the TaskInstance's `return_value` XCom.
    #[serde(default)]
    pub(super) xcom: BTreeMap<String, Value>,
    pub(super) started: Option<Vec<OrderItem>>,
    pub(super) sequence: Option<Vec<OrderItem>>,
    /// task → the most of its TaskInstances queued or running at once in this run.
    #[serde(default)]
    pub(super) max_active: BTreeMap<String, usize>,
    /// The `version` label of the DAG file the run uses.
    pub(super) dag_version: Option<String>,
    /// Every callback the run fired, in any order.
    pub(super) callbacks: Option<Vec<CallbackExpect>>,
    /// Free text for the reader, repeated when the expectation fails.
    pub(super) note: Option<String>,
}

/// One callback a run fired (a record of `Metastore::callbacks`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct CallbackExpect {
    /// `on_success`, `on_failure` or `on_retry`.
    pub(super) event: String,
    /// The TaskInstance (`task` or `task[i]`) whose try fired it; absent for the
    /// DAG's own callbacks.
    pub(super) task: Option<String>,
    /// The try that fired it.
    #[serde(rename = "try")]
    pub(super) try_number: Option<u32>,
    /// How the callback itself went: `success` (default) or `failed`.
    #[serde(default = "success")]
    pub(super) state: String,
    /// Why it fired (a DAG callback: `success`, `task_failure`, `timed_out`, ...).
    pub(super) reason: Option<String>,
    /// Text the callback's log must contain (its rendered message, say).
    pub(super) log: Option<String>,
    /// Text the callback's error must contain.
    pub(super) error: Option<String>,
}

fn success() -> String {
    "success".to_owned()
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OrderItem {
    One(String),
    AnyOrder(Vec<String>),
}

/// Which run of a DAG a step or expectation means.
pub(super) struct RunSel<'a> {
    pub(super) dag: &'a str,
    pub(super) run_id: Option<&'a str>,
    pub(super) logical_date: Option<&'a str>,
    pub(super) nth: Option<usize>,
}

pub(super) fn sel<'a>(
    dag: &'a str,
    run_id: &'a Option<String>,
    logical_date: &'a Option<String>,
    nth: Option<usize>,
) -> RunSel<'a> {
    RunSel {
        dag,
        run_id: run_id.as_deref(),
        logical_date: logical_date.as_deref(),
        nth,
    }
}

// ---------------------------------------------------------------------------------
// Small parsers

pub(super) fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` is not an RFC 3339 timestamp with an offset: {e}"))
}

pub(super) fn ti_state(text: &str) -> TaskInstanceState {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a TaskInstance state"))
}

pub(super) fn run_state(text: &str) -> DagRunState {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a DagRun state"))
}

/// `"success/1"` → (success, 1).
pub(super) fn state_try(text: &str) -> (TaskInstanceState, u32) {
    let (state, tries) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("`{text}`: write a TaskInstance as \"state/try_number\""));
    let tries = tries
        .parse()
        .unwrap_or_else(|_| panic!("`{text}`: the try number must be an integer"));
    (ti_state(state), tries)
}

/// `"m[2]"` → ("m", Some(2)); `"m"` → ("m", None).
pub(super) fn parse_label(label: &str) -> (String, Option<i64>) {
    match label.strip_suffix(']').and_then(|l| l.split_once('[')) {
        Some((task, index)) => {
            let index = index
                .parse()
                .unwrap_or_else(|_| panic!("`{label}`: bad map index"));
            (task.to_owned(), Some(index))
        }
        None => (label.to_owned(), None),
    }
}

/// (task, map index) in expectations: a bare task id is map index -1.
pub(super) fn ti_key(label: &str) -> (String, i64) {
    let (task, index) = parse_label(label);
    (task, index.unwrap_or(-1))
}

pub(super) fn label(task: &str, map_index: i64) -> String {
    if map_index < 0 {
        task.to_owned()
    } else {
        format!("{task}[{map_index}]")
    }
}

pub(super) fn sorted_labels(labels: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<(String, i64)> = labels.into_iter().map(|l| ti_key(&l)).collect();
    v.sort();
    v.into_iter().map(|(t, m)| label(&t, m)).collect()
}
