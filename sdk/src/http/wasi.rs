//! One HTTP exchange over `wasi:http/outgoing-handler` (the `wasip2` crate's
//! bindings): what [`TaskContext::http`](crate::TaskContext::http) does inside a
//! component.

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use super::url::Url;
use super::{FetchErrorKind, Request, Response};

/// Bytes written to the request body per call: `blocking-write-and-flush` takes
/// at most 4096.
const WRITE_CHUNK: usize = 4096;

/// The host's cap, used when the request sets no timeout.
const HOST_CAP: Duration = Duration::from_secs(30);

type Failure = (FetchErrorKind, String);

/// Sends `request` to `url` (its parsed URL) through the host.
pub(crate) fn send(request: &Request, url: &Url) -> Result<Response, Failure> {
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone().into_bytes()))
        .collect();
    let headers = Fields::from_list(&entries).map_err(|e| {
        (
            FetchErrorKind::Invalid,
            match e {
                HeaderError::Forbidden => {
                    "a header the host sets itself (such as host or connection) is given".into()
                }
                other => format!("invalid header: {other:?}"),
            },
        )
    })?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| {
        (
            FetchErrorKind::Invalid,
            format!("the host refused its {what}"),
        )
    };
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    let scheme = if url.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;

    let options = RequestOptions::new();
    let timeout = request.timeout.unwrap_or(HOST_CAP);
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // The host may refuse a timeout it cannot honour; its own cap then applies.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(classify)?;
    // The body is written after `handle`: the host streams it to the server, so
    // a body larger than its buffer cannot block before anything reads it.
    {
        let stream = body.write().map_err(|()| invalid("body"))?;
        for chunk in request.body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| stream_error(&e))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(classify)?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(classify(code)),
        Some(Err(())) | None => {
            return Err((
                FetchErrorKind::Transient,
                "the host lost the response".into(),
            ));
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| unavailable())?;
    let mut data = Vec::new();
    let mut truncated = false;
    {
        let stream = incoming.stream().map_err(|()| unavailable())?;
        loop {
            let room = request.max_body.unwrap_or(usize::MAX) - data.len();
            if room == 0 {
                truncated = true;
                break;
            }
            match stream.blocking_read(room.min(64 << 10) as u64) {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(&e)),
            }
        }
    }
    if !truncated {
        // Trailers are not looked at.
        drop(IncomingBody::finish(incoming));
    }
    Ok(Response {
        status,
        headers,
        body: data,
        truncated,
    })
}

fn unavailable() -> Failure {
    (
        FetchErrorKind::Transient,
        "the response body is unavailable".into(),
    )
}

fn stream_error(error: &StreamError) -> Failure {
    match error {
        StreamError::Closed => (
            FetchErrorKind::Transient,
            "the connection closed early".into(),
        ),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(e) {
            Some(code) => classify(code),
            None => (FetchErrorKind::Transient, e.to_debug_string()),
        },
    }
}

/// Sorts the host's error codes: a refusal by the host's policy, a request that
/// can never be sent, or something that may pass.
fn classify(code: ErrorCode) -> Failure {
    match code {
        ErrorCode::HttpRequestDenied => (FetchErrorKind::Refused, super::NOT_ALLOWED.into()),
        ErrorCode::DestinationIpProhibited => (
            FetchErrorKind::Refused,
            "the host refused it: the name resolves to a loopback or private address, which \
             this host does not let tasks reach"
                .into(),
        ),
        ErrorCode::HttpRequestUriInvalid => (FetchErrorKind::Invalid, "invalid URL".into()),
        ErrorCode::HttpRequestMethodInvalid => (FetchErrorKind::Invalid, "invalid method".into()),
        other => (FetchErrorKind::Transient, describe(&other)),
    }
}

fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::DnsError(payload) => match &payload.rcode {
            Some(rcode) => format!("DNS error: {rcode}"),
            None => "DNS error".into(),
        },
        ErrorCode::DnsTimeout => "DNS lookup timed out".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionTimeout => "connection timed out".into(),
        ErrorCode::ConnectionReadTimeout => "timed out waiting for the response".into(),
        ErrorCode::ConnectionTerminated => "connection closed by the server".into(),
        ErrorCode::TlsCertificateError => "TLS certificate not accepted".into(),
        ErrorCode::TlsProtocolError => "TLS error".into(),
        ErrorCode::InternalError(Some(why)) => why.clone(),
        other => format!("{other:?}"),
    }
}
