//! Outbound HTTP for guests (`wasi:http/outgoing-handler`): the try's allow-list,
//! the check of the resolved address, and a sender that connects to exactly the
//! address it checked.
//!
//! wasmtime-wasi-http implements the WIT interfaces and hands every request to
//! [`HttpGrant::send_request`]. Its default sender resolves the name itself, so a
//! name on the allow-list that resolves (or is re-pointed, between a check and the
//! connection: DNS rebinding) to a loopback or private address would get through.
//! This sender resolves once, checks every address, and connects to a checked one.
//!
//! Pattern semantics (the task's `allow_hosts`; no wildcard other than a leading
//! `*.`; names compare case-insensitively, a trailing dot ignored):
//! - `example.com` allows exactly that host, on any port;
//! - `*.example.com` allows every subdomain at any depth (`a.example.com`,
//!   `a.b.example.com`) but not `example.com` itself: list both to allow both;
//! - `host:8443` (or `*.example.com:8443`, `[::1]:8080`) allows only that port,
//!   the scheme's default port counting when the URL has none (80, 443);
//! - IP literals match textually (`127.0.0.1`, `[::1]`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::log::{LogBuffer, LogLevel};

/// Longest a guest may wait for a connection (DNS included), for the response's
/// first byte, and between two chunks of its body; the guest may ask for less with
/// `request-options`. wasmtime-wasi-http's defaults are 600 s, which would let one
/// hung server hold a slot for ten minutes per request; a sensor that needs a
/// server pokes again anyway. The try's deadline, when sooner, is the cap.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `allow_hosts` (a task's patterns, semantics above) lets a request reach
/// `host` on `port`. `host` is a name or an IP address (IPv6 with or without
/// brackets); case and a trailing dot do not matter. Invalid patterns match
/// nothing. This is the check every `wasi:http` request of a try goes through
/// before its address is resolved and checked.
pub fn host_allowed(allow_hosts: &[String], host: &str, port: u16) -> bool {
    let host = normalize_host(host);
    allow_hosts
        .iter()
        .filter_map(|p| HostPattern::parse(p))
        .any(|p| p.matches(&host, port))
}

/// What one try may reach over `wasi:http`, and where refusals are written.
pub(crate) struct HttpGrant {
    patterns: Arc<[HostPattern]>,
    allow_private_ips: bool,
    deadline: Option<Instant>,
    log: Arc<LogBuffer>,
    /// Nanoseconds the try's requests took from send to response headers: host
    /// time the try is metered for (`meter.rs`), summed by the spawned sends.
    waited: Arc<AtomicU64>,
}

impl HttpGrant {
    pub(crate) fn new(
        allow_hosts: &[String],
        allow_private_ips: bool,
        deadline: Option<Instant>,
        log: Arc<LogBuffer>,
    ) -> Self {
        let patterns = allow_hosts
            .iter()
            .filter_map(|p| {
                let parsed = HostPattern::parse(p);
                if parsed.is_none() {
                    tracing::warn!("ignoring invalid allow_hosts entry `{p}`");
                }
                parsed
            })
            .collect();
        HttpGrant {
            patterns,
            allow_private_ips,
            deadline,
            log,
            waited: Arc::default(),
        }
    }

    /// Adds `took` to the host time of the try's requests.
    pub(crate) fn add_waited(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.waited.fetch_add(took, Ordering::Relaxed);
    }

    /// Time the try's outbound requests took so far.
    pub(crate) fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited.load(Ordering::Relaxed))
    }

    /// Whether the allow-list lets the guest reach `host` on `port`.
    fn allows(&self, host: &str, port: u16) -> bool {
        self.patterns.iter().any(|p| p.matches(host, port))
    }

    /// Writes why a request was refused to the try's log, so the user sees it even
    /// when the operator swallows the error.
    pub(crate) fn refuse(&self, error: Error, why: String) -> Error {
        self.log.append_line(LogLevel::Warn, &why);
        error
    }

    /// Checks the request against the allow-list; on success, what to send it to.
    fn check(&self, request: &http::Request<WasiBody>) -> Result<Target, Error> {
        let uri = request.uri();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            other => {
                let scheme = other.map_or("none", |s| s.as_str());
                return Err(self.refuse(
                    Error::HttpProtocolError,
                    format!(
                        "outbound HTTP refused: scheme `{scheme}` (only http and https are allowed)"
                    ),
                ));
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(self.refuse(
                Error::HttpRequestUriInvalid,
                "outbound HTTP refused: the request has no host".into(),
            ));
        };
        if authority.as_str().contains('@') {
            return Err(self.refuse(
                Error::HttpRequestUriInvalid,
                format!("outbound HTTP refused: `{authority}` carries user information"),
            ));
        }
        let host = normalize_host(authority.host());
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.allows(&host, port) {
            let granted = if self.patterns.is_empty() {
                "the task has no allow_hosts, so it may make no HTTP request".to_owned()
            } else {
                let list: Vec<String> = self.patterns.iter().map(|p| p.text.clone()).collect();
                format!("allow_hosts is [{}]", list.join(", "))
            };
            return Err(self.refuse(
                Error::HttpRequestDenied,
                format!(
                    "outbound HTTP to {} denied: not in the task's allow_hosts ({granted})",
                    display_host_port(&host, port)
                ),
            ));
        }
        Ok(Target { host, port, https })
    }

    /// Resolves the target once and keeps the addresses the grant allows.
    pub(crate) async fn resolve(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, Error> {
        let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => {
                let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
                match tokio::time::timeout(timeout, lookup).await {
                    Err(_) => return Err(Error::DnsTimeout),
                    Ok(Err(e)) => {
                        return Err(Error::DnsError {
                            rcode: Some(e.to_string()),
                            info_code: None,
                        });
                    }
                    Ok(Ok(addrs)) => addrs.collect(),
                }
            }
        };
        if addrs.is_empty() {
            return Err(Error::DestinationNotFound);
        }
        if self.allow_private_ips {
            return Ok(addrs);
        }
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
            .into_iter()
            .partition(|addr| forbidden_range(addr.ip()).is_none());
        if allowed.is_empty() {
            let ip = refused[0].ip();
            let kind = forbidden_range(ip).unwrap_or("private");
            return Err(self.refuse(
                Error::DestinationIpProhibited,
                format!(
                    "outbound HTTP to {} denied: it resolves to {ip}, a {kind} address, \
                     and this host does not let tasks reach private addresses",
                    display_host_port(&target.host, target.port)
                ),
            ));
        }
        Ok(allowed)
    }

    /// A timeout the guest asked for (or the cap), never past the cap or the
    /// try's deadline.
    pub(crate) fn cap(&self, asked: Option<Duration>) -> Duration {
        let mut timeout = asked.unwrap_or(MAX_HTTP_TIMEOUT).min(MAX_HTTP_TIMEOUT);
        if let Some(deadline) = self.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        timeout
    }
}

/// Where a request that passed the allow-list goes.
pub(crate) struct Target {
    /// Lower case, without brackets or trailing dot.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) https: bool,
}

pub(crate) type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        // The allow-list is checked at once (the refusal is logged while the guest
        // is still in `handle`); the rest runs on the future wasmtime-wasi-http
        // spawns, which is aborted with the store when the try ends.
        let target = self.check(&request);
        let grant = HttpGrant {
            patterns: self.patterns.clone(),
            allow_private_ips: self.allow_private_ips,
            deadline: self.deadline,
            log: self.log.clone(),
            waited: self.waited.clone(),
        };
        Box::new(async move {
            let target = target?;
            let started = Instant::now();
            let options = options.unwrap_or_default();
            let connect_timeout = grant.cap(options.connect_timeout);
            let first_byte_timeout = grant.cap(options.first_byte_timeout);
            let between_bytes_timeout = grant.cap(options.between_bytes_timeout);
            let addrs = grant.resolve(&target, connect_timeout).await?;
            let stream = tokio::time::timeout(connect_timeout, connect(&addrs))
                .await
                .map_err(|_| Error::ConnectionTimeout)??;
            let response = send(
                stream,
                &target,
                request,
                connect_timeout,
                first_byte_timeout,
                between_bytes_timeout,
            )
            .await;
            grant.add_waited(started.elapsed());
            response
        })
    }
}

/// Connects to the first of `addrs` that accepts.
pub(crate) async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Connect(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
    })))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static
{
}

/// TLS (for https, verified against the Mozilla roots for the *name* the guest
/// asked for, whatever address it was sent to), then one HTTP/1.1 exchange.
/// Follows wasmtime-wasi-http's `default_send_request`, minus its connect.
pub(crate) async fn send(
    tcp: TcpStream,
    target: &Target,
    mut request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    between_bytes_timeout: Duration,
) -> SendResult {
    let stream: Box<dyn Stream> = if target.https {
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        let tls = tokio::time::timeout(connect_timeout, tls_connector().connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request carries scheme and authority, but on the wire (no proxy) only
    // the path belongs in the request line.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let exchange = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        // Tokio panics on a zero interval.
        let between = between_bytes_timeout.max(Duration::from_nanos(1));
        let mut timer = tokio::time::interval(between);
        timer.reset();
        Ok::<_, Error>(response.map(|incoming| TimedBody { incoming, timer }))
    };
    // Drive the connection while waiting for the response head, then hand the
    // connection to the caller to drive while the body streams.
    tokio::pin!(exchange);
    let mut conn = Some(conn);
    let response = std::future::poll_fn(|cx| match exchange.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => exchange.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
        match conn {
            Some(conn) => conn.await.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                }
            }),
            None => Ok(()),
        }
    });
    Ok((response.map(BodyExt::boxed_unsync), io))
}

/// A response body that fails when no chunk arrives within the between-bytes
/// timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timer: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timer.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timer.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

/// One TLS client configuration for the process: building the root store per
/// request would cost more than many requests. The provider is named rather than
/// taken from the process default, which another crate may have set differently.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// One `allow_hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// As written, for messages.
    text: String,
    /// The host, or for a wildcard the domain after `*.`; normalized.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(text: &str) -> Option<Self> {
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?.parse().ok()?),
            };
            (host, port)
        } else if rest.matches(':').count() == 1 {
            let (host, port) = rest.split_once(':')?;
            (host, Some(port.parse().ok()?))
        } else {
            // No port, or a bare IPv6 address.
            (rest, None)
        };
        let host = normalize_host(host);
        if host.is_empty() || host.contains(['*', '/', '@']) || host.contains(char::is_whitespace) {
            return None;
        }
        Some(HostPattern {
            text: text.to_owned(),
            host,
            wildcard,
            port,
        })
    }

    /// `host` must be normalized.
    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(self.host.as_str())
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

/// Lower case, without IPv6 brackets or a trailing dot.
pub(crate) fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

pub(crate) fn display_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one. Covers
/// every range a request could use to reach the host itself or its networks:
/// IPv4 and IPv6, including IPv4 addresses embedded in IPv6 ones.
pub(crate) fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        // 100.64.0.0/10: carrier-grade NAT, shared with the provider's network.
        (100, 64..=127) => "shared (carrier-grade NAT)",
        // 192.0.0.0/24: IETF protocol assignments; 198.18.0.0/15: benchmarking.
        (192, 0) if c == 0 => "reserved",
        (198, 18..=19) => "reserved",
        _ if ip.is_multicast() => "multicast",
        // 240.0.0.0/4, the broadcast address included.
        (240..=255, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4 inside IPv6 reaches the IPv4 address: IPv4-mapped (::ffff:a.b.c.d),
    // IPv4-compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::a.b.c.d) and 6to4
    // (2002:AABB:CCDD::).
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ))
    } else if segments[0] == 0x2002 {
        Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return forbidden_v4(v4);
    }
    Some(match segments[0] {
        _ if ip.is_multicast() => "multicast",
        s if s & 0xfe00 == 0xfc00 => "private (unique local)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        // fec0::/10, site-local: deprecated, still private where used.
        s if s & 0xffc0 == 0xfec0 => "private (site-local)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(patterns: &[&str]) -> HttpGrant {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        HttpGrant::new(&patterns, false, None, Arc::new(LogBuffer::new(1 << 10)))
    }

    #[test]
    fn exact_names_match_any_port_and_case() {
        let g = grant(&["example.com"]);
        assert!(g.allows("example.com", 443));
        assert!(g.allows("example.com", 8080));
        assert!(!g.allows("api.example.com", 443));
        assert!(!g.allows("badexample.com", 443));
        assert!(grant(&["Example.COM."]).allows(&normalize_host("EXAMPLE.com."), 80));
    }

    #[test]
    fn wildcards_match_subdomains_not_the_apex() {
        let g = grant(&["*.example.com"]);
        assert!(g.allows("a.example.com", 443));
        assert!(g.allows("a.b.example.com", 443));
        assert!(!g.allows("example.com", 443));
        assert!(!g.allows("aexample.com", 443));
        assert!(!g.allows(".example.com", 443));
    }

    #[test]
    fn ports_restrict_when_given() {
        let g = grant(&["api.example.com:8443", "*.internal.test:80", "[::1]:8080"]);
        assert!(g.allows("api.example.com", 8443));
        assert!(!g.allows("api.example.com", 443));
        assert!(g.allows("x.internal.test", 80));
        assert!(!g.allows("x.internal.test", 81));
        assert!(g.allows("::1", 8080));
        assert!(!g.allows("::1", 80));
        assert!(grant(&["::1"]).allows("::1", 80));
        assert!(grant(&["127.0.0.1"]).allows("127.0.0.1", 9000));
    }

    #[test]
    fn nothing_is_allowed_by_an_empty_or_invalid_list() {
        assert!(!grant(&[]).allows("example.com", 443));
        assert!(!grant(&["example.com:http", "*", "a/b", ""]).allows("example.com", 80));
    }

    #[test]
    fn private_and_special_addresses_are_recognised() {
        let kind = |ip: &str| forbidden_range(ip.parse().unwrap());
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(kind(ip).is_some(), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:2800:220:1:248:1893:25c8:1946",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(kind(ip), None, "{ip} is public");
        }
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
    }

    #[test]
    fn timeouts_are_capped_by_the_limit_and_the_deadline() {
        let mut g = grant(&[]);
        assert_eq!(g.cap(None), MAX_HTTP_TIMEOUT);
        assert_eq!(g.cap(Some(Duration::from_secs(600))), MAX_HTTP_TIMEOUT);
        assert_eq!(g.cap(Some(Duration::from_secs(2))), Duration::from_secs(2));
        g.deadline = Some(Instant::now() + Duration::from_secs(5));
        assert!(g.cap(None) <= Duration::from_secs(5));
        g.deadline = Some(Instant::now());
        assert_eq!(g.cap(None), Duration::ZERO);
    }
}
