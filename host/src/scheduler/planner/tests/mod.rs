//! The planner on plain values: DAGs parsed from TOML, runs built in memory, no
//! metastore, sandbox, socket or clock.

use super::admission::{Pools, Shares, Snapshot, TenantShare, Weights};
use super::completion::{RunOutcome, run_outcome};
use super::timers::{next_run_timer, run_deadline, timed_out_runs};
use super::trigger::{TriggerStep, trigger_step};
use super::*;
use crate::metastore::{DagRun, RunType, TaskInstance};
use aileron_model::TaskInstanceState as S;
use aileron_model::dag::{DagSpec, OperatorCatalog, ResolvedOperator, parse_dag_file};
use aileron_model::schedule::DataInterval;
use aileron_model::trigger_rule::TriggerRule;
use aileron_model::{DagKey, DagRunState, PoolKey, RunKey, TiKey};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};

mod admitting;
mod counting;

/// Any operator name resolves, with no params schema.
struct AnyOperator;

impl OperatorCatalog for AnyOperator {
    fn resolve(&self, reference: &str) -> Result<ResolvedOperator, String> {
        Ok(ResolvedOperator {
            name: reference.to_owned(),
            version: "1.0.0".to_owned(),
            digest: format!("sha256:{reference}"),
            params_schema: serde_json::json!({}),
        })
    }
    fn max_memory_bytes(&self) -> u64 {
        1 << 32
    }
}

fn spec(dag_id: &str, source: &str) -> Arc<DagSpec> {
    let file = format!("{dag_id}.toml");
    Arc::new(parse_dag_file("acme", &file, source, &AnyOperator).expect("the test DAG parses"))
}

fn at(hour: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + hour * 3600).unwrap()
}

/// A running run of `spec` (the `seq`-th, logical date `hour`) whose TaskInstances
/// are in the given states; a task not listed has one TaskInstance with no state.
/// `"task[2]"` names a map index.
fn run(spec: &Arc<DagSpec>, seq: u64, states: &[(&str, S)]) -> ActiveRun {
    let run = DagRun {
        tenant: spec.tenant.clone(),
        dag_id: spec.dag_id.clone(),
        run_id: format!("scheduled__{seq}"),
        run_type: RunType::Scheduled,
        state: DagRunState::Running,
        logical_date: at(seq as i64),
        data_interval: DataInterval {
            start: at(seq as i64),
            end: at(seq as i64 + 1),
        },
        conf: serde_json::Map::new(),
        dag_version: spec.version.clone(),
        queued_at: at(seq as i64),
        start_date: Some(at(seq as i64)),
        end_date: None,
        seq,
        backfill_id: None,
    };
    let mut tis = BTreeMap::new();
    let listed: HashMap<(String, i64), S> = states
        .iter()
        .map(|(name, state)| {
            let (task, map) = match name.split_once('[') {
                Some((t, m)) => (t, m.trim_end_matches(']').parse().unwrap()),
                None => (*name, -1),
            };
            ((task.to_owned(), map), *state)
        })
        .collect();
    for task in &spec.tasks {
        let mut maps: Vec<i64> = listed
            .keys()
            .filter(|(t, _)| *t == task.task_id)
            .map(|(_, m)| *m)
            .collect();
        if maps.is_empty() {
            maps.push(-1);
        }
        for m in maps {
            let state = listed
                .get(&(task.task_id.clone(), m))
                .copied()
                .unwrap_or(S::NoStatus);
            tis.insert((task.task_id.clone(), m), ti(&run, &task.task_id, m, state));
        }
    }
    ActiveRun::new(run, spec.clone(), tis)
}

fn ti(run: &DagRun, task_id: &str, map_index: i64, state: S) -> TaskInstance {
    TaskInstance {
        tenant: run.tenant.clone(),
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: task_id.to_owned(),
        map_index,
        state,
        try_number: 0,
        max_tries: 1,
        operator: "noop".to_owned(),
        plugin_digest: "sha256:noop".to_owned(),
        queued_at: None,
        start_date: None,
        end_date: None,
        duration: None,
        next_try_at: None,
        rendered_params: None,
        rendered_fields: None,
        tries: Vec::new(),
        hostname: "test".to_owned(),
        attempt: 0,
    }
}

// ---- trigger rules -------------------------------------------------------------

/// Upstream mixes of two tasks, and for each rule what the downstream task does:
/// `R` runs (scheduled), `W` waits, `S` is skipped, `U` is upstream_failed. Worked
/// out from Airflow's `TriggerRuleDep` for a task with two direct upstreams.
const MIXES: [(&str, [S; 2]); 6] = [
    ("success+success", [S::Success, S::Success]),
    ("success+failed", [S::Success, S::Failed]),
    ("success+skipped", [S::Success, S::Skipped]),
    ("success+running", [S::Success, S::Running]),
    ("failed+upstream_failed", [S::Failed, S::UpstreamFailed]),
    ("skipped+skipped", [S::Skipped, S::Skipped]),
];

const EXPECTED: [(TriggerRule, &str); 12] = [
    //                                     ss  sf  sk  sr  fu  kk
    (TriggerRule::AllSuccess, "R U S W U S"),
    (TriggerRule::AllFailed, "S S S S R S"),
    (TriggerRule::AllDone, "R R R W R R"),
    (TriggerRule::AllDoneMinOneSuccess, "R R S W U S"),
    (TriggerRule::AllSkipped, "S S S S S R"),
    (TriggerRule::OneSuccess, "R R R R U S"),
    (TriggerRule::OneFailed, "S R S W R S"),
    (TriggerRule::OneDone, "R R R R R S"),
    (TriggerRule::NoneFailed, "R U R W U R"),
    (TriggerRule::NoneFailedMinOneSuccess, "R U R W U S"),
    (TriggerRule::NoneSkipped, "R R S W R S"),
    (TriggerRule::Always, "R R R R R R"),
];

fn join_dag(rule: TriggerRule) -> Arc<DagSpec> {
    spec(
        "join",
        &format!(
            r#"
[tasks.a]
operator = "noop"
[tasks.b]
operator = "noop"
[tasks.join]
operator = "noop"
upstream = ["a", "b"]
trigger_rule = "{rule}"
"#
        ),
    )
}

fn letter(step: &TriggerStep) -> char {
    match step {
        TriggerStep::Set {
            state: S::Scheduled,
            ..
        } => 'R',
        TriggerStep::Set {
            state: S::Skipped, ..
        } => 'S',
        TriggerStep::Set {
            state: S::UpstreamFailed,
            ..
        } => 'U',
        TriggerStep::Wait => 'W',
        other => panic!("unexpected step {other:?}"),
    }
}

#[test]
fn every_trigger_rule_against_upstream_mixes() {
    let mut wrong = Vec::new();
    for (rule, expected) in EXPECTED {
        let dag = join_dag(rule);
        let task = dag.task("join").unwrap();
        for ((mix, [a, b]), want) in MIXES.iter().zip(expected.split(' ')) {
            let r = run(&dag, 0, &[("a", *a), ("b", *b)]);
            let got = letter(&trigger_step(&r, task));
            if got.to_string() != want {
                wrong.push(format!("{rule} with {mix}: got {got}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_mapped_upstream_counts_every_map_index() {
    let dag = spec(
        "mapped",
        r#"
[tasks.m]
operator = "noop"
expand = { x = [1, 2, 3] }
[tasks.after]
operator = "noop"
upstream = ["m"]
"#,
    );
    let after = dag.task("after").unwrap();
    let done = run(
        &dag,
        0,
        &[
            ("m[0]", S::Success),
            ("m[1]", S::Success),
            ("m[2]", S::Success),
        ],
    );
    assert!(matches!(
        trigger_step(&done, after),
        TriggerStep::Set {
            state: S::Scheduled,
            ..
        }
    ));
    let one_failed = run(
        &dag,
        0,
        &[
            ("m[0]", S::Success),
            ("m[1]", S::Failed),
            ("m[2]", S::Running),
        ],
    );
    assert_eq!(
        trigger_step(&one_failed, after),
        TriggerStep::Set {
            map_indexes: vec![-1],
            state: S::UpstreamFailed
        }
    );
}

#[test]
fn a_mapped_task_expands_once_and_a_decided_task_is_left_alone() {
    let dag = spec(
        "expand",
        r#"
[tasks.m]
operator = "noop"
expand = { x = [1, 2] }
[tasks.other]
operator = "noop"
"#,
    );
    let m = dag.task("m").unwrap();
    let fresh = run(&dag, 0, &[]);
    assert_eq!(trigger_step(&fresh, m), TriggerStep::Expand);
    assert!(trigger_step(&fresh, m).runs());
    let expanded = run(&dag, 0, &[("m[0]", S::Success), ("m[1]", S::NoStatus)]);
    // One map index left with no state after the others ran: it is scheduled as
    // it is, never expanded again.
    assert_eq!(
        trigger_step(&expanded, m),
        TriggerStep::Set {
            map_indexes: vec![1],
            state: S::Scheduled
        }
    );
    let other = dag.task("other").unwrap();
    let ran = run(&dag, 0, &[("other", S::Running)]);
    assert_eq!(trigger_step(&ran, other), TriggerStep::Nothing);
    assert!(!TriggerStep::Wait.runs());
}

// ---- run completion ------------------------------------------------------------

fn diamond() -> Arc<DagSpec> {
    spec(
        "diamond",
        r#"
[tasks.start]
operator = "noop"
[tasks.left]
operator = "noop"
upstream = ["start"]
[tasks.right]
operator = "noop"
upstream = ["start"]
[tasks.end]
operator = "noop"
upstream = ["left", "right"]
trigger_rule = "all_done"
[tasks.past]
operator = "noop"
"#,
    )
}

#[test]
fn a_run_ends_by_its_leaves() {
    let dag = diamond();
    let all = |end: S, past: S| {
        run(
            &dag,
            0,
            &[
                ("start", S::Success),
                ("left", S::Failed),
                ("right", S::Success),
                ("end", end),
                ("past", past),
            ],
        )
    };
    // `left` failed, but every leaf succeeded: success (SEMANTICS "DagRun state").
    assert_eq!(
        run_outcome(&all(S::Success, S::Success), false),
        RunOutcome::Finished(DagRunState::Success)
    );
    assert_eq!(
        run_outcome(&all(S::Success, S::Failed), false),
        RunOutcome::Finished(DagRunState::Failed)
    );
    assert_eq!(
        run_outcome(&all(S::UpstreamFailed, S::Success), false),
        RunOutcome::Finished(DagRunState::Failed)
    );
    assert_eq!(
        run_outcome(&all(S::Skipped, S::Skipped), false),
        RunOutcome::Finished(DagRunState::Success)
    );
    for busy in [
        S::Scheduled,
        S::Queued,
        S::Running,
        S::UpForRetry,
        S::UpForReschedule,
    ] {
        assert_eq!(
            run_outcome(&all(busy, S::Success), false),
            RunOutcome::Continue,
            "{busy}"
        );
    }
}

#[test]
fn a_run_where_nothing_can_run_is_deadlocked_unless_it_may_wait_elsewhere() {
    let dag = diamond();
    let stuck = run(
        &dag,
        0,
        &[
            ("start", S::Success),
            ("left", S::Success),
            ("right", S::Success),
            ("past", S::Success),
        ],
    );
    // `end` has no state and nothing runs.
    assert_eq!(run_outcome(&stuck, false), RunOutcome::Deadlocked);
    // Changes its trigger rules have not seen yet: not a deadlock (yet).
    assert_eq!(run_outcome(&stuck, true), RunOutcome::Continue);

    let waits = spec(
        "waits",
        r#"
[tasks.a]
operator = "noop"
depends_on_past = true
[tasks.b]
operator = "noop"
max_active_tis_per_dag = 1
"#,
    );
    for finished in ["a", "b"] {
        let r = run(&waits, 1, &[(finished, S::Success)]);
        assert_eq!(run_outcome(&r, false), RunOutcome::Continue, "{finished}");
    }
}

// ---- timers --------------------------------------------------------------------

#[test]
fn dagrun_timeout_and_the_next_timer() {
    let dag = spec(
        "timed",
        r#"
dagrun_timeout = "2h"
[tasks.a]
operator = "noop"
retries = 1
"#,
    );
    let mut r = run(&dag, 0, &[("a", S::UpForRetry)]);
    assert_eq!(run_deadline(&r), Some(at(2)));
    r.ti_mut("a", -1).unwrap().next_try_at = Some(
        at(0)
            .checked_add(jiff::SignedDuration::from_secs(300))
            .unwrap(),
    );
    let retry = at(0)
        .checked_add(jiff::SignedDuration::from_secs(300))
        .unwrap();
    assert_eq!(next_run_timer(&r, at(0)), Some(retry));
    // Once the retry moment has passed, the deadline is next.
    assert_eq!(next_run_timer(&r, retry), Some(at(2)));
    assert_eq!(next_run_timer(&r, at(2)), None);

    let rk = r.run.key();
    let runs: BTreeMap<RunKey, ActiveRun> = [(rk.clone(), r)].into();
    assert!(timed_out_runs(&runs, |_| false, at(1)).is_empty());
    assert_eq!(timed_out_runs(&runs, |_| false, at(2)), vec![rk.clone()]);
    // A paused DAG's run does not time out while paused.
    assert!(timed_out_runs(&runs, |_| true, at(3)).is_empty());

    let mut not_started = run(&dag, 1, &[]);
    not_started.run.start_date = None;
    assert_eq!(run_deadline(&not_started), None);
    not_started.run.state = DagRunState::Queued;
    assert_eq!(next_run_timer(&not_started, at(0)), None);
}

#[test]
fn tis_of_holds_one_task_with_every_map_index_and_no_other() {
    let dag = spec(
        "names",
        "[tasks.t1]\noperator = \"noop\"\n[tasks.t10]\noperator = \"noop\"\n[tasks.t]\noperator = \"noop\"\n",
    );
    let r = run(
        &dag,
        1,
        &[
            ("t1[0]", S::Scheduled),
            ("t1[2]", S::Success),
            ("t10", S::Scheduled),
        ],
    );
    let of = |task: &str| -> Vec<(String, i64)> {
        r.tis_of(task)
            .map(|ti| (ti.task_id.clone(), ti.map_index))
            .collect()
    };
    assert_eq!(of("t1"), [("t1".into(), 0), ("t1".into(), 2)]);
    assert_eq!(of("t10"), [("t10".into(), -1)]);
    assert_eq!(of("t"), [("t".into(), -1)]);
    assert!(of("nope").is_empty());
}
