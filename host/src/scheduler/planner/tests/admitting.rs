//! Admission on plain values: priority and age, pools, run and task caps,
//! paused DAGs and pending retries, fair sharing across tenants, and the
//! candidates each run keeps as its TaskInstances change.

use super::*;
use crate::scheduler::planner::admission;

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
        let mut ti = run.ti_mut(&format!("t{i}"), -1).unwrap();
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
    r.update_tis(|ti| ti.state = S::Scheduled);
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
