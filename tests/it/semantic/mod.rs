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

mod case;
mod expect;
mod report;
mod runner;
mod steps;

use case::{Case, Docs};
use runner::Runner;
use std::fmt::Write as _;

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
        "tests/semantic/*.toml and the semantic_cases! list in tests/it/semantic/mod.rs differ"
    );
}

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
