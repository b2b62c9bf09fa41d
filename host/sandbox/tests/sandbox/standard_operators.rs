//! Running the standard operators: outcomes, limits, logs, threads.

use super::*;

#[tokio::test]
async fn noop_succeeds_and_logs_its_start_and_end() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "noop", json!({}), Limits::default()),
    )
    .await;
    assert_eq!(report.result, TryResult::Success(None));
    assert!(report.xcom.is_empty());
    let first = log.lines().next().unwrap();
    assert!(first.contains("INFO Running noop@0.1.0 (sha256:"), "{log}");
    assert!(
        first.contains("for example.noop, try 1: memory limit 256 MiB, execution_timeout none"),
        "{log}"
    );
    assert!(last_line(&log).contains("INFO Task succeeded in"), "{log}");
}

#[tokio::test]
async fn null_params_reach_the_operator_as_an_empty_object() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "skip", json!(null), Limits::default()),
    )
    .await;
    assert_eq!(
        report.result,
        TryResult::Skip("skipped on purpose".into()),
        "{log}"
    );
}

#[tokio::test]
async fn echo_logs_and_returns_its_message() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "echo",
        json!({"message": "hello, world"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Success(Some("\"hello, world\"".into()))
    );
    assert!(log.contains("] INFO hello, world\n"), "{log}");
}

#[tokio::test]
async fn invalid_params_are_fatal() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "echo", json!({}), Limits::default()),
    )
    .await;
    let TryResult::Fatal(reason) = &report.result else {
        panic!("expected fatal, got {report:?}")
    };
    assert!(reason.contains("message"), "{reason}");
    assert!(
        last_line(&log).contains("ERROR Task failed without retry after"),
        "{log}"
    );
    assert!(last_line(&log).ends_with(reason.as_str()), "{log}");
}

#[tokio::test]
async fn fail_is_failed_or_fatal_and_the_reason_is_logged() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "fail",
        json!({"message": "boom"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Failed("boom".into()));
    assert!(last_line(&log).contains("ERROR Task failed after"), "{log}");
    assert!(last_line(&log).ends_with(": boom"), "{log}");

    let req = request(
        sandbox,
        "fail",
        json!({"message": "bad", "fatal": true}),
        Limits::default(),
    );
    assert_eq!(
        run(sandbox, req).await.0.result,
        TryResult::Fatal("bad".into())
    );

    // The try number reaches the guest: `until_try` succeeds from try 3 on.
    let mut req = request(sandbox, "fail", json!({"until_try": 3}), Limits::default());
    req.info.try_number = 3;
    assert_eq!(run(sandbox, req).await.0.result, TryResult::Success(None));
}

#[tokio::test]
async fn skip_and_branch_report_their_outcomes() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "skip",
        json!({"reason": "holiday"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Skip("holiday".into()));
    assert!(last_line(&log).contains("Task skipped in"), "{log}");

    let req = request(
        sandbox,
        "branch",
        json!({"follow": ["a", "c"]}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Branch(vec!["a".into(), "c".into()])
    );
    assert!(last_line(&log).contains("following a, c"), "{log}");
}

#[tokio::test]
async fn sleep_within_its_timeout_succeeds() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 0.05}), timeout(5_000));
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Success(None), "{log}");
    assert!(report.duration >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_is_stopped_at_its_timeout() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 30}), timeout(200));
    let started = Instant::now();
    let (report, log) = run(sandbox, req).await;
    let elapsed = started.elapsed();
    assert_eq!(
        report.result,
        TryResult::Failed("execution_timeout of 0.2s exceeded".into())
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(
        last_line(&log).ends_with("execution_timeout of 0.2s exceeded"),
        "{log}"
    );
}

#[tokio::test]
async fn memory_over_the_cap_fails_the_try_with_the_limit() {
    let sandbox = shared();
    // A Rust operator's initial memory alone is over 64 KiB.
    let limits = Limits {
        memory_bytes: Some(64 << 10),
        ..Limits::default()
    };
    let (report, log) = run(sandbox, request(sandbox, "noop", json!({}), limits)).await;
    assert_eq!(
        report.result,
        TryResult::Failed("memory limit of 65536 bytes exceeded".into()),
        "{log}"
    );
}

#[tokio::test]
async fn an_unknown_digest_fails_with_a_clear_reason() {
    let sandbox = shared();
    let digest = format!("sha256:{}", "0".repeat(64));
    let req = TryRequest::new(
        "default",
        &digest,
        task("x"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    let (report, log) = run(sandbox, req).await;
    let expected = format!("operator {digest} is not registered on this host");
    assert_eq!(report.result, TryResult::Failed(expected.clone()));
    assert!(last_line(&log).ends_with(&expected), "{log}");
}

#[tokio::test]
async fn a_full_log_still_ends_with_the_outcome() {
    let sandbox = shared();
    let limits = Limits {
        log_bytes: 300,
        ..Limits::default()
    };
    let req = request(
        sandbox,
        "echo",
        json!({"message": "x".repeat(2_000)}),
        limits,
    );
    let (report, log) = run(sandbox, req).await;
    assert!(matches!(report.result, TryResult::Success(Some(_))));
    assert!(log.contains("\n... log truncated at 300 bytes\n"), "{log}");
    assert!(last_line(&log).contains("Task succeeded in"), "{log}");
}

#[tokio::test]
async fn the_log_can_be_tailed_while_the_try_runs() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 0.3}), timeout(5_000));
    let log: Arc<LogBuffer> = req.log.clone();
    let mut lengths = log.subscribe();
    let running = spawn_run(sandbox, req);
    // The operator's "sleeping for" line arrives before the try ends.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !log.snapshot().contains("sleeping for") {
            lengths.changed().await.expect("log alive");
        }
    })
    .await
    .expect("the sleep line while sleeping");
    assert!(!running.is_finished());
    assert!(!log.snapshot().contains("Task succeeded"));
    assert_eq!(running.await.unwrap().result, TryResult::Success(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tries_share_threads() {
    let sandbox = shared();
    // 40 tries each waiting 300 ms on two threads: concurrent, not serial (12 s).
    let started = Instant::now();
    let tries: Vec<_> = (0..40)
        .map(|_| {
            let req = request(sandbox, "sleep", json!({"seconds": 0.3}), timeout(10_000));
            spawn_run(sandbox, req)
        })
        .collect();
    for t in tries {
        assert_eq!(t.await.unwrap().result, TryResult::Success(None));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
