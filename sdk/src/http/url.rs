//! The few parts of a URL a `wasi:http` request is made of.

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

impl Url {
    /// Splits `text`, or says why it is no URL a task can request.
    pub(crate) fn parse(text: &str) -> Result<Url, String> {
        let text = text.trim();
        let not_http = || "it is not an http:// or https:// URL".to_owned();
        let (scheme, rest) = text.split_once("://").ok_or_else(not_http)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(not_http()),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err("the URL has no host".into());
        }
        if authority.contains('@') {
            return Err(
                "the URL carries user information; send credentials in a header instead".into(),
            );
        }
        if authority.contains(char::is_whitespace) {
            return Err("the URL has a space in its host".into());
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

    /// The host (without IPv6 brackets) and the port, the scheme's default when
    /// none is written; `None` for a port that is not a number.
    pub(crate) fn host_port(&self) -> Option<(&str, u16)> {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let (host, port) = if let Some(inner) = self.authority.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else {
            match self.authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (self.authority.as_str(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        Some((host, port))
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
    fn host_and_port_default_by_scheme() {
        let hp = |t: &str| {
            Url::parse(t)
                .unwrap()
                .host_port()
                .map(|(h, p)| (h.to_owned(), p))
        };
        assert_eq!(hp("https://a.example"), Some(("a.example".into(), 443)));
        assert_eq!(hp("http://a.example:81/x"), Some(("a.example".into(), 81)));
        assert_eq!(hp("http://[::1]/"), Some(("::1".into(), 80)));
        assert_eq!(hp("http://[::1]:9/"), Some(("::1".into(), 9)));
        assert_eq!(hp("http://h:x/"), None);
    }

    #[test]
    fn other_urls_are_refused_with_the_reason() {
        let err = |t: &str| Url::parse(t).unwrap_err();
        assert!(err("ftp://h/").contains("not an http:// or https:// URL"));
        assert!(err("example.com/x").contains("not an http:// or https:// URL"));
        assert!(err("http:///x").contains("has no host"));
        assert!(err("https://u:p@h/").contains("user information"));
    }
}
