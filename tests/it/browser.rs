//! End-to-end in a real headless Chromium against a real `aileron standalone`:
//! open the DAGs page, trigger a run from the form, watch the graph turn green
//! without a reload, open a task's log and XCom, clear the task and see it run
//! again, mark one failed through the dry-run dialog, read the DAG's code and
//! details, add a host-held connection and expose it, add a pool and resize it.
//! Star the DAG as a favorite. The UI speaks `/api/v2` only.
//! Each main view is saved as a screenshot under `target/screenshots/`; with
//! `AILERON_UPDATE_SCREENSHOTS=1` they also replace the README's in `docs/`.

use aileron::cli::client::seg;
use aileron_tests::browser::{Browser, shot};
use aileron_tests::server::{Server, free_port, get, home_with};

const DAG: &str = r#"
description = "End-to-end test DAG"
tags = ["e2e"]

[tasks.extract]
operator = "echo"
params = { message = "hello from e2e" }

[tasks.wait]
operator = "sleep"
upstream = ["extract"]
params = { seconds = 2 }

[tasks.done]
operator = "echo"
upstream = ["wait"]
params = { message = "all done" }
"#;

/// Whether a request path matches an OpenAPI path template (`{x}` one segment).
fn same_path(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// A JavaScript expression: the state a graph node shows.
fn node_state(task: &str) -> String {
    format!(
        "document.querySelector('[data-testid=\"graph-node-{task}\"]')?.getAttribute('data-state')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_watch_the_graph_read_a_log_and_clear_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    home_with(dir.path(), &[("e2e.toml", DAG)]);
    let server = Server::start(dir.path(), free_port());
    let b = Browser::start().await;
    b.sign_in_as_admin(&server.root).await;
    // Keep every request's timing entry (the default keeps 250): the end of
    // the test checks what the page called.
    b.eval("performance.setResourceTimingBufferSize(100000); return true")
        .await;

    // The DAGs page lists the DAG.
    b.goto(&format!("{}/#/dags", server.root)).await;
    let row = b.find("[data-testid=\"dag-row-e2e\"]").await;
    assert!(b.text(&row).await.contains("e2e"));
    shot(&b, "dags").await;
    // Star it: a favorite of this user, which the Favorites filter shows.
    b.click(&b.find("[data-testid=\"favorite-e2e\"]").await)
        .await;
    b.find("[data-testid=\"favorite-e2e\"][aria-pressed=\"true\"]")
        .await;
    b.click(&b.find("[data-testid=\"filter-favorites\"]").await)
        .await;
    b.find("[data-testid=\"dag-row-e2e\"]").await;
    let mine = get(&format!("{}/api/v2/dags?is_favorite=true", server.root)).unwrap();
    assert_eq!(mine["dags"][0]["dag_id"], "e2e", "{mine}");

    // Trigger a run from the form.
    b.click(&b.find("[data-testid=\"trigger-button-e2e\"]").await)
        .await;
    b.find("[data-testid=\"trigger-form\"]").await;
    shot(&b, "trigger").await;
    b.click(&b.find("[data-testid=\"trigger-submit\"]").await)
        .await;

    // The graph of the new run turns green without a reload: a marker set on the
    // page now must still be there when every node is green.
    b.find("[data-testid=\"graph-node-done\"]").await;
    b.eval("window.__no_reload = true; return true").await;
    b.wait_for(
        "`wait` to be seen running",
        &format!("return {} === 'running'", node_state("wait")),
        20,
    )
    .await;
    b.wait_for(
        "every node to turn green",
        "return ['extract', 'wait', 'done'].every(t => document.querySelector(`[data-testid=\"graph-node-${t}\"]`)?.getAttribute('data-state') === 'success')",
        30,
    )
    .await;
    assert_eq!(
        b.eval("return window.__no_reload === true").await,
        true,
        "the page reloaded"
    );
    shot(&b, "graph").await;

    // Open a task's log.
    b.click(&b.find("[data-testid=\"graph-node-extract\"]").await)
        .await;
    b.find("[data-testid=\"ti-panel\"]").await;
    b.wait_for(
        "the log to show the message",
        "return (document.querySelector('[data-testid=\"log-content\"]')?.textContent || '').includes('hello from e2e')",
        20,
    )
    .await;
    shot(&b, "task_instance").await;
    // Its XCom, each value read on its own (Airflow 3 lists only the keys).
    b.wait_for(
        "the XCom value",
        "return (document.querySelector('[data-testid=\"xcom-return_value\"]')?.textContent || '').includes('hello from e2e')",
        20,
    )
    .await;
    // The try's metered CPU and peak memory, in its row.
    b.wait_for(
        "the try's usage",
        "return /^\\d+\\.\\d\\d s \\/ [\\d.]+ (KiB|MiB)$/.test(document.querySelector('[data-testid=\"try-usage-1\"]')?.textContent || '')",
        20,
    )
    .await;

    // Clear it and see it run again: try 2, green again.
    let runs = get(&format!("{}/dags/e2e/dagRuns", server.base)).unwrap();
    let run_id = runs["dag_runs"][0]["dag_run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.click(
        &b.find("[data-testid=\"ti-panel\"] [data-testid=\"clear-button\"]")
            .await,
    )
    .await;
    b.click(&b.find("[data-testid=\"confirm-button\"]").await)
        .await;
    let ti_url = format!(
        "{}/dags/e2e/dagRuns/{}/taskInstances/extract",
        server.base,
        seg(&run_id)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ti = get(&ti_url).unwrap();
        if ti["try_number"] == 2 && ti["state"] == "success" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "extract did not run again: {ti}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.wait_for(
        "the cleared run to finish green again",
        "return ['extract', 'wait', 'done'].every(t => document.querySelector(`[data-testid=\"graph-node-${t}\"]`)?.getAttribute('data-state') === 'success')",
        30,
    )
    .await;

    // The Code tab shows the DAG file, the Details tab its tasks with the
    // upstream side of each edge.
    b.goto(&format!("{}/#/dags/e2e/code", server.root)).await;
    b.wait_for(
        "the DAG's source",
        "return (document.querySelector('[data-testid=\"dag-source\"]')?.textContent || '').includes('hello from e2e')",
        20,
    )
    .await;
    b.goto(&format!("{}/#/dags/e2e/details", server.root)).await;
    let tasks = b.text(&b.find("[data-testid=\"task-table\"]").await).await;
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with("wait") && l.contains("extract")),
        "{tasks}"
    );

    // The other main views render the run.
    b.goto(&format!("{}/#/dags/e2e/grid", server.root)).await;
    b.find(&format!(
        "[data-testid=\"ti-cell-{run_id}-done\"][data-state=\"success\"]"
    ))
    .await;
    shot(&b, "grid").await;
    b.goto(&format!(
        "{}/#/dags/e2e/gantt?run={}",
        server.root,
        seg(&run_id)
    ))
    .await;
    b.find("[data-testid=\"gantt\"]").await;
    shot(&b, "gantt").await;
    // The DAG list shows the run among the DAG's recent runs, from the list's
    // own answer (one request for every DAG and its latest runs).
    b.goto(&format!("{}/#/dags", server.root)).await;
    b.find(&format!(
        "[data-testid=\"recent-runs-e2e\"] [data-testid=\"run-dot-{run_id}\"][data-state=\"success\"]"
    ))
    .await;
    b.goto(&format!(
        "{}/#/dags/e2e/graph?run={}",
        server.root,
        seg(&run_id)
    ))
    .await;
    // Back on the graph, mark `done` failed: the dialog lists what the server's dry run says
    // will change, and confirming changes it.
    b.click(&b.find("[data-testid=\"graph-node-done\"]").await)
        .await;
    b.find("[data-testid=\"ti-panel\"][data-task=\"done\"]")
        .await;
    b.click(
        &b.find("[data-testid=\"ti-panel\"] [data-testid=\"mark-failed-button\"]")
            .await,
    )
    .await;
    b.find("[data-testid=\"mark-dialog\"] [data-testid=\"dry-run-done\"]")
        .await;
    assert!(
        b.try_find("[data-testid=\"mark-dialog\"] [data-testid=\"dry-run-wait\"]")
            .await
            .is_none(),
        "without downstream or upstream only `done` changes"
    );
    b.click(&b.find("[data-testid=\"confirm-button\"]").await)
        .await;
    b.wait_for(
        "`done` to show as failed",
        &format!("return {} === 'failed'", node_state("done")),
        20,
    )
    .await;

    // A connection added from the form is host-held; ticking `exposed` in its
    // edit form hands its password to operators.
    b.goto(&format!("{}/#/admin/connections", server.root))
        .await;
    b.click(&b.find("[data-testid=\"add-connection\"]").await)
        .await;
    b.type_into(
        &b.find("[data-testid=\"field-connection_id\"]").await,
        "crm",
    )
    .await;
    b.type_into(&b.find("[data-testid=\"field-conn_type\"]").await, "http")
        .await;
    b.type_into(&b.find("[data-testid=\"field-password\"]").await, "pw-4e1b")
        .await;
    b.click(&b.find("[data-testid=\"save-button\"]").await)
        .await;
    let secret = b.find("[data-testid=\"secret-crm\"]").await;
    assert_eq!(b.text(&secret).await, "host-held");
    b.click(&b.find("[data-testid=\"edit-crm\"]").await).await;
    b.click(&b.find("[data-testid=\"field-exposed\"]").await)
        .await;
    b.click(&b.find("[data-testid=\"save-button\"]").await)
        .await;
    b.wait_for(
        "the connection to show as exposed",
        "return document.querySelector('[data-testid=\"secret-crm\"]')?.textContent === 'exposed to operators'",
        10,
    )
    .await;
    let crm = get(&format!("{}/connections/crm", server.base)).unwrap();
    assert_eq!(crm["exposed"], true, "{crm}");

    // A pool added and then resized from its edit form.
    b.goto(&format!("{}/#/admin/pools", server.root)).await;
    b.click(&b.find("[data-testid=\"add-pool\"]").await).await;
    b.type_into(&b.find("[data-testid=\"field-name\"]").await, "etl")
        .await;
    b.type_into(&b.find("[data-testid=\"field-slots\"]").await, "2")
        .await;
    b.click(&b.find("[data-testid=\"save-button\"]").await)
        .await;
    b.click(&b.find("[data-testid=\"edit-etl\"]").await).await;
    b.type_into(&b.find("[data-testid=\"field-slots\"]").await, "5")
        .await;
    b.click(&b.find("[data-testid=\"save-button\"]").await)
        .await;
    b.wait_for(
        "the pool's new size",
        "return document.querySelector('[data-testid=\"pool-row-etl\"] td:nth-child(2)')?.textContent === '5'",
        10,
    )
    .await;

    b.goto(&format!("{}/#/plugins", server.root)).await;
    b.find("[data-testid=\"plugin-list\"]").await;
    shot(&b, "plugins").await;
    // Every request this page made went to /api/v2.
    // Every request the page made is an operation of /api/v2's own document.
    let called = b
        .eval("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(n => n.startsWith('/api/'))")
        .await;
    let called: Vec<String> = serde_json::from_value(called).unwrap();
    assert!(called.len() > 20, "{called:?}");
    let doc = get(&format!("{}/api/v2/openapi.json", server.root)).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in &called {
        let rest = path
            .strip_prefix("/api/v2")
            .unwrap_or_else(|| panic!("the UI called {path}"));
        assert!(
            paths.iter().any(|p| same_path(p, rest)),
            "{path} is not in /api/v2/openapi.json"
        );
    }
    b.quit().await;
}
