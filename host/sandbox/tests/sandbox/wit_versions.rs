//! WIT versions: components built against 0.1.0 still load and run.

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
