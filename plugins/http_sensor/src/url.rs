//! The few parts of a URL a `wasi:http` request is made of.

use std::fmt;

/// An `http://` or `https://` URL split the way `wasi:http` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// `host` or `host:port` (`[v6]:port` for IPv6).
    pub(crate) authority: String,
    /// Starts with `/`; the fragment is dropped (it never goes on the wire).
    pub(crate) path_with_query: String,
}

/// Why a URL was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl Url {
    pub(crate) fn parse(text: &str) -> Result<Url, UrlError> {
        let invalid = |why: &str| UrlError(format!("invalid params at `url`: `{text}` {why}"));
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("is not an http:// or https:// URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(invalid("is not an http:// or https:// URL")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("has no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "carries user information; send credentials in `headers` instead",
            ));
        }
        if authority.contains(char::is_whitespace) {
            return Err(invalid("has a space in its host"));
        }
        let tail = tail.split('#').next().unwrap_or_default();
        let path_with_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (&'static str, String, String) {
        let url = Url::parse(text).unwrap();
        (url.scheme, url.authority, url.path_with_query)
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            parts("https://api.example.com/v1/ready?x=1#top"),
            ("https", "api.example.com".into(), "/v1/ready?x=1".into())
        );
        assert_eq!(
            parts("HTTP://h:8080"),
            ("http", "h:8080".into(), "/".into())
        );
        assert_eq!(parts("http://h?q=1"), ("http", "h".into(), "/?q=1".into()));
        assert_eq!(
            parts("http://[::1]:80/"),
            ("http", "[::1]:80".into(), "/".into())
        );
    }

    #[test]
    fn other_urls_are_refused_with_the_reason() {
        let err = |t: &str| Url::parse(t).unwrap_err().to_string();
        assert!(err("ftp://h/").contains("not an http:// or https:// URL"));
        assert!(err("example.com/x").contains("not an http:// or https:// URL"));
        assert!(err("http:///x").contains("has no host"));
        assert!(err("https://u:p@h/").contains("user information"));
    }
}
