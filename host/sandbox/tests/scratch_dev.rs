use aileron_sandbox::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn info() -> TaskInfo {
    TaskInfo {
        dag_id: "d".into(),
        run_id: "r".into(),
        task_id: "t1".into(),
        map_index: None,
        try_number: 1,
        logical_date: "2026-01-01T00:00:00Z".into(),
        data_interval_start: "a".into(),
        data_interval_end: "b".into(),
    }
}

struct Svc;
#[async_trait::async_trait]
impl HostServices for Svc {
    async fn xcom_pull(&self, t: &str, k: Option<&str>) -> Option<String> {
        Some(format!("\"{t}/{k:?}\""))
    }
    async fn variable(&self, k: &str) -> Option<String> {
        Some(format!("var-{k}"))
    }
    async fn connection(&self, c: &str) -> Result<String, String> {
        Err(format!("no {c}"))
    }
}

#[tokio::test]
async fn scratch() {
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent: 8,
        ..Default::default()
    })
    .unwrap();
    let bytes = std::fs::read("/tmp/scratch-guest/target/wasm32-wasip2/release/scratch_guest.wasm")
        .unwrap();
    let t = Instant::now();
    let meta = sb.registry().add(&bytes).unwrap();
    println!("add took {:?}: {meta:?}", t.elapsed());
    for (mode, extra, limits) in [
        ("noop", serde_json::json!({}), Limits::default()),
        (
            "echo",
            serde_json::json!({"message": "hi"}),
            Limits::default(),
        ),
        ("fail", serde_json::json!({}), Limits::default()),
        ("fatal", serde_json::json!({}), Limits::default()),
        ("skip", serde_json::json!({}), Limits::default()),
        ("branch", serde_json::json!({}), Limits::default()),
        (
            "sleep",
            serde_json::json!({"ms": 3000}),
            Limits {
                timeout: Some(Duration::from_millis(200)),
                ..Default::default()
            },
        ),
        (
            "spin",
            serde_json::json!({}),
            Limits {
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        ),
        (
            "membomb",
            serde_json::json!({}),
            Limits {
                memory_bytes: Some(32 << 20),
                ..Default::default()
            },
        ),
        ("panic", serde_json::json!({}), Limits::default()),
        (
            "spam",
            serde_json::json!({}),
            Limits {
                timeout: Some(Duration::from_millis(300)),
                log_bytes: 4096,
                ..Default::default()
            },
        ),
        ("xcom", serde_json::json!({}), Limits::default()),
        ("bigret", serde_json::json!({}), Limits::default()),
        ("badret", serde_json::json!({}), Limits::default()),
        ("exit", serde_json::json!({}), Limits::default()),
    ] {
        let mut params = extra.clone();
        params["mode"] = mode.into();
        let req = TryRequest::new(
            "default",
            meta.digest.clone(),
            info(),
            params,
            limits,
            Arc::new(Svc),
        );
        let log = req.log.clone();
        let t = Instant::now();
        let report = sb.run(req).await;
        println!(
            "=== {mode} ({:?}): {:?} xcom={:?}\n{}",
            t.elapsed(),
            report.result,
            report.xcom,
            {
                let s = log.snapshot();
                if s.len() > 3000 {
                    format!("{}...{}", &s[..1500], &s[s.len() - 1500..])
                } else {
                    s
                }
            }
        );
    }
}
