//! The authorization matrix: every route of the server's own route table, called
//! by every kind of caller (nobody, each role of tenant A, the Admin of tenant B,
//! the platform admin, a revoked token, an expired token, a deleted user's
//! session) on an object of A and an object of B, over a real socket, with the
//! status each must get. The expectations follow from the route's declared
//! policy; a route whose path parameters or body this file does not know fails
//! the test, so a route added later cannot go unchecked.
//!
//! Isolation is checked the strict way: asking for another tenant's object must
//! answer exactly what asking for an object that exists nowhere answers (and a
//! read must answer 404), so an answer never tells that the object exists.

use crate::api::DAG;
use crate::backfill_api::DAILY;
use aileron::api::{Policy, RouteEntry};
use aileron::server::{ConnectionLimits, HostPolicy};
use aileron_model::{Role, TenantId};
use aileron_tests::server::ADMIN_AUTH;
use aileron_tests::{Env, guests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

const B: &str = "team_b";

/// A caller of the matrix: its `Authorization`, the role it holds in its own
/// tenant (`None`: it cannot sign in), whether it is a platform admin, and which
/// side is its own.
struct Who {
    name: &'static str,
    auth: Option<String>,
    role: Option<Role>,
    platform: bool,
    /// The tenant it acts in: A (`default`) or B.
    in_b: bool,
}

/// The ids of one side's objects, by path parameter.
type Ids = HashMap<&'static str, String>;

/// Path parameters that name an object of a tenant: a route with one of these
/// is called on A's and on B's object. (`username` and `tenant_name` name
/// platform-wide things.)
const TENANT_OBJECTS: [&str; 14] = [
    "tenant",
    "dag_id",
    "dag_run_id",
    "task_id",
    "variable_key",
    "connection_id",
    "pool_name",
    "backfill_id",
    "event_log_id",
    "import_error_id",
    "file_token",
    "token_id",
    "xcom_key",
    "plugin_name",
];

pub(crate) struct Server {
    root: String,
    http: reqwest::Client,
}

impl Server {
    /// Serves `env`'s whole surface on a real socket (tenant B exists: the
    /// harness made it for its DAG folder); the server and its route table.
    pub(crate) async fn start(env: &Env) -> (Server, aileron::api::RouteTable) {
        let (router, table) = aileron::server::surface(&env.app, HostPolicy::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(aileron::server::serve(
            listener,
            router,
            ConnectionLimits::default(),
            std::future::pending(),
        ));
        let http = reqwest::Client::new();
        (Server { root, http }, table)
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    pub(crate) async fn send(
        &self,
        auth: Option<&str>,
        tenant: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.root));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(t) = tenant {
            req = req.header("x-aileron-tenant", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        // The event stream never ends: its status is all there is to check.
        if path.ends_with("/events") {
            return (status, String::new());
        }
        (status, resp.text().await.unwrap_or_default())
    }

    /// A raw body (an operator component).
    async fn send_bytes(
        &self,
        auth: Option<&str>,
        tenant: Option<&str>,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.root))
            .header("content-type", "application/wasm")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(t) = tenant {
            req = req.header("x-aileron-tenant", t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap_or_default())
    }

    /// As the platform admin, in `tenant`; must answer 2xx.
    pub(crate) async fn admin(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> Value {
        let (s, text) = self
            .send(
                Some(ADMIN_AUTH),
                Some(tenant),
                method.clone(),
                path,
                Some(&body),
            )
            .await;
        assert!(s.is_success(), "{method} {path} in {tenant}: {s} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn wait_run(&self, tenant: &str, dag: &str, run: &str) {
        let path = format!("/api/v1/dags/{dag}/dagRuns/{run}");
        let mut last = Value::Null;
        // Generous: under CI every test of the suite shares two cores.
        for _ in 0..3600 {
            let (_, text) = self
                .send(Some(ADMIN_AUTH), Some(tenant), Method::GET, &path, None)
                .await;
            last = serde_json::from_str(&text).unwrap_or(Value::Null);
            match last["state"].as_str() {
                Some("success") => return,
                Some("failed") => break,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let (_, tis) = self
            .send(
                Some(ADMIN_AUTH),
                Some(tenant),
                Method::GET,
                &format!("{path}/taskInstances"),
                None,
            )
            .await;
        panic!("run {run} of {dag} in {tenant} did not succeed: {last}\ntask instances: {tis}");
    }
}

/// A valid body for each operation that takes one (the matrix entry of a
/// change); `None` for an operation this file does not know.
fn body_of(entry: &RouteEntry, n: usize) -> Option<Value> {
    let v2 = entry.path.starts_with("/api/v2/");
    Some(match entry.operation.as_str() {
        // /api/v2's connection body names the id `connection_id`, and PATCH
        // takes it whole (a PATCH whose id differs from the path's is a 400,
        // after the policy let it through).
        "post_connection" | "patch_connection" | "test_connection" if v2 => {
            json!({ "connection_id": format!("c{n}"), "conn_type": "http" })
        }
        "post_dag_run" => json!({ "dag_run_id": format!("m{n}") }),
        "create_xcom_entry" => json!({ "key": format!("x{n}"), "value": n }),
        "update_xcom_entry" => json!({ "value": n }),
        "get_list_dag_runs_batch" | "get_task_instances_batch" | "reparse_dag_file" => json!({}),
        // /api/v2's names for its own shapes.
        "trigger_dag_run" => json!({ "dag_run_id": format!("m{n}"), "logical_date": null }),
        "patch_dag_run" => json!({ "state": "success" }),
        "post_variable" => json!({ "key": format!("v{n}"), "value": "x" }),
        "update_dag_run_state" => json!({ "state": "success" }),
        "clear_dag_run" => json!({ "dry_run": true }),
        "patch_dag" | "patch_dags" => json!({ "is_paused": false }),
        "patch_task_instance"
        | "patch_task_instance_dry_run"
        | "patch_task_instance_by_map_index"
        | "patch_task_instance_dry_run_by_map_index"
            if v2 =>
        {
            json!({ "new_state": "success" })
        }
        "patch_task_instance" => json!({ "new_state": "success", "dry_run": true }),
        "post_clear_task_instances" => json!({ "dry_run": true }),
        "post_variables" => json!({ "key": format!("v{n}"), "value": "x" }),
        "patch_variable" => json!({ "value": "y" }),
        "post_connection" => json!({ "conn_id": format!("c{n}"), "conn_type": "http" }),
        "patch_connection" => json!({ "conn_type": "http", "host": "h" }),
        "post_pool" => json!({ "name": format!("p{n}"), "slots": 1 }),
        "patch_pool" => json!({ "slots": 3 }),
        "create_backfill" | "create_backfill_dry_run" => {
            json!({ "dag_id": "daily", "from_date": "2025-12-01", "to_date": "2025-12-02" })
        }
        "db_clean" => json!({ "clean_before_timestamp": "2000-01-01T00:00:00Z", "dry_run": true }),
        "post_tenant" => json!({ "name": format!("t{n}") }),
        "post_user" => json!({ "username": format!("u{n}"), "password": "a password" }),
        "patch_user" => json!({ "platform_admin": false }),
        "patch_tenant" => json!({ "weight": 2 }),
        "put_member" => json!({ "role": "Viewer" }),
        "post_token" | "post_platform_token" => json!({ "name": format!("k{n}") }),
        "create_token" | "create_token_cli" | "login" => {
            json!({ "username": "nobody", "password": "nothing at all" })
        }
        "logout" | "pause_backfill" | "unpause_backfill" | "cancel_backfill" | "favorite_dag"
        | "unfavorite_dag" => json!({}),
        // Not a component: refused as such (400) once the policy lets it through.
        "post_plugin" | "post_platform_plugin" | "post_operator" | "post_platform_operator" => {
            json!({})
        }
        _ => return None,
    })
}

/// The query string a route cannot answer without: `/wait`'s interval, the
/// DAG whose backfills v2 lists.
fn query_of(entry: &RouteEntry, ids: &Ids) -> String {
    match entry.operation.as_str() {
        "wait_dag_run_until_finished" => "?interval=0.1".to_owned(),
        "list_backfills" if entry.path.starts_with("/api/v2/") => {
            format!("?dag_id={}", ids["dag_id"])
        }
        _ => String::new(),
    }
}

fn fill(entry: &RouteEntry, ids: &Ids) -> String {
    let mut path = entry.path.clone();
    for segment in entry.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let name = name.trim_start_matches('*');
            let value = ids.get(name).unwrap_or_else(|| {
                panic!(
                    "{} {}: the matrix has no value for `{name}`; add it to this file",
                    entry.method, entry.path
                )
            });
            path = path.replace(segment, value);
        }
    }
    path + &query_of(entry, ids)
}

fn takes_body(m: &Method) -> bool {
    matches!(*m, Method::POST | Method::PATCH | Method::PUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_its_policy_says() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .dag("daily.toml", DAILY)
        .dag(&format!("{B}/b_dag.toml"), DAG)
        .dag(&format!("{B}/daily.toml"), DAILY)
        .dag("broken.toml", "x = [")
        .dag(&format!("{B}/broken.toml"), "x = [")
        .start()
        .await;
    let m = &env.app.metastore;
    let (s, table) = Server::start(&env).await;
    let a = TenantId::DEFAULT;

    // Objects on both sides, made as the platform admin acting in each tenant.
    let mut sides: [Ids; 2] = Default::default();
    for (i, (tenant, dag, prefix)) in [(a, "api_dag", "a"), (B, "b_dag", "b")]
        .into_iter()
        .enumerate()
    {
        let run = format!("r{prefix}");
        s.admin(
            tenant,
            Method::POST,
            &format!("/api/v1/dags/{dag}/dagRuns"),
            json!({ "dag_run_id": run }),
        )
        .await;
        s.admin(
            tenant,
            Method::POST,
            "/api/v1/variables",
            json!({ "key": format!("{prefix}_var"), "value": "1" }),
        )
        .await;
        s.admin(
            tenant,
            Method::POST,
            "/api/v1/connections",
            json!({ "conn_id": format!("{prefix}_conn"), "conn_type": "http" }),
        )
        .await;
        s.admin(
            tenant,
            Method::POST,
            "/api/v1/pools",
            json!({ "name": format!("{prefix}_pool"), "slots": 2 }),
        )
        .await;
        let backfill = s
            .admin(
                tenant,
                Method::POST,
                "/api/v1/backfills",
                json!({ "dag_id": "daily", "from_date": "2025-11-01", "to_date": "2025-11-01" }),
            )
            .await;
        let token = s
            .admin(
                tenant,
                Method::POST,
                "/api/v1/tokens",
                json!({ "name": format!("{prefix}_svc") }),
            )
            .await;
        // A tenant operator on each side: versioned@1.0.0 for A, 2.0.0 for B.
        let component = [guests::VERSIONED_V1, guests::VERSIONED_V2][i];
        let (status, text) = s
            .send_bytes(
                Some(ADMIN_AUTH),
                Some(tenant),
                Method::POST,
                "/api/v1/plugins",
                std::fs::read(component).unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        s.wait_run(tenant, dag, &run).await;
        let events = s
            .admin(tenant, Method::GET, "/api/v1/eventLogs", Value::Null)
            .await;
        let import_errors = s
            .admin(tenant, Method::GET, "/api/v1/importErrors", Value::Null)
            .await;
        let fileloc = s
            .admin(
                tenant,
                Method::GET,
                &format!("/api/v1/dags/{dag}"),
                Value::Null,
            )
            .await["fileloc"]
            .as_str()
            .unwrap()
            .to_owned();
        sides[i] = HashMap::from([
            ("dag_id", dag.to_owned()),
            ("dag_run_id", run),
            ("task_id", "a".to_owned()),
            ("try_number", "1".to_owned()),
            ("xcom_key", "return_value".to_owned()),
            ("variable_key", format!("{prefix}_var")),
            ("connection_id", format!("{prefix}_conn")),
            ("pool_name", format!("{prefix}_pool")),
            ("backfill_id", backfill["id"].to_string()),
            ("token_id", token["token_id"].as_str().unwrap().to_owned()),
            (
                "event_log_id",
                events["event_logs"][0]["event_log_id"].to_string(),
            ),
            // Each side's one broken file.
            (
                "import_error_id",
                import_errors["import_errors"][0]["import_error_id"].to_string(),
            ),
            // The DAG's file, as v2's file_token names it (hex of its path).
            (
                "file_token",
                fileloc.bytes().map(|b| format!("{b:02x}")).collect(),
            ),
            // Its TaskInstances are not mapped: -1 names them.
            ("map_index", "-1".to_owned()),
            ("task_try_number", "1".to_owned()),
            // Each side's DAG has one version so far.
            ("version_number", "1".to_owned()),
            // The platform's configuration, the same on both sides.
            ("section", "core".to_owned()),
            ("option", "executor".to_owned()),
            ("username", format!("member_{prefix}")),
            ("tenant_name", format!("spare_{prefix}")),
            // A tenant's own usage: the tenant is the object.
            ("tenant", tenant.to_owned()),
            ("path", "app.js".to_owned()),
            ("plugin_name", "versioned".to_owned()),
            ("version", ["1.0.0", "2.0.0"][i].to_owned()),
        ]);
        s.admin(
            a,
            Method::POST,
            "/api/v1/tenants",
            json!({ "name": format!("spare_{prefix}") }),
        )
        .await;
        s.admin(a, Method::POST, "/api/v1/users", json!({ "username": format!("member_{prefix}"), "password": "member password", "roles": { tenant: "Viewer" } })).await;
    }
    let nowhere: Ids = sides[0]
        .iter()
        .map(|(k, v)| {
            let missing = match *k {
                "backfill_id" | "event_log_id" | "import_error_id" | "try_number"
                | "task_try_number" => "999999".to_owned(),
                "token_id" => "ffffffffffffffff".to_owned(),
                _ if TENANT_OBJECTS.contains(k) => "nowhere".to_owned(),
                _ => v.clone(),
            };
            (*k, missing)
        })
        .collect();

    // The callers.
    let mut who: Vec<Who> = vec![Who {
        name: "anonymous",
        auth: None,
        role: None,
        platform: false,
        in_b: false,
    }];
    for (name, role, tenant) in [
        ("viewer_a", Role::Viewer, a),
        ("user_a", Role::User, a),
        ("op_a", Role::Op, a),
        ("admin_a", Role::Admin, a),
        ("admin_b", Role::Admin, B),
        ("gone", Role::Admin, a),
    ] {
        s.admin(
            a,
            Method::POST,
            "/api/v1/users",
            json!({ "username": name, "password": "a good password", "roles": { tenant: role } }),
        )
        .await;
        let (token, _) = env
            .app
            .auth
            .sign_in(name, "a good password", "test")
            .await
            .unwrap();
        who.push(Who {
            name: if name == "gone" { "deleted user" } else { name },
            auth: Some(format!("Bearer {token}")),
            role: (name != "gone").then_some(role),
            platform: false,
            in_b: tenant == B,
        });
    }
    s.admin(a, Method::DELETE, "/api/v1/users/gone", Value::Null)
        .await;
    who.push(Who {
        name: "platform admin",
        auth: Some(ADMIN_AUTH.to_owned()),
        role: Some(Role::Admin),
        platform: true,
        in_b: false,
    });
    // A revoked token, and one past its expiry (written as if made earlier).
    let revoked = s
        .admin(
            a,
            Method::POST,
            "/api/v1/tokens",
            json!({ "name": "revoked", "role": "Admin" }),
        )
        .await;
    s.admin(
        a,
        Method::DELETE,
        &format!("/api/v1/tokens/{}", revoked["token_id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    who.push(Who {
        name: "revoked token",
        auth: Some(format!("Bearer {}", revoked["token"].as_str().unwrap())),
        role: None,
        platform: false,
        in_b: false,
    });
    let expired = aileron::auth::api_token::generate().unwrap();
    m.create_api_token(&aileron::metastore::ApiTokenRecord {
        id: expired.id.clone(),
        tenant: Some(TenantId::default()),
        name: "expired".into(),
        role: Role::Admin,
        secret_sha256: expired.secret_sha256.clone(),
        created_by: "admin".into(),
        created_at: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48),
        expires_at: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)),
        last_used_at: None,
        revoked_at: None,
        worker: false,
    })
    .unwrap();
    who.push(Who {
        name: "expired token",
        auth: Some(format!("Bearer {}", expired.text)),
        role: None,
        platform: false,
        in_b: false,
    });

    // Reads first, then changes, deletions last: a deletion must not take away
    // an object a later row reads.
    let mut entries: Vec<&RouteEntry> = table.0.iter().collect();
    let rank = |e: &RouteEntry| match e.method {
        Method::GET => 0,
        Method::DELETE => 2,
        _ => 1,
    };
    entries.sort_by_key(|e| rank(e));
    assert!(
        entries.len() > 60,
        "the route table has only {} routes",
        entries.len()
    );

    let mut failures = Vec::new();
    let mut n = 0;
    for entry in entries {
        let objects = entry
            .path
            .split('/')
            .any(|seg| TENANT_OBJECTS.iter().any(|p| seg == format!("{{{p}}}")));
        let body = if takes_body(&entry.method) {
            Some(body_of(entry, n).unwrap_or_else(|| {
                panic!(
                    "{} {}: the matrix has no body for `{}`; add one to body_of",
                    entry.method, entry.path, entry.operation
                )
            }))
        } else {
            None
        };
        for w in &who {
            // The side a caller owns first, then the other one.
            let own = usize::from(w.in_b);
            let order: &[usize] = if objects { &[1 - own, own] } else { &[own] };
            for &side in order {
                n += 1;
                let path = fill(entry, &sides[side]);
                let (status, text) = s
                    .send(
                        w.auth.as_deref(),
                        None,
                        entry.method.clone(),
                        &path,
                        body.as_ref(),
                    )
                    .await;
                let row = format!(
                    "{} {} as {} on {}'s object",
                    entry.method,
                    path,
                    w.name,
                    if side == 0 { "A" } else { "B" }
                );
                let expect_denied = |want: StatusCode| {
                    (status != want).then(|| format!("{row}: want {want}, got {status} {text}"))
                };
                let failure = match entry.policy {
                    // (The sign-in routes answer 401 to the wrong password they are sent.)
                    Policy::Public => (status == StatusCode::FORBIDDEN || status.is_server_error())
                        .then(|| format!("{row}: a public route answered {status} {text}")),
                    Policy::Worker => (status.is_success())
                        .then(|| format!("{row}: the execution API took user credentials")),
                    _ if w.role.is_none() => expect_denied(StatusCode::UNAUTHORIZED),
                    Policy::Platform if !w.platform => expect_denied(StatusCode::FORBIDDEN),
                    Policy::Tenant(need) if w.role.unwrap() < need => {
                        expect_denied(StatusCode::FORBIDDEN)
                    }
                    Policy::Tenant(_) if objects && side != own => {
                        // Exactly what an object that exists nowhere gets.
                        let missing = fill(entry, &nowhere);
                        let (other, _) = s
                            .send(
                                w.auth.as_deref(),
                                None,
                                entry.method.clone(),
                                &missing,
                                body.as_ref(),
                            )
                            .await;
                        if entry.method == Method::GET && status != StatusCode::NOT_FOUND {
                            Some(format!("{row}: want 404, got {status} {text}"))
                        } else if status != other || status.is_success() {
                            Some(format!(
                                "{row}: got {status} {text}, but {other} for an object that exists nowhere"
                            ))
                        } else {
                            None
                        }
                    }
                    _ => {
                        // The matrix's DAG maps no task: listing a task's mapped
                        // instances is rightly a 404 there.
                        let found = status == StatusCode::OK
                            || (entry.operation == "get_mapped_task_instances"
                                && status == StatusCode::NOT_FOUND);
                        let wrong =
                            matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                                || status.is_server_error()
                                || (entry.method == Method::GET && !found);
                        wrong.then(|| format!("{row}: allowed, but got {status} {text}"))
                    }
                };
                failures.extend(failure);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The execution API of a multi-node server, walked from its own route table:
/// no user credential of any kind (password, session, API token, even the
/// platform admin's) is a worker credential, and a worker token of a tenant
/// that has no try gets nothing either. Each answer is a refusal, never a 2xx
/// or a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_execution_api_takes_no_user_credential() {
    let env = Env::builder()
        .dag("api_dag.toml", DAG)
        .remote(Duration::from_secs(30))
        .start()
        .await;
    let (s, table) = Server::start(&env).await;
    let session = env
        .app
        .auth
        .sign_in("admin", aileron_tests::TEST_ADMIN_PASSWORD, "test")
        .await
        .unwrap()
        .0;
    let api_token = s
        .admin(
            TenantId::DEFAULT,
            Method::POST,
            "/api/v1/tokens",
            json!({ "name": "svc", "role": "Admin" }),
        )
        .await;
    s.admin(
        TenantId::DEFAULT,
        Method::POST,
        "/api/v1/tenants",
        json!({ "name": B }),
    )
    .await;
    let worker_b = s
        .admin(
            B,
            Method::POST,
            "/api/v1/tokens",
            json!({ "name": "w", "worker": true }),
        )
        .await;
    let callers = [
        ("anonymous", None),
        ("the platform admin's password", Some(ADMIN_AUTH.to_owned())),
        ("a session", Some(format!("Bearer {session}"))),
        (
            "an API token",
            Some(format!("Bearer {}", api_token["token"].as_str().unwrap())),
        ),
        (
            "a worker token of a tenant without tries",
            Some(format!("Bearer {}", worker_b["token"].as_str().unwrap())),
        ),
    ];
    let ids: Ids = HashMap::from([
        ("id", "probe-00000001".to_owned()),
        ("digest", format!("sha256:{}", "0".repeat(64))),
        ("attempt", "1".to_owned()),
        ("task_id", "a".to_owned()),
        ("key", "k".to_owned()),
        ("conn_id", "c".to_owned()),
    ]);
    let routes: Vec<&RouteEntry> = table
        .0
        .iter()
        .filter(|e| e.policy == Policy::Worker)
        .collect();
    assert!(routes.len() >= 10, "only {} execution routes", routes.len());
    let mut failures = Vec::new();
    for entry in routes {
        let path = fill(entry, &ids);
        let body = takes_body(&entry.method).then(|| json!({}));
        for (who, auth) in &callers {
            let (status, text) = s
                .send(
                    auth.as_deref(),
                    None,
                    entry.method.clone(),
                    &path,
                    body.as_ref(),
                )
                .await;
            // A worker token of B is a worker credential: it may register
            // (here with a body that is not a registration) or stop a worker
            // of its own; a try or a component is not its to have.
            let ok = if who.starts_with("a worker") {
                let of_others = entry.path.contains("{attempt}") || entry.path.contains("{digest}");
                let granted = of_others && status.is_success();
                !(status.is_server_error() || granted)
            } else {
                matches!(status.as_u16(), 401 | 403 | 404)
                    && serde_json::from_str::<Value>(&text).is_ok()
            };
            if !ok {
                failures.push(format!("{} {path} as {who}: {status} {text}", entry.method));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same DAG id and the same variable key in two tenants sharing one server:
/// each tenant's lists, runs, XCom and audit log hold only its own, and a task
/// reading the variable gets its own tenant's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_with_the_same_names_see_only_their_own() {
    const ETL: &str = r#"
tags = ["shared-name"]
[tasks.a]
operator = "echo"
params = { message = "{{ var.value.k }}" }
"#;
    let env = Env::builder()
        .dag("etl.toml", ETL)
        .dag(&format!("{B}/etl.toml"), ETL)
        .start()
        .await;
    let (s, _) = Server::start(&env).await;
    let a = TenantId::DEFAULT;

    let mut auth = HashMap::new();
    for (tenant, user) in [(a, "ada"), (B, "bob")] {
        s.admin(a, Method::POST, "/api/v1/users", json!({ "username": user, "password": "a good password", "roles": { tenant: "Admin" } })).await;
        let (token, _) = env
            .app
            .auth
            .sign_in(user, "a good password", "test")
            .await
            .unwrap();
        auth.insert(tenant, format!("Bearer {token}"));
    }
    let as_ = |tenant: &str| auth[tenant].clone();
    let call = |tenant: &'static str, method: Method, path: String, body: Option<Value>| {
        let (s, who) = (&s, as_(tenant));
        async move {
            let (status, text) = s
                .send(Some(&who), None, method.clone(), &path, body.as_ref())
                .await;
            assert!(
                status.is_success(),
                "{method} {path} as {tenant}'s admin: {status} {text}"
            );
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
        }
    };
    for (tenant, value) in [(a, "from A"), (B, "from B")] {
        call(
            tenant,
            Method::POST,
            "/api/v1/variables".into(),
            Some(json!({ "key": "k", "value": value })),
        )
        .await;
        call(
            tenant,
            Method::POST,
            "/api/v1/connections".into(),
            Some(json!({ "conn_id": format!("conn_{tenant}"), "conn_type": "http" })),
        )
        .await;
        call(
            tenant,
            Method::POST,
            "/api/v1/pools".into(),
            Some(json!({ "name": format!("pool_{tenant}"), "slots": 1 })),
        )
        .await;
        call(
            tenant,
            Method::POST,
            "/api/v1/dags/etl/dagRuns".into(),
            Some(json!({ "dag_run_id": "same" })),
        )
        .await;
    }
    for tenant in [a, B] {
        s.wait_run(tenant, "etl", "same").await;
    }
    for (tenant, other) in [(a, B), (B, a)] {
        let xcom = call(
            tenant,
            Method::GET,
            "/api/v1/dags/etl/dagRuns/same/taskInstances/a/xcomEntries/return_value".into(),
            None,
        )
        .await;
        let mine = if tenant == a { "from A" } else { "from B" };
        assert!(xcom["value"].to_string().contains(mine), "{tenant}: {xcom}");
        for list in [
            "/api/v1/dags",
            "/api/v1/dags/~/dagRuns",
            "/api/v1/variables",
            "/api/v1/connections",
            "/api/v1/pools",
            "/api/v1/eventLogs",
            "/api/v1/dags/~/dagRuns/~/taskInstances",
            "/api/v1/members",
            "/api/v1/tokens",
            "/api/v1/me",
        ] {
            let v = call(tenant, Method::GET, list.into(), None)
                .await
                .to_string();
            for theirs in [
                format!("conn_{other}"),
                format!("pool_{other}"),
                if other == a {
                    "from A".into()
                } else {
                    "from B".into()
                },
                if other == a {
                    "ada".into()
                } else {
                    "bob".into()
                },
            ] {
                assert!(
                    !v.contains(&theirs),
                    "{list} as {tenant}'s admin shows {theirs}: {v}"
                );
            }
        }
        // Naming the other tenant is "no such tenant".
        let (status, _) = s
            .send(
                Some(&as_(tenant)),
                Some(other),
                Method::GET,
                "/api/v1/dags",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
