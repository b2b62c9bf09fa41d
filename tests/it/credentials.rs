//! Bad credentials over a real socket: wrong and malformed passwords, forged,
//! tampered, expired and `alg: none` session tokens, headers far too large, the
//! sign-in lock-out, and a token of one tenant aimed at another. Each answer is
//! a JSON 401/403/404/429 (or hyper's 431 for a header over its limit), never
//! a 5xx, the server keeps serving, and a refused change lands in the audit log.

use crate::access::Server;
use aileron::auth::session::{SessionClaims, sign};
use aileron_tests::Env;
use aileron_tests::server::ADMIN_AUTH;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The status and JSON problem of `GET /api/v1/dags` with `authorization`.
async fn dags_as(s: &Server, authorization: &str) -> (StatusCode, Value) {
    let (status, text) = s
        .send(Some(authorization), None, Method::GET, "/api/v1/dags", None)
        .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[track_caller]
fn refused(what: &str, (status, problem): (StatusCode, Value), want: StatusCode) {
    assert_eq!(status, want, "{what}: {problem}");
    assert_eq!(problem["status"], want.as_u16(), "{what}: {problem}");
    assert!(problem["detail"].is_string(), "{what}: {problem}");
}

fn jwt(header: &Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(header), part(claims))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_clear_json_refusals_and_the_server_keeps_serving() {
    let env = Env::builder().start().await;
    let (s, _) = Server::start(&env).await;
    let key = env.app.metastore.session_key().unwrap();
    let now = jiff::Timestamp::now().as_second();
    let good = sign(
        &key,
        &SessionClaims {
            sub: "admin".into(),
            iat: now,
            exp: now + 600,
            iss: "aileron".into(),
        },
    );
    assert_eq!(
        dags_as(&s, &format!("Bearer {good}")).await.0,
        StatusCode::OK
    );

    // Passwords: wrong, and Basic that is not Basic.
    let basic = |text: &str| format!("Basic {}", STANDARD.encode(text));
    let unauthorized = StatusCode::UNAUTHORIZED;
    for (what, auth) in [
        ("a wrong password", basic("admin:not the password")),
        ("a user that does not exist", basic("nobody:whatever")),
        ("Basic without a colon", basic("admin")),
        ("Basic that is not base64", "Basic !!!".to_owned()),
        (
            "Basic of bytes that are not UTF-8",
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', 0xfd])),
        ),
        ("an empty Basic", "Basic ".to_owned()),
        ("an unknown scheme", "Digest username=\"admin\"".to_owned()),
    ] {
        refused(what, dags_as(&s, &auth).await, unauthorized);
    }

    // Session tokens: each way of forging one.
    let claims = json!({ "sub": "admin", "iat": now, "exp": now + 600, "iss": "aileron" });
    let signature = good.rsplit('.').next().unwrap();
    let hs256 = json!({ "alg": "HS256", "typ": "JWT" });
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("someone_else");
    let expired = sign(
        &key,
        &SessionClaims {
            sub: "admin".into(),
            iat: now - 7200,
            exp: now - 3600,
            iss: "aileron".into(),
        },
    );
    let foreign = sign(
        &[7u8; 32],
        &SessionClaims {
            sub: "admin".into(),
            iat: now,
            exp: now + 600,
            iss: "aileron".into(),
        },
    );
    for (what, token) in [
        (
            "alg none",
            jwt(&json!({ "alg": "none", "typ": "JWT" }), &claims, ""),
        ),
        (
            "alg none, upper case",
            jwt(&json!({ "alg": "NONE" }), &claims, ""),
        ),
        (
            "another algorithm",
            jwt(&json!({ "alg": "HS512", "typ": "JWT" }), &claims, signature),
        ),
        (
            "an asymmetric algorithm",
            jwt(&json!({ "alg": "RS256" }), &claims, signature),
        ),
        ("tampered claims", jwt(&hs256, &tampered_claims, signature)),
        ("a signature of another key", foreign),
        ("an expired token", expired),
        ("two parts", "eyJhbGciOiJIUzI1NiJ9.e30".to_owned()),
        ("not base64", "a.b.c".to_owned()),
        (
            "an API token that never was",
            "ail_0123456789abcdef_nothing".to_owned(),
        ),
        ("a huge token", "x".repeat(6000)),
    ] {
        refused(
            what,
            dags_as(&s, &format!("Bearer {token}")).await,
            unauthorized,
        );
    }

    // A header far over any sane size is refused by the HTTP layer (431) or as
    // credentials (401); either way not a 5xx, and the server goes on.
    let (status, _) = s
        .send(
            Some(&format!("Bearer {}", "y".repeat(200_000))),
            None,
            Method::GET,
            "/api/v1/dags",
            None,
        )
        .await;
    assert!(
        matches!(status.as_u16(), 400 | 401 | 413 | 431),
        "an oversized Authorization answered {status}"
    );
    assert_eq!(dags_as(&s, ADMIN_AUTH).await.0, StatusCode::OK);

    // A tenant that the caller has no role in, named in the header, answers as
    // if it did not exist, and the caller's own objects stay its own.
    let (status, text) = s
        .send(
            Some(ADMIN_AUTH),
            Some("team_nowhere"),
            Method::GET,
            "/api/v1/dags",
            None,
        )
        .await;
    assert!(status.is_client_error(), "{status} {text}");
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");

    // A Viewer's change is refused (403) and recorded as refused.
    s.admin(
        "default",
        Method::POST,
        "/api/v1/users",
        json!({ "username": "watcher", "password": "a good password", "roles": { "default": "Viewer" } }),
    )
    .await;
    let viewer = basic("watcher:a good password");
    let (status, text) = s
        .send(
            Some(&viewer),
            None,
            Method::POST,
            "/api/v1/variables",
            Some(&json!({ "key": "k", "value": "secret value" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let log = s
        .admin("default", Method::GET, "/api/v1/eventLogs", Value::Null)
        .await;
    let entry = log["event_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["owner"] == "watcher")
        .unwrap_or_else(|| panic!("the refused change is not in the audit log: {log}"));
    assert_eq!(entry["event"], "post_variables", "{entry}");
    let extra: Value = serde_json::from_str(entry["extra"].as_str().unwrap()).unwrap();
    assert_eq!(
        extra["status"], 403,
        "the record does not say it was refused: {entry}"
    );
    assert!(!log.to_string().contains("secret value"), "{log}");

    // Guessing a password: after the allowed failures, the name is locked out
    // with 429, the right password included (this user has not signed in
    // lately; one who has keeps working, so guessing cannot lock them out).
    s.admin(
        "default",
        Method::POST,
        "/api/v1/users",
        json!({ "username": "target", "password": "the right one", "roles": { "default": "Viewer" } }),
    )
    .await;
    let sign_in = |user: &str, password: &str| json!({ "username": user, "password": password });
    let mut statuses = Vec::new();
    for _ in 0..aileron::auth::limiter::MAX_FAILURES + 1 {
        let (status, _) = s
            .send(
                None,
                None,
                Method::POST,
                "/auth/token",
                Some(&sign_in("target", "guess")),
            )
            .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let (status, text) = s
        .send(
            None,
            None,
            Method::POST,
            "/auth/token",
            Some(&sign_in("target", "the right one")),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(dags_as(&s, ADMIN_AUTH).await.0, StatusCode::OK);
    assert_eq!(dags_as(&s, &viewer).await.0, StatusCode::OK);
}
