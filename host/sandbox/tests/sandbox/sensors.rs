//! Short-circuit and sensors (WIT 0.2.0 outcomes).

use super::*;

#[tokio::test]
async fn short_circuit_skips_downstream_through_wit_0_2_0() {
    let sandbox = shared();
    let outcome = |params: serde_json::Value| async move {
        let (report, log) = run(
            sandbox,
            request(sandbox, "short_circuit", params, Limits::default()),
        )
        .await;
        (report.result, log)
    };
    let (result, log) = outcome(json!({"condition": "False"})).await;
    assert_eq!(result, TryResult::SkipDownstream { all: true });
    assert!(
        last_line(&log).contains("skipping all downstream tasks"),
        "{log}"
    );
    let (result, _) =
        outcome(json!({"condition": [], "ignore_downstream_trigger_rules": false})).await;
    assert_eq!(result, TryResult::SkipDownstream { all: false });
    let (result, _) = outcome(json!({"condition": {"rows": 3}})).await;
    assert_eq!(result, TryResult::Success(Some(r#"{"rows":3}"#.into())));
}

#[tokio::test]
async fn wait_until_compares_with_the_wall_clock() {
    let sandbox = shared();
    let past = request(
        sandbox,
        "wait_until",
        json!({"target_time": "2020-01-01T00:00:00Z"}),
        Limits::default(),
    );
    assert_eq!(run(sandbox, past).await.0.result, TryResult::Success(None));
    let future = request(
        sandbox,
        "wait_until",
        json!({"target_time": "2999-01-01", "poke_interval": "90s"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, future).await;
    assert_eq!(report.result, TryResult::Reschedule(90), "{log}");
}

// ---------------------------------------------------------------------------
// Outbound HTTP (wasi:http) and its allow-list
// ---------------------------------------------------------------------------

/// A one-route HTTP/1.1 server on 127.0.0.1 answering every request with `status`
/// and `body`; returns its port and the request lines it received.
fn http_server(status: u16, body: &'static str) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            record.lock().unwrap().push(line.trim_end().to_owned());
            // Skip the headers; the tests' requests have no body.
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// A server on 127.0.0.1 that accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

fn grant(allow_hosts: &[&str], allow_private_ips: bool) -> Limits {
    Limits {
        allow_hosts: allow_hosts.iter().map(|h| (*h).to_owned()).collect(),
        allow_private_ips,
        timeout: Some(Duration::from_secs(20)),
        ..Limits::default()
    }
}

async fn poke(params: serde_json::Value, limits: Limits) -> (TryResult, String) {
    let sandbox = shared();
    let (report, log) = run(sandbox, request(sandbox, "http_sensor", params, limits)).await;
    (report.result, log)
}

#[tokio::test]
async fn an_allowed_host_is_reached_and_the_sensor_succeeds() {
    let (port, seen) = http_server(200, "ready");
    let url = format!("http://127.0.0.1:{port}/health?x=1");
    let (result, log) = poke(
        json!({"url": url, "response_contains": "ready"}),
        grant(&[&format!("127.0.0.1:{port}")], true),
    )
    .await;
    assert_eq!(
        result,
        TryResult::Success(Some(r#"{"body":"ready","status":200}"#.into())),
        "{log}"
    );
    assert_eq!(seen.lock().unwrap()[0], "GET /health?x=1 HTTP/1.1");
}

#[tokio::test]
async fn a_condition_not_met_reschedules_at_the_poke_interval() {
    let (port, _) = http_server(503, "busy");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/"), "poke_interval": 42}),
        grant(&["localhost"], true),
    )
    .await;
    assert_eq!(result, TryResult::Reschedule(42), "{log}");
    assert!(log.contains("status 503 is not the expected 2xx"), "{log}");
}

#[tokio::test]
async fn a_host_not_allowed_is_refused_fatally_and_logged() {
    let (port, seen) = http_server(200, "ready");
    let url = format!("http://127.0.0.1:{port}/");
    for allow_hosts in [&["example.com", "*.example.com"][..], &[]] {
        let (result, log) = poke(json!({"url": url}), grant(allow_hosts, true)).await;
        let TryResult::Fatal(reason) = &result else {
            panic!("expected a fatal failure, got {result:?}\n{log}")
        };
        assert!(reason.contains("refused by the host"), "{reason}");
        assert!(reason.contains("allow_hosts"), "{reason}");
        let denied =
            format!("WARN outbound HTTP to 127.0.0.1:{port} denied: not in the task's allow_hosts");
        assert!(log.contains(&denied), "{log}");
        if allow_hosts.is_empty() {
            assert!(log.contains("the task has no allow_hosts"), "{log}");
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[tokio::test]
async fn an_allowed_name_resolving_to_a_private_address_is_refused() {
    let (port, seen) = http_server(200, "ready");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/")}),
        grant(&["localhost"], false),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        log.contains(&format!(
            "WARN outbound HTTP to localhost:{port} denied: it resolves to"
        )),
        "{log}"
    );
    assert!(log.contains("a loopback address"), "{log}");
    // IP literals are checked the same way.
    let (result, log) = poke(
        json!({"url": format!("http://127.0.0.1:{port}/")}),
        grant(&["127.0.0.1"], false),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[tokio::test]
async fn a_wildcard_does_not_allow_its_apex() {
    let (port, _) = http_server(200, "ready");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/")}),
        grant(&["*.localhost"], true),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        log.contains("denied: not in the task's allow_hosts"),
        "{log}"
    );
}

#[test]
fn wildcards_match_subdomains_only_and_ports_restrict() {
    let hosts = |list: &[&str]| list.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
    let wildcard = hosts(&["*.example.com"]);
    assert!(host_allowed(&wildcard, "a.example.com", 443));
    assert!(host_allowed(&wildcard, "A.b.Example.com.", 80));
    assert!(!host_allowed(&wildcard, "example.com", 443));
    assert!(!host_allowed(&wildcard, "notexample.com", 443));
    let ported = hosts(&["api.example.com:8443", "[::1]:8080"]);
    assert!(host_allowed(&ported, "api.example.com", 8443));
    assert!(!host_allowed(&ported, "api.example.com", 443));
    assert!(host_allowed(&ported, "[::1]", 8080));
    assert!(!host_allowed(&hosts(&[]), "example.com", 443));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_sensor_pokes_again() {
    let port = silent_server();
    let started = Instant::now();
    let (result, log) = poke(
        json!({"url": format!("http://127.0.0.1:{port}/"), "request_timeout": 0.3, "poke_interval": 5}),
        grant(&["127.0.0.1"], true),
    )
    .await;
    assert_eq!(result, TryResult::Reschedule(5), "{log}");
    assert!(log.contains("timed out waiting for the response"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_try_deadline_bounds_a_request() {
    let port = silent_server();
    let limits = Limits {
        timeout: Some(Duration::from_millis(400)),
        ..grant(&["127.0.0.1"], true)
    };
    let started = Instant::now();
    let (result, log) = poke(json!({"url": format!("http://127.0.0.1:{port}/")}), limits).await;
    // The capped first-byte timeout (the try's remaining time) or the deadline
    // itself ends it, well before the 30 s request timeout.
    assert!(
        matches!(&result, TryResult::Failed(r) if r.contains("execution_timeout"))
            || matches!(result, TryResult::Reschedule(_)),
        "{result:?}\n{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A store just below address 0 (where a stack that grows down towards 0 lands
/// when it wraps around) is a stack overflow; a wild store elsewhere stays the
/// out-of-bounds trap it is.
#[tokio::test]
async fn out_of_bounds_accesses_near_address_zero_are_stack_overflows() {
    let sandbox = empty_sandbox();
    for (name, address, expected) in [
        (
            "wrapped",
            -16,
            "stack overflow: the operator's stack ran out (too deep a recursion, or too large local variables)",
        ),
        (
            "wild",
            100_000_000,
            "wasm trap: out of bounds memory access",
        ),
    ] {
        let body = format!("(i32.store (i32.const {address}) (i32.const 1)) (i32.const 2048)");
        let meta = sandbox
            .registry()
            .add(&wat_operator(name, "1.0.0", "", &body))
            .unwrap();
        let req = TryRequest::new(
            "default",
            meta.digest,
            task(name),
            json!({}),
            Limits::default(),
            Arc::new(NoHostServices),
        );
        let (report, _) = run(&sandbox, req).await;
        assert_eq!(report.result, TryResult::Failed(expected.into()), "{name}");
    }
}
