//! Two tenants in a real headless Chromium against a real `aileron standalone`:
//! both have a DAG with the same id. A Viewer of one and a User of the other each
//! see only their own tenant in the switcher, only its DAGs and only its audit
//! log; the Viewer's trigger and pause controls are disabled, the User's work;
//! neither is offered the platform page. The platform admin then lists both
//! tenants and their users, creates and deletes a tenant from the page, and reads
//! the platform's audit log.

use aileron_tests::browser::{Browser, shot};
use aileron_tests::server::{ADMIN_AUTH, Server, free_port, home_with};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const A: &str = "team_a";
const B: &str = "team_b";

/// The DAG both tenants have (`report`), told apart by its description.
fn report(team: &str) -> String {
    format!(
        r#"
description = "{team} report"

[tasks.hello]
operator = "echo"
params = {{ message = "hello from {team}" }}
"#
    )
}

const ONLY: &str = r#"
[tasks.hello]
operator = "echo"
params = { message = "hi" }
"#;

/// One API call as the platform admin (HTTP Basic), acting in `tenant` if given;
/// asserts a 2xx answer and returns its body.
async fn admin(
    http: &reqwest::Client,
    base: &str,
    tenant: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http
        .request(method.clone(), format!("{base}{path}"))
        .header("authorization", ADMIN_AUTH);
    if let Some(t) = tenant {
        req = req.header("x-aileron-tenant", t);
    }
    if let Some(b) = &body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{method} {path} in {tenant:?}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A JavaScript expression: the values of the tenant switcher's options.
const SWITCHER: &str = "return [...document.querySelectorAll('[data-testid=\"tenant-switcher\"] option')].map(o => o.value)";

/// A JavaScript expression: whether the top bar's link `testid` is hidden.
fn nav_hidden(testid: &str) -> String {
    format!("return document.querySelector('[data-testid=\"{testid}\"]').hidden")
}

/// A JavaScript expression: the audit rows shown, as
/// `[tenant, owner, event, path]`.
const AUDIT_ROWS: &str = "return [...document.querySelectorAll('[data-testid^=\"audit-row-\"]')].map(r => \
     [r.dataset.tenant, r.dataset.owner, r.dataset.event, r.querySelector('[data-testid^=\"audit-path-\"]').textContent])";

async fn audit_rows(b: &Browser) -> Vec<[String; 4]> {
    serde_json::from_value(b.eval(AUDIT_ROWS).await).expect("audit rows")
}

/// Clicks the top bar's sign-out and waits for the sign-in page it reloads to.
async fn sign_out(b: &Browser) {
    b.click(&b.find("[data-testid=\"sign-out\"]").await).await;
    b.find("[data-testid=\"login-form\"]").await;
}

/// Checks what a member of `team` (and nothing else) sees: the switcher, the nav,
/// the DAGs with the shared id, and the audit log.
async fn sees_only(b: &Browser, root: &str, team: &str, other: &str, user: &str, role: &str) {
    assert_eq!(
        b.text(&b.find("[data-testid=\"whoami\"]").await).await,
        user
    );
    assert_eq!(
        b.text(&b.find("[data-testid=\"my-role\"]").await).await,
        role
    );
    assert_eq!(b.eval(SWITCHER).await, json!([team]), "{user}'s tenants");
    assert_eq!(b.eval(&nav_hidden("nav-tenants")).await, true);
    assert_eq!(b.eval(&nav_hidden("nav-members")).await, true);
    assert_eq!(b.eval(&nav_hidden("nav-audit")).await, false);

    // Its own `report` and its own second DAG, never the other tenant's.
    b.goto(&format!("{root}/#/dags")).await;
    let row = b.find("[data-testid=\"dag-row-report\"]").await;
    assert!(
        b.text(&row).await.contains(&format!("{team} report")),
        "{user} sees another tenant's report"
    );
    b.find(&format!("[data-testid=\"dag-row-only_{team}\"]"))
        .await;
    assert_eq!(
        b.eval("return document.querySelectorAll('[data-testid^=\"dag-row-\"]').length")
            .await,
        2
    );
    assert!(
        b.try_find(&format!("[data-testid=\"dag-row-only_{other}\"]"))
            .await
            .is_none()
    );
    let text = b.eval("return document.body.innerText").await;
    assert!(
        !text.as_str().unwrap().contains(other),
        "{user} sees the name of {other}"
    );

    // The audit log: its tenant's records only, among them the admin granting
    // this user a role.
    b.click(&b.find("[data-testid=\"nav-audit\"]").await).await;
    b.find("[data-testid=\"audit-table\"]").await;
    let rows = audit_rows(b).await;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r[0] == team),
        "{user} sees another tenant's records: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[1] == "admin"
            && r[2] == "put_member"
            && r[3].ends_with(&format!("/members/{user}"))),
        "no record of {user}'s role: {rows:?}"
    );
    // Its own usage page, with its chart of the last hour.
    b.click(&b.find("[data-testid=\"nav-usage\"]").await).await;
    b.find("[data-testid=\"usage-chart\"]").await;
    assert_eq!(
        b.eval("return document.querySelector('[data-testid=\"usage-page\"] h1').innerText")
            .await,
        json!(format!("Usage of {team}"))
    );
    b.find("[data-testid=\"usage-tries\"]").await;
    b.goto(&format!("{root}/#/audit")).await;
    b.find("[data-testid=\"audit-table\"]").await;
    // Only platform admins may switch to the platform's log.
    assert!(
        b.try_find("[data-testid=\"audit-scope-platform\"]")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_only_its_own_dags_and_audit_log_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    home_with(dir.path(), &[]);
    let server = Server::start(dir.path(), free_port());
    let http = reqwest::Client::new();
    let base = server.base.as_str();

    // The platform admin makes the tenants, the users and their roles.
    for team in [A, B] {
        admin(
            &http,
            base,
            None,
            Method::POST,
            "/tenants",
            Some(json!({ "name": team })),
        )
        .await;
    }
    for (user, team, role) in [("alice", A, "Viewer"), ("bob", B, "User")] {
        admin(
            &http,
            base,
            None,
            Method::POST,
            "/users",
            Some(json!({ "username": user, "password": format!("{user} password") })),
        )
        .await;
        admin(
            &http,
            base,
            Some(team),
            Method::PUT,
            &format!("/members/{user}"),
            Some(json!({ "role": role })),
        )
        .await;
    }
    // Then the tenants' DAG files; the server's watcher takes them in.
    for team in [A, B] {
        let folder = dir.path().join("dags").join(team);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("report.toml"), report(team)).unwrap();
        std::fs::write(folder.join(format!("only_{team}.toml")), ONLY).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for team in [A, B] {
        loop {
            let dags = admin(&http, base, Some(team), Method::GET, "/dags", None).await;
            if dags["total_entries"] == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{team}'s DAGs not taken in: {dags}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let b = Browser::start().await;
    let root = server.root.as_str();

    // alice, a Viewer of team_a: reads, but may not trigger or pause.
    b.sign_in(root, "alice", "alice password").await;
    sees_only(&b, root, A, B, "alice", "Viewer").await;
    b.goto(&format!("{root}/#/dags")).await;
    b.find("[data-testid=\"dag-row-report\"]").await;
    assert_eq!(
        b.eval(
            "const t = document.querySelector('[data-testid=\"trigger-button-report\"]'); \
             const p = document.querySelector('[data-testid=\"pause-toggle-report\"]'); \
             return t.getAttribute('aria-disabled') === 'true' && !t.hasAttribute('href') && p.disabled"
        )
        .await,
        true,
        "alice's trigger and pause controls are not disabled"
    );
    b.goto(&format!("{root}/#/dags/report/grid")).await;
    let trigger = b.find("[data-testid=\"trigger-button\"]").await;
    assert_eq!(
        b.eval("return document.querySelector('[data-testid=\"trigger-button\"]').getAttribute('aria-disabled')")
            .await,
        "true"
    );
    // Clicking the disabled link goes nowhere.
    b.click(&trigger).await;
    assert!(!b.current_url().await.contains("/trigger"));
    shot(&b, "tenant_viewer").await;
    // The platform page is not offered, and the server refuses it anyway.
    b.goto(&format!("{root}/#/tenants")).await;
    b.find("[data-testid=\"tenants-page\"] [data-testid=\"error\"]")
        .await;
    sign_out(&b).await;

    // bob, a User of team_b: sees his own `report` and may trigger it.
    b.sign_in(root, "bob", "bob password").await;
    sees_only(&b, root, B, A, "bob", "User").await;
    b.goto(&format!("{root}/#/dags")).await;
    let trigger = b.find("[data-testid=\"trigger-button-report\"]").await;
    assert_eq!(
        b.eval(
            "const t = document.querySelector('[data-testid=\"trigger-button-report\"]'); \
             const p = document.querySelector('[data-testid=\"pause-toggle-report\"]'); \
             return t.getAttribute('aria-disabled') === null && t.getAttribute('href') === '#/dags/report/trigger' && !p.disabled"
        )
        .await,
        true,
        "bob's trigger and pause controls are disabled"
    );
    b.click(&trigger).await;
    b.click(&b.find("[data-testid=\"trigger-submit\"]").await)
        .await;
    b.find("[data-testid=\"graph-node-hello\"]").await;
    // His trigger is in his tenant's audit log, under the operation the UI
    // called (Airflow 3's `trigger_dag_run`).
    b.goto(&format!("{root}/#/audit")).await;
    b.find("[data-testid=\"audit-table\"]").await;
    b.wait_for(
        "bob's trigger in the audit log",
        "return [...document.querySelectorAll('[data-testid^=\"audit-row-\"]')].some(r => \
           r.dataset.owner === 'bob' && r.dataset.event === 'trigger_dag_run' && r.dataset.outcome === 'success')",
        20,
    )
    .await;
    assert!(audit_rows(&b).await.iter().all(|r| r[0] == B));
    sign_out(&b).await;

    // The platform admin: every tenant in the switcher and on the platform page.
    b.sign_in_as_admin(root).await;
    let tenants = b.eval(SWITCHER).await;
    for team in [A, B] {
        assert!(
            tenants.as_array().unwrap().contains(&json!(team)),
            "{tenants}"
        );
    }
    assert_eq!(b.eval(&nav_hidden("nav-tenants")).await, false);
    b.click(&b.find("[data-testid=\"nav-tenants\"]").await)
        .await;
    for team in [A, B] {
        b.find(&format!("[data-testid=\"tenant-row-{team}\"]"))
            .await;
    }
    let alice = b.find("[data-testid=\"user-role-alice-team_a\"]").await;
    assert_eq!(b.text(&alice).await, "team_a: Viewer");
    b.find("[data-testid=\"user-role-bob-team_b\"]").await;
    shot(&b, "tenants").await;

    // A tenant made and deleted from the page; the switcher follows.
    b.click(&b.find("[data-testid=\"add-tenant\"]").await).await;
    b.type_into(
        &b.find("[data-testid=\"tenant-form\"] [data-testid=\"field-name\"]")
            .await,
        "team_c",
    )
    .await;
    b.click(
        &b.find("[data-testid=\"tenant-form\"] [data-testid=\"save-button\"]")
            .await,
    )
    .await;
    b.find("[data-testid=\"tenant-row-team_c\"]").await;
    b.find("[data-testid=\"tenant-option-team_c\"]").await;
    b.click(&b.find("[data-testid=\"delete-tenant-team_c\"]").await)
        .await;
    b.click(
        &b.find("[data-testid=\"delete-tenant-dialog\"] [data-testid=\"confirm-button\"]")
            .await,
    )
    .await;
    b.wait_for(
        "team_c to leave the page",
        "return !document.querySelector('[data-testid=\"tenant-row-team_c\"]') \
           && !document.querySelector('[data-testid=\"tenant-option-team_c\"]')",
        20,
    )
    .await;

    // The platform's audit log has the tenants' creation.
    b.goto(&format!("{root}/#/audit")).await;
    b.click(&b.find("[data-testid=\"audit-scope-platform\"]").await)
        .await;
    b.find("[data-testid=\"audit-table\"][data-scope=\"platform\"]")
        .await;
    b.wait_for(
        "the tenants' creation in the platform log",
        "return [...document.querySelectorAll('[data-testid^=\"audit-row-\"]')].filter(r => \
           r.dataset.event === 'post_tenant' && r.dataset.owner === 'admin').length >= 3",
        20,
    )
    .await;
    shot(&b, "audit").await;
    b.quit().await;
}
