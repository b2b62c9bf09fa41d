//! The host's `allow_hosts` rules, for [`TestHost`](crate::testing::TestHost) to
//! refuse what a deployed task would be refused.
//!
//! The host's own check is `aileron_sandbox::outbound::host_allowed`; the root
//! workspace's tests run both over one table so they cannot drift.

/// Whether the `allow_hosts` patterns let a request reach `host` on `port`: an
/// exact name or address, or `*.domain` for any name under it, each optionally
/// with `:port` (`[v6]:port` for IPv6). Case and a trailing dot do not matter;
/// invalid patterns match nothing.
pub fn host_allowed(allow_hosts: &[String], host: &str, port: u16) -> bool {
    let host = normalize(host);
    allow_hosts.iter().any(|pattern| {
        let (wildcard, rest) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        let Some((pattern_host, pattern_port)) = split(rest) else {
            return false;
        };
        let pattern_host = normalize(pattern_host);
        if pattern_host.is_empty()
            || pattern_host.contains(['*', '/', '@'])
            || pattern_host.contains(char::is_whitespace)
            || pattern_port.is_some_and(|p| p != port)
        {
            return false;
        }
        if wildcard {
            host.len() > pattern_host.len() + 1
                && host.ends_with(pattern_host.as_str())
                && host.as_bytes()[host.len() - pattern_host.len() - 1] == b'.'
        } else {
            host == pattern_host
        }
    })
}

/// A pattern's host and port; `None` when the port is not a number.
fn split(rest: &str) -> Option<(&str, Option<u16>)> {
    if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        Some((host, port))
    } else if rest.matches(':').count() == 1 {
        let (host, port) = rest.split_once(':')?;
        Some((host, Some(port.parse().ok()?)))
    } else {
        // No port, or a bare IPv6 address.
        Some((rest, None))
    }
}

/// Lower case, without IPv6 brackets or a trailing dot.
fn normalize(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}
