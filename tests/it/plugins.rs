//! Loading plugins into the host: a component is checked against the operator world,
//! stored content-addressed, and usable at once; two versions of one operator serve
//! different DAGs side by side, pinned by version or digest.

use aileron_model::DagRunState;
use aileron_tests::{Env, guests};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_versions_side_by_side_pinned_by_version_and_digest() {
    let env = Env::builder()
        .plugin(guests::VERSIONED_V1)
        .plugin(guests::VERSIONED_V2)
        .start()
        .await;
    let v1 = env
        .app
        .sandbox
        .registry()
        .resolve("versioned@1.0.0")
        .unwrap();
    let latest = env.app.sandbox.registry().resolve("versioned").unwrap();
    assert_eq!(
        latest.version, "2.0.0",
        "a bare name picks the highest version"
    );
    let dag = format!(
        r#"
[tasks.old]
operator = "versioned@1.0.0"
[tasks.new]
operator = "versioned@2.0.0"
[tasks.by_digest]
operator = "versioned@{}"
[tasks.latest]
operator = "versioned"
"#,
        v1.digest
    );
    env.put_dag("versions.toml", &dag).await;
    let o = env.run("versions", serde_json::json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success);
    let rv = |task: &str| {
        env.app
            .metastore
            .xcom("default", "versions", &o.run.run_id, task, "return_value")
            .unwrap()[0]
            .1
            .clone()
    };
    assert_eq!(rv("old"), "\"1.0.0\"");
    assert_eq!(rv("new"), "\"2.0.0\"");
    assert_eq!(rv("by_digest"), "\"1.0.0\"");
    assert_eq!(rv("latest"), "\"2.0.0\"");
    assert_eq!(o.ti("old").plugin_digest, v1.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_is_not_an_operator_is_refused_clearly() {
    let env = Env::builder().start().await;
    let bytes = std::fs::read(guests::NOT_AN_OPERATOR).unwrap();
    let err = env
        .app
        .sandbox
        .registry()
        .add(&bytes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("aileron:operator") || err.contains("execute"),
        "{err}"
    );
    let junk = env
        .app
        .sandbox
        .registry()
        .add(b"not wasm at all")
        .unwrap_err()
        .to_string();
    assert!(!junk.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_added_while_running_fixes_the_dag_that_needed_it() {
    let dag = "[tasks.v]\noperator = \"versioned@1.0.0\"\n";
    let env = Env::builder()
        .dag("needs_v1.toml", dag)
        .watching()
        .start()
        .await;
    assert_eq!(
        env.import_errors().len(),
        1,
        "unknown operator until the plugin arrives"
    );
    // What `aileron plugins add FILE.wasm` does, while the host runs.
    let bytes = std::fs::read(guests::VERSIONED_V1).unwrap();
    let meta = env
        .app
        .sandbox
        .registry()
        .install(&env.home.join("plugins"), &bytes)
        .unwrap();
    assert!(
        env.home
            .join("plugins/store")
            .join(format!(
                "sha256-{}.wasm",
                meta.digest.trim_start_matches("sha256:")
            ))
            .exists(),
        "stored content-addressed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !env.import_errors().is_empty() {
        assert!(
            Instant::now() < deadline,
            "DAG still broken: {:?}",
            env.import_errors()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let o = env.run("needs_v1", serde_json::json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_claiming_a_standard_name_never_runs_in_its_place() {
    let dag = "[tasks.say]\noperator = \"echo\"\nparams = { message = \"standard\" }\n";
    let env = Env::builder()
        .plugin(guests::IMPOSTOR_ECHO)
        .dag("say.toml", dag)
        .start()
        .await;
    let registry = env.app.sandbox.registry();
    // The drop-in is refused with the reason, not registered.
    let rejected = registry.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0]
            .error
            .contains("operator name `echo` is reserved for the standard operator"),
        "{}",
        rejected[0].error
    );
    // Installing it by hand (`aileron plugins add`) is refused the same way.
    let bytes = std::fs::read(guests::IMPOSTOR_ECHO).unwrap();
    let err = registry
        .install(&env.home.join("plugins"), &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("give echo@9.9.9 a name of its own"), "{err}");
    let echo = registry.resolve("echo").unwrap();
    assert!(echo.builtin && echo.version != "9.9.9", "{echo:?}");
    // The DAG runs the standard echo.
    let o = env.run("say", serde_json::json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success);
    assert_eq!(o.ti("say").plugin_digest, echo.digest);
    let rv = env
        .app
        .metastore
        .xcom("default", "say", &o.run.run_id, "say", "return_value")
        .unwrap();
    assert_eq!(rv[0].1, "\"standard\"");
}

/// Waits (real time: the DAG processor works on its own threads) for `ready`.
async fn until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_operator_serves_that_tenant_alone() {
    use aileron_model::TenantId;
    use aileron_sandbox::OperatorScope;
    let uses = "[tasks.v]\noperator = \"versioned\"\n";
    let env = Env::builder()
        .dag("team_a/uses.toml", uses)
        .dag("team_b/uses.toml", uses)
        .watching()
        .start()
        .await;
    let registry = env.app.sandbox.registry();
    let team_a = OperatorScope::Tenant(TenantId::new("team_a").unwrap());
    let team_b = OperatorScope::Tenant(TenantId::new("team_b").unwrap());
    // What `aileron plugins add FILE.wasm --tenant team_a` does, while the host runs.
    let bytes = std::fs::read(guests::VERSIONED_V1).unwrap();
    let plugins = env.home.join("plugins");
    let meta = registry.install_to(&plugins, &team_a, &bytes).unwrap();
    let hex = meta.digest.trim_start_matches("sha256:");
    let stored = plugins.join(format!("team_a/store/sha256-{hex}.wasm"));
    assert!(stored.exists(), "stored in the tenant's own store");
    assert!(!plugins.join(format!("store/sha256-{hex}.wasm")).exists());

    // team_a's DAG now imports against it; team_b's still names an unknown
    // operator, and the message lists nothing of team_a's.
    let metastore = &env.app.metastore;
    until("team_a's DAG", || metastore.dag("team_a", "uses").unwrap()).await;
    let errors = metastore.tenant_import_errors("team_b").unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("unknown operator `versioned`"),
        "{}",
        errors[0].message
    );
    assert!(metastore.dag("team_b", "uses").unwrap().is_none());
    // Naming the digest does not reach it either.
    let by_digest = format!("[tasks.v]\noperator = \"versioned@{}\"\n", meta.digest);
    std::fs::write(env.dags.join("team_b/by_digest.toml"), by_digest).unwrap();
    let message = until("team_b's by-digest import error", || {
        metastore
            .tenant_import_errors("team_b")
            .unwrap()
            .into_iter()
            .find(|e| e.filename == "team_b/by_digest.toml")
            .map(|e| e.message)
    })
    .await;
    assert!(
        message.contains("unknown operator `versioned`"),
        "{message}"
    );

    // The listings: team_b and the global view do not hold it.
    let names = |viewer: Option<&OperatorScope>| -> Vec<(Option<String>, String)> {
        registry
            .list_scoped(viewer)
            .into_iter()
            .filter(|(_, m)| m.name == "versioned")
            .map(|(s, m)| (s.tenant().map(ToString::to_string), m.version))
            .collect()
    };
    assert_eq!(
        names(Some(&team_a)),
        [(Some("team_a".into()), "1.0.0".into())]
    );
    assert!(names(Some(&team_b)).is_empty());
    assert!(names(Some(&OperatorScope::Global)).is_empty());
    assert!(registry.resolve("versioned").is_err());

    // Published globally too (a platform admin promoting it): every tenant sees it.
    registry.install(&plugins, &bytes).unwrap();
    until("team_b's DAG", || metastore.dag("team_b", "uses").unwrap()).await;

    // Taken out of team_a: its store copy goes, the global one stays.
    registry
        .remove(&plugins, &team_a, "versioned", "1.0.0")
        .unwrap();
    assert!(!stored.exists());
    assert!(
        registry
            .resolve_exact(&team_a, "versioned", "1.0.0")
            .is_err()
    );
    assert_eq!(
        registry.resolve_in(&team_a, "versioned").unwrap().digest,
        meta.digest
    );
    let err = registry
        .remove(&plugins, &team_b, "versioned", "1.0.0")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none of that name in tenant `team_b`"),
        "{err}"
    );
}

/// One request to the API router as the platform admin acting in `tenant`, with
/// a raw body; the status and the JSON answer.
async fn api(
    env: &Env,
    method: axum::http::Method,
    uri: &str,
    tenant: &str,
    body: Vec<u8>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", aileron_tests::server::ADMIN_AUTH)
        .header("x-aileron-tenant", tenant)
        .header("content-type", "application/wasm")
        .body(axum::body::Body::from(body))
        .unwrap();
    let resp = crate::api::app(env).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, value)
}

/// A JSON request as the platform admin (in `default`).
async fn api_json(
    env: &Env,
    method: axum::http::Method,
    uri: &str,
    body: &str,
) -> (axum::http::StatusCode, serde_json::Value) {
    let (status, _, bytes) = crate::api::call_raw(env, method, uri, Some(body)).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_published_and_removed_over_the_api() {
    use axum::http::{Method, StatusCode};
    let uses = "[tasks.v]\noperator = \"versioned\"\n";
    let env = Env::builder()
        .dag("team_a/uses.toml", uses)
        .dag("team_b/uses.toml", uses)
        .start()
        .await;
    let metastore = &env.app.metastore;
    let v1 = std::fs::read(guests::VERSIONED_V1).unwrap();

    // team_a's Op publishes its build: the answer names the tenant, and the
    // tenant's DAG imports at once; team_b sees nothing of it.
    let (s, p) = api(&env, Method::POST, "/api/v1/plugins", "team_a", v1).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let hex = p["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    assert_eq!(
        (p["name"].as_str(), p["tenant"].as_str()),
        (Some("versioned"), Some("team_a"))
    );
    until("team_a's DAG", || metastore.dag("team_a", "uses").unwrap()).await;
    assert!(metastore.dag("team_b", "uses").unwrap().is_none());
    let listed = |v: &serde_json::Value| -> Vec<String> {
        v["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "versioned")
            .map(|p| p["version"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, b_list) = api(&env, Method::GET, "/api/v1/plugins", "team_b", vec![]).await;
    assert!(listed(&b_list).is_empty(), "{b_list}");

    // What is not an operator, or takes a standard name, is refused as such.
    let (s, p) = api(
        &env,
        Method::POST,
        "/api/v1/plugins",
        "team_a",
        b"not wasm".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{p}"
    );
    let impostor = std::fs::read(guests::IMPOSTOR_ECHO).unwrap();
    let (s, p) = api(&env, Method::POST, "/api/v1/plugins", "team_a", impostor).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("reserved"), "{p}");

    // Removal: another tenant cannot reach it (404, as for a name nobody has);
    // its own tenant cannot while a DAG runs it.
    let one = "/api/v1/plugins/versioned/1.0.0";
    let (s, from_b) = api(&env, Method::DELETE, one, "team_b", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{from_b}");
    let (s, p) = api(&env, Method::DELETE, one, "team_a", vec![]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("still run by uses"),
        "{p}"
    );
    std::fs::remove_file(env.dags.join("team_a/uses.toml")).unwrap();
    env.rescan().await;
    let (s, p) = api(&env, Method::DELETE, one, "team_a", vec![]).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{p}");
    assert!(
        !env.home
            .join(format!("plugins/team_a/store/sha256-{hex}.wasm"))
            .exists()
    );
    let (_, a_list) = api(&env, Method::GET, "/api/v1/plugins", "team_a", vec![]).await;
    assert!(listed(&a_list).is_empty(), "{a_list}");

    // Global: a platform admin's publish serves team_b's DAG, whose use then
    // keeps it from being removed; a standard operator is never removed.
    let v2 = std::fs::read(guests::VERSIONED_V2).unwrap();
    let (s, p) = api(&env, Method::POST, "/api/v1/platform/plugins", "team_a", v2).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert!(p["tenant"].is_null(), "{p}");
    until("team_b's DAG", || metastore.dag("team_b", "uses").unwrap()).await;
    let two = "/api/v1/platform/plugins/versioned/2.0.0";
    let (s, p) = api(&env, Method::DELETE, two, "team_a", vec![]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("team_b/uses"), "{p}");
    let echo = env.app.sandbox.registry().resolve("echo").unwrap();
    let uri = format!("/api/v1/platform/plugins/echo/{}", echo.version);
    let (s, p) = api(&env, Method::DELETE, &uri, "team_a", vec![]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("standard operator"),
        "{p}"
    );

    // A deleted tenant's operators go with it: the same name made again later
    // starts with none.
    let v1 = std::fs::read(guests::VERSIONED_V1).unwrap();
    let tenants = "/api/v1/tenants";
    let (s, p) = api_json(&env, Method::POST, tenants, r#"{"name": "team_c"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p) = api(&env, Method::POST, "/api/v1/plugins", "team_c", v1).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p) = api(
        &env,
        Method::DELETE,
        "/api/v1/tenants/team_c",
        "team_a",
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{p}");
    assert!(
        !env.home
            .join(format!("plugins/team_c/store/sha256-{hex}.wasm"))
            .exists()
    );
    let (s, p) = api_json(&env, Method::POST, tenants, r#"{"name": "team_c"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (_, c_list) = api(&env, Method::GET, "/api/v1/plugins", "team_c", vec![]).await;
    let own = c_list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["tenant"] == "team_c");
    assert_eq!(own.count(), 0, "{c_list}");

    // Each change is in the tenant's audit log, refused ones with their status.
    let events: Vec<(String, u16)> = metastore
        .audit_page(Some("team_a"), 0, 100)
        .unwrap()
        .0
        .into_iter()
        .filter(|e| e.event.contains("plugin"))
        .map(|e| (e.event, e.status))
        .collect();
    assert!(events.contains(&("post_plugin".into(), 201)), "{events:?}");
    assert!(
        events.contains(&("delete_plugin".into(), 409)),
        "{events:?}"
    );
}

/// A DAG whose run stays unfinished for a while, then runs `versioned@1.0.0`.
const SLOW_THEN_VERSIONED: &str = r#"
[tasks.wait]
operator = "sleep"
params = { seconds = 60 }
[tasks.v]
operator = "versioned@1.0.0"
upstream = ["wait"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_replaces_its_version_once_no_run_needs_the_old_build() {
    use axum::http::{Method, StatusCode};
    let env = Env::builder()
        .dag("team_a/uses.toml", SLOW_THEN_VERSIONED)
        .start()
        .await;
    let metastore = &env.app.metastore;
    let v1 = std::fs::read(guests::VERSIONED_V1).unwrap();
    let (s, p) = api(&env, Method::POST, "/api/v1/plugins", "team_a", v1).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let old = p["digest"].as_str().unwrap().to_owned();
    until("team_a's DAG", || metastore.dag("team_a", "uses").unwrap()).await;
    let scheduler = &env.app.scheduler;
    let mut updates = scheduler.subscribe();
    scheduler
        .trigger(
            "team_a",
            "uses",
            Some("r1".into()),
            None,
            Default::default(),
        )
        .await
        .unwrap();

    // A rebuild of the same source: same name and version, other bytes.
    let rebuild = guests::rebuilt(guests::VERSIONED_V1, "second build");
    let (s, p) = api(
        &env,
        Method::POST,
        "/api/v1/plugins",
        "team_a",
        rebuild.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("new version"), "{p}");
    // Replacing is refused while run r1, made with the old build, is unfinished.
    let replace = "/api/v1/plugins?replace=true";
    let (s, p) = api(&env, Method::POST, replace, "team_a", rebuild.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unfinished runs: uses/r1"),
        "{p}"
    );
    let (s, p) = api(
        &env,
        Method::POST,
        "/api/v1/plugins?replace=yes",
        "team_a",
        rebuild.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");

    // Once r1 is over, the rebuild takes the version's place: the old build's
    // file and compiled form are gone, and the DAG runs the new one.
    scheduler
        .set_run_state("team_a", "uses", "r1", DagRunState::Failed)
        .await
        .unwrap();
    env.wait_run_in(&mut updates, "team_a", "uses", "r1").await;
    let (s, p) = api(&env, Method::POST, replace, "team_a", rebuild).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let new = p["digest"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let store = env.home.join("plugins/team_a/store");
    assert!(!store.join(format!("sha256-{}.wasm", hex(&old))).exists());
    assert!(store.join(format!("sha256-{}.wasm", hex(&new))).exists());
    let compiled = |d: &str| {
        std::fs::read_dir(aileron_tests::cache_dir())
            .unwrap()
            .flatten()
            .any(|sub| sub.path().join(format!("{}.cwasm", hex(d))).exists())
    };
    assert!(!compiled(&old), "the old build's compiled form stays");
    assert!(compiled(&new));
    let runs_new = || {
        let dag = metastore.dag("team_a", "uses").unwrap()?;
        let spec = metastore
            .dag_version("team_a", "uses", &dag.version)
            .unwrap()?;
        spec.runs_component(&new).then_some(())
    };
    until("the DAG to run the rebuild", runs_new).await;
    let (_, list) = api(&env, Method::GET, "/api/v1/plugins", "team_a", vec![]).await;
    let versioned: Vec<&serde_json::Value> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "versioned")
        .collect();
    assert_eq!(versioned.len(), 1, "{list}");
    assert_eq!(versioned[0]["digest"], new.as_str());

    // A version another scope publishes is not the tenant's to replace: the
    // global build stays, and the tenant is told of the conflict.
    let v2 = std::fs::read(guests::VERSIONED_V2).unwrap();
    let (s, global) = api(&env, Method::POST, "/api/v1/platform/plugins", "team_a", v2).await;
    assert_eq!(s, StatusCode::CREATED, "{global}");
    let v2_rebuild = guests::rebuilt(guests::VERSIONED_V2, "team_a's");
    let (s, p) = api(&env, Method::POST, replace, "team_a", v2_rebuild).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    let still = env
        .app
        .sandbox
        .registry()
        .resolve("versioned@2.0.0")
        .unwrap();
    assert_eq!(still.digest, global["digest"].as_str().unwrap());
}
