//! WIT versions: components built against 0.1.0 and 0.2.0 still load and run, and
//! their `context` imports reach the current host code (host-held secrets too).

use super::*;

#[tokio::test]
async fn a_component_built_against_wit_0_1_0_loads_and_runs() {
    let sandbox = empty_sandbox();
    let bytes = std::fs::read(guests::OPERATOR_V0_1).unwrap();
    let meta = sandbox.registry().add(&bytes).unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.version.as_str()),
        ("legacy", "1.0.0")
    );
    assert_eq!(meta.world, "aileron:operator/operator@0.1.0");

    let req = TryRequest::new(
        "default",
        &meta.digest,
        task("old"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Success(Some(r#"{"task_id":"old"}"#.into())),
        "{log}"
    );
    // Its 0.1.0 `context` imports reach the same host code as 0.2.0's.
    assert!(log.contains("] INFO legacy operator, try 1\n"), "{log}");
    assert_eq!(report.xcom, [("seen".to_owned(), "true".to_owned())]);

    let req = TryRequest::new(
        "default",
        &meta.digest,
        task("old"),
        json!({"reschedule": true}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    assert_eq!(run(&sandbox, req).await.0.result, TryResult::Reschedule(7));
}

#[test]
fn hand_written_0_1_0_components_are_recognised_as_such() {
    let sandbox = empty_sandbox();
    let meta = sandbox
        .registry()
        .add(&simple_operator("old", "1.0.0"))
        .unwrap();
    assert_eq!(meta.world, "aileron:operator/operator@0.1.0");
}

/// Serves one host-held connection, as stored by the API.
struct OneConnection;

#[async_trait::async_trait]
impl HostServices for OneConnection {
    async fn xcom_pull(&self, _task_id: &str, _key: Option<&str>) -> Option<String> {
        None
    }
    async fn variable(&self, _key: &str) -> Option<String> {
        None
    }
    async fn connection(&self, conn_id: &str) -> Result<String, String> {
        match conn_id {
            "api" => Ok(json!({"conn_id": "api", "conn_type": "http", "host": "h",
                "login": "svc", "password": "pw-0c9e", "exposed": false})
            .to_string()),
            _ => Err(format!("connection `{conn_id}` is not defined")),
        }
    }
}

#[tokio::test]
async fn a_component_built_against_wit_0_2_0_loads_runs_and_gets_no_held_secret() {
    let sandbox = empty_sandbox();
    let bytes = std::fs::read(guests::OPERATOR_V0_2).unwrap();
    let meta = sandbox.registry().add(&bytes).unwrap();
    assert_eq!(meta.name, "legacy2");
    // Its exports alone would also fit 0.3.0: the imports tell the version.
    assert_eq!(meta.world, "aileron:operator/operator@0.2.0");

    let req = TryRequest::new(
        "default",
        &meta.digest,
        task("old"),
        json!("api"),
        Limits::default(),
        Arc::new(OneConnection),
    );
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::SkipDownstream { all: true },
        "{log}"
    );
    let (key, seen) = &report.xcom[0];
    assert_eq!(key, "connection");
    let seen: serde_json::Value = serde_json::from_str(seen).unwrap();
    assert_eq!(seen["password"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["host_held"], true);
    assert_eq!(seen["login"], "svc");
}
