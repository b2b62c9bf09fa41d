//! What a try is metered for (guest CPU, peak memory) and each tenant's memory
//! pool, with real guests running at once.

use super::*;

/// Grows its memory by `pages` 64 KiB pages (on top of its one), then spins
/// until its timeout.
fn hog(sandbox: &Sandbox, name: &str, pages: u32) -> String {
    let body = format!("(drop (memory.grow (i32.const {pages}))) (loop $l (br $l)) (i32.const 0)");
    sandbox
        .registry()
        .add(&wat_operator(name, "1.0.0", "", &body))
        .unwrap()
        .digest
}

fn try_of(tenant: &str, digest: &str, limits: Limits) -> TryRequest {
    TryRequest::new(
        tenant,
        digest,
        task("hog"),
        json!({}),
        limits,
        Arc::new(NoHostServices),
    )
}

#[tokio::test]
async fn a_busy_guest_is_charged_its_cpu_and_peak_memory() {
    let sandbox = empty_sandbox();
    let digest = hog(&sandbox, "hog", 31);
    let (report, log) = run(&sandbox, try_of("default", &digest, timeout(400))).await;
    assert!(matches!(report.result, TryResult::Failed(_)), "{log}");
    // One page to start with and 31 grown: 2 MiB.
    assert_eq!(report.usage.peak_memory_bytes, 32 << 16);
    // It spun through its 0.4 s: metered by ticks it ran through, so never more
    // than that, and most of it unless the machine starved it of a core.
    let cpu = report.usage.cpu_seconds;
    assert!(cpu > 0.1 && cpu <= 0.42, "{cpu} CPU seconds");
    assert!(log.contains("INFO Used CPU "), "{log}");
}

#[tokio::test]
async fn a_sleeping_guest_uses_no_cpu() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 0.3}), timeout(5_000));
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Success(None), "{log}");
    // Blocked in a WASI poll: at most a tick or two of start-up and wake-up.
    assert!(report.usage.cpu_seconds <= 0.03, "{:?}", report.usage);
    assert!(report.usage.peak_memory_bytes > 0, "{:?}", report.usage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_tries_share_its_max_memory_and_leave_others_alone() {
    let sandbox = empty_sandbox();
    // 1 + 239 pages = 15 MiB each: four fit in 64 MiB, a fifth does not.
    let digest = hog(&sandbox, "hog", 239);
    let capped = Limits {
        tenant_memory_bytes: Some(64 << 20),
        ..timeout(600)
    };
    let runs: Vec<_> = (0..5)
        .map(|_| spawn_run(&sandbox, try_of("team_a", &digest, capped.clone())))
        .collect();
    // Another tenant, with a quota of its own, grows at the same time.
    let other = Limits {
        tenant_memory_bytes: Some(32 << 20),
        ..timeout(600)
    };
    let b = spawn_run(&sandbox, try_of("team_b", &digest, other));
    let mut refused = Vec::new();
    for handle in runs {
        let report = handle.await.unwrap();
        let counted = report.usage.refused_allocations;
        match report.result {
            TryResult::Failed(why) if why.contains("exceeded") && why.starts_with("tenant") => {
                assert_eq!(counted, 1);
                refused.push(why)
            }
            TryResult::Failed(why) => assert!(why.starts_with("execution_timeout"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with(
            "tenant memory quota (max_memory) of 64 MiB exceeded: the tenant's running tries hold 60."
        ) && refused[0].ends_with("this one asked for 14.9 MiB more"),
        "{}",
        refused[0]
    );
    let b = b.await.unwrap();
    assert!(
        matches!(&b.result, TryResult::Failed(why) if why.starts_with("execution_timeout")),
        "{:?}",
        b.result
    );
    // Every store gave its memory back; the refusal is counted.
    let usage: Vec<_> = sandbox.tenant_memory();
    let a = usage.iter().find(|(t, _)| t == "team_a").unwrap().1;
    assert_eq!((a.in_use_bytes, a.refused), (0, 1));
    let b = usage.iter().find(|(t, _)| t == "team_b").unwrap().1;
    assert_eq!((b.in_use_bytes, b.refused), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_bound_guests_take_turns_and_leave_a_thread_to_the_rest() {
    // One turn for CPU-bound guests on a two-thread runtime.
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent: 8,
        load_builtin: false,
        cpu_bound_threads: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let spin = hog(&sandbox, "spin", 0);
    let quick = sandbox
        .registry()
        .add(&simple_operator("quick", "1.0.0"))
        .unwrap()
        .digest;
    let spinners: Vec<_> = (0..3)
        .map(|_| spawn_run(&sandbox, try_of("a", &spin, timeout(800))))
        .collect();
    // Short tries run beside them all the while.
    let mut quick_cpu = 0.0;
    for _ in 0..20 {
        let r = sandbox.run(try_of("b", &quick, Limits::default())).await;
        assert_eq!(r.result, TryResult::Success(None));
        quick_cpu += r.usage.cpu_seconds;
    }
    let mut spun = 0.0;
    for s in spinners {
        let report = s.await.unwrap();
        assert!(matches!(report.result, TryResult::Failed(_)));
        spun += report.usage.cpu_seconds;
    }
    // Three guests spinning 0.8 s each on one turn get about 0.8 s of CPU
    // together (plus the 20 ms each ran before it counted as CPU-bound), not
    // the 1.6 s two threads would give them.
    assert!(spun > 0.3 && spun < 1.1, "{spun} CPU seconds");
    assert!(quick_cpu < 0.05, "{quick_cpu}");
}
