//! The table-driven semantic suite: every file in `tests/semantic/` is one case, a
//! DAG file (or several) plus the expected final state and try number of **every**
//! TaskInstance of every DagRun it creates. Each case runs as its own test, on the
//! real scheduler and sandbox with the simulated clock (`aileron_tests::Env`).
//!
//! # Case files
//!
//! ```toml
//! about = "one line: what the case shows"
//! doc = "https://airflow.apache.org/docs/..."  # or a list; where Airflow documents it
//!
//! [setup]                      # all optional
//! scheduled = true             # let the scheduler create runs from schedules
//! start_at = "2026-03-25T00:00:00Z"   # simulated clock start (default: harness t0)
//! parallelism = 1              # scheduler parallelism (default 16)
//! pools = [{ name = "p", slots = 1 }] # created through the REST API before any step
//! variables = { ready = "yes" }       # Airflow Variables
//!
//! [dags.my_dag]                # written to the DAGs folder as my_dag.toml
//! version = "v1"               # optional label for this file's DAG version
//! source = '''
//! [tasks.a]
//! operator = "noop"
//! '''
//!
//! [[steps]]                    # in order; `do` names the action
//! do = "trigger"               # dag, run_id?, logical_date?, conf?, wait = true
//! dag = "my_dag"
//!
//! [[expect]]                   # checked at the end, once every run has settled
//! dag = "my_dag"               # run: run_id / logical_date / nth (0-based), or the only run
//! state = "success"
//! tasks = { a = "success/1" }  # "state/try_number"; mapped: "m[0]", placeholder: "m" or "m[-1]"
//! ```
//!
//! Steps (`do = ...`): `trigger` (`expect_error = "text"`: the trigger must be
//! refused with an error containing the text), `wait` (a run finishes), `wait_task`
//! (`task` reaches `state`), `settle` (every run of every unpaused DAG finishes; a
//! finished run may keep TaskInstances with no state), `advance`
//! (`by = "1h"` or `to = "<RFC 3339>"`, then settle unless `settle = false`), `clear`
//! (`tasks`, `downstream`, `upstream`, `only_failed`; `cleared` lists what it must
//! report), `mark_task` (`task`, `state`, `downstream`, `upstream`; `changed`),
//! `mark_run` (`state`), `pause`, `unpause`, `set_variable`, `delete_run`, `expect`
//! (the fields of an `[[expect]]`, checked right then) and `expect_runs` (the DAG's
//! runs have exactly these `logical_dates`), `backfill` (`from`, `to`, `reprocess`,
//! `max_active_runs`, `run_backwards`, `conf`; `actions` lists what it must plan per
//! date), `cancel_backfill` (the DAG's latest backfill), `put_dag` (`dag`, `source`,
//! `version` label, `file`: rewrites a DAG file and rescans the folder), `pool`
//! (`name`, `slots`: creates or resizes a pool through the REST API) and `expect_dag`
//! (`paused`; `max_running_runs` and `max_active = { task = n }`: the most runs
//! running, and TaskInstances of a task queued or running, at once over all the
//! DAG's runs, from the scheduler's updates; `sequence` as below over all its runs,
//! each item prefixed with the run's creation index, `"1:load=success"`). Steps
//! that name a run take `run_id`, `logical_date` or `nth`, and default to the DAG's
//! latest run.
//! Timestamps are RFC 3339 with an offset, so local times read as local times.
//!
//! An `[[expect]]` fails when a TaskInstance exists that it does not list, and the
//! whole case fails when a DagRun exists that no `[[expect]]` selects, so "every
//! TaskInstance" is really checked. Optional checks: `data_interval = [start, end]`,
//! `run_type`, `xcom = { task = <return_value> }`, `started` (the exact order in which
//! the run's TaskInstances went `running`, one entry per try; a nested list is a group
//! whose members may start in any order), `max_active = { task = n }` (the most
//! TaskInstances of the task queued or running at once in the run), `sequence`
//! (`"task=state"` transitions that must happen in this order, others may come
//! between), `dag_version` (the
//! `version` label of the DAG file the run uses) and `callbacks` (every callback the
//! run fired, in any order: `{ event, task, try, state, reason, log, error }`, where
//! `task` absent means a DAG-level callback, `state` is the callback's own `success`
//! (default) or `failed`, `reason` must be equal, and `log` and `error` are text the
//! callback's log and error must contain; callbacks run after the commit, so the
//! check first waits, bounded, until none is queued or running). Every mismatch of a
//! check is reported at once, with the state actually found.
//!
//! Ordering checks see what happens after the `Env` has started: with `scheduled =
//! true`, start the clock (`start_at`) before the first run is due.

use aileron::metastore::{CallbackRecord, DagRun, ReprocessBehavior, TaskInstance};
use aileron::scheduler::{BackfillRequest, ClearOptions, Update};
use aileron_model::TenantId;
use aileron_model::clock::Clock;
use aileron_model::{DagRunState, TaskInstanceState};
use aileron_tests::Env;
use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;

/// One test per case file. A case that fails because of a host bug (not because its
/// expectation is wrong) is marked `#[ignore = "BUG: ..."]` here, never "fixed" in
/// the file.
macro_rules! semantic_cases {
    ($($(#[$attr:meta])* $name:ident,)*) => {
        $(
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_case(
                    stringify!($name),
                    include_str!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/semantic/",
                        stringify!($name),
                        ".toml"
                    )),
                )
                .await;
            }
        )*
        /// Every case listed above, for the check that no file is left out.
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

semantic_cases! {
    backfill_cancel_fails_queued_runs,
    backfill_creates_no_duplicates,
    backfill_max_active_runs,
    backfill_of_a_paused_dag_waits,
    backfill_reprocess_completed_skips_in_flight,
    branch_follows_a_list_or_nothing,
    branch_follows_one_path,
    branch_join_downstream_of_the_followed_task,
    branch_without_and_with_a_tolerant_join,
    callbacks_fire_on_try_outcomes,
    callbacks_not_for_changes_by_hand,
    clear_a_mapped_task,
    clear_a_whole_successful_run,
    clear_only_failed,
    clear_with_downstream,
    clear_with_upstream,
    dag_version_kept_by_a_run_then_moved_by_clear,
    dagrun_timeout_fails_the_run,
    depends_on_past_waits_for_the_previous_run,
    dst_daily_cron_fall_back,
    dst_daily_cron_spring_forward,
    dst_hourly_cron_both_transitions,
    end_date_and_once_bound_the_schedule,
    map_instances_fail_and_retry_on_their_own,
    map_over_a_literal_list,
    map_over_an_upstream_xcom_list,
    map_over_params_and_conf,
    map_upstream_failed_is_not_expanded,
    map_zero_length_skips_downstream,
    mark_run_success_and_failed,
    mark_running_task_failed,
    mark_running_task_success_with_downstream,
    mark_task_success_resumes_failed_downstream,
    max_active_tis_per_dag_and_per_dagrun,
    max_active_runs_starts_queued_runs_in_turn,
    max_consecutive_failed_runs_pauses_the_dag,
    pause_holds_scheduled_runs,
    pool_that_does_not_exist_waits,
    pools_limit_and_order,
    priority_weight_orders_admission,
    retries_number_tries,
    rule_all_done,
    rule_all_done_min_one_success,
    rule_all_failed,
    rule_all_skipped,
    rule_all_success,
    rule_all_success_decides_early,
    rule_always,
    rule_none_failed,
    rule_none_failed_min_one_success,
    rule_none_skipped,
    rule_one_done,
    rule_one_failed,
    rule_one_success,
    rules_decide_before_every_upstream_is_done,
    schedule_skips_dates_a_backfill_covered,
    sensor_reschedule_keeps_its_try,
    sensor_timeout_fails_without_retry,
    short_circuit_lets_trigger_rules_decide,
    short_circuit_skips_everything_downstream,
    skip_propagates_through_rules,
    typed_params_check_the_conf,
    wait_for_downstream_across_scheduled_runs,
    wait_until_compares_with_the_wall_clock,
}

#[test]
fn every_case_file_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("semantic");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| (*c).to_owned()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "tests/semantic/*.toml and the semantic_cases! list in tests/it/semantic.rs differ"
    );
}

// ---------------------------------------------------------------------------------
// The case format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    doc: Option<Docs>,
    #[serde(default)]
    setup: Setup,
    dags: BTreeMap<String, DagFile>,
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Docs {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Setup {
    #[serde(default)]
    scheduled: bool,
    start_at: Option<String>,
    parallelism: Option<usize>,
    /// Pools, made through the REST API (as an operator would) before any step.
    #[serde(default)]
    pools: Vec<PoolSetup>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSetup {
    name: String,
    slots: u32,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DagFile {
    source: String,
    /// A label for this file's DAG version, for `dag_version` checks.
    version: Option<String>,
    /// Path in the DAGs folder (a first-level folder names the tenant); default
    /// `<key>.toml`.
    file: Option<String>,
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
enum Step {
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
    fn name(&self) -> &'static str {
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
struct Expect {
    dag: String,
    run_id: Option<String>,
    logical_date: Option<String>,
    nth: Option<usize>,
    /// The DagRun's state.
    state: String,
    /// Every TaskInstance: label → "state/try_number".
    #[serde(default)]
    tasks: BTreeMap<String, String>,
    data_interval: Option<[String; 2]>,
    run_type: Option<String>,
    /// label → the TaskInstance's `return_value` XCom.
    #[serde(default)]
    xcom: BTreeMap<String, Value>,
    started: Option<Vec<OrderItem>>,
    sequence: Option<Vec<OrderItem>>,
    /// task → the most of its TaskInstances queued or running at once in this run.
    #[serde(default)]
    max_active: BTreeMap<String, usize>,
    /// The `version` label of the DAG file the run uses.
    dag_version: Option<String>,
    /// Every callback the run fired, in any order.
    callbacks: Option<Vec<CallbackExpect>>,
    /// Free text for the reader, repeated when the expectation fails.
    note: Option<String>,
}

/// One callback a run fired (a record of `Metastore::callbacks`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CallbackExpect {
    /// `on_success`, `on_failure` or `on_retry`.
    event: String,
    /// The TaskInstance (`task` or `task[i]`) whose try fired it; absent for the
    /// DAG's own callbacks.
    task: Option<String>,
    /// The try that fired it.
    #[serde(rename = "try")]
    try_number: Option<u32>,
    /// How the callback itself went: `success` (default) or `failed`.
    #[serde(default = "success")]
    state: String,
    /// Why it fired (a DAG callback: `success`, `task_failure`, `timed_out`, ...).
    reason: Option<String>,
    /// Text the callback's log must contain (its rendered message, say).
    log: Option<String>,
    /// Text the callback's error must contain.
    error: Option<String>,
}

fn success() -> String {
    "success".to_owned()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OrderItem {
    One(String),
    AnyOrder(Vec<String>),
}

/// Which run of a DAG a step or expectation means.
struct RunSel<'a> {
    dag: &'a str,
    run_id: Option<&'a str>,
    logical_date: Option<&'a str>,
    nth: Option<usize>,
}

fn sel<'a>(
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

fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` is not an RFC 3339 timestamp with an offset: {e}"))
}

fn ti_state(text: &str) -> TaskInstanceState {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a TaskInstance state"))
}

fn run_state(text: &str) -> DagRunState {
    text.parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a DagRun state"))
}

/// `"success/1"` → (success, 1).
fn state_try(text: &str) -> (TaskInstanceState, u32) {
    let (state, tries) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("`{text}`: write a TaskInstance as \"state/try_number\""));
    let tries = tries
        .parse()
        .unwrap_or_else(|_| panic!("`{text}`: the try number must be an integer"));
    (ti_state(state), tries)
}

/// `"m[2]"` → ("m", Some(2)); `"m"` → ("m", None).
fn parse_label(label: &str) -> (String, Option<i64>) {
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
fn ti_key(label: &str) -> (String, i64) {
    let (task, index) = parse_label(label);
    (task, index.unwrap_or(-1))
}

fn label(task: &str, map_index: i64) -> String {
    if map_index < 0 {
        task.to_owned()
    } else {
        format!("{task}[{map_index}]")
    }
}

fn sorted_labels(labels: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<(String, i64)> = labels.into_iter().map(|l| ti_key(&l)).collect();
    v.sort();
    v.into_iter().map(|(t, m)| label(&t, m)).collect()
}

// ---------------------------------------------------------------------------------
// The runner

/// A TaskInstance change as the scheduler announced it.
struct Event {
    dag_id: String,
    run_id: String,
    label: String,
    state: TaskInstanceState,
}

/// A DagRun change as the scheduler announced it.
struct RunEvent {
    dag_id: String,
    run_id: String,
    state: DagRunState,
}

struct Runner {
    name: String,
    env: Env,
    updates: tokio::sync::broadcast::Receiver<Update>,
    events: Vec<Event>,
    run_events: Vec<RunEvent>,
    lagged: u64,
    /// `version` label → the DAG version (content hash) it names.
    versions: HashMap<String, String>,
    /// DAG → id of its latest backfill.
    backfills: HashMap<String, u64>,
}

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(5);

async fn run_case(name: &str, text: &str) {
    let case: Case = toml::from_str(text)
        .unwrap_or_else(|e| panic!("tests/semantic/{name}.toml is not a valid case: {e}"));
    assert!(!case.about.trim().is_empty(), "{name}: `about` is empty");
    let docs = match &case.doc {
        None => Vec::new(),
        Some(Docs::One(d)) => vec![d.clone()],
        Some(Docs::Many(d)) => d.clone(),
    };
    for d in docs {
        assert!(
            d.starts_with("https://"),
            "{name}: `doc` must be a URL: {d}"
        );
    }
    let mut r = Runner::start(name, &case).await;
    for (i, step) in case.steps.iter().enumerate() {
        r.run_step(i + 1, step).await;
    }
    r.settle("the final checks").await;
    if case.expect.iter().any(|e| e.callbacks.is_some()) {
        r.wait_callbacks("the final checks").await;
    }
    r.sync_events().await;
    let mut report = String::new();
    let mut matched: Vec<(String, String)> = Vec::new();
    for (i, e) in case.expect.iter().enumerate() {
        let (run, problems) = r.check(e);
        if let Some(run) = run {
            matched.push((run.dag_id.clone(), run.run_id.clone()));
        }
        if !problems.is_empty() {
            let _ = writeln!(report, "[[expect]] #{}:\n{problems}", i + 1);
        }
    }
    // Every DagRun must be listed, as every TaskInstance must.
    for dag in r.env.app.metastore.dags().unwrap() {
        for run in r
            .env
            .app
            .metastore
            .dag_runs(&dag.tenant, &dag.dag_id)
            .unwrap()
        {
            if !matched.contains(&(run.dag_id.clone(), run.run_id.clone())) {
                let _ = writeln!(
                    report,
                    "DagRun `{}` of `{}` ({}, logical date {}) is not listed in any [[expect]]:\n{}",
                    run.run_id,
                    run.dag_id,
                    run.state,
                    run.logical_date,
                    r.describe_run(&run)
                );
            }
        }
    }
    assert!(
        report.is_empty(),
        "semantic case `{name}` (tests/semantic/{name}.toml) failed:\n{report}"
    );
}

impl Runner {
    async fn start(name: &str, case: &Case) -> Runner {
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
    fn label_version(&mut self, file: &str, label: &str) -> Result<(), String> {
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

    /// Fails the step unless `got` is exactly the TaskInstances `want` lists (when
    /// the case lists any).
    fn check_listed(
        &self,
        step: usize,
        what: &str,
        verb: &str,
        got: &[TaskInstance],
        want: &Option<Vec<String>>,
    ) {
        let Some(want) = want else { return };
        let got = sorted_labels(got.iter().map(|t| label(&t.task_id, t.map_index)));
        if got != sorted_labels(want.iter().cloned()) {
            self.fail(step, what, format!("{verb} {got:?}, want {want:?}"));
        }
    }

    fn fail(&self, step: usize, what: &str, message: impl std::fmt::Display) -> ! {
        panic!(
            "semantic case `{}`, step #{step} ({what}): {message}",
            self.name
        )
    }

    async fn run_step(&mut self, n: usize, step: &Step) {
        let what = step.name();
        let s = self.env.app.scheduler.clone();
        match step {
            Step::Trigger {
                dag,
                run_id,
                logical_date,
                conf,
                wait,
                expect_error,
            } => {
                let result = s
                    .trigger(
                        TenantId::DEFAULT,
                        dag,
                        run_id.clone(),
                        logical_date.as_deref().map(ts),
                        conf.clone(),
                    )
                    .await;
                if let Some(want) = expect_error {
                    match result {
                        Ok(run) => self.fail(
                            n,
                            what,
                            format!("created run `{}`, want an error with {want:?}", run.run_id),
                        ),
                        Err(e) if !e.to_string().contains(want.as_str()) => {
                            self.fail(n, what, format!("error `{e}` does not contain {want:?}"))
                        }
                        Err(_) => return,
                    }
                }
                let run = result.unwrap_or_else(|e| self.fail(n, what, e));
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (trigger)"))
                        .await;
                }
            }
            Step::Wait {
                dag,
                run_id,
                logical_date,
                nth,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                self.wait_run(dag, &run.run_id, &format!("step #{n} (wait)"))
                    .await;
            }
            Step::WaitTask {
                dag,
                run_id,
                logical_date,
                nth,
                task,
                state,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let (task_id, map_index) = ti_key(task);
                let want = ti_state(state);
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    self.drain_events();
                    let ti = self
                        .env
                        .app
                        .metastore
                        .task_instance(TenantId::DEFAULT, dag, &run.run_id, &task_id, map_index)
                        .unwrap();
                    if ti.as_ref().is_some_and(|t| t.state == want) {
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        let now = ti.map_or("missing".to_owned(), |t| t.state.to_string());
                        self.fail(n, what, format!("{task} is still {now}, not {want}"));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Step::Settle {} => self.settle(&format!("step #{n} (settle)")).await,
            Step::Advance { by, to, settle } => {
                let now = self.env.clock.now();
                let target = match (by, to) {
                    (Some(by), None) => {
                        let d = aileron_model::units::parse_duration(by)
                            .unwrap_or_else(|e| self.fail(n, what, e));
                        now + SignedDuration::try_from(d).unwrap()
                    }
                    (None, Some(to)) => ts(to),
                    _ => self.fail(n, what, "give exactly one of `by` and `to`"),
                };
                if target < now {
                    self.fail(n, what, format!("{target} is before the clock ({now})"));
                }
                self.env.clock.set(target);
                s.sync().await.unwrap();
                if *settle {
                    self.settle(&format!("step #{n} (advance)")).await;
                }
            }
            Step::Clear {
                dag,
                run_id,
                logical_date,
                nth,
                tasks,
                downstream,
                upstream,
                only_failed,
                cleared,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let opts = ClearOptions {
                    task_ids: tasks.clone(),
                    downstream: *downstream,
                    upstream: *upstream,
                    only_failed: *only_failed,
                    dry_run: false,
                };
                let got = s
                    .clear(TenantId::DEFAULT, dag, &run.run_id, opts)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.check_listed(n, what, "cleared", &got, cleared);
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (clear)"))
                        .await;
                }
            }
            Step::MarkTask {
                dag,
                run_id,
                logical_date,
                nth,
                task,
                state,
                downstream,
                upstream,
                changed,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let (task_id, map_index) = parse_label(task);
                let got = s
                    .set_task_state(
                        TenantId::DEFAULT,
                        dag,
                        &run.run_id,
                        &task_id,
                        map_index,
                        ti_state(state),
                        *downstream,
                        *upstream,
                    )
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.check_listed(n, what, "changed", &got, changed);
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (mark_task)"))
                        .await;
                }
            }
            Step::MarkRun {
                dag,
                run_id,
                logical_date,
                nth,
                state,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                s.set_run_state(TenantId::DEFAULT, dag, &run.run_id, run_state(state))
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (mark_run)"))
                        .await;
                }
            }
            Step::Pause { dag } => {
                s.set_paused(TenantId::DEFAULT, dag, true)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
            }
            Step::Unpause { dag, settle } => {
                s.set_paused(TenantId::DEFAULT, dag, false)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                s.sync().await.unwrap();
                if *settle {
                    self.settle(&format!("step #{n} (unpause)")).await;
                }
            }
            Step::SetVariable { key, value } => {
                self.env
                    .app
                    .metastore
                    .set_variable(TenantId::DEFAULT, key, value)
                    .unwrap();
            }
            Step::DeleteRun {
                dag,
                run_id,
                logical_date,
                nth,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                s.delete_run(TenantId::DEFAULT, dag, &run.run_id)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
            }
            Step::Expect(e) => {
                if e.callbacks.is_some() {
                    self.wait_callbacks(&format!("step #{n} (expect)")).await;
                }
                self.sync_events().await;
                let (_, problems) = self.check(e);
                if !problems.is_empty() {
                    self.fail(n, what, format!("\n{problems}"));
                }
            }
            Step::ExpectRuns { dag, logical_dates } => {
                let got: Vec<Timestamp> = self
                    .env
                    .app
                    .metastore
                    .dag_runs(TenantId::DEFAULT, dag)
                    .unwrap()
                    .iter()
                    .map(|r| r.logical_date)
                    .collect();
                let want: Vec<Timestamp> = logical_dates.iter().map(|d| ts(d)).collect();
                if got != want {
                    self.fail(
                        n,
                        what,
                        format!("runs of `{dag}` have logical dates {got:?}, want {want:?}"),
                    );
                }
            }
            Step::Backfill {
                dag,
                from,
                to,
                reprocess,
                max_active_runs,
                run_backwards,
                conf,
                actions,
                wait,
            } => {
                let request = BackfillRequest {
                    tenant: TenantId::DEFAULT.to_owned(),
                    dag_id: dag.clone(),
                    from_date: ts(from),
                    to_date: ts(to),
                    run_backwards: *run_backwards,
                    dag_run_conf: conf.clone(),
                    reprocess_behavior: *reprocess,
                    max_active_runs: *max_active_runs,
                    dry_run: false,
                };
                let (record, plan) = s
                    .create_backfill(request)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.backfills.insert(dag.clone(), record.id);
                if let Some(want) = actions {
                    let got: Vec<&str> = plan.iter().map(|d| d.action.as_str()).collect();
                    if got != *want {
                        let dates: Vec<String> =
                            plan.iter().map(|d| d.logical_date.to_string()).collect();
                        self.fail(
                            n,
                            what,
                            format!("planned {got:?} for {dates:?}, want {want:?}"),
                        );
                    }
                }
                s.sync().await.unwrap();
                if *wait {
                    self.settle(&format!("step #{n} (backfill)")).await;
                }
            }
            Step::CancelBackfill { dag } => {
                let Some(id) = self.backfills.get(dag).copied() else {
                    self.fail(n, what, format!("no backfill of `{dag}` was created"))
                };
                s.cancel_backfill(TenantId::DEFAULT, id)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                s.sync().await.unwrap();
            }
            Step::PutDag {
                dag,
                file,
                source,
                version,
            } => {
                let file = file.clone().unwrap_or_else(|| format!("{dag}.toml"));
                self.env.put_dag(&file, source).await;
                let errors: Vec<String> = self
                    .env
                    .import_errors()
                    .into_iter()
                    .filter(|e| e.starts_with(&format!("{file}:")))
                    .collect();
                if !errors.is_empty() {
                    self.fail(n, what, format!("{file} does not import: {errors:?}"));
                }
                if let Some(label) = version {
                    self.label_version(&file, label)
                        .unwrap_or_else(|e| self.fail(n, what, e));
                }
            }
            Step::Pool { name, slots } => {
                let pool = PoolSetup {
                    name: name.clone(),
                    slots: *slots,
                    description: None,
                };
                make_pool(&self.env, &pool).await;
                s.sync().await.unwrap();
            }
            Step::ExpectDag {
                dag,
                paused,
                max_running_runs,
                max_active,
                sequence,
            } => {
                self.sync_events().await;
                let problems =
                    self.check_dag(dag, *paused, *max_running_runs, max_active, sequence);
                if !problems.is_empty() {
                    self.fail(n, what, format!("\n{problems}"));
                }
            }
        }
    }

    /// Checks of a whole DAG (`expect_dag`); every mismatch, or nothing.
    fn check_dag(
        &self,
        dag: &str,
        paused: Option<bool>,
        max_running_runs: Option<usize>,
        max_active: &BTreeMap<String, usize>,
        sequence: &Option<Vec<OrderItem>>,
    ) -> String {
        let mut out = String::new();
        let Some(record) = self
            .env
            .app
            .metastore
            .dags()
            .unwrap()
            .into_iter()
            .find(|d| d.tenant == TenantId::DEFAULT && d.dag_id == dag)
        else {
            return format!("    no DAG `{dag}`\n");
        };
        if let Some(want) = paused
            && record.is_paused != want
        {
            let _ = writeln!(out, "    is_paused: got {}, want {want}", record.is_paused);
        }
        let ordering = max_running_runs.is_some() || !max_active.is_empty() || sequence.is_some();
        if ordering && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): ordering cannot be checked",
                self.lagged
            );
        }
        if let Some(want) = max_running_runs {
            let mut states: HashMap<&str, DagRunState> = HashMap::new();
            let mut most = 0;
            for ev in self.run_events.iter().filter(|e| e.dag_id == dag) {
                states.insert(&ev.run_id, ev.state);
                let running = states
                    .values()
                    .filter(|s| **s == DagRunState::Running)
                    .count();
                most = most.max(running);
            }
            if most != want {
                let _ = writeln!(
                    out,
                    "    most runs running at once: got {most}, want {want}"
                );
            }
        }
        check_max_active(
            self.events.iter().filter(|e| e.dag_id == dag),
            max_active,
            &mut out,
        );
        if let Some(sequence) = sequence {
            let runs: Vec<String> = self
                .env
                .app
                .metastore
                .dag_runs(TenantId::DEFAULT, dag)
                .unwrap()
                .into_iter()
                .map(|r| r.run_id)
                .collect();
            let actual: Vec<String> = self
                .events
                .iter()
                .filter(|e| e.dag_id == dag)
                .filter_map(|e| {
                    let nth = runs.iter().position(|r| *r == e.run_id)?;
                    Some(format!("{nth}:{}={}", e.label, e.state))
                })
                .collect();
            if let Some(problem) = check_sequence(&actual, sequence, run_transition) {
                let _ = writeln!(out, "    sequence: {problem}; got {actual:?}");
            }
        }
        if !out.is_empty() {
            out = format!("  dag `{dag}`:\n{out}");
        }
        out
    }

    /// Waits (bounded) until no callback of any run is queued or running.
    async fn wait_callbacks(&mut self, context: &str) {
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
    fn step_run(&self, step: usize, what: &str, sel: &RunSel) -> DagRun {
        self.find_run(sel, true)
            .unwrap_or_else(|e| self.fail(step, what, e))
    }

    fn find_run(&self, sel: &RunSel, latest: bool) -> Result<DagRun, String> {
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

    fn drain_events(&mut self) {
        loop {
            match self.updates.try_recv() {
                Ok(Update::TaskInstance {
                    dag_id,
                    run_id,
                    task_id,
                    map_index,
                    state,
                    ..
                }) => self.events.push(Event {
                    dag_id,
                    run_id,
                    label: label(&task_id, map_index),
                    state,
                }),
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
    async fn sync_events(&mut self) {
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

    async fn wait_run(&mut self, dag: &str, run_id: &str, context: &str) {
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
    async fn settle(&mut self, context: &str) {
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

    /// Every run of a DAG with its TaskInstances, for messages.
    fn describe_dag(&self, dag: &str) -> String {
        let runs = self
            .env
            .app
            .metastore
            .dag_runs(TenantId::DEFAULT, dag)
            .unwrap_or_default();
        let mut out = String::new();
        for run in runs {
            let _ = write!(
                out,
                "  run `{}` (logical date {}):\n{}",
                run.run_id,
                run.logical_date,
                self.describe_run(&run)
            );
        }
        out
    }

    /// Every TaskInstance of a run, in the `tasks = { ... }` form of a case file.
    fn describe_run(&self, run: &DagRun) -> String {
        let tis = self
            .env
            .app
            .metastore
            .task_instances(TenantId::DEFAULT, &run.dag_id, &run.run_id)
            .unwrap();
        let mut keyed: Vec<((String, i64), String)> = tis
            .iter()
            .map(|t| {
                (
                    (t.task_id.clone(), t.map_index),
                    format!("{}/{}", t.state, t.try_number),
                )
            })
            .collect();
        keyed.sort();
        let mut out = format!("    found: state = \"{}\"\n", run.state);
        for ((task, m), st) in keyed {
            let l = label(&task, m);
            let quoted = if m >= 0 { format!("\"{l}\"") } else { l };
            let _ = writeln!(out, "      {quoted} = \"{st}\"");
        }
        out
    }

    /// Checks one expectation; the run it selected, and every mismatch (empty if none).
    fn check(&self, e: &Expect) -> (Option<DagRun>, String) {
        let run = match self.find_run(&sel(&e.dag, &e.run_id, &e.logical_date, e.nth), false) {
            Ok(r) => r,
            Err(m) => return (None, format!("    {m}\n")),
        };
        let m = &self.env.app.metastore;
        let mut out = String::new();
        let want = run_state(&e.state);
        if run.state != want {
            let _ = writeln!(out, "    run state: got {}, want {want}", run.state);
        }
        if let Some([start, end]) = &e.data_interval {
            let (start, end) = (ts(start), ts(end));
            if (run.data_interval.start, run.data_interval.end) != (start, end) {
                let _ = writeln!(
                    out,
                    "    data interval: got [{}, {}), want [{start}, {end})",
                    run.data_interval.start, run.data_interval.end
                );
            }
        }
        if let Some(rt) = &e.run_type
            && run.run_type.as_str() != rt
        {
            let _ = writeln!(
                out,
                "    run type: got {}, want {rt}",
                run.run_type.as_str()
            );
        }

        if let Some(label) = &e.dag_version {
            let want = self.versions.get(label).unwrap_or_else(|| {
                panic!(
                    "{}: no DAG version is labelled `{label}` (label one with `version`)",
                    self.name
                )
            });
            if run.dag_version != *want {
                let got = self
                    .versions
                    .iter()
                    .find(|(_, v)| **v == run.dag_version)
                    .map_or(run.dag_version.clone(), |(l, _)| l.clone());
                let _ = writeln!(out, "    dag version: got {got}, want {label}");
            }
        }
        if let Some(want) = &e.callbacks {
            let got = m
                .callbacks(TenantId::DEFAULT, &run.dag_id, &run.run_id)
                .unwrap();
            check_callbacks(&got, want, &mut out);
        }

        let actual: BTreeMap<(String, i64), (TaskInstanceState, u32)> = m
            .task_instances(TenantId::DEFAULT, &run.dag_id, &run.run_id)
            .unwrap()
            .into_iter()
            .map(|t| ((t.task_id, t.map_index), (t.state, t.try_number)))
            .collect();
        let mut expected: BTreeMap<(String, i64), (TaskInstanceState, u32)> = BTreeMap::new();
        for (l, v) in &e.tasks {
            if expected.insert(ti_key(l), state_try(v)).is_some() {
                panic!("{}: `{l}` is listed twice", self.name);
            }
        }
        let mut keys: Vec<&(String, i64)> = actual.keys().chain(expected.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let l = label(&k.0, k.1);
            match (actual.get(k), expected.get(k)) {
                (Some(a), Some(w)) if a != w => {
                    let _ = writeln!(out, "    {l}: got {}/{}, want {}/{}", a.0, a.1, w.0, w.1);
                }
                (Some(a), None) => {
                    let _ = writeln!(
                        out,
                        "    {l}: exists ({}/{}) but the case does not list it",
                        a.0, a.1
                    );
                }
                (None, Some(w)) => {
                    let _ = writeln!(
                        out,
                        "    {l}: listed as {}/{} but there is no such TaskInstance",
                        w.0, w.1
                    );
                }
                _ => {}
            }
        }

        for (l, want) in &e.xcom {
            let (task, index) = ti_key(l);
            let got: Option<Value> = m
                .xcom(
                    TenantId::DEFAULT,
                    &run.dag_id,
                    &run.run_id,
                    &task,
                    "return_value",
                )
                .unwrap()
                .into_iter()
                .find(|(mi, _)| *mi == index)
                .map(|(_, v)| serde_json::from_str(&v).unwrap());
            if got.as_ref() != Some(want) {
                let got = got.map_or("nothing".to_owned(), |v| v.to_string());
                let _ = writeln!(out, "    xcom of {l}: got {got}, want {want}");
            }
        }

        let events: Vec<&Event> = self
            .events
            .iter()
            .filter(|ev| ev.dag_id == run.dag_id && ev.run_id == run.run_id)
            .collect();
        if (e.started.is_some() || e.sequence.is_some()) && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): ordering cannot be checked",
                self.lagged
            );
        }
        if let Some(started) = &e.started {
            let actual: Vec<String> = events
                .iter()
                .filter(|ev| ev.state == TaskInstanceState::Running)
                .map(|ev| ev.label.clone())
                .collect();
            if let Some(problem) = check_started(&actual, started) {
                let _ = writeln!(out, "    started order: {problem}; got {actual:?}");
            }
        }
        if !e.max_active.is_empty() && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): concurrency cannot be checked",
                self.lagged
            );
        }
        check_max_active(events.iter().copied(), &e.max_active, &mut out);
        if let Some(sequence) = &e.sequence {
            let actual: Vec<String> = events
                .iter()
                .map(|ev| format!("{}={}", ev.label, ev.state))
                .collect();
            if let Some(problem) = check_sequence(&actual, sequence, transition) {
                let _ = writeln!(out, "    sequence: {problem}; got {actual:?}");
            }
        }
        if !out.is_empty() {
            let head = format!(
                "  dag `{}`, run `{}` (logical date {}):\n",
                run.dag_id, run.run_id, run.logical_date
            );
            let note = e
                .note
                .as_ref()
                .map(|n| format!("    note: {n}\n"))
                .unwrap_or_default();
            out = format!("{head}{note}{out}{}", self.describe_run(&run));
        }
        (Some(run), out)
    }
}

/// Compares, per task, the most TaskInstances queued or running at once in
/// `events` with `want`; writes the mismatches.
fn check_max_active<'a>(
    events: impl Iterator<Item = &'a Event>,
    want: &BTreeMap<String, usize>,
    out: &mut String,
) {
    if want.is_empty() {
        return;
    }
    let mut states: HashMap<(&str, &str), TaskInstanceState> = HashMap::new();
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for ev in events {
        states.insert((&ev.run_id, &ev.label), ev.state);
        let task = ti_key(&ev.label).0;
        let active = states
            .iter()
            .filter(|((_, l), s)| {
                ti_key(l).0 == task
                    && matches!(s, TaskInstanceState::Queued | TaskInstanceState::Running)
            })
            .count();
        let m = most.entry(task).or_default();
        *m = (*m).max(active);
    }
    for (task, want) in want {
        let got = most.get(task).copied().unwrap_or(0);
        if got != *want {
            let _ = writeln!(
                out,
                "    most TaskInstances of `{task}` queued or running at once: got {got}, want {want}"
            );
        }
    }
}

/// Matches the callbacks a run fired with the expected ones, in any order; writes
/// what is missing and what is unexpected.
fn check_callbacks(got: &[CallbackRecord], want: &[CallbackExpect], out: &mut String) {
    let describe = |c: &CallbackRecord| {
        let who = match &c.task_id {
            Some(t) => format!(
                "task {} try {}",
                label(t, c.map_index.unwrap_or(-1)),
                c.try_number.unwrap_or(0)
            ),
            None => "the DAG".to_owned(),
        };
        format!(
            "{} of {who}: {} ({}), reason {:?}, error {:?}, log {:?}",
            c.event, c.state, c.operator, c.reason, c.error, c.log
        )
    };
    let matches = |c: &CallbackRecord, w: &CallbackExpect| {
        let task_ok = match &w.task {
            None => c.task_id.is_none(),
            Some(l) => {
                let (task, index) = ti_key(l);
                c.task_id.as_deref() == Some(task.as_str()) && c.map_index.unwrap_or(-1) == index
            }
        };
        task_ok
            && c.event == w.event
            && c.state == w.state
            && w.try_number.is_none_or(|t| c.try_number == Some(t))
            && w.reason
                .as_ref()
                .is_none_or(|r| c.reason.as_ref() == Some(r))
            && w.log.as_ref().is_none_or(|l| c.log.contains(l.as_str()))
            && w.error
                .as_ref()
                .is_none_or(|x| c.error.as_ref().is_some_and(|e| e.contains(x.as_str())))
    };
    let mut left: Vec<&CallbackRecord> = got.iter().collect();
    let mut missing = Vec::new();
    for w in want {
        match left.iter().position(|c| matches(c, w)) {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(w),
        }
    }
    if missing.is_empty() && left.is_empty() {
        return;
    }
    for w in missing {
        let _ = writeln!(out, "    callback not fired (or not as listed): {w:?}");
    }
    for c in left {
        let _ = writeln!(out, "    callback fired but not listed: {}", describe(c));
    }
    if !got.is_empty() {
        let _ = writeln!(out, "    every callback of the run:");
        for c in got {
            let _ = writeln!(out, "      {}", describe(c));
        }
    }
}

/// Compares the order in which TaskInstances started with the expected groups.
fn check_started(actual: &[String], want: &[OrderItem]) -> Option<String> {
    let mut at = 0;
    for item in want {
        let mut group: Vec<String> = match item {
            OrderItem::One(l) => vec![l.clone()],
            OrderItem::AnyOrder(ls) => ls.clone(),
        };
        group = group
            .iter()
            .map(|l| label(&ti_key(l).0, ti_key(l).1))
            .collect();
        let Some(slice) = actual.get(at..at + group.len()) else {
            return Some(format!("{} started, the case lists more", actual.len()));
        };
        let mut got = slice.to_vec();
        got.sort();
        group.sort();
        if got != group {
            return Some(format!(
                "at position {at} want {group:?} (any order), got {got:?}"
            ));
        }
        at += group.len();
    }
    (at < actual.len()).then(|| format!("{} more started than the case lists", actual.len() - at))
}

/// `task=state` with the label and state in canonical form.
fn transition(item: &str) -> String {
    let (l, st) = item
        .split_once('=')
        .unwrap_or_else(|| panic!("sequence item `{item}` is not task=state"));
    let (task, index) = ti_key(l);
    format!("{}={}", label(&task, index), ti_state(st))
}

/// `nth:task=state` (an `expect_dag` sequence item) in canonical form.
fn run_transition(item: &str) -> String {
    let (nth, rest) = item
        .split_once(':')
        .unwrap_or_else(|| panic!("sequence item `{item}` is not nth:task=state"));
    let nth: usize = nth
        .parse()
        .unwrap_or_else(|_| panic!("sequence item `{item}`: `{nth}` is not a run index"));
    format!("{nth}:{}", transition(rest))
}

/// Checks that the transitions of each group happen after those of the group
/// before (first occurrences; other transitions may come between). `canon` puts
/// an expected item in the form of `actual`'s.
fn check_sequence(
    actual: &[String],
    want: &[OrderItem],
    canon: fn(&str) -> String,
) -> Option<String> {
    let mut from = 0;
    for item in want {
        let group: Vec<String> = match item {
            OrderItem::One(t) => vec![canon(t)],
            OrderItem::AnyOrder(ts) => ts.iter().map(|t| canon(t)).collect(),
        };
        let mut end = from;
        for t in &group {
            match actual[from..].iter().position(|a| a == t) {
                Some(p) => end = end.max(from + p + 1),
                None => {
                    return Some(format!(
                        "`{t}` does not happen after position {from} (the items before it)"
                    ));
                }
            }
        }
        from = end;
    }
    None
}

/// Creates (or resizes) a pool through the REST API, as an operator would.
async fn make_pool(env: &Env, pool: &PoolSetup) {
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
