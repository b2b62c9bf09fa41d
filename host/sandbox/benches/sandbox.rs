//! One instantiate + execute of the standard `noop` operator through
//! `Sandbox::run`: the sandbox's fixed cost per TaskInstance try.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aileron_sandbox::{
    LogBuffer, NoHostServices, Sandbox, SandboxConfig, TaskInfo, TryRequest, TryResult,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn request(digest: &str) -> TryRequest {
    TryRequest {
        tenant: "default".into(),
        digest: digest.into(),
        info: TaskInfo {
            dag_id: "bench".into(),
            run_id: "manual__2026-01-01T00:00:00+00:00".into(),
            task_id: "noop".into(),
            map_index: None,
            try_number: 1,
            logical_date: "2026-01-01T00:00:00Z".into(),
            data_interval_start: "2026-01-01T00:00:00Z".into(),
            data_interval_end: "2026-01-02T00:00:00Z".into(),
        },
        params: serde_json::json!({}),
        limits: Default::default(),
        host: Arc::new(NoHostServices),
        log: Arc::new(LogBuffer::new(64 << 10)),
        live: Default::default(),
    }
}

fn bench(c: &mut Criterion) {
    let sandbox = Sandbox::new(SandboxConfig {
        // A few slots are all a sequential benchmark needs, and keep the address
        // space reservation small.
        max_concurrent: 16,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let digest = sandbox
        .registry()
        .resolve("noop")
        .expect("noop is built in")
        .digest;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // Check once that the benchmark measures a successful try.
    let report = rt.block_on(sandbox.run(request(&digest)));
    assert_eq!(report.result, TryResult::Success(None), "{report:?}");

    c.bench_function("run noop (instantiate + execute)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Build the request outside the timed region: the caller's cost.
                    let req = request(&digest);
                    let start = Instant::now();
                    let report = sandbox.run(req).await;
                    total += start.elapsed();
                    std::hint::black_box(report);
                }
                total
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
