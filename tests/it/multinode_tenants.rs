//! Workers of one tenant, with real processes: each team's worker takes only its
//! own tenant's tries, with a worker token of that tenant and a Redis user that
//! may touch that tenant's streams alone (a Redis ACL, so the isolation does
//! not rest on the worker behaving); its token buys nothing of another tenant's
//! on the execution API and nothing at all on the REST API. A tenant's
//! `max_memory` holds for its tries on all workers together.

use aileron_tests::multinode::{DEADLINE, Redis, Scheduler, TestDir, Worker, wait_for};
use aileron_tests::server::{ADMIN_AUTH, raw};
use serde_json::{Value, json};

/// One request to the scheduler with `authorization`, acting in `tenant`; the
/// status and the JSON answer (`null` when there is none).
fn call(
    s: &Scheduler,
    authorization: &str,
    tenant: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Authorization: {authorization}\r\nX-Aileron-Tenant: {tenant}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        port = s.port,
    );
    let (status, text) = raw(s.port, &request);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn admin(s: &Scheduler, tenant: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (status, v) = call(s, ADMIN_AUTH, tenant, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path} in {tenant}: {status} {v}"
    );
    v
}

/// Four echo tasks, and one of the tenant's own operator for team_b.
fn dag(own_operator: bool) -> String {
    let mut dag = String::new();
    for i in 0..4 {
        dag.push_str(&format!(
            "[tasks.e{i}]\noperator = \"echo\"\nparams = {{ message = \"{i}\" }}\n"
        ));
    }
    if own_operator {
        dag.push_str("[tasks.own]\noperator = \"versioned\"\n");
    }
    dag
}

/// A Redis user that may use the keys of `tenant`'s streams and no other key.
fn redis_user(redis: &Redis, tenant: &str) -> String {
    let mut con = redis.con();
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(tenant)
        .arg("on")
        .arg(format!(">{tenant}-secret"))
        .arg("resetkeys")
        .arg(format!("~aileron:q:{tenant}/*"))
        .arg("+@all")
        .query(&mut con)
        .unwrap();
    format!("redis://{tenant}:{tenant}-secret@127.0.0.1:{}", redis.port)
}

#[test]
fn each_tenant_s_worker_runs_that_tenant_s_tries_alone() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[
        ("team_a/work.toml", &dag(false)),
        ("team_b/work.toml", &dag(true)),
    ]);
    // team_b's own operator, dropped into its plugins folder.
    std::fs::create_dir_all(home.join("plugins/team_b")).unwrap();
    std::fs::copy(
        aileron_tests::guests::VERSIONED_V1,
        home.join("plugins/team_b/versioned.wasm"),
    )
    .unwrap();
    let s = Scheduler::start(&t, &home, &redis.url, &[]);
    let mut tokens = Vec::new();
    for tenant in ["team_a", "team_b"] {
        admin(
            &s,
            "default",
            "POST",
            "/api/v1/tenants",
            Some(&json!({ "name": tenant })),
        );
        let made = admin(
            &s,
            tenant,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "worker", "worker": true })),
        );
        assert_eq!(made["worker"], true, "{made}");
        tokens.push(made["token"].as_str().unwrap().to_owned());
    }
    let (token_a, token_b) = (&tokens[0], &tokens[1]);
    let bearer = |t: &str| format!("Bearer {t}");

    // A worker token is not an API credential.
    let (status, v) = call(&s, &bearer(token_a), "team_a", "GET", "/api/v1/dags", None);
    assert_eq!(status, 401, "{v}");
    // A tenant's token registers for its tenant only.
    let register = json!({
        "name": "probe", "hostname": "h", "queues": ["default"], "slots": 1,
        "version": "0", "tenants": ["team_b"],
    });
    let path = "/execution/v1/workers/probe-00000001/register";
    let (status, v) = call(
        &s,
        &bearer(token_a),
        "team_a",
        "POST",
        path,
        Some(&register),
    );
    assert_eq!(status, 403, "{v}");
    // It downloads what its tenant may run, and team_b's own operator is, for
    // team_a's worker, a component that does not exist.
    let plugins = admin(&s, "team_b", "GET", "/api/v1/plugins", None);
    let own = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "versioned")
        .unwrap_or_else(|| panic!("team_b's operator is not listed: {plugins}"));
    let component = format!(
        "/execution/v1/components/{}",
        own["digest"].as_str().unwrap()
    );
    let (status, _) = call(&s, &bearer(token_a), "team_a", "GET", &component, None);
    assert_eq!(status, 404);
    let echo = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "echo")
        .unwrap();
    let (status, _) = call(
        &s,
        &bearer(token_a),
        "team_a",
        "GET",
        &format!(
            "/execution/v1/components/{}",
            echo["digest"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 200, "a global operator is every tenant's");

    // team_a's worker learns its tenant from its token; team_b's names it.
    let wa = Worker::start_as(
        &t,
        "wa",
        &redis_user(&redis, "team_a"),
        &s.root,
        token_a,
        &[],
    );
    let wb = Worker::start_as(
        &t,
        "wb",
        &redis_user(&redis, "team_b"),
        &s.root,
        token_b,
        &["--tenants", "team_b"],
    );
    for tenant in ["team_a", "team_b"] {
        wait_for(&format!("{tenant}'s DAG"), DEADLINE, || {
            let (status, _) = call(&s, ADMIN_AUTH, tenant, "GET", "/api/v1/dags/work", None);
            (status == 200).then_some(())
        });
        admin(
            &s,
            tenant,
            "POST",
            "/api/v1/dags/work/dagRuns",
            Some(&json!({ "dag_run_id": "r1" })),
        );
    }
    for (tenant, worker, tasks) in [("team_a", &wa, 4), ("team_b", &wb, 5)] {
        let state = wait_for(&format!("{tenant}'s run"), DEADLINE, || {
            let run = admin(&s, tenant, "GET", "/api/v1/dags/work/dagRuns/r1", None);
            let state = run["state"].as_str().unwrap_or_default().to_owned();
            (state == "success" || state == "failed").then_some(state)
        });
        let tis = admin(
            &s,
            tenant,
            "GET",
            "/api/v1/dags/work/dagRuns/r1/taskInstances",
            None,
        );
        assert_eq!(state, "success", "{tis}");
        let tis = tis["task_instances"].as_array().unwrap();
        assert_eq!(tis.len(), tasks);
        for ti in tis {
            assert!(
                worker.ran(&ti["hostname"]),
                "{tenant}'s try ran elsewhere: {ti}"
            );
        }
    }
    let workers = admin(&s, "default", "GET", "/api/v1/workers", None);
    let tenants_of = |name: &str| {
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| {
                w["worker_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name))
            })
            .map(|w| w["tenants"].clone())
    };
    assert_eq!(tenants_of("wa-"), Some(json!(["team_a"])), "{workers}");
    assert_eq!(tenants_of("wb-"), Some(json!(["team_b"])), "{workers}");
}

/// Two workers of 4 slots each run a tenant's 20 guests that each hold 15 MiB:
/// with `max_memory` 64 MiB, at most four hold their memory at once across
/// both workers (each worker checking the cap on its own would let eight), the
/// others are refused with the reason, and the ledger ends empty.
#[test]
fn a_tenant_s_max_memory_holds_across_workers() {
    let t = TestDir::new();
    let redis = Redis::start(&t);
    let home = t.scheduler_home(&[("team_a/hold.toml", &crate::tenant_quotas::holders(20))]);
    let s = Scheduler::start(&t, &home, &redis.url, &[]);
    admin(
        &s,
        "default",
        "POST",
        "/api/v1/tenants",
        Some(&json!({ "name": "team_a" })),
    );
    admin(
        &s,
        "team_a",
        "PATCH",
        "/api/v1/tenants/team_a",
        Some(&json!({ "max_memory": 64 << 20 })),
    );
    let workers = [
        Worker::start(&t, "w1", "default", 4, &redis.url, &s.root),
        Worker::start(&t, "w2", "default", 4, &redis.url, &s.root),
    ];
    wait_for("the DAG", DEADLINE, || {
        let (status, _) = call(&s, ADMIN_AUTH, "team_a", "GET", "/api/v1/dags/hold", None);
        (status == 200).then_some(())
    });
    admin(
        &s,
        "team_a",
        "POST",
        "/api/v1/dags/hold/dagRuns",
        Some(&json!({ "dag_run_id": "r1" })),
    );
    wait_for("the run", DEADLINE, || {
        let run = admin(&s, "team_a", "GET", "/api/v1/dags/hold/dagRuns/r1", None);
        matches!(run["state"].as_str(), Some("success" | "failed")).then_some(())
    });
    let tis = admin(
        &s,
        "team_a",
        "GET",
        "/api/v1/dags/hold/dagRuns/r1/taskInstances?limit=100",
        None,
    );
    let tis = tis["task_instances"].as_array().unwrap();
    assert_eq!(tis.len(), 20);
    let at = |ti: &Value, k: &str| ti[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for ti in tis {
        match ti["state"].as_str() {
            Some("success") => held.push((at(ti, "start_date"), at(ti, "end_date"), ti)),
            Some("failed") => {
                let tries = admin(
                    &s,
                    "team_a",
                    "GET",
                    &format!(
                        "/api/v1/dags/hold/dagRuns/r1/taskInstances/{}/tries",
                        ti["task_id"].as_str().unwrap()
                    ),
                    None,
                );
                let error = tries["task_instances"][0]["error"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    error.starts_with("tenant memory quota (max_memory) of 64 MiB exceeded"),
                    "{error}"
                );
                refused += 1;
            }
            other => panic!("{ti}: {other:?}"),
        }
    }
    let most_at_once = held
        .iter()
        .map(|(start, _, _)| {
            held.iter()
                .filter(|(s, e, _)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "{} held, {refused} refused, at most {most_at_once} at once",
        held.len()
    );
    assert!(
        refused >= 1 && (1..=4).contains(&most_at_once),
        "{refused} refused, {most_at_once} at once"
    );
    // Both workers ran guests that held their memory.
    for w in &workers {
        assert!(
            held.iter().any(|(_, _, ti)| w.ran(&ti["hostname"])),
            "worker {} held nothing",
            w.name
        );
    }
    // Every worker gave back what it held: the tenant's usage shows none.
    wait_for("the memory given back", DEADLINE, || {
        let usage = admin(&s, "team_a", "GET", "/api/v1/tenants/team_a/usage", None);
        (usage["memory_in_use_bytes"] == 0).then_some(())
    });
}
