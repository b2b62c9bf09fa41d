//! The worker list (`GET /api/v1/workers`, `docs/design/multi-node.md` §5) through
//! the router, the test playing the workers over `/execution/v1`: registration
//! (and the bodies and tokens it refuses), the tries a worker holds by the
//! scheduler's leases, heartbeats, stops and silence, the worker and queue gauges of
//! `/metrics`, the empty list of a standalone server, and the Workers page in a
//! real headless Chromium.

use crate::openapi::strict;
use aileron::api::{ApiState, router};
use aileron::cli::client::seg;
use aileron::execution_api::{self as exec, ExecState};
use aileron::executors::remote::{Remote, Timing};
use aileron_model::TenantId;
use aileron_model::clock::Clock as _;
use aileron_model::params_schema::validate;
use aileron_protocol::ExecutionKey;
use aileron_protocol::wire::{Entry, TRY_TOKEN_HEADER, WORKER_HEADER};
use aileron_tests::Env;
use aileron_tests::browser::{Browser, shot};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const DAG: &str = r#"
[tasks.work]
operator = "noop"

[tasks.after]
operator = "noop"
upstream = ["work"]
"#;

const ALPHA: &str = "alpha-0000000a";
const BETA: &str = "beta-0000000b";

/// What `serve()` answers: the API and UI, plus the execution API when there is a
/// remote executor.
fn server(env: &Env, remote: Option<Arc<Remote>>) -> Router {
    let api = router(ApiState {
        metastore: env.app.metastore.clone(),
        scheduler: env.app.scheduler.clone(),
        registry: env.app.sandbox.registry().clone(),
        remote: remote.clone(),
        clock: env.app.clock.clone(),
        auth: env.app.auth.clone(),
        rescan: env.app.rescan.clone(),
        plugins_dir: env.app.plugins_dir.clone(),
        settings: std::sync::Arc::new(env.app.settings.clone()),
    });
    match remote {
        Some(remote) => api.nest(
            "/execution/v1",
            exec::router(ExecState {
                remote,
                scheduler: env.app.scheduler.clone(),
                metastore: env.app.metastore.clone(),
                registry: env.app.sandbox.registry().clone(),
                auth: env.app.auth.clone(),
            }),
        ),
        None => api,
    }
}

/// One request; the status and the raw body.
async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    // The API as the platform admin; the execution API with the worker's own
    // credentials only.
    if !uri.starts_with("/execution/") {
        req = req.header("authorization", aileron_tests::server::ADMIN_AUTH);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// One request whose answer is JSON (or empty, read as `null`).
async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, bytes) = send(app, method, uri, headers, body.map(|b| b.to_string())).await;
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri} answered non-JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, v)
}

const AUTH: (&str, &str) = ("authorization", "Bearer secret");

fn registration(name: &str, queues: &[&str], slots: u32) -> Value {
    json!({
        "name": name,
        "hostname": format!("{name}.example"),
        "queues": queues,
        "slots": slots,
        "version": "0.1.0",
    })
}

async fn register(app: &Router, id: &str, body: Value) -> (StatusCode, Value) {
    let uri = format!("/execution/v1/workers/{id}/register");
    call(app, Method::POST, &uri, &[AUTH], Some(body)).await
}

async fn heartbeat(app: &Router, id: &str) -> StatusCode {
    let uri = format!("/execution/v1/workers/{id}/heartbeat");
    let body = json!({"running": [], "free_slots": 1});
    call(app, Method::PUT, &uri, &[AUTH], Some(body)).await.0
}

async fn stop(app: &Router, id: &str) -> StatusCode {
    let uri = format!("/execution/v1/workers/{id}/stop");
    call(app, Method::POST, &uri, &[AUTH], None).await.0
}

async fn workers(app: &Router) -> Value {
    let (status, v) = call(app, Method::GET, "/api/v1/workers", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// The listed worker `id`'s field `field`.
async fn field(app: &Router, id: &str, field: &str) -> Value {
    let list = workers(app).await;
    let w = list["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_name"] == id)
        .unwrap_or_else(|| panic!("no worker {id} in {list}"));
    w[field].clone()
}

async fn metrics(app: &Router) -> String {
    let (status, body) = send(app, Method::GET, "/metrics", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body).unwrap()
}

#[track_caller]
fn has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
}

/// A try call of worker `id` on a queued `entry`.
async fn try_call(app: &Router, id: &str, entry: &Entry, path: &str, body: Value) -> StatusCode {
    let uri = format!("/execution/v1/tries/{}/{path}", entry.attempt);
    let headers = [
        AUTH,
        (TRY_TOKEN_HEADER, entry.token.as_str()),
        (WORKER_HEADER, id),
    ];
    let (status, v) = call(app, Method::POST, &uri, &headers, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path} by {id}: {v}");
    status
}

async fn start_try(app: &Router, id: &str, entry: &Entry) {
    try_call(app, id, entry, "start", json!({"hostname": id})).await;
}

async fn finish_try(app: &Router, id: &str, entry: &Entry) {
    let body = json!({
        "outcome": {"Success": "null"},
        "xcom": [],
        "duration_ms": 5,
        "log": {"offset": 0, "text": ""},
    });
    try_call(app, id, entry, "finish", body).await;
}

/// Validates a worker list against the schema `/api/v1/openapi.json` documents,
/// strictly (no undocumented field), as tests/it/openapi.rs does for the rest.
async fn check_schema(app: &Router, list: &Value) {
    let (status, doc) = call(app, Method::GET, "/api/v1/openapi.json", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let schema = &doc["paths"]["/workers"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "GET /workers has no documented 200 schema"
    );
    let schema = strict(&doc, schema, 0);
    if let Err(errors) = validate(&schema, list) {
        panic!(
            "the worker list does not match its documented schema:\n  {}\nanswer: {list:#}",
            errors.join("\n  ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_with_the_tries_their_leases_hold() {
    // A long worker timeout: nothing here may go offline by silence.
    let env = Env::builder()
        .dag("remote.toml", DAG)
        .remote(Duration::from_secs(120))
        .start()
        .await;
    let remote = env.app.remote.clone().expect("a remote executor");
    let app = server(&env, Some(remote.clone()));
    let t0 = aileron_tests::t0();

    // Registration needs the worker token and a sensible body.
    let uri = format!("/execution/v1/workers/{ALPHA}/register");
    let body = registration("alpha", &["default"], 2);
    for headers in [&[][..], &[("authorization", "Bearer wrong")][..]] {
        let (status, v) = call(&app, Method::POST, &uri, headers, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["status"], 401, "{v}");
    }
    let long = "x".repeat(65);
    for (bad, why) in [
        (registration("alpha", &[], 2), "no queue"),
        (registration("alpha", &["default"], 0), "no slot"),
        (
            registration("alpha", &["default"], 10_001),
            "too many slots",
        ),
        (registration(&long, &["default"], 2), "a name too long"),
        (
            registration("alpha", &[long.as_str()], 2),
            "a queue name too long",
        ),
        (registration("", &["default"], 2), "an empty name"),
    ] {
        let (status, v) = register(&app, ALPHA, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {v}");
        assert!(v["detail"].is_string(), "{why}: {v}");
    }
    let (status, v) = register(&app, &"w".repeat(129), body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a worker id too long: {v}");
    let (status, _) = send(&app, Method::POST, &uri, &[AUTH], Some("{".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "malformed JSON");
    assert_eq!(
        workers(&app).await,
        json!({"workers": [], "total_entries": 0}),
        "a refused registration registers nothing"
    );

    // Two workers, listed by name, idle.
    let (status, v) = register(&app, BETA, registration("beta", &["default", "gpu"], 4)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = register(&app, ALPHA, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["worker_timeout_ms"], 120_000, "{v}");
    let worker = |id: &str, name: &str, queues: &[&str], slots: u32| {
        json!({
            "worker_name": id,
            "hostname": format!("{name}.example"),
            "queues": queues,
            "slots": slots,
            "running": [],
            "state": "idle",
            "first_online": t0.to_string(),
            "last_heartbeat": t0.to_string(),
            "version": "0.1.0",
            "tenants": null,
        })
    };
    assert_eq!(
        workers(&app).await,
        json!({
            "workers": [
                worker(ALPHA, "alpha", &["default"], 2),
                worker(BETA, "beta", &["default", "gpu"], 4),
            ],
            "total_entries": 2,
        })
    );
    let (_, page) = call(
        &app,
        Method::GET,
        "/api/v1/workers?limit=1&offset=1",
        &[],
        None,
    )
    .await;
    assert_eq!(page["total_entries"], 2, "{page}");
    assert_eq!(page["workers"][0]["worker_name"], BETA, "{page}");
    let (status, _) = call(&app, Method::GET, "/api/v1/workers?limit=-1", &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A heartbeat moves `last_heartbeat`, not `first_online`.
    let later = t0 + jiff::SignedDuration::from_secs(10);
    env.clock.set(later);
    assert_eq!(heartbeat(&app, BETA).await, StatusCode::NO_CONTENT);
    assert_eq!(field(&app, BETA, "last_heartbeat").await, later.to_string());
    assert_eq!(field(&app, BETA, "first_online").await, t0.to_string());

    // A queued attempt counts in its queue's depth; every served queue is listed.
    let mut updates = env.app.scheduler.subscribe();
    let run = env
        .app
        .scheduler
        .trigger(TenantId::DEFAULT, "remote", None, None, Default::default())
        .await
        .unwrap();
    let work = aileron_tests::queued_attempt(&remote, "work").await;
    let text = metrics(&app).await;
    has_line(&text, "aileron_queue_depth{queue=\"default\"} 1");
    has_line(&text, "aileron_queue_depth{queue=\"gpu\"} 0");
    has_line(&text, "aileron_workers{state=\"idle\"} 2");
    has_line(&text, "aileron_workers{state=\"running\"} 0");

    // Alpha starts it: the lease makes alpha `running`, with the try listed, and
    // the TaskInstance's hostname is alpha's worker_name.
    start_try(&app, ALPHA, &work).await;
    assert_eq!(field(&app, ALPHA, "state").await, "running");
    assert_eq!(
        field(&app, ALPHA, "running").await,
        json!([{
            "dag_id": "remote",
            "dag_run_id": run.run_id,
            "task_id": "work",
            "map_index": -1,
            "try_number": 1,
        }])
    );
    assert_eq!(field(&app, BETA, "state").await, "idle");
    let ti_uri = format!(
        "/api/v1/dags/remote/dagRuns/{}/taskInstances/work",
        seg(&run.run_id)
    );
    let (_, ti) = call(&app, Method::GET, &ti_uri, &[], None).await;
    assert_eq!(ti["hostname"], ALPHA, "{ti}");
    assert_eq!(ti["state"], "running", "{ti}");
    let list = workers(&app).await;
    check_schema(&app, &list).await;
    let text = metrics(&app).await;
    has_line(&text, "aileron_workers{state=\"running\"} 1");
    has_line(&text, "aileron_workers{state=\"idle\"} 1");
    has_line(&text, "aileron_workers{state=\"offline\"} 0");
    has_line(&text, "aileron_queue_depth{queue=\"default\"} 0");

    // Beta stops: offline, and its heartbeats are refused until it registers again.
    assert_eq!(stop(&app, BETA).await, StatusCode::NO_CONTENT);
    assert_eq!(field(&app, BETA, "state").await, "offline");
    assert_eq!(heartbeat(&app, BETA).await, StatusCode::NOT_FOUND);
    let (_, v) = call(
        &app,
        Method::POST,
        &format!("/execution/v1/workers/{BETA}/stop"),
        &[],
        None,
    )
    .await;
    assert_eq!(v["status"], 401, "stop without the token: {v}");
    let text = metrics(&app).await;
    has_line(&text, "aileron_workers{state=\"offline\"} 1");

    // Alpha finishes: idle again. Then it runs `after` so the run ends before the
    // test's home goes.
    finish_try(&app, ALPHA, &work).await;
    assert_eq!(field(&app, ALPHA, "state").await, "idle");
    assert_eq!(field(&app, ALPHA, "running").await, json!([]));
    let after = aileron_tests::queued_attempt(&remote, "after").await;
    start_try(&app, ALPHA, &after).await;
    finish_try(&app, ALPHA, &after).await;
    let outcome = env.wait_run(&mut updates, "remote", &run.run_id).await;
    assert_eq!(outcome.run.state, aileron_model::DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_lists_no_workers_and_a_silent_worker_goes_offline() {
    let env = Env::builder().start().await;

    // Standalone: tries run in the server, so there is no worker.
    let app = server(&env, None);
    assert_eq!(
        workers(&app).await,
        json!({"workers": [], "total_entries": 0})
    );
    check_schema(&app, &workers(&app).await).await;
    let text = metrics(&app).await;
    for state in ["running", "idle", "offline"] {
        has_line(&text, &format!("aileron_workers{{state=\"{state}\"}} 0"));
    }
    assert!(
        !text.lines().any(|l| l.starts_with("aileron_queue_depth")),
        "{text}"
    );

    // A remote with a short worker timeout: silence makes a worker offline, and
    // its next heartbeat brings it back. Liveness is timed on the scheduler's
    // (simulated) clock, which moves only when the test moves it.
    let (tx, _rx) = aileron::scheduler::EventSink::for_tests();
    let timeout = Duration::from_secs(1);
    let remote = Remote::new(
        ExecutionKey::generate().unwrap(),
        "secret".into(),
        Timing {
            worker_timeout: timeout,
        },
        tx,
        env.clock.clone(),
    );
    let app = server(&env, Some(remote));
    let (status, v) = register(&app, ALPHA, registration("alpha", &["default"], 1)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(field(&app, ALPHA, "state").await, "idle");
    let registered = env.clock.now();
    env.clock
        .set(registered + timeout - Duration::from_millis(1));
    assert_eq!(
        field(&app, ALPHA, "state").await,
        "idle",
        "silent for less than the timeout"
    );
    env.clock.set(registered + timeout);
    assert_eq!(field(&app, ALPHA, "state").await, "offline");
    let text = metrics(&app).await;
    has_line(&text, "aileron_workers{state=\"offline\"} 1");
    has_line(&text, "aileron_queue_depth{queue=\"default\"} 0");
    assert_eq!(heartbeat(&app, ALPHA).await, StatusCode::NO_CONTENT);
    assert_eq!(field(&app, ALPHA, "state").await, "idle");
    assert_eq!(stop(&app, ALPHA).await, StatusCode::NO_CONTENT);
    assert_eq!(field(&app, ALPHA, "state").await, "offline");
}

/// Serves `app` on a free loopback port in this process; its root URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    root
}

/// A JavaScript expression: the `data-state` of an element by test id.
fn state_of(testid: &str) -> String {
    format!("document.querySelector('[data-testid=\"{testid}\"]')?.getAttribute('data-state')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_page_shows_workers_and_their_tries_in_a_real_browser() {
    // The real time, so "last heartbeat" reads as a few seconds ago.
    let env = Env::builder()
        .dag("remote.toml", DAG)
        .remote(Duration::from_secs(120))
        .start_at(jiff::Timestamp::now())
        .start()
        .await;
    let remote = env.app.remote.clone().expect("a remote executor");
    let app = server(&env, Some(remote.clone()));
    let root = serve(app.clone()).await;
    let standalone = serve(server(&env, None)).await;

    for (id, name, queues) in [
        (ALPHA, "alpha", &["default"][..]),
        (BETA, "beta", &["default", "gpu"][..]),
    ] {
        let (status, v) = register(&app, id, registration(name, queues, 2)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let mut updates = env.app.scheduler.subscribe();
    let run = env
        .app
        .scheduler
        .trigger(TenantId::DEFAULT, "remote", None, None, Default::default())
        .await
        .unwrap();
    let work = aileron_tests::queued_attempt(&remote, "work").await;
    start_try(&app, ALPHA, &work).await;

    let b = Browser::start().await;
    b.sign_in_as_admin(&root).await;
    b.goto(&format!("{root}/#/workers")).await;
    b.find(&format!("[data-testid=\"worker-row-{ALPHA}\"]"))
        .await;
    b.find(&format!("[data-testid=\"worker-row-{BETA}\"]"))
        .await;
    assert_eq!(
        b.eval(&format!(
            "return {}",
            state_of(&format!("worker-state-{ALPHA}"))
        ))
        .await,
        "running"
    );
    assert_eq!(
        b.eval(&format!(
            "return {}",
            state_of(&format!("worker-state-{BETA}"))
        ))
        .await,
        "idle"
    );
    let running = b
        .find(&format!("[data-testid=\"worker-running-{ALPHA}\"]"))
        .await;
    assert_eq!(b.text(&running).await, "1 of 2");
    let heartbeat = b
        .find(&format!("[data-testid=\"worker-heartbeat-{ALPHA}\"]"))
        .await;
    let ago = b.text(&heartbeat).await;
    assert!(ago.ends_with("ago") || ago == "just now", "{ago}");
    let count = b
        .text(&b.find("[data-testid=\"worker-count\"]").await)
        .await;
    assert_eq!(count, "2 workers");
    assert_eq!(
        b.eval("return document.querySelector('[data-testid=\"nav-workers\"]').getAttribute('aria-current')")
            .await,
        "page"
    );
    shot(&b, "workers").await;

    // The page polls: a stop shows without a reload, in the row already there.
    b.eval(&format!(
        "window.__row = document.querySelector('[data-testid=\"worker-row-{BETA}\"]'); return true"
    ))
    .await;
    assert_eq!(stop(&app, BETA).await, StatusCode::NO_CONTENT);
    b.wait_for(
        "beta to show offline",
        &format!(
            "return {} === 'offline'",
            state_of(&format!("worker-state-{BETA}"))
        ),
        20,
    )
    .await;
    assert_eq!(
        b.eval(&format!(
            "return window.__row === document.querySelector('[data-testid=\"worker-row-{BETA}\"]')"
        ))
        .await,
        true,
        "the row was rebuilt or the page reloaded"
    );

    // The running try links to its TaskInstance, whose host is the worker.
    let link = format!("[data-testid=\"worker-try-remote-{}-work\"]", run.run_id);
    b.click(&b.find(&link).await).await;
    b.find("[data-testid=\"ti-panel\"]").await;
    b.wait_for(
        "the TaskInstance's worker",
        &format!(
            "return document.querySelector('[data-testid=\"ti-hostname\"]')?.textContent === '{ALPHA}'"
        ),
        20,
    )
    .await;
    let url = b.current_url().await;
    assert!(url.contains("#/dags/remote/grid?"), "{url}");
    assert!(url.contains("task=work"), "{url}");

    // A standalone server says why it has no workers.
    b.goto(&format!("{standalone}/#/workers")).await;
    let empty = b.find("[data-testid=\"empty-workers\"]").await;
    let text = b.text(&empty).await;
    assert!(
        text.contains("No workers: this server runs tasks itself (aileron standalone)"),
        "{text}"
    );
    b.quit().await;

    // Let the run end before the test's home goes.
    finish_try(&app, ALPHA, &work).await;
    let after = aileron_tests::queued_attempt(&remote, "after").await;
    start_try(&app, ALPHA, &after).await;
    finish_try(&app, ALPHA, &after).await;
    env.wait_run(&mut updates, "remote", &run.run_id).await;
}
