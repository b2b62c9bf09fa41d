//! The HTTP server around the routers: [`router`] assembles the whole surface
//! (`/api/v1`, the UI, `/metrics`, `/health`, and `/execution/v1` with workers),
//! [`HostPolicy`] keeps a web page on another name or origin from driving a local
//! Aileron, and [`serve`] bounds how many connections are held and for how long.
//!
//! Why the Host check: the API has no login yet, so a server on loopback trusts
//! whoever can reach it. A page on `evil.example` whose DNS answer is rebound to
//! 127.0.0.1 reaches it with the browser's full consent, as same-origin, but its
//! requests still say `Host: evil.example`. Answering only names the operator
//! configured (loopback names and IP literals by default) closes that hole; the
//! Origin check closes the older one, a cross-site form or `fetch` that changes
//! state without reading the answer.

use crate::api::{ApiError, ApiState, RouteTable};
use crate::app::App;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers (and how long an idle
/// kept-alive connection stays open). Browsers and API clients send them in one
/// packet; ten seconds is slack for a slow link, and short enough that holding
/// connections open with half a request costs an attacker a steady effort.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. Each costs a task and its buffers (a few KiB);
/// the UI keeps one event stream per open tab and workers one connection each,
/// so 1,024 leaves room for hundreds of users and workers on one scheduler.
/// Further connections wait in the listen backlog until one closes.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// How long shutdown waits for requests in flight: event streams never end by
/// themselves, so the wait must be bounded.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The names the server answers for and the origins that may change state.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Lower-case host names (no port) answered besides loopback names and IP
    /// literals.
    names: Vec<String>,
    /// `--allowed-hosts '*'`: any Host (the Origin check still applies).
    any_host: bool,
    /// Origins (`scheme://host[:port]`) of `--public-url`: a proxy in front may
    /// rewrite `Host`, so a request from the public origin is not cross-origin.
    origins: Vec<String>,
}

impl HostPolicy {
    /// From `--allowed-hosts` (names; `*` for any) and `--public-url` (whose host
    /// is allowed too).
    pub fn new(allowed_hosts: &[String], public_url: Option<&str>) -> Result<Self, String> {
        let mut policy = HostPolicy::default();
        for entry in allowed_hosts {
            let name = entry.trim().trim_end_matches('.').to_ascii_lowercase();
            if name == "*" {
                policy.any_host = true;
            } else if name.is_empty() || name.contains(['/', ':', ' ']) {
                return Err(format!(
                    "--allowed-hosts entry `{entry}` must be a host name such as \
                     aileron.example.com (no scheme, port or path), or *"
                ));
            } else {
                policy.names.push(name);
            }
        }
        if let Some(url) = public_url {
            let parsed = reqwest::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    format!("--public-url `{url}` must be an http(s) URL such as https://aileron.example.com")
                })?;
            let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
            policy.names.push(host.trim_matches(['[', ']']).to_owned());
            policy
                .origins
                .push(parsed.origin().ascii_serialization().to_ascii_lowercase());
        }
        Ok(policy)
    }

    /// Whether a request with this `Host` header is answered. Loopback names and
    /// IP literals always are: a rebinding attack needs a name of its own, and an
    /// IP literal in `Host` means the browser's origin is that address itself.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.any_host || self.names.contains(&name)
    }

    /// Whether a state-changing request with these headers may go through: not
    /// from another site (`Sec-Fetch-Site`), and with an `Origin`, if any, that is
    /// the server's own (the `Host` it was sent to, or `--public-url`'s).
    fn origin_allowed(&self, headers: &HeaderMap) -> Result<(), String> {
        if let Some(site) = headers.get("sec-fetch-site") {
            // `none` is the user's own doing (typed URL, bookmark).
            if !matches!(site.as_bytes(), b"same-origin" | b"none") {
                return Err(format!(
                    "cross-site request refused: a page on another site (Sec-Fetch-Site: {}) \
                     may not change this server",
                    String::from_utf8_lossy(site.as_bytes())
                ));
            }
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            // No Origin: not a browser's cross-origin request (curl, Airflow's
            // clients, workers).
            return Ok(());
        };
        let origin = String::from_utf8_lossy(origin.as_bytes()).to_ascii_lowercase();
        let host = headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase());
        let same = origin
            .split_once("://")
            .is_some_and(|(_, authority)| Some(authority) == host.as_deref());
        if same || self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(format!(
                "cross-origin request refused: a page at `{origin}` may not change this server; \
                 if that is where Aileron's UI is published, start the server with \
                 --public-url {origin}"
            ))
        }
    }
}

/// The host name of a `Host` header value: lower-case, without port, brackets or
/// a trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses requests for a Host the server does not answer for, and
/// state-changing requests from another origin, with a JSON problem (403).
async fn guard(State(policy): State<Arc<HostPolicy>>, req: Request, next: Next) -> Response {
    // `/health` says only "ok": load balancers and workers may probe it by any
    // name without being configured here.
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let headers = req.headers();
    // HTTP/1.1 requires Host; HTTP/2 carries it in the URI. A request with
    // neither comes from no browser, which always sends one.
    let host = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(host) = host
        && !policy.host_allowed(&host)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this server does not answer for host `{}`; if the name is yours, start \
                 the server with --allowed-hosts {0} (or --public-url)",
                host_name(&host)
            ),
        )
        .into_response();
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && let Err(detail) = policy.origin_allowed(headers) {
        return ApiError::new(StatusCode::FORBIDDEN, detail).into_response();
    }
    next.run(req).await
}

/// The whole HTTP surface of a server process: the API, UI, `/metrics` and
/// `/health` behind the Host/Origin guard, and with remote workers the execution
/// API, which is for workers only (they authenticate every call with tokens and
/// may reach the scheduler by any name).
pub fn router(app: &App, policy: HostPolicy) -> Router {
    surface(app, policy).0
}

/// [`router`] and the table of every route it answers with its access policy:
/// what the authorization-matrix test walks.
pub fn surface(app: &App, policy: HostPolicy) -> (Router, RouteTable) {
    let registry = app.sandbox.registry().clone();
    let (api, mut table) = crate::api::surface(ApiState {
        metastore: app.metastore.clone(),
        scheduler: app.scheduler.clone(),
        registry: registry.clone(),
        remote: app.remote.clone(),
        clock: app.clock.clone(),
        auth: app.auth.clone(),
        rescan: app.rescan.clone(),
        plugins_dir: app.plugins_dir.clone(),
        settings: Arc::new(app.settings.clone()),
    });
    let api = api.layer(axum::middleware::from_fn_with_state(
        Arc::new(policy),
        guard,
    ));
    let router = match &app.remote {
        Some(remote) => {
            let (exec, exec_table) = crate::execution_api::routes();
            table.extend(exec_table);
            api.nest(
                "/execution/v1",
                exec.with_state(crate::execution_api::ExecState {
                    remote: remote.clone(),
                    scheduler: app.scheduler.clone(),
                    metastore: app.metastore.clone(),
                    registry,
                    auth: app.auth.clone(),
                }),
            )
        }
        None => api,
    };
    (router, table)
}

/// How many connections are served at once and how long headers may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in
/// flight finish for a few seconds.
///
/// HTTP/1.1 and HTTP/2 (prior knowledge) as `axum::serve` does, plus what it
/// lacks: a client that has not sent a request's headers within
/// `header_timeout` is disconnected, and at most `max_connections` are served at
/// once (the listener is not read while all are taken, so further clients wait in
/// the kernel's backlog rather than each costing a task).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1) as usize));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it
                    // was taken: wait a moment rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers and event-stream frames go out at once.
        let _ = stream.set_nodelay(true);
        // The client's address, for the audit log and the sign-in limit.
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that went away or sent garbage ends only its connection.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("closing the connections still open");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn loopback_names_and_ip_literals_are_always_answered() {
        let p = HostPolicy::default();
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "ui.localhost:8080",
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[fe80::1]",
        ] {
            assert!(p.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(!p.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn configured_names_and_the_public_url_are_answered() {
        let p = HostPolicy::new(
            &["Aileron.corp".to_owned()],
            Some("https://ui.example.com:8443/base"),
        )
        .unwrap();
        assert!(p.host_allowed("aileron.corp:8080"));
        assert!(p.host_allowed("ui.example.com"));
        assert!(!p.host_allowed("example.com"));
        assert!(
            HostPolicy::new(&["*".to_owned()], None)
                .unwrap()
                .host_allowed("anything")
        );
        for bad in ["http://x", "x:80", "a b", ""] {
            assert!(HostPolicy::new(&[bad.to_owned()], None).is_err(), "{bad}");
        }
        assert!(HostPolicy::new(&[], Some("ftp://x")).is_err());
        assert!(HostPolicy::new(&[], Some("not a url")).is_err());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn state_changes_must_come_from_the_servers_own_origin() {
        let p = HostPolicy::new(&[], Some("https://ui.example.com")).unwrap();
        let ok = |pairs| p.origin_allowed(&headers(pairs)).is_ok();
        assert!(
            ok(&[("host", "127.0.0.1:8080")]),
            "no Origin: not a browser"
        );
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(ok(&[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(ok(&[
            ("host", "10.0.0.1:8080"),
            ("origin", "https://ui.example.com")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9999")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-site")
        ]));
    }
}
