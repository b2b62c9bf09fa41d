//! Multi-node execution with real processes: `redis-server`, `aileron scheduler`
//! and `aileron worker`s on loopback ports, and the faults of
//! `docs/design/multi-node.md` §3.3 injected for real (`kill -9`, SIGSTOP, restarts,
//! a deleted stream). Every test ends with the exactly-once check of the harness.
//! The tests run one at a time (the harness holds a lock), with a 3 s heartbeat
//! timeout, so each takes seconds, not minutes.

use aileron_tests::multinode::{
    DEADLINE, HEARTBEAT, Redis, Scheduler, TestDir, WORKER_TIMEOUT, Worker, assert_exactly_once,
    check_ti, is_worker_id, wait_for,
};
use aileron_tests::server::free_port;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Whether a try's log has a line logged by the guest with exactly `message`
/// (lines look like `[2026-…Z] INFO before`).
fn logged(log: &str, message: &str) -> bool {
    let suffix = format!(" INFO {message}");
    log.lines().any(|l| l.trim_end().ends_with(&suffix))
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not a string in {v}"))
}

fn timestamp(v: &Value, field: &str) -> jiff::Timestamp {
    str_of(v, field)
        .parse()
        .unwrap_or_else(|e| panic!("`{field}` of {v}: {e}"))
}

/// The TaskInstance `task_id` among a run's listed TaskInstances.
fn find<'a>(tis: &'a [Value], task_id: &str) -> &'a Value {
    tis.iter()
        .find(|t| t["task_id"] == task_id)
        .unwrap_or_else(|| panic!("no TaskInstance `{task_id}`"))
}

/// `n` independent `sleep` tasks `t0`…: for faults injected mid-run.
fn sleepers(n: usize, seconds: f64) -> String {
    let mut dag = String::from("max_active_tasks = 64\n");
    for i in 0..n {
        writeln!(
            dag,
            "[tasks.t{i}]\noperator = \"testkit\"\nparams = {{ mode = \"sleep\", seconds = {seconds} }}"
        )
        .unwrap();
    }
    dag
}

/// Asserts that every TaskInstance succeeded on its first try, on a worker.
#[track_caller]
fn assert_all_first_try(tis: &[Value], expected: usize) {
    assert_eq!(tis.len(), expected, "TaskInstances: {tis:?}");
    for ti in tis {
        assert_eq!(ti["state"], "success", "{ti}");
        assert_eq!(ti["try_number"], 1, "{ti}");
        assert!(is_worker_id(str_of(ti, "hostname")), "{ti}");
    }
}

/// 500 noop tasks in 10 layers (49 in parallel, then a join), 5 tasks of each
/// layer on queue `special`.
fn fan_dag() -> String {
    let mut dag = String::from("max_active_tasks = 64\n");
    for layer in 0..10 {
        for j in 0..49 {
            writeln!(dag, "[tasks.l{layer}_{j}]\noperator = \"noop\"").unwrap();
            if j < 5 {
                dag.push_str("queue = \"special\"\n");
            }
            if layer > 0 {
                writeln!(dag, "upstream = [\"join{}\"]", layer - 1).unwrap();
            }
        }
        let upstream: Vec<String> = (0..49).map(|j| format!("\"l{layer}_{j}\"")).collect();
        writeln!(
            dag,
            "[tasks.join{layer}]\noperator = \"noop\"\nupstream = [{}]",
            upstream.join(", ")
        )
        .unwrap();
    }
    dag
}

#[test]
fn five_hundred_tasks_three_workers() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("fan.toml", &fan_dag())]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let workers = [
        Worker::start(&t, "w1", "default", 4, &redis.url, &scheduler.root),
        Worker::start(&t, "w2", "default", 4, &redis.url, &scheduler.root),
        Worker::start(&t, "w3", "default,special", 4, &redis.url, &scheduler.root),
    ];
    scheduler.trigger("fan", "r1");
    let tis = scheduler.wait_run("fan", "r1", Duration::from_secs(300));

    assert_all_first_try(&tis, 500);
    let special: Vec<&Value> = tis.iter().filter(|t| t["queue"] == "special").collect();
    assert_eq!(special.len(), 50);
    for ti in &special {
        assert!(workers[2].ran(&ti["hostname"]), "not on w3: {ti}");
    }
    for w in &workers {
        let ran = tis.iter().filter(|t| w.ran(&t["hostname"])).count();
        assert!(ran > 0, "worker {} ran nothing", w.name);
    }
    assert_exactly_once(&mut scheduler, &redis);
}

/// Six `sleep 3` tasks, three with a retry: `retry_a` and `once_a` on queue
/// `first`, the others on `default`.
fn six_dag() -> String {
    let mut dag = String::new();
    for (task, queue, retries) in [
        ("retry_a", "first", 1),
        ("once_a", "first", 0),
        ("retry_b", "default", 1),
        ("retry_c", "default", 1),
        ("once_b", "default", 0),
        ("once_c", "default", 0),
    ] {
        writeln!(
            dag,
            "[tasks.{task}]\noperator = \"testkit\"\nparams = {{ mode = \"sleep\", seconds = 3 }}\n\
             queue = \"{queue}\"\nretries = {retries}\nretry_delay = \"0s\""
        )
        .unwrap();
    }
    dag
}

#[test]
fn worker_kill9_mid_try() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("six.toml", &six_dag())]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    // w1 alone reads queue `first`: it takes `retry_a` and `once_a`, and dies with
    // them; w2 runs the rest and the retry.
    let mut w1 = Worker::start(&t, "w1", "first", 2, &redis.url, &scheduler.root);
    scheduler.trigger("six", "r1");
    let victims: BTreeSet<String> = wait_for("w1 running two tries", DEADLINE, || {
        let on_w1: BTreeSet<String> = scheduler
            .tis("six", "r1")
            .iter()
            .filter(|t| t["state"] == "running" && w1.ran(&t["hostname"]))
            .map(|t| str_of(t, "task_id").to_owned())
            .collect();
        (on_w1.len() == 2).then_some(on_w1)
    });
    w1.kill9();
    let w2 = Worker::start(&t, "w2", "default,first", 4, &redis.url, &scheduler.root);
    let tis = scheduler.wait_run("six", "r1", DEADLINE);

    assert_eq!(
        victims,
        BTreeSet::from(["once_a".to_owned(), "retry_a".to_owned()])
    );
    assert_eq!(tis.len(), 6);
    for ti in &tis {
        let task = str_of(ti, "task_id");
        let detail = scheduler.ti("six", "r1", task);
        let tries = detail["tries"].as_array().unwrap();
        if victims.contains(task) {
            assert!(w1.ran(&tries[0]["hostname"]), "{detail}");
            let error = tries[0]["error"].as_str().unwrap_or_default();
            assert!(error.contains("no heartbeat"), "try 1 of {task}: {detail}");
            if task.starts_with("retry_") {
                assert_eq!(ti["state"], "success", "{detail}");
                assert_eq!(ti["try_number"], 2, "{detail}");
                assert!(w2.ran(&tries[1]["hostname"]), "{detail}");
            } else {
                assert_eq!(ti["state"], "failed", "{detail}");
                assert_eq!(ti["try_number"], 1, "{detail}");
            }
        } else {
            assert_eq!(ti["state"], "success", "{detail}");
            assert_eq!(ti["try_number"], 1, "{detail}");
            assert!(w2.ran(&ti["hostname"]), "{detail}");
        }
    }
    assert_exactly_once(&mut scheduler, &redis);
}

const SLOW: &str = r#"
[tasks.slow]
operator = "testkit"
params = { mode = "slow_output", seconds = 4 }
retries = 1
retry_delay = "0s"
"#;

#[test]
fn sigstop_worker_is_fenced() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("slow.toml", SLOW)]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let a = Worker::start(&t, "a", "default", 2, &redis.url, &scheduler.root);
    scheduler.trigger("slow", "r1");
    let a_id = wait_for("try 1 running on A with `before` logged", DEADLINE, || {
        let ti = scheduler.ti("slow", "r1", "slow");
        let running = ti["state"] == "running" && a.ran(&ti["hostname"]);
        (running && logged(&scheduler.log("slow", "r1", "slow", 1).0, "before"))
            .then(|| str_of(&ti, "hostname").to_owned())
    });
    let mut b = Worker::start(&t, "b", "default", 2, &redis.url, &scheduler.root);
    a.stop();
    let stopped_at = Instant::now();
    wait_for("try 2 running on B", DEADLINE, || {
        let ti = scheduler.ti("slow", "r1", "slow");
        (ti["state"] == "running" && ti["try_number"] == 2 && b.ran(&ti["hostname"])).then_some(())
    });
    // A's last heartbeat was at most one interval before the SIGSTOP.
    assert!(
        stopped_at.elapsed() >= WORKER_TIMEOUT - HEARTBEAT,
        "try 1 was given away {:?} after SIGSTOP, before the heartbeat timeout",
        stopped_at.elapsed()
    );
    a.cont();
    let tis = scheduler.wait_run("slow", "r1", DEADLINE);

    let ti = &tis[0];
    assert_eq!(ti["state"], "success", "{ti}");
    assert_eq!(ti["try_number"], 2, "{ti}");
    assert!(b.ran(&ti["hostname"]), "{ti}");
    let detail = scheduler.ti("slow", "r1", "slow");
    assert_eq!(detail["tries"][0]["hostname"], a_id.as_str(), "{detail}");
    assert_eq!(detail["tries"][0]["state"], "up_for_retry", "{detail}");
    assert_eq!(
        scheduler.return_value("slow", "r1", "slow"),
        Some(json!({ "try": 2 }))
    );
    let try2 = scheduler.log("slow", "r1", "slow", 2).0;
    assert!(logged(&try2, "before") && logged(&try2, "after"), "{try2}");
    // A wakes up, finds itself fenced and drops what it did after the timeout.
    wait_for("A to log that it was fenced", DEADLINE, || {
        a.output().contains("fenced").then_some(())
    });
    let try1 = scheduler.log("slow", "r1", "slow", 1).0;
    assert!(logged(&try1, "before"), "{try1}");
    assert!(
        !logged(&try1, "after"),
        "a fenced try's late log was stored: {try1}"
    );
    assert_eq!(
        scheduler.return_value("slow", "r1", "slow"),
        Some(json!({ "try": 2 }))
    );

    // A is still a good worker: with B gone, it runs the next run itself, as the
    // same process (the same worker id).
    b.kill9();
    scheduler.trigger("slow", "r2");
    let tis = scheduler.wait_run("slow", "r2", DEADLINE);
    assert_eq!(tis[0]["state"], "success", "{:?}", tis[0]);
    assert_eq!(tis[0]["try_number"], 1, "{:?}", tis[0]);
    assert_eq!(tis[0]["hostname"], a_id.as_str(), "{:?}", tis[0]);
    assert_eq!(
        scheduler.return_value("slow", "r2", "slow"),
        Some(json!({ "try": 1 }))
    );
    assert_exactly_once(&mut scheduler, &redis);
}

#[test]
fn scheduler_kill9_restart() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("many.toml", &sleepers(60, 0.5))]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| Worker::start(&t, n, "default", 2, &redis.url, &scheduler.root))
        .collect();
    scheduler.trigger("many", "r1");
    wait_for("half of the tasks done", DEADLINE, || {
        (scheduler.count_in("many", "r1", "success") >= 30).then_some(())
    });
    scheduler.kill9();

    // While the scheduler is down, the queue loses its stream (and group), and one
    // entry comes back twice.
    let mut con = redis.con();
    let stream = &aileron_protocol::wire::stream_key(&aileron_protocol::wire::tenant_queue(
        "default", "default",
    ));
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert!(
        !entries.is_empty(),
        "no queued entry at the crash: the test needs some to delete and duplicate"
    );
    let _: i64 = redis::cmd("DEL").arg(stream).query(&mut con).unwrap();
    let (_, fields) = entries.last().unwrap();
    let duplicated = fields["attempt"].clone();
    for _ in 0..2 {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("*");
        for (k, v) in fields {
            xadd.arg(k).arg(v);
        }
        let _: String = xadd.query(&mut con).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    scheduler.restart();

    // Running tries were adopted, the lost entries re-added, the duplicate refused:
    // no try was spent.
    let tis = scheduler.wait_run("many", "r1", DEADLINE);
    assert_all_first_try(&tis, 60);
    // The restarted scheduler keeps the entries of queued attempts (design §3.3),
    // so both copies reach workers: one runs, the other is refused (409) or
    // dropped by a worker running that attempt already.
    let refused = |line: &&str| {
        line.contains(&format!("fenced: attempt {duplicated} "))
            || (line.contains("duplicate") && line.contains(&format!("attempt={duplicated}")))
    };
    let refusals: Vec<String> = workers
        .iter()
        .flat_map(|w| {
            w.output()
                .lines()
                .filter(refused)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !refusals.is_empty(),
        "no worker refused the second copy of attempt {duplicated}: both copies left \
         the stream before any worker read them (the restarted scheduler should keep the \
         entries of attempts still queued)"
    );
    assert_exactly_once(&mut scheduler, &redis);
}

fn redis_restart_case(aof: bool) {
    let t = TestDir::new();
    let mut redis = if aof {
        Redis::start_aof(&t)
    } else {
        Redis::start(&t)
    };
    let home = t.scheduler_home(&[("many.toml", &sleepers(60, 0.5))]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let mut workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| Worker::start(&t, n, "default", 2, &redis.url, &scheduler.root))
        .collect();
    scheduler.trigger("many", "r1");
    wait_for("a third of the tasks done", DEADLINE, || {
        (scheduler.count_in("many", "r1", "success") >= 20).then_some(())
    });
    redis.kill9();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();

    let tis = scheduler.wait_run("many", "r1", DEADLINE);
    assert_all_first_try(&tis, 60);
    for w in &mut workers {
        assert!(w.is_running(), "worker {} exited", w.name);
    }
    assert!(scheduler.is_running(), "the scheduler exited");
    assert_exactly_once(&mut scheduler, &redis);
}

#[test]
fn redis_restart() {
    redis_restart_case(false);
}

#[test]
fn redis_restart_with_aof() {
    redis_restart_case(true);
}

#[test]
fn worker_waits_for_redis_and_scheduler() {
    // Three tasks on each worker's own queue: the run completes only if both
    // workers got through their backoff.
    let mut dag = String::new();
    for i in 0..6 {
        let queue = if i % 2 == 0 { "one" } else { "two" };
        writeln!(
            dag,
            "[tasks.t{i}]\noperator = \"testkit\"\nparams = {{ mode = \"sleep\", seconds = 0.5 }}\n\
             queue = \"{queue}\""
        )
        .unwrap();
    }
    let t = TestDir::new();
    let (redis_port, scheduler_port) = (free_port(), free_port());
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let server = format!("http://127.0.0.1:{scheduler_port}");
    let mut workers = [
        Worker::start(&t, "w1", "one", 2, &redis_url, &server),
        Worker::start(&t, "w2", "two", 2, &redis_url, &server),
    ];
    std::thread::sleep(Duration::from_secs(3));
    for w in &mut workers {
        assert!(
            w.is_running(),
            "worker {} exited without Redis and scheduler",
            w.name
        );
        assert!(
            w.output().contains("backing off"),
            "worker {} does not say it is backing off",
            w.name
        );
    }

    let redis = Redis::start_on(&t, redis_port, false);
    let home = t.scheduler_home(&[("pinned.toml", &dag)]);
    let mut scheduler = Scheduler::start_on(&t, &home, &redis.url, scheduler_port, &[]);
    scheduler.trigger("pinned", "r1");
    let tis = scheduler.wait_run("pinned", "r1", DEADLINE);
    assert_all_first_try(&tis, 6);
    for (w, queue) in workers.iter_mut().zip(["one", "two"]) {
        assert!(w.is_running(), "worker {} exited", w.name);
        // One process life: every TaskInstance it ran carries the same worker id.
        let ids: BTreeSet<&str> = tis
            .iter()
            .filter(|t| t["queue"] == queue)
            .map(|t| str_of(t, "hostname"))
            .collect();
        assert_eq!(ids.len(), 1, "queue {queue} ran under ids {ids:?}");
        let id = ids.first().unwrap();
        assert!(
            w.ran(&json!(id)),
            "queue {queue} ran on {id}, not {}",
            w.name
        );
    }
    assert_exactly_once(&mut scheduler, &redis);
}

/// The `.cwasm` file named after `hex` anywhere under `dir`.
fn find_cwasm(dir: &std::path::Path, hex: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_cwasm(&path, hex) {
                return Some(found);
            }
        } else if path
            .file_name()
            .is_some_and(|n| *n == *format!("{hex}.cwasm"))
        {
            return Some(path);
        }
    }
    None
}

/// The inode: stored and compiled files are written under a temporary name and
/// renamed into place, so a rewrite changes it. (Not the modification time:
/// loading a compiled component marks it used.)
fn identity(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn remote_log_tails_and_components_download() {
    let dag = r#"
[tasks.slow]
operator = "testkit"
params = { mode = "slow_output", seconds = 3 }
"#;
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("tail.toml", dag)]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    // An empty home, without the shared compiled-component cache.
    let worker_home = t.worker_home("w1", false);
    let mut w1 = Worker::start_in(
        &t,
        &worker_home,
        "w1",
        "default",
        1,
        &redis.url,
        &scheduler.root,
    );
    scheduler.trigger("tail", "r1");
    let (live, running) = wait_for("`before` in the live log", DEADLINE, || {
        let (log, running) = scheduler.log("tail", "r1", "slow", 1);
        logged(&log, "before").then_some((log, running))
    });
    assert!(running, "the log was read as a running try's: {live}");
    assert!(!logged(&live, "after"), "{live}");
    let tis = scheduler.wait_run("tail", "r1", DEADLINE);
    let ti = find(&tis, "slow");
    assert_eq!(ti["state"], "success", "{ti}");
    assert!(w1.ran(&ti["hostname"]), "{ti}");
    let first_id = str_of(ti, "hostname").to_owned();
    let (log, running) = scheduler.log("tail", "r1", "slow", 1);
    assert!(!running);
    assert!(logged(&log, "before") && logged(&log, "after"), "{log}");

    let digest = str_of(ti, "plugin_digest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let stored = worker_home.join(format!("plugins/store/sha256-{hex}.wasm"));
    assert!(stored.is_file(), "{} was not downloaded", stored.display());
    let compiled = find_cwasm(&worker_home.join("cache"), hex)
        .unwrap_or_else(|| panic!("no {hex}.cwasm under the worker's cache/"));
    let before = (identity(&stored), identity(&compiled));
    let first_life = w1.output();

    // A restarted worker finds both files and neither downloads nor compiles.
    w1.restart();
    scheduler.trigger("tail", "r2");
    let tis = scheduler.wait_run("tail", "r2", DEADLINE);
    let ti = find(&tis, "slow");
    assert_eq!(ti["state"], "success", "{ti}");
    assert!(w1.ran(&ti["hostname"]), "{ti}");
    assert_ne!(
        ti["hostname"],
        first_id.as_str(),
        "r2 ran on the old process?"
    );
    assert_eq!(
        (identity(&stored), identity(&compiled)),
        before,
        "the component was stored or compiled again"
    );
    let second_life = &w1.output()[first_life.len()..];
    let mentions_download = |s: &str| {
        s.lines()
            .filter(|l| l.to_lowercase().contains("download"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let first = mentions_download(&first_life);
    assert!(!first.is_empty(), "the first start logged no download");
    let again = mentions_download(second_life);
    assert!(again.is_empty(), "downloaded again: {again:?}");
    assert_exactly_once(&mut scheduler, &redis);
}

#[test]
fn mark_failed_cancels_remote_try() {
    let long = r#"
[tasks.slow]
operator = "testkit"
params = { mode = "slow_output", seconds = 8 }
retries = 1
retry_delay = "0s"
"#;
    let quick = "[tasks.q]\noperator = \"noop\"\n";
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("long.toml", long), ("quick.toml", quick)]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    // One slot: the next task can only start once the marked try is aborted.
    let w1 = Worker::start(&t, "w1", "default", 1, &redis.url, &scheduler.root);
    scheduler.trigger("long", "r1");
    wait_for("the try running with `before` logged", DEADLINE, || {
        let ti = scheduler.ti("long", "r1", "slow");
        (ti["state"] == "running"
            && w1.ran(&ti["hostname"])
            && logged(&scheduler.log("long", "r1", "slow", 1).0, "before"))
        .then_some(())
    });
    scheduler.mark("long", "r1", "slow", "failed");
    scheduler.trigger("quick", "r1");
    let quick_tis = scheduler.wait_run("quick", "r1", DEADLINE);
    let q = find(&quick_tis, "q");
    assert_eq!(q["state"], "success", "{q}");
    assert!(w1.ran(&q["hostname"]), "{q}");
    let slow = scheduler.ti("long", "r1", "slow");
    let started = timestamp(&slow, "start_date");
    // The guest would sleep 8 s; the slot came free long before.
    let freed_after = timestamp(q, "start_date").duration_since(started);
    assert!(
        freed_after < jiff::SignedDuration::from_secs(6),
        "the next task started {freed_after:?} after the marked try: it was not aborted"
    );

    // Past the end the guest would have reached: nothing of it was stored.
    let natural_end = started + jiff::SignedDuration::from_secs(9);
    let wait = natural_end.duration_since(jiff::Timestamp::now());
    if wait.is_positive() {
        std::thread::sleep(wait.unsigned_abs());
    }
    let slow = scheduler.ti("long", "r1", "slow");
    assert_eq!(slow["state"], "failed", "{slow}");
    assert_eq!(slow["try_number"], 1, "{slow}");
    assert_eq!(scheduler.return_value("long", "r1", "slow"), None);
    // The try keeps what it logged before the mark, and nothing after.
    let log = scheduler.log("long", "r1", "slow", 1).0;
    assert!(logged(&log, "before") && !logged(&log, "after"), "{log}");

    // A try marked by hand has no try record; the rest is checked as usual.
    redis.assert_drained();
    scheduler.stop();
    let store = aileron::metastore::Metastore::open(&aileron::app::metastore_path(&home)).unwrap();
    for ti in store.all_task_instances().unwrap() {
        if ti.dag_id == "long" {
            assert_eq!(ti.state, aileron_model::TaskInstanceState::Failed, "{ti:?}");
            assert_eq!(ti.try_number, 1, "{ti:?}");
            assert!(
                ti.tries
                    .iter()
                    .all(|t| t.state != aileron_model::TaskInstanceState::Success),
                "{ti:?}"
            );
            let xcom = store
                .xcom_entries(
                    &ti.tenant,
                    &ti.dag_id,
                    &ti.run_id,
                    &ti.task_id,
                    ti.map_index,
                )
                .unwrap();
            assert!(xcom.is_empty(), "{xcom:?}");
        } else {
            let problems = check_ti(&store, &ti);
            assert!(problems.is_empty(), "{}: {problems:?}", ti.task_id);
        }
    }
}

/// The entry of `GET /workers` for the worker started as `name`.
fn listed<'a>(workers: &'a [Value], name: &str) -> Option<&'a Value> {
    workers.iter().find(|w| {
        let listed = w["worker_name"].as_str().unwrap_or_default();
        listed == name || listed.starts_with(&format!("{name}-"))
    })
}

#[test]
fn worker_list_shows_workers() {
    let dag = r#"
[tasks.s]
operator = "testkit"
params = { mode = "slow_output", seconds = 3 }
queue = "special"
"#;
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("special.toml", dag)]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let specs = [
        ("w1", "default", 2),
        ("w2", "default,special", 3),
        ("w3", "special", 1),
    ];
    let mut workers: Vec<Worker> = specs
        .iter()
        .map(|(n, q, s)| Worker::start(&t, n, q, *s, &redis.url, &scheduler.root))
        .collect();
    let listed_idle = wait_for("three idle workers listed", DEADLINE, || {
        let list = scheduler.workers();
        let idle = specs
            .iter()
            .all(|(n, _, _)| listed(&list, n).is_some_and(|w| w["state"] == "idle"));
        (list.len() == 3 && idle).then_some(list)
    });
    for (name, queues, slots) in specs {
        let w = listed(&listed_idle, name).unwrap();
        let expected: Vec<&str> = queues.split(',').collect();
        assert_eq!(w["queues"], json!(expected), "{w}");
        assert_eq!(w["slots"], slots, "{w}");
        assert_eq!(w["running"], json!([]), "{w}");
        assert!(!str_of(w, "hostname").is_empty(), "{w}");
        assert!(!str_of(w, "version").is_empty(), "{w}");
        timestamp(w, "first_online");
        timestamp(w, "last_heartbeat");
    }

    scheduler.trigger("special", "r1");
    let (ti, list) = wait_for("the try listed under its worker", DEADLINE, || {
        let ti = scheduler.ti("special", "r1", "s");
        if ti["state"] != "running" {
            return None;
        }
        let list = scheduler.workers();
        let owner = workers.iter().find(|w| w.ran(&ti["hostname"]))?;
        let entry = listed(&list, &owner.name)?;
        (entry["state"] == "running").then_some((ti, list))
    });
    let owner = workers.iter().find(|w| w.ran(&ti["hostname"])).unwrap();
    assert_ne!(owner.name, "w1", "a `special` task ran on w1: {ti}");
    for (name, _, _) in specs {
        let w = listed(&list, name).unwrap();
        if name == owner.name {
            assert_eq!(
                w["running"],
                json!([{
                    "dag_id": "special",
                    "dag_run_id": "r1",
                    "task_id": "s",
                    "map_index": -1,
                    "try_number": 1,
                }]),
                "{w}"
            );
        } else {
            assert_eq!(w["state"], "idle", "{w}");
            assert_eq!(w["running"], json!([]), "{w}");
        }
    }
    let owner_name = owner.name.clone();
    scheduler.wait_run("special", "r1", DEADLINE);
    wait_for("the worker idle again", DEADLINE, || {
        let list = scheduler.workers();
        let w = listed(&list, &owner_name)?;
        (w["state"] == "idle" && w["running"] == json!([])).then_some(())
    });

    // A worker that vanishes is shown offline after the heartbeat timeout.
    workers[0].kill9();
    wait_for("w1 offline", DEADLINE, || {
        let list = scheduler.workers();
        (listed(&list, "w1")?["state"] == "offline").then_some(())
    });
    let list = scheduler.workers();
    assert_eq!(list.len(), 3, "{list:?}");
    for name in ["w2", "w3"] {
        assert_eq!(listed(&list, name).unwrap()["state"], "idle", "{list:?}");
    }
    assert_exactly_once(&mut scheduler, &redis);
}

/// Twelve tries running on three healthy workers, then the scheduler is frozen
/// (SIGSTOP) for twice the worker timeout. Its late reaper tick must not count
/// the freeze against the workers: every try finishes on its first attempt.
#[test]
fn a_paused_scheduler_gives_up_no_healthy_try() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("twelve.toml", &sleepers(12, 10.0))]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let _workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| Worker::start(&t, n, "default", 4, &redis.url, &scheduler.root))
        .collect();
    scheduler.trigger("twelve", "r1");
    wait_for("all twelve tries running", DEADLINE, || {
        (scheduler.count_in("twelve", "r1", "running") == 12).then_some(())
    });
    scheduler.pause();
    std::thread::sleep(2 * WORKER_TIMEOUT);
    scheduler.resume();
    let tis = scheduler.wait_run("twelve", "r1", DEADLINE);
    assert_all_first_try(&tis, 12);
    assert!(
        scheduler
            .output()
            .contains("that time does not count against workers"),
        "the scheduler did not notice its own stall"
    );
    assert_exactly_once(&mut scheduler, &redis);
}

/// The scheduler and a worker die together; a fresh worker waits through a
/// 20 s outage. After the restart the dead worker's try is given up one worker
/// timeout after the scheduler listens again (not after a fixed grace), and the
/// waiting worker takes the retry at once (not at the end of a backoff grown to
/// many seconds).
#[test]
fn recovery_after_a_scheduler_outage_is_prompt() {
    const LONG: &str = r#"
[tasks.long]
operator = "testkit"
params = { mode = "slow_output", seconds = 4 }
retries = 1
retry_delay = "0s"
"#;
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("long.toml", LONG)]);
    let mut scheduler = Scheduler::start(&t, &home, &redis.url, &[]);
    let mut a = Worker::start(&t, "a", "default", 1, &redis.url, &scheduler.root);
    scheduler.trigger("long", "r1");
    wait_for("try 1 running on A", DEADLINE, || {
        let ti = scheduler.ti("long", "r1", "long");
        (ti["state"] == "running" && a.ran(&ti["hostname"])).then_some(())
    });
    scheduler.kill9();
    a.kill9();
    let b = Worker::start(&t, "b", "default", 1, &redis.url, &scheduler.root);
    // Long enough for B's backoff to grow to 8-16 s between attempts.
    std::thread::sleep(Duration::from_secs(20));
    scheduler.start_again();
    let back = Instant::now();

    let given_up = wait_for("try 1 given up", DEADLINE, || {
        let ti = scheduler.ti("long", "r1", "long");
        let error = ti["tries"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        error.contains("no heartbeat").then(|| back.elapsed())
    });
    assert!(
        given_up < WORKER_TIMEOUT + Duration::from_secs(3),
        "try 1 was given up {given_up:?} after the restart; the worker timeout is {WORKER_TIMEOUT:?}"
    );
    let retried = wait_for("try 2 running on B", DEADLINE, || {
        let ti = scheduler.ti("long", "r1", "long");
        (ti["try_number"] == 2 && ti["state"] == "running" && b.ran(&ti["hostname"]))
            .then(|| back.elapsed())
    });
    assert!(
        retried < given_up + Duration::from_secs(4),
        "B took try 2 {:?} after it was given up",
        retried - given_up
    );
    let tis = scheduler.wait_run("long", "r1", DEADLINE);
    assert_eq!(tis[0]["state"], "success", "{:?}", tis[0]);
    assert_eq!(
        scheduler.return_value("long", "r1", "long"),
        Some(json!({ "try": 2 }))
    );
    assert_exactly_once(&mut scheduler, &redis);
}
