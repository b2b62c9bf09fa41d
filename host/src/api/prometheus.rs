//! `/metrics` in Prometheus text format.
//!
//! Two sources: gauges read at scrape time (DagRuns and TaskInstances by state,
//! from the counts the metastore keeps with every commit: `aileron_dag_runs{state}`,
//! `aileron_task_instances{state}`; workers by state, `aileron_workers{state}`,
//! and attempts waiting for a worker, `aileron_queue_depth{queue}`, read from the
//! remote executor; each tenant's usage labelled `tenant`, asked of the
//! scheduler), and whatever the rest of Aileron records
//! through the `metrics` facade (commit and scheduling latencies, executor queue
//! and slots, sandbox run time), rendered from the process-wide recorder that
//! [`install_recorder`] sets up.
//!
//! The state gauges are rendered here rather than set on the recorder: the
//! recorder is global, and a process can hold several metastores and remote
//! executors (tests build many routers), each of which must report only its own
//! counts.

use super::ApiError;
use super::workers::{self, WorkerState};
use crate::executors::remote::Remote;
use crate::metastore::Metastore;
use crate::scheduler::{SchedulerHandle, TenantNow};
use crate::sync::LockExt;
use aileron_model::{DagRunState, TaskInstanceState};
use aileron_sandbox::Registry;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What `/metrics` reads.
#[derive(Clone)]
pub struct MetricsState {
    pub metastore: Metastore,
    /// Asked for each tenant's usage.
    pub scheduler: SchedulerHandle,
    /// Each tenant's memory held by tries running in this process.
    pub registry: Registry,
    pub clock: Arc<dyn aileron_model::clock::Clock>,
    pub handle: PrometheusHandle,
    /// The remote executor, for the worker and queue gauges.
    pub remote: Option<Arc<Remote>>,
}

/// Histogram buckets (seconds) for every `*_seconds` metric: from a fast redb
/// commit or wasm instantiation (well under a millisecond) to a long task try.
const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    30.0, 300.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes:
/// samples pile up in memory until then. The exporter's own default.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's `metrics` recorder, once; later
/// calls return the same handle. Call it before anything records (metric handles
/// taken before a recorder exists stay no-ops), which is why `standalone` calls it
/// first thing; [`super::router`] calls it too, so tests need not.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(
                    "another metrics recorder is installed ({e}); /metrics shows only the \
                     DagRun and TaskInstance gauges"
                );
            }
            describe();
            let upkeep = handle.clone();
            // A plain thread: it must outlive whichever async runtime called first.
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                // Scrapes still fold samples in; only an unscraped process grows.
                tracing::warn!("cannot start the metrics upkeep thread: {e}");
            }
            handle
        })
        .clone()
}

/// HELP lines for the metrics the scheduler, executor, metastore and sandbox record.
fn describe() {
    metrics::describe_histogram!(
        "aileron_metastore_commit_seconds",
        Unit::Seconds,
        "Time to commit one batch of changes to the metastore."
    );
    metrics::describe_histogram!(
        "aileron_scheduling_latency_seconds",
        Unit::Seconds,
        "Time from a TaskInstance becoming ready to run to its dispatch."
    );
    metrics::describe_gauge!(
        "aileron_executor_queue_depth",
        "TaskInstances queued in the executor, waiting for a slot."
    );
    metrics::describe_gauge!(
        "aileron_executor_slots_busy",
        "Executor slots running a try right now."
    );
    metrics::describe_histogram!(
        "aileron_sandbox_run_seconds",
        Unit::Seconds,
        "Time to instantiate and run one try in the sandbox."
    );
    metrics::describe_counter!(
        "aileron_worker_fenced_total",
        "Calls of workers refused because the try was no longer theirs (superseded, \
         timed out or running elsewhere)."
    );
}

/// Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(State(s): State<MetricsState>) -> Result<Response, ApiError> {
    let metastore = s.metastore.clone();
    // redb reads block: off the async workers.
    let gauges = tokio::task::spawn_blocking(move || state_gauges(&metastore))
        .await
        .map_err(|e| {
            tracing::error!("the /metrics scan stopped: {e}");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the metrics could not be computed; see the server log",
            )
        })??;
    let mut body = s.handle.render();
    body.push_str(&gauges);
    body.push_str(&remote_gauges(s.remote.as_deref()));
    // Without a scheduler answering (stopping), the tenant series are left out
    // rather than the whole scrape failing.
    if let Ok(tenants) = s.scheduler.tenant_usage(None).await {
        let memory: Vec<(String, u64)> = match &s.remote {
            Some(remote) => tenants
                .keys()
                .map(|t| (t.clone(), remote.tenant_memory(t)))
                .collect(),
            None => s
                .registry
                .tenant_memory()
                .into_iter()
                .map(|(t, m)| (t, m.in_use_bytes))
                .collect(),
        };
        body.push_str(&tenant_series(&tenants, &memory, s.clock.now()));
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// `aileron_dag_runs` and `aileron_task_instances` by state, every state listed
/// (zero included) so a series does not vanish when its count drops to zero.
fn state_gauges(m: &Metastore) -> Result<String, ApiError> {
    // Kept by the metastore's commits: a few reads, however long the history.
    let runs = m.run_counts()?;
    let tis = m.ti_counts()?;
    let mut out = String::new();
    gauge(
        &mut out,
        "aileron_dag_runs",
        "DagRuns by state.",
        "state",
        DagRunState::ALL.map(|st| (st.as_str(), runs.get(&st).copied().unwrap_or(0))),
    );
    gauge(
        &mut out,
        "aileron_task_instances",
        "TaskInstances by state (`none`: not yet scheduled).",
        "state",
        TaskInstanceState::ALL.map(|st| (st.as_str(), tis.get(&st).copied().unwrap_or(0))),
    );
    Ok(out)
}

/// `aileron_workers` by state (every state, zeros included; all zero without a
/// remote executor) and, with one, `aileron_queue_depth` by queue: attempts handed
/// to the executor that no worker has started. Every queue a worker serves is
/// listed, so its series stays at zero rather than vanishing when it drains.
/// Liveness is judged at the remote's clock's now, the clock its heartbeats were
/// stamped with.
fn remote_gauges(remote: Option<&Remote>) -> String {
    let mut by_state: HashMap<WorkerState, u64> = HashMap::new();
    let mut depth: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(remote) = remote {
        for w in workers::list(remote, remote.clock.now()) {
            *by_state.entry(w.state).or_default() += 1;
            for q in w.info.queues {
                depth.entry(q).or_default();
            }
        }
        for q in remote.dispatch.locked().queued.values() {
            // By task queue, over every tenant's stream of it.
            let queue = aileron_protocol::wire::split_tenant_queue(&q.queue)
                .map_or(q.queue.as_str(), |(_, queue)| queue);
            *depth.entry(queue.to_owned()).or_default() += 1;
        }
    }
    let mut out = String::new();
    gauge(
        &mut out,
        "aileron_workers",
        "Registered workers by state (`offline`: stopped or silent for the worker timeout).",
        "state",
        WorkerState::ALL.map(|st| (st.as_str(), by_state.get(&st).copied().unwrap_or(0))),
    );
    if remote.is_some() {
        gauge(
            &mut out,
            "aileron_queue_depth",
            "Attempts waiting in a queue for a worker to start them.",
            "queue",
            depth.iter().map(|(q, n)| (q.as_str(), *n)),
        );
    }
    out
}

/// A series of [`tenant_series`]: its name, its help, and its value for a tenant.
type TenantFigure<'a> = (&'a str, &'a str, &'a dyn Fn(&TenantNow) -> f64);

/// Each tenant's usage, labelled `tenant`: in-flight counts, CPU and host-call
/// time, tries, refused allocations and (tries running in this process) memory
/// in use.
fn tenant_series(
    tenants: &BTreeMap<String, TenantNow>,
    memory: &[(String, u64)],
    now: jiff::Timestamp,
) -> String {
    let mut out = String::new();
    let each = |f: &dyn Fn(&TenantNow) -> f64| {
        tenants
            .iter()
            .map(|(t, n)| (t.as_str(), f(n)))
            .collect::<Vec<_>>()
    };
    let gauges: [TenantFigure; 5] = [
        (
            "aileron_tenant_running",
            "Tries of the tenant running.",
            &|n| n.running as f64,
        ),
        (
            "aileron_tenant_queued",
            "Tries of the tenant queued for an executor or worker.",
            &|n| n.queued as f64,
        ),
        (
            "aileron_tenant_waiting",
            "TaskInstances of the tenant ready to run, not admitted yet.",
            &|n| n.waiting as f64,
        ),
        (
            "aileron_tenant_cpu_seconds_last_hour",
            "Guest CPU seconds of the tenant's tries that ended in the last hour.",
            &|n| n.usage.cpu_last_hour(now),
        ),
        (
            "aileron_tenant_held_back",
            "1 while the tenant's CPU budget is spent and its new tries wait.",
            &|n| f64::from(u8::from(n.held_back.is_some())),
        ),
    ];
    for (name, help, f) in gauges {
        gauge(&mut out, name, help, "tenant", each(f));
    }
    let counters: [TenantFigure; 4] = [
        (
            "aileron_tenant_cpu_seconds_total",
            "Guest CPU seconds of the tenant's tries, metered in the sandbox.",
            &|n| n.usage.cpu_seconds,
        ),
        (
            "aileron_tenant_host_call_seconds_total",
            "Seconds the tenant's tries waited on host calls.",
            &|n| n.usage.host_call_seconds,
        ),
        (
            "aileron_tenant_tries_total",
            "Tries of the tenant that ended.",
            &|n| n.usage.tries as f64,
        ),
        (
            "aileron_tenant_refused_allocations_total",
            "Memory growths of the tenant's tries refused by its max_memory.",
            &|n| n.usage.refused_allocations as f64,
        ),
    ];
    for (name, help, f) in counters {
        series(&mut out, "counter", name, help, "tenant", each(f));
    }
    gauge(
        &mut out,
        "aileron_tenant_memory_bytes",
        "Linear memory the tenant's running tries hold (in this process, or on the workers).",
        "tenant",
        memory.iter().map(|(t, m)| (t.as_str(), *m)),
    );
    out
}

fn gauge<'a, V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, V)>,
) {
    series(out, "gauge", name, help, label, values);
}

fn series<'a, V: std::fmt::Display>(
    out: &mut String,
    kind: &str,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, V)>,
) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (value, n) in values {
        let value = escape_label(value);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// A label value as the text format wants it: backslash, double quote and line
/// feed escaped. Queue names are free text (no control characters), so they may
/// hold the first two.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("plain"), "plain");
    }

    #[test]
    fn without_workers_every_state_is_zero_and_no_queue_is_listed() {
        let text = remote_gauges(None);
        assert!(
            text.contains("aileron_workers{state=\"running\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("aileron_workers{state=\"offline\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("aileron_queue_depth"), "{text}");
    }
}
