//! `context.http-with-connection`: one HTTP request the host sends with a
//! connection's credential, to that connection's own origin only
//! (`connection.rs`), through the same resolve-check-connect path as the guest's
//! own `wasi:http` requests (`outbound.rs`, private addresses included).
//!
//! The guest never holds the request as sent: it gets the response, with every
//! copy of the secret in it blanked out (a server that reflects the request must
//! not hand the credential back), and the try's log gets the request line
//! without the credential. Redirects are not followed; a 3xx is the answer.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};

use crate::bindings::{HttpRequest, HttpResponse};
use crate::connection::HeldConnection;
use crate::log::{LogBuffer, LogLevel};
use crate::outbound::{self, HttpGrant, Target};

/// Largest response body handed to the guest. The body is read whole before the
/// call returns (the record carries bytes, not a stream), so it is bounded.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// What replaces a secret found in a response.
const REDACTED: &[u8] = b"[redacted]";

/// Request headers the host writes itself: the ones that frame the message
/// (`host`, length, transfer and connection handling), and `accept-encoding`,
/// so the answer comes back uncompressed and the secret can be found in it.
const HOST_WRITTEN: [HeaderName; 9] = [
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
    http::header::ACCEPT_ENCODING,
    http::header::PROXY_AUTHORIZATION,
];

/// Sends `request` through `held`; an `Err` is for the guest and never holds
/// the secret. The time it takes counts as the try's host-call time.
pub(crate) async fn send(
    grant: &HttpGrant,
    log: &LogBuffer,
    held: &HeldConnection,
    request: HttpRequest,
) -> Result<HttpResponse, String> {
    let started = Instant::now();
    let method = request.method.clone();
    let mut shown = request.url.clone();
    let result = exchange(grant, held, request, &mut shown).await;
    let took = started.elapsed();
    grant.add_waited(took);
    match &result {
        Ok(response) => log.append_line(
            LogLevel::Info,
            &format!(
                "HTTP {method} {shown} with connection `{}`: {} ({} ms)",
                held.conn_id,
                response.status,
                took.as_millis()
            ),
        ),
        Err(why) => log.append_line(
            LogLevel::Warn,
            &format!(
                "HTTP {method} {shown} with connection `{}` not done: {why}",
                held.conn_id
            ),
        ),
    }
    result
}

async fn exchange(
    grant: &HttpGrant,
    held: &HeldConnection,
    request: HttpRequest,
    shown: &mut String,
) -> Result<HttpResponse, String> {
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", request.method))?;
    let credentialed = held.credential(&request.url)?;
    shown.clone_from(&credentialed.shown);
    let origin = &held.origin;
    let target = Target {
        host: origin.host.clone(),
        port: origin.port,
        https: credentialed.https,
    };

    let mut outgoing = http::Request::new(
        Full::new(Bytes::from(request.body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *outgoing.method_mut() = method;
    *outgoing.uri_mut() = credentialed.uri;
    let headers = outgoing.headers_mut();
    for (name, value) in request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        if HOST_WRITTEN.contains(&name) || credentialed.headers.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the value of header `{name}` is not valid"))?;
        headers.append(name, value);
    }
    // The port only when it is not the scheme's default, as clients write it.
    let bracketed = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let default_port = if target.https { 443 } else { 80 };
    let host = if target.port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{}", target.port)
    };
    headers.insert(
        http::header::HOST,
        HeaderValue::from_str(&host).map_err(|_| "the connection's host is not valid")?,
    );
    for (name, value) in credentialed.headers {
        headers.insert(name, value);
    }

    let timeout = grant.cap(None);
    let addrs = grant
        .resolve(&target, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio::time::timeout(timeout, outbound::connect(&addrs))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (response, io) = outbound::send(stream, &target, outgoing, timeout, timeout, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();

    // The connection is driven beside the body until the body is complete.
    let mut io = Some(Box::into_pin(io));
    let collect = Limited::new(body, MAX_RESPONSE_BYTES).collect();
    tokio::pin!(collect);
    let body = std::future::poll_fn(|cx| {
        if let Some(driving) = io.as_mut()
            && let std::task::Poll::Ready(done) = driving.as_mut().poll(cx)
        {
            io = None;
            if let Err(e) = done {
                return std::task::Poll::Ready(Err(e.to_string()));
            }
        }
        collect.as_mut().poll(cx).map(|r| {
            r.map(|c| c.to_bytes()).map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the response body is over {MAX_RESPONSE_BYTES} bytes")
                } else {
                    format!("reading the response failed: {e}")
                }
            })
        })
    })
    .await?;

    let secrets = held.secrets();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = redact(value.as_bytes(), &secrets);
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect(),
        body: redact(&body, &secrets),
    })
}

/// `bytes` with every occurrence of each secret replaced by [`REDACTED`].
fn redact(bytes: &[u8], secrets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if !out.windows(secret.len()).any(|w| w == secret.as_slice()) {
            continue;
        }
        let mut replaced = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(secret) {
                replaced.extend_from_slice(REDACTED);
                i += secret.len();
            } else {
                replaced.push(out[i]);
                i += 1;
            }
        }
        out = replaced;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_every_secret_is_blanked() {
        let secrets = vec![b"pw".to_vec(), b"cHc=".to_vec()];
        assert_eq!(
            redact(b"a pw b pwpw c cHc= d", &secrets),
            b"a [redacted] b [redacted][redacted] c [redacted] d"
        );
        assert_eq!(redact(b"nothing here", &secrets), b"nothing here");
        assert_eq!(redact(b"p", &secrets), b"p");
    }
}
