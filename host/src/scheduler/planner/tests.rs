//! The planner on plain values: DAGs parsed from TOML, runs built in memory, no
//! metastore, sandbox, socket or clock.

use super::admission::{self, Pools, Shares, Snapshot, TenantShare, Weights};
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

// ---- admission -----------------------------------------------------------------

struct Admit {
    runs: BTreeMap<RunKey, ActiveRun>,
    in_flight: Vec<TiKey>,
    pools: Pools,
    shares: Shares,
    paused: Vec<DagKey>,
    parallelism: usize,
    now: Timestamp,
}

impl Admit {
    fn new(runs: impl IntoIterator<Item = ActiveRun>) -> Self {
        Self {
            runs: runs.into_iter().map(|r| (r.run.key(), r)).collect(),
            in_flight: Vec::new(),
            pools: Pools::default(),
            shares: Shares::default(),
            paused: Vec::new(),
            parallelism: 32,
            now: at(100),
        }
    }

    /// `run_seq:task[map]` of each admitted TaskInstance, in order.
    fn admitted(&mut self) -> Vec<String> {
        let mut weights = Weights::default();
        for run in self.runs.values_mut() {
            run.refresh_candidates(&mut weights);
        }
        let paused = self.paused.clone();
        let is_paused = move |dk: &DagKey| paused.contains(dk);
        let snapshot = Snapshot {
            held_back: &|_| false,
            parallelism: self.parallelism,
            in_flight: self.in_flight.iter().collect(),
            runs: &self.runs,
            is_paused: &is_paused,
            pools: &self.pools,
            shares: &self.shares,
            now: self.now,
        };
        admission::admit(&snapshot)
            .into_iter()
            .map(|k| {
                let seq = self.runs[&k.run_key()].run.seq;
                match k.map_index {
                    -1 => format!("{}:{seq}:{}", k.dag_id, k.task_id),
                    m => format!("{}:{seq}:{}[{m}]", k.dag_id, k.task_id),
                }
            })
            .collect()
    }
}

fn weighted() -> Arc<DagSpec> {
    spec(
        "w",
        r#"
[defaults]
weight_rule = "absolute"
[tasks.low]
operator = "noop"
priority_weight = 1
[tasks.high]
operator = "noop"
priority_weight = 10
[tasks.mid]
operator = "noop"
priority_weight = 5
"#,
    )
}

const READY: [(&str, S); 3] = [
    ("low", S::Scheduled),
    ("high", S::Scheduled),
    ("mid", S::Scheduled),
];

#[test]
fn admission_goes_by_priority_then_age_within_parallelism() {
    let dag = weighted();
    let mut a = Admit::new([run(&dag, 2, &READY), run(&dag, 1, &READY)]);
    a.parallelism = 4;
    assert_eq!(a.admitted(), ["w:1:high", "w:2:high", "w:1:mid", "w:2:mid"]);
    // What is in flight takes its share of parallelism.
    a.in_flight = vec![
        a.runs
            .values()
            .next()
            .unwrap()
            .tis()
            .values()
            .next()
            .unwrap()
            .into(),
    ];
    assert_eq!(a.admitted().len(), 3);
    a.parallelism = 1;
    assert!(a.admitted().is_empty());
}

#[test]
fn pools_cap_slots_and_lower_priority_work_that_fits_goes_ahead() {
    let dag = spec(
        "p",
        r#"
[defaults]
weight_rule = "absolute"
[tasks.big]
operator = "noop"
pool = "small"
pool_slots = 2
priority_weight = 10
[tasks.one]
operator = "noop"
pool = "small"
priority_weight = 5
[tasks.nowhere]
operator = "noop"
pool = "missing"
priority_weight = 20
[tasks.free]
operator = "noop"
priority_weight = 1
"#,
    );
    let all = [
        ("big", S::Scheduled),
        ("one", S::Scheduled),
        ("nowhere", S::Scheduled),
        ("free", S::Scheduled),
    ];
    let mut a = Admit::new([run(&dag, 0, &all)]);
    a.pools.0.insert(PoolKey::new("acme", "small"), 1);
    // `big` needs 2 of 1 slots and waits; `one` fits; a pool that does not exist
    // holds its task back; `default_pool` exists without a record.
    assert_eq!(a.admitted(), ["p:0:one", "p:0:free"]);
    a.pools.0.insert(PoolKey::new("acme", "small"), 3);
    assert_eq!(a.admitted(), ["p:0:big", "p:0:one", "p:0:free"]);
    // A pool of another tenant with the same name is another pool.
    a.pools.0.clear();
    a.pools.0.insert(PoolKey::new("other", "small"), 3);
    assert_eq!(a.admitted(), ["p:0:free"]);
}

#[test]
fn run_and_task_caps_count_what_is_in_flight() {
    let dag = spec(
        "caps",
        r#"
max_active_tasks = 2
[tasks.m]
operator = "noop"
expand = { x = [1, 2, 3] }
max_active_tis_per_dagrun = 2
[tasks.across]
operator = "noop"
max_active_tis_per_dag = 1
priority_weight = 5
"#,
    );
    let states = [
        ("m[0]", S::Scheduled),
        ("m[1]", S::Scheduled),
        ("m[2]", S::Scheduled),
        ("across", S::Scheduled),
    ];
    let mut a = Admit::new([run(&dag, 0, &states), run(&dag, 1, &states)]);
    let got = a.admitted();
    // Two per run (max_active_tasks); `across` once over both runs.
    let per_run = |seq: &str| got.iter().filter(|k| k.contains(seq)).count();
    assert_eq!((per_run(":0:"), per_run(":1:")), (2, 2), "{got:?}");
    assert_eq!(
        got,
        ["caps:0:across", "caps:0:m[0]", "caps:1:m[0]", "caps:1:m[1]"]
    );
    // `across` in flight in run 0: neither run may start it again.
    let across = a.runs.values().next().unwrap().tis()[&("across".to_owned(), -1)].clone();
    a.in_flight = vec![(&across).into()];
    let got = a.admitted();
    assert!(!got.iter().any(|k| k.ends_with("across")), "{got:?}");
    assert_eq!(
        got.iter().filter(|k| k.contains(":0:")).count(),
        1,
        "{got:?}"
    );
}

#[test]
fn paused_dags_and_pending_retries_are_not_admitted() {
    let dag = weighted();
    let mut r = run(
        &dag,
        0,
        &[
            ("low", S::UpForRetry),
            ("high", S::UpForReschedule),
            ("mid", S::Running),
        ],
    );
    r.ti_mut("low", -1).unwrap().next_try_at = Some(at(101));
    r.ti_mut("high", -1).unwrap().next_try_at = Some(at(100));
    let mut a = Admit::new([r]);
    assert_eq!(a.admitted(), ["w:0:high"]);
    a.now = at(101);
    assert_eq!(a.admitted(), ["w:0:high", "w:0:low"]);
    a.paused.push(DagKey::new("acme", "w"));
    assert!(a.admitted().is_empty());
    a.paused.clear();
    a.runs.values_mut().next().unwrap().run.state = DagRunState::Queued;
    assert!(a.admitted().is_empty());
}

// ---- fair sharing across tenants -----------------------------------------------

/// A DAG of tenant `tenant` with `n` independent tasks, each ready in run 1.
fn ready_run(tenant: &str, dag_id: &str, n: usize) -> ActiveRun {
    let source: String = (0..n)
        .map(|i| format!("[tasks.t{i}]\noperator = \"noop\"\n"))
        .collect();
    let file = format!("{dag_id}.toml");
    let dag = Arc::new(
        parse_dag_file(tenant, &file, &source, &AnyOperator).expect("the test DAG parses"),
    );
    let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let states: Vec<(&str, S)> = names.iter().map(|t| (t.as_str(), S::Scheduled)).collect();
    run(&dag, 1, &states)
}

/// How many of `admitted` are of each DAG (one DAG per tenant here).
fn per_dag(admitted: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for a in admitted {
        *counts
            .entry(a.split(':').next().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

fn share(weight: u32, max_running: Option<u32>) -> TenantShare {
    TenantShare {
        weight,
        max_running,
    }
}

#[test]
fn tenants_share_slots_by_weight_whatever_their_backlog() {
    let mut a = Admit::new([
        ready_run("team_a", "big", 400),
        ready_run("team_b", "small", 40),
    ]);
    a.parallelism = 8;
    // Equal weights: half each, though team_a's backlog is ten times longer.
    assert_eq!(
        per_dag(&a.admitted()),
        [("big".into(), 4), ("small".into(), 4)].into()
    );
    // 3:1 gives 6 and 2.
    let team_a = aileron_model::TenantId::new("team_a").unwrap();
    a.shares.0.insert(team_a.clone(), share(3, None));
    assert_eq!(
        per_dag(&a.admitted()),
        [("big".into(), 6), ("small".into(), 2)].into()
    );
    // A tenant whose tries fill the executor gets no free slot before the other
    // has its share: with 6 of team_a in flight, both free slots go to team_b.
    a.shares.0.clear();
    let rk = a.runs.keys().find(|k| k.dag_id == "big").unwrap().clone();
    for i in 0..6 {
        let run = a.runs.get_mut(&rk).unwrap();
        let ti = run.ti_mut(&format!("t{i}"), -1).unwrap();
        ti.state = S::Running;
        a.in_flight.push(TiKey::from(&*ti));
    }
    assert_eq!(per_dag(&a.admitted()), [("small".into(), 2)].into());
}

#[test]
fn a_tenant_at_its_max_running_gets_no_slot() {
    let mut a = Admit::new([
        ready_run("team_a", "big", 40),
        ready_run("team_b", "small", 40),
    ]);
    a.parallelism = 10;
    let team_b = aileron_model::TenantId::new("team_b").unwrap();
    a.shares.0.insert(team_b, share(1, Some(3)));
    assert_eq!(
        per_dag(&a.admitted()),
        [("big".into(), 7), ("small".into(), 3)].into()
    );
    // Alone, a tenant still has all of parallelism under its cap.
    let team_a = aileron_model::TenantId::new("team_a").unwrap();
    a.shares.0.insert(team_a, share(1, Some(0)));
    assert_eq!(per_dag(&a.admitted()), [("small".into(), 3)].into());
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

#[test]
fn candidates_follow_every_change_made_through_the_run() {
    let dag = spec(
        "c",
        "[tasks.a]\noperator = \"noop\"\n[tasks.b]\noperator = \"noop\"\n\
         [tasks.m]\noperator = \"noop\"\n",
    );
    let mut a = Admit::new([run(&dag, 1, &[])]);
    assert!(a.admitted().is_empty(), "nothing has a state yet");
    let rk = a.runs.keys().next().unwrap().clone();

    // One changed in place, one added, one removed, between two turns.
    let r = a.runs.get_mut(&rk).unwrap();
    r.ti_mut("b", -1).unwrap().state = S::Scheduled;
    let mut mapped = r.ti("m", -1).unwrap().clone();
    r.remove_ti("m", -1);
    for m in [1, 0] {
        mapped.map_index = m;
        mapped.state = S::Scheduled;
        r.insert_ti(mapped.clone());
    }
    assert_eq!(a.admitted(), ["c:1:b", "c:1:m[0]", "c:1:m[1]"]);

    // Admitted elsewhere (queued) or finished: no longer candidates.
    let r = a.runs.get_mut(&rk).unwrap();
    r.ti_mut("b", -1).unwrap().state = S::Queued;
    r.remove_ti("m", 0);
    assert_eq!(a.admitted(), ["c:1:m[1]"]);

    // Many at once (a clear): every TaskInstance is filed again.
    let r = a.runs.get_mut(&rk).unwrap();
    for ti in r.tis_mut() {
        ti.state = S::Scheduled;
    }
    assert_eq!(a.admitted(), ["c:1:a", "c:1:b", "c:1:m[1]"]);

    // Moved to a DAG version where `b` comes first and weighs more.
    let moved = spec(
        "c",
        "[tasks.b]\noperator = \"noop\"\npriority_weight = 5\n[tasks.a]\noperator = \"noop\"\n\
         [tasks.m]\noperator = \"noop\"\n",
    );
    a.runs.get_mut(&rk).unwrap().spec = moved;
    assert_eq!(a.admitted(), ["c:1:b", "c:1:a", "c:1:m[1]"]);
}
