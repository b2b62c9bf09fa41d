//! Host-held connections end to end: an operator of the tenant tries every path
//! to a connection's secret (the `connection` call, XCom, its log, its return
//! value, a server that reflects request headers, a redirect to another host,
//! the connection's host given as an address or with another port, plain HTTP
//! for a TLS connection). The secret reaches only the connection's own host, on
//! the legitimate requests, and nowhere else.

use aileron_model::TenantId;
use aileron_model::{DagRunState, TaskInstanceState as S};
use aileron_tests::Env;
use aileron_tests::http_peer::{Opening, read_head};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Only unreserved characters, so its query-parameter form is itself.
const SECRET: &str = "hunter2-7f3a9c";

/// What one server on 127.0.0.1 received: each request's head as text, or
/// `tls-handshake` for a connection that opened with a TLS record.
type Received = Arc<Mutex<Vec<String>>>;

/// A server that answers `/redirect` with a 302 to `redirect_to`, and anything
/// else with 200 and the request head it got as the body (a server that
/// reflects headers, as many debugging endpoints do). A connection that starts
/// a TLS handshake is recorded and closed.
async fn echo_server(redirect_to: Option<u16>) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = match read_head(&mut stream).await {
                    Opening::Head(head) => head,
                    Opening::Tls => {
                        seen.lock().unwrap().push("tls-handshake".to_owned());
                        return;
                    }
                    Opening::Closed => return,
                };
                seen.lock().unwrap().push(head.clone());
                let response = match redirect_to {
                    Some(to) if head.starts_with("GET /redirect ") => format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{to}/landing\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    _ => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Echo: {}\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{head}",
                        head.lines()
                            .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                            .unwrap_or("none"),
                        head.len()
                    ),
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, received)
}

fn dag(api: u16, elsewhere: u16) -> String {
    format!(
        r#"
[tasks.basic]
operator = "testkit"
[tasks.basic.params]
mode = "through_connection"
conn_id = "api"
requests = [
  {{ url = "/echo", headers = [["Authorization", "Bearer guest-made"], ["Accept-Encoding", "gzip"], ["X-Trace", "t1"]] }},
  {{ url = "http://127.0.0.1:{api}/echo" }},
  {{ url = "http://localhost:{elsewhere}/echo" }},
  {{ url = "http://127.0.0.1:{elsewhere}/echo" }},
  {{ url = "/redirect" }},
  {{ method = "BAD METHOD", url = "/echo" }},
]

[tasks.tls]
operator = "testkit"
[tasks.tls.params]
mode = "through_connection"
conn_id = "api_tls"
requests = [{{ url = "http://localhost:{api}/echo" }}, {{ url = "/echo" }}]

[tasks.query]
operator = "testkit"
[tasks.query.params]
mode = "through_connection"
conn_id = "api_key"
requests = [{{ method = "POST", url = "/echo?x=1" }}]

[tasks.missing]
operator = "testkit"
[tasks.missing.params]
mode = "through_connection"
conn_id = "nope"
requests = [{{ url = "/echo" }}]
"#
    )
}

fn store_connection(env: &Env, conn_id: &str, fields: Value) {
    let mut fields = fields;
    fields["conn_id"] = json!(conn_id);
    fields["exposed"] = json!(false);
    env.app
        .metastore
        .set_connection(TenantId::DEFAULT, conn_id, &fields.to_string())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_held_secret_reaches_only_its_own_host() {
    let (elsewhere, elsewhere_got) = echo_server(None).await;
    let (api, api_got) = echo_server(Some(elsewhere)).await;
    let env = Env::builder()
        .dag("held.toml", &dag(api, elsewhere))
        .allow_private_ips()
        .start()
        .await;
    assert!(env.import_errors().is_empty(), "{:?}", env.import_errors());
    store_connection(
        &env,
        "api",
        json!({"conn_type": "http", "host": "localhost", "schema": "http", "port": api,
               "login": "svc", "password": SECRET}),
    );
    store_connection(
        &env,
        "api_tls",
        json!({"conn_type": "http", "host": "localhost", "port": api, "password": SECRET}),
    );
    store_connection(
        &env,
        "api_key",
        json!({"conn_type": "http", "host": format!("http://localhost:{api}"),
               "password": SECRET,
               "extra": "{\"auth_type\": \"query\", \"auth_query_param\": \"key\"}"}),
    );

    let o = env.run("held", json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success);
    let basic_auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("svc:{SECRET}")
        )
    );
    let leaks = |text: &str| text.contains(SECRET) || text.contains(&basic_auth);

    // Nothing the guest could write down holds the secret: XCom (return values
    // included) and the log of every task.
    for task in ["basic", "tls", "query", "missing"] {
        let ti = o.ti(task);
        assert_eq!(ti.state, S::Success, "{task}");
        let log = env.log(ti, 1);
        assert!(!leaks(&log), "{task}'s log holds the secret:\n{log}");
        for key in ["return_value", "connection", "answer_0", "answer_1"] {
            for (_, value) in env
                .app
                .metastore
                .xcom(TenantId::DEFAULT, "held", &o.run.run_id, task, key)
                .unwrap()
            {
                assert!(
                    !leaks(&value),
                    "{task}'s XCom {key} holds the secret: {value}"
                );
            }
        }
    }
    let answers = |task: &str| -> Value {
        let v = env
            .app
            .metastore
            .xcom(
                TenantId::DEFAULT,
                "held",
                &o.run.run_id,
                task,
                "return_value",
            )
            .unwrap();
        serde_json::from_str(&v[0].1).unwrap()
    };

    // The connection call: everything but the password.
    let basic = answers("basic");
    assert_eq!(basic["connection"]["password"], Value::Null, "{basic}");
    assert_eq!(basic["connection"]["host_held"], true);
    assert_eq!(basic["connection"]["login"], "svc");
    let answer = |i: usize| basic["answers"][i].clone();

    // The legitimate request carried it; the reflection came back blanked, and
    // the guest's own Authorization and Accept-Encoding never went out.
    assert_eq!(answer(0)["status"], 200, "{}", answer(0));
    let body = answer(0)["body"].as_str().unwrap().to_owned();
    assert!(body.contains("authorization: [redacted]"), "{body}");
    assert!(body.contains("x-trace: t1"), "{body}");
    let echoed: Vec<Value> = answer(0)["headers"].as_array().unwrap().clone();
    assert!(
        echoed.contains(&json!(["x-echo", "authorization: [redacted]"])),
        "{echoed:?}"
    );
    // The address of the connection's host, another port, another host.
    for (i, not) in [
        (1, format!("not 127.0.0.1:{api}")),
        (2, format!("not localhost:{elsewhere}")),
        (3, format!("not 127.0.0.1:{elsewhere}")),
    ] {
        let error = answer(i)["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            error.contains(&format!("may only be used for localhost:{api}"))
                && error.contains(&not),
            "answer {i}: {}",
            answer(i)
        );
    }
    // A redirect is handed back, not followed.
    assert_eq!(answer(4)["status"], 302, "{}", answer(4));
    assert!(
        answer(4)["headers"].as_array().unwrap().contains(&json!([
            "location",
            format!("http://127.0.0.1:{elsewhere}/landing")
        ])),
        "{}",
        answer(4)
    );
    assert!(
        answer(5)["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is not an HTTP method"),
        "{}",
        answer(5)
    );

    // A TLS connection's credential is not sent over plain HTTP; sent over TLS
    // to a server that does not speak it, the request fails.
    let tls = answers("tls");
    assert!(
        tls["answers"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("never sent over plain HTTP"),
        "{tls}"
    );
    assert!(tls["answers"][1]["error"].is_string(), "{tls}");

    // A query-parameter credential reached the host; its reflection is blanked.
    let query = answers("query");
    assert_eq!(query["answers"][0]["status"], 200, "{query}");
    assert!(
        query["answers"][0]["body"]
            .as_str()
            .unwrap()
            .starts_with("POST /echo?x=1&key=[redacted] HTTP/1.1"),
        "{query}"
    );
    let missing = answers("missing");
    assert!(
        missing["answers"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`nope` is not defined"),
        "{missing}"
    );

    // What the servers saw: the connection's host got the credential on exactly
    // the legitimate requests (the echo, the redirect, the query) and a TLS
    // handshake; the other host got nothing at all.
    let got = api_got.lock().unwrap().clone();
    let with_basic: Vec<&String> = got.iter().filter(|h| h.contains(&basic_auth)).collect();
    assert_eq!(with_basic.len(), 2, "{got:#?}");
    assert!(
        with_basic[0].starts_with("GET /echo HTTP/1.1\r\n"),
        "{got:#?}"
    );
    assert!(
        with_basic[1].starts_with("GET /redirect HTTP/1.1\r\n"),
        "{got:#?}"
    );
    for head in &with_basic {
        let lower = head.to_ascii_lowercase();
        assert_eq!(lower.matches("authorization:").count(), 1, "{head}");
        assert!(
            !lower.contains("guest-made") && !lower.contains("accept-encoding"),
            "{head}"
        );
    }
    assert!(
        got.iter()
            .any(|h| h.starts_with(&format!("POST /echo?x=1&key={SECRET} HTTP/1.1"))),
        "{got:#?}"
    );
    assert!(got.contains(&"tls-handshake".to_owned()), "{got:#?}");
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(elsewhere_got.lock().unwrap().is_empty());

    // The try's log says what was sent, without the credential.
    let log = env.log(o.ti("query"), 1);
    assert!(
        log.contains(&format!(
            "HTTP POST http://localhost:{api}/echo?x=1 with connection `api_key`: 200"
        )),
        "{log}"
    );
}
