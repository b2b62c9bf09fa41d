//! Backfills in a real headless Chromium against a real `aileron standalone`: the
//! Backfill dialog's dry-run preview, starting one, its progress in the Backfills
//! tab until complete, the runs marked as backfill runs in the grid, and a run's
//! callbacks with their log in the run panel.

use aileron::cli::client::seg;
use aileron_tests::browser::{Browser, shot};
use aileron_tests::server::{Server, free_port, home_with};

const DAILY: &str = r#"
schedule = "@daily"
start_date = "2025-01-01"
on_success = { operator = "echo", params = { message = "callback for {{ run_id }}" } }

[tasks.extract]
operator = "echo"
params = { message = "day {{ ds }}" }

[tasks.wait]
operator = "sleep"
upstream = ["extract"]
params = { seconds = 0.5 }
"#;

/// Sets a form field's value as a user would and fires the event the dialog
/// listens to (`date` inputs take no typed text in WebDriver portably).
fn set_field(testid: &str, value: &str, event: &str) -> String {
    format!(
        "const e = document.querySelector('[data-testid=\"{testid}\"]'); e.value = '{value}'; \
         e.dispatchEvent(new Event('{event}', {{bubbles: true}})); return true"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_from_the_dag_page_and_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    home_with(dir.path(), &[("daily.toml", DAILY)]);
    let server = Server::start(dir.path(), free_port());
    let b = Browser::start().await;
    b.sign_in_as_admin(&server.root).await;

    b.goto(&format!("{}/#/dags/daily/grid", server.root)).await;
    b.click(&b.find("[data-testid=\"backfill-button\"]").await)
        .await;
    b.find("[data-testid=\"backfill-dialog\"]").await;
    b.eval(&set_field("backfill-from", "2025-03-01", "change"))
        .await;
    b.eval(&set_field("backfill-to", "2025-03-03", "change"))
        .await;
    b.eval(&set_field("backfill-max-active-runs", "2", "input"))
        .await;
    // The preview follows the fields: three dates, all to create.
    b.wait_for(
        "the preview of the three dates",
        "const rows = document.querySelectorAll('[data-testid^=\"backfill-date-\"]'); \
         return rows.length === 3 && [...rows].every(r => r.dataset.action === 'create') \
           && rows[0].dataset.testid.startsWith('backfill-date-2025-03-01')",
        20,
    )
    .await;
    let summary = b
        .text(&b.find("[data-testid=\"backfill-preview-summary\"]").await)
        .await;
    assert!(summary.contains("3 to create"), "{summary}");
    b.click(&b.find("[data-testid=\"confirm-button\"]").await)
        .await;

    // The Backfills tab shows it, and its progress bar fills up.
    b.find("[data-testid=\"backfill-table\"]").await;
    assert!(
        b.current_url().await.ends_with("#/dags/daily/backfills"),
        "{}",
        b.current_url().await
    );
    b.wait_for(
        "the backfill to complete",
        "return document.querySelector('[data-testid=\"backfill-state-1\"]')?.dataset.state === 'completed'",
        60,
    )
    .await;
    let bar = "[data-testid=\"backfill-progress-1\"]";
    assert_eq!(
        b.eval(&format!(
            "return document.querySelector('{bar}').getAttribute('aria-valuenow')"
        ))
        .await,
        "3"
    );
    assert!(
        b.try_find("[data-testid=\"backfill-pause-1\"]")
            .await
            .is_none(),
        "a complete backfill has no actions"
    );
    shot(&b, "backfills").await;

    // The grid marks the runs as backfill runs with their DAG version; the run
    // panel links the backfill and lists the run's callback with its log.
    let run_id = "backfill__2025-03-01T00:00:00+00:00";
    b.goto(&format!("{}/#/dags/daily/grid", server.root)).await;
    let header = format!("[data-testid=\"run-header-{run_id}\"]");
    b.find(&format!("{header}[data-run-type=\"backfill\"]"))
        .await;
    let version = b
        .eval(&format!(
            "return document.querySelector('{}').dataset.dagVersion",
            header.replace('\'', "\\'")
        ))
        .await;
    assert!(version.as_str().is_some_and(|v| v.len() >= 12), "{version}");
    b.goto(&format!(
        "{}/#/dags/daily/grid?run={}&panel=run",
        server.root,
        seg(run_id)
    ))
    .await;
    b.find("[data-testid=\"run-panel-backfill\"]").await;
    let shown = b
        .text(&b.find("[data-testid=\"run-panel-dag-version\"]").await)
        .await;
    assert_eq!(shown, version.as_str().unwrap()[..12]);
    b.wait_for(
        "the run's callback to be listed as a success",
        "return document.querySelector('[data-testid=\"callback-state-0\"]')?.dataset.state === 'success'",
        30,
    )
    .await;
    let log = b
        .eval("return document.querySelector('[data-testid=\"callback-log-0\"]').textContent")
        .await;
    assert!(
        log.as_str()
            .unwrap()
            .contains(&format!("callback for {run_id}")),
        "{log}"
    );
    shot(&b, "run_callbacks").await;
    b.quit().await;
}
