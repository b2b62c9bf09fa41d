//! The execution API (`/execution/v1`) against a real scheduler with the Redis
//! executor, the test playing the worker: start, heartbeat, logs, host calls and
//! finish; and the fencing that keeps every try to exactly one outcome (a stale
//! worker's calls are refused, a silent one's try is failed and retried).

use aileron::execution_api::{ExecState, router};
use aileron_model::TenantId;
use aileron_model::clock::Clock as _;
use aileron_model::{DagRunState, TaskInstanceState as S};
use aileron_protocol::wire::{Entry, TRY_TOKEN_HEADER, WORKER_HEADER};
use aileron_tests::Env;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

const DAG: &str = r#"
[tasks.work]
operator = "noop"
retries = 1
retry_delay = "0s"

[tasks.after]
operator = "noop"
upstream = ["work"]
"#;

/// The execution API of `env`'s server, as a worker would call it.
fn exec_router(env: &Env) -> axum::Router {
    router(ExecState {
        remote: env.app.remote.clone().expect("a remote executor"),
        scheduler: env.app.scheduler.clone(),
        metastore: env.app.metastore.clone(),
        registry: env.app.sandbox.registry().clone(),
        auth: env.app.auth.clone(),
    })
}

struct Worker<'a> {
    env: &'a Env,
    id: &'static str,
}

impl Worker<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        entry: &Entry,
        body: Value,
    ) -> (StatusCode, Value) {
        let app = exec_router(self.env);
        let req = Request::builder()
            .method(method)
            .uri(format!("/tries/{}/{path}", entry.attempt))
            .header("authorization", "Bearer secret")
            .header(TRY_TOKEN_HEADER, &entry.token)
            .header(WORKER_HEADER, self.id)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn start(&self, e: &Entry) -> (StatusCode, Value) {
        self.call(Method::POST, "start", e, json!({"hostname": self.id}))
            .await
    }

    async fn finish(&self, e: &Entry, ret: &str, log: (usize, &str)) -> (StatusCode, Value) {
        let body = json!({
            "outcome": {"Success": ret},
            "xcom": [],
            "duration_ms": 5,
            "log": {"offset": log.0, "text": log.1},
        });
        self.call(Method::POST, "finish", e, body).await
    }
}

/// Waits until the executor holds a queued attempt of `task` and returns it.
async fn queued(env: &Env, task: &str) -> Entry {
    aileron_tests::queued_attempt(env.app.remote.as_deref().expect("a remote executor"), task).await
}

fn ti(env: &Env, run_id: &str, task: &str) -> aileron::metastore::TaskInstance {
    env.app
        .metastore
        .task_instance(TenantId::DEFAULT, "remote", run_id, task, -1)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_remote_try_runs_once_and_stale_workers_are_refused() {
    let env = Env::builder()
        .dag("remote.toml", DAG)
        .remote(Duration::from_secs(1))
        .start()
        .await;
    let run = env
        .app
        .scheduler
        .trigger(TenantId::DEFAULT, "remote", None, None, Default::default())
        .await
        .unwrap();
    let (w1, w2) = (
        Worker {
            env: &env,
            id: "w1-0001",
        },
        Worker {
            env: &env,
            id: "w2-0002",
        },
    );

    // Try 1 of `work`: started by w1, which then goes silent.
    let first = queued(&env, "work").await;
    assert_eq!(first.try_number, 1);
    let mut wrong = first.clone();
    wrong.attempt += 1000;
    assert_eq!(
        w1.start(&wrong).await.0,
        StatusCode::FORBIDDEN,
        "token of another attempt"
    );
    let (status, body) = w1.start(&first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["try_number"], 1);
    assert_eq!(
        w1.start(&first).await.0,
        StatusCode::OK,
        "a repeated start is answered again"
    );
    let (status, body) = w2.start(&first).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::CONFLICT, Some("running_elsewhere"))
    );
    assert_eq!(ti(&env, &run.run_id, "work").state, S::Running);
    assert_eq!(ti(&env, &run.run_id, "work").hostname, "w1-0001");
    let log = |offset: usize, text: &str| json!({"offset": offset, "text": text});
    assert_eq!(
        w1.call(Method::POST, "logs", &first, log(0, "before\n"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = w1
        .call(Method::POST, "logs", &first, log(99, "gap\n"))
        .await;
    assert_eq!(
        (status, body["expected_offset"].as_u64()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(7))
    );
    let (status, body) = w1
        .call(Method::GET, "variables/missing", &first, Value::Null)
        .await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, Value::Null)
    );

    // No heartbeat for the worker timeout: the try fails and is retried elsewhere.
    // The timeout passes on the scheduler's simulated clock, in one step of less
    // than two reaper ticks, so the reaper's next (real-time) tick judges it; a
    // longer jump would be credited like a stall of the scheduler.
    env.clock.set(env.clock.now() + Duration::from_secs(1));
    let second = queued(&env, "work").await;
    assert_eq!(
        (second.try_number, second.attempt > first.attempt),
        (2, true)
    );
    // w1 comes back: everything it sends for try 1 is refused.
    let (status, body) = w1.call(Method::PUT, "heartbeat", &first, Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        w1.call(Method::POST, "logs", &first, log(7, "after\n"))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        w1.call(Method::GET, "variables/x", &first, Value::Null)
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        w1.finish(&first, "\"stale\"", (7, "after\n")).await.0,
        StatusCode::CONFLICT
    );

    // Try 2 on w2, and a finish whose answer was "lost" and is sent again.
    assert_eq!(w2.start(&second).await.0, StatusCode::OK);
    let (status, body) = w2.finish(&second, "\"fresh\"", (0, "try two\n")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"state": "success", "duplicate": false}));
    let (status, body) = w2.finish(&second, "\"fresh\"", (0, "try two\n")).await;
    assert_eq!(
        (status, body["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );

    let after = queued(&env, "after").await;
    assert_eq!(w2.start(&after).await.0, StatusCode::OK);
    assert_eq!(w2.finish(&after, "null", (0, "")).await.0, StatusCode::OK);
    let mut updates = env.app.scheduler.subscribe();
    let outcome = env.wait_run(&mut updates, "remote", &run.run_id).await;
    assert_eq!(outcome.run.state, DagRunState::Success);

    let work = outcome.ti("work");
    assert_eq!((work.state, work.try_number), (S::Success, 2));
    let tries: Vec<_> = work
        .tries
        .iter()
        .map(|t| (t.try_number, t.state, t.hostname.as_str(), t.attempt))
        .collect();
    assert_eq!(
        tries,
        vec![
            (1, S::UpForRetry, "w1-0001", first.attempt),
            (2, S::Success, "w2-0002", second.attempt)
        ]
    );
    let xcom = env
        .app
        .metastore
        .xcom(
            TenantId::DEFAULT,
            "remote",
            &run.run_id,
            "work",
            "return_value",
        )
        .unwrap();
    assert_eq!(
        xcom,
        vec![(-1, "\"fresh\"".to_owned())],
        "only the current try's output"
    );
    let log1 = env.log(work, 1);
    assert!(
        log1.contains("before") && log1.contains("no heartbeat"),
        "{log1}"
    );
    assert!(
        !log1.contains("after"),
        "a fenced worker's log is not kept: {log1}"
    );
    assert!(env.log(work, 2).contains("try two"));
}

#[tokio::test]
async fn execution_calls_need_the_worker_token_and_a_matching_try_token() {
    let env = Env::builder()
        .dag("remote.toml", DAG)
        .remote(Duration::from_secs(30))
        .start()
        .await;
    env.app
        .scheduler
        .trigger(TenantId::DEFAULT, "remote", None, None, Default::default())
        .await
        .unwrap();
    let entry = queued(&env, "work").await;
    let app = exec_router(&env);
    let send = |auth: Option<&str>, token: Option<&str>, body: &str| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/tries/{}/start", entry.attempt))
            .header("content-type", "application/json")
            .header(WORKER_HEADER, "w1-0001");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(t) = token {
            req = req.header(TRY_TOKEN_HEADER, t);
        }
        app.clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
    };
    let status = |r: axum::response::Response| r.status();
    let body = r#"{"hostname":"w1"}"#;
    assert_eq!(
        status(send(None, Some(&entry.token), body).await.unwrap()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            send(Some("Bearer wrong"), Some(&entry.token), body)
                .await
                .unwrap()
        ),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(send(Some("Bearer secret"), None, body).await.unwrap()),
        StatusCode::FORBIDDEN
    );
    let mut forged = entry.token.clone();
    forged.push('x');
    assert_eq!(
        status(
            send(Some("Bearer secret"), Some(&forged), body)
                .await
                .unwrap()
        ),
        StatusCode::FORBIDDEN
    );
    // Worker tokens kept in the metastore: another tenant's is refused the try
    // (its token was read from a stream it should not see); an API token that
    // is not a worker token is no worker credential at all.
    env.app
        .metastore
        .create_tenant(&aileron::metastore::TenantRecord {
            name: TenantId::new("team_x").unwrap(),
            description: String::new(),
            created_at: jiff::Timestamp::now(),
            limits: Default::default(),
        })
        .unwrap();
    let token_of = |tenant: Option<&str>, worker: bool| {
        let made = aileron::auth::api_token::generate().unwrap();
        env.app
            .metastore
            .create_api_token(&aileron::metastore::ApiTokenRecord {
                id: made.id.clone(),
                tenant: tenant.map(|t| TenantId::new(t).unwrap()),
                name: "w".into(),
                role: aileron_model::Role::Viewer,
                secret_sha256: made.secret_sha256.clone(),
                created_by: "test".into(),
                created_at: jiff::Timestamp::now(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
                worker,
            })
            .unwrap();
        format!("Bearer {}", made.text)
    };
    let other_tenant = token_of(Some("team_x"), true);
    assert_eq!(
        status(
            send(Some(&other_tenant), Some(&entry.token), body)
                .await
                .unwrap()
        ),
        StatusCode::FORBIDDEN
    );
    let not_a_worker = token_of(Some(TenantId::DEFAULT), false);
    assert_eq!(
        status(
            send(Some(&not_a_worker), Some(&entry.token), body)
                .await
                .unwrap()
        ),
        StatusCode::UNAUTHORIZED
    );
    let own_tenant = token_of(Some(TenantId::DEFAULT), true);
    let resp = send(Some(&own_tenant), Some(&entry.token), "{not json")
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "past the worker check"
    );
    let resp = send(Some("Bearer secret"), Some(&entry.token), "{not json")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).expect("errors are JSON");
    assert_eq!(problem["status"], 400);
    // Nothing above started the try.
    assert_eq!(
        env.app
            .metastore
            .task_instance(TenantId::DEFAULT, "remote", &entry.key.run_id, "work", -1)
            .unwrap()
            .unwrap()
            .state,
        S::Queued
    );
}

/// `PUT /workers/{id}/memory`: registered workers share a capped tenant's
/// quota through the scheduler's ledger; a worker re-registering brings what it
/// holds; a tenant's worker token asks for its own tenant only; a stopped
/// worker's share is free again; bad requests are refused with JSON.
#[tokio::test]
async fn workers_hold_shares_of_a_tenant_s_memory_quota() {
    const MIB: u64 = 1 << 20;
    let env = Env::builder()
        .dag("remote.toml", DAG)
        .remote(Duration::from_secs(30))
        .start()
        .await;
    let app = exec_router(&env);
    let call = |method: Method, path: String, body: Value| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer secret")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let register = |id: &'static str, held: Value| {
        call(
            Method::POST,
            format!("/workers/{id}/register"),
            json!({"name": id, "hostname": "h", "queues": ["default"], "slots": 4,
                   "version": "0", "memory_held": held}),
        )
    };
    let hold = |id: &'static str, need: u64, want: u64| {
        call(
            Method::PUT,
            format!("/workers/{id}/memory"),
            json!({"tenant": "team_a", "cap": 64 * MIB, "need": need, "want": want}),
        )
    };
    // Not registered yet: told to register.
    assert_eq!(hold("w1-01", MIB, MIB).await.0, StatusCode::NOT_FOUND);
    assert_eq!(register("w1-01", json!({})).await.0, StatusCode::OK);
    assert_eq!(register("w2-01", json!({})).await.0, StatusCode::OK);

    let (status, v) = hold("w1-01", 40 * MIB, 40 * MIB).await;
    assert_eq!(
        (status, &v["granted"]),
        (StatusCode::OK, &json!(40 * MIB)),
        "{v}"
    );
    let (_, v) = hold("w2-01", 30 * MIB, 30 * MIB).await;
    assert_eq!(
        (&v["granted"], &v["others"]),
        (&Value::Null, &json!(40 * MIB)),
        "{v}"
    );
    let (_, v) = hold("w2-01", 24 * MIB, 24 * MIB).await;
    assert_eq!(v["granted"], json!(24 * MIB), "{v}");
    assert_eq!(v["tight"], true, "{v}");

    // A scheduler that forgot w1 (it registers again) learns what it holds.
    env.app
        .remote
        .as_ref()
        .unwrap()
        .memory
        .forget("worker:w1-01");
    let (_, v) = hold("w2-01", 30 * MIB, 30 * MIB).await;
    assert_eq!(v["granted"], json!(30 * MIB), "{v}");
    hold("w2-01", 24 * MIB, 24 * MIB).await;
    register("w1-01", json!({"team_a": 40 * MIB})).await;
    let (_, v) = hold("w2-01", 30 * MIB, 30 * MIB).await;
    assert_eq!(v["granted"], Value::Null, "{v}");

    // A stopped worker's share is free again.
    let (status, _) = call(Method::POST, "/workers/w1-01/stop".into(), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, v) = hold("w2-01", 60 * MIB, 60 * MIB).await;
    assert_eq!(v["granted"], json!(60 * MIB), "{v}");
    assert_eq!(hold("w1-01", MIB, MIB).await.0, StatusCode::NOT_FOUND);

    // Bad requests: JSON errors, nothing changed.
    for body in [
        json!({"tenant": "team_a", "cap": 0, "need": 1, "want": 1}),
        json!({"tenant": "team_a", "cap": 1, "need": 2, "want": 1}),
        json!({"tenant": "not a tenant!", "cap": 1, "need": 1, "want": 1}),
    ] {
        let (status, v) = call(Method::PUT, "/workers/w2-01/memory".into(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["status"], 400, "{v}");
    }
    let (status, v) = call(
        Method::PUT,
        "/workers/w2-01/memory".into(),
        json!({"tenant": "team_a", "cap": 1}),
    )
    .await;
    assert!(
        status.is_client_error() && v["status"].is_number(),
        "{status} {v}"
    );
    let holdings = env.app.remote.as_ref().unwrap().memory.holdings("team_a");
    assert_eq!(holdings.values().sum::<u64>(), 60 * MIB, "{holdings:?}");
}
