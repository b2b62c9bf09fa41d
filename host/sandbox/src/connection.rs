//! A tenant's connection as the sandbox reads it: what a guest may see of it
//! (`context.connection`) and where and how its credential may travel
//! (`context.http-with-connection`, sent by `held_http.rs`).
//!
//! The host services hand the sandbox the connection as stored, secret included;
//! this module is the one place that decides what of it crosses into the guest.
//! A connection is host-held unless it says `"exposed": true`; a stored
//! connection without the flag predates host-held secrets and stays exposed, as
//! it was when its owner stored it.

use base64::Engine as _;
use http::HeaderName;
use http::uri::{Scheme, Uri};
use serde_json::{Map, Value};

use crate::outbound::{display_host_port as host_port, normalize_host};

/// What the guest gets from `context.connection`: the stored JSON, or for a
/// host-held connection the same without its password (`null`) and with
/// `host_held: true`. The `exposed` flag itself is the host's business.
pub(crate) fn guest_view(conn_id: &str, stored: &str) -> Result<String, String> {
    let mut fields = fields(conn_id, stored)?;
    let exposed = exposed(&fields);
    fields.remove("exposed");
    if !exposed {
        fields.insert("password".into(), Value::Null);
        fields.insert("host_held".into(), Value::Bool(true));
    }
    Ok(Value::Object(fields).to_string())
}

fn fields(conn_id: &str, stored: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(stored) {
        Ok(Value::Object(fields)) => Ok(fields),
        // Never echo the text: it may hold the secret.
        _ => Err(format!(
            "connection `{conn_id}` is stored in a form the host cannot read"
        )),
    }
}

/// Absent (a connection stored before host-held secrets) counts as exposed.
fn exposed(fields: &Map<String, Value>) -> bool {
    fields
        .get("exposed")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// Where a connection's requests may go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// True unless the connection's scheme is `http`: then plain HTTP is allowed.
    pub(crate) https: bool,
    /// Normalized as `outbound.rs` does (lower case, no brackets or trailing dot).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path of a host given as a URL (`https://api.example.com/v2`), without
    /// its trailing `/`; prefixed to a request that gives only a path.
    pub(crate) base_path: String,
}

/// How the credential goes on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// `Authorization: Basic base64(login:password)`.
    Basic,
    /// `Authorization: Bearer password`.
    Bearer,
    /// The password as the value of this header.
    Header(HeaderName),
    /// The password as the value of this query parameter.
    Query(String),
}

/// A connection ready to lend its credential to requests.
pub(crate) struct HeldConnection {
    pub(crate) conn_id: String,
    pub(crate) origin: Origin,
    login: String,
    /// None or empty: requests go out without a credential.
    password: Option<String>,
    pub(crate) placement: Placement,
}

/// A request that passed the origin check: the absolute URI to send (credential
/// query parameter included) and the headers the credential adds.
pub(crate) struct Credentialed {
    pub(crate) uri: Uri,
    /// For the log: the URL the guest asked for, resolved, without the credential.
    pub(crate) shown: String,
    pub(crate) headers: Vec<(HeaderName, http::HeaderValue)>,
    pub(crate) https: bool,
}

impl HeldConnection {
    /// Reads the stored JSON. The errors name fields, never values.
    pub(crate) fn parse(conn_id: &str, stored: &str) -> Result<Self, String> {
        let fields = fields(conn_id, stored)?;
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let extra = match fields.get("extra") {
            Some(Value::Object(map)) => map.clone(),
            Some(Value::String(s)) if !s.trim().is_empty() => match serde_json::from_str(s) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(format!(
                        "connection `{conn_id}`: `extra` is not a JSON object"
                    ));
                }
            },
            _ => Map::new(),
        };
        let Some(host) = text("host") else {
            return Err(format!(
                "connection `{conn_id}` has no host, so there is nowhere to send its requests"
            ));
        };
        let port = match fields.get("port") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("connection `{conn_id}`: `port` is not a port"))?,
            ),
        };
        let origin = origin(conn_id, &host, text("schema").as_deref(), port)?;
        let login = text("login").unwrap_or_default();
        let extra_text = |name: &str| {
            extra
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let placement = match extra_text("auth_type") {
            None if login.is_empty() => Placement::Bearer,
            None | Some("basic") => Placement::Basic,
            Some("bearer") => Placement::Bearer,
            Some("header") => {
                let name = extra_text("auth_header").ok_or_else(|| {
                    format!(
                        "connection `{conn_id}`: auth_type `header` needs `auth_header` in \
                         extra, the header's name"
                    )
                })?;
                Placement::Header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    format!("connection `{conn_id}`: `auth_header` is not a header name")
                })?)
            }
            Some("query") => Placement::Query(
                extra_text("auth_query_param")
                    .ok_or_else(|| {
                        format!(
                            "connection `{conn_id}`: auth_type `query` needs \
                             `auth_query_param` in extra, the parameter's name"
                        )
                    })?
                    .to_owned(),
            ),
            Some(other) => {
                return Err(format!(
                    "connection `{conn_id}`: auth_type `{other}` is not one of basic, bearer, \
                     header, query"
                ));
            }
        };
        Ok(HeldConnection {
            conn_id: conn_id.to_owned(),
            origin,
            login,
            password: fields
                .get("password")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            placement,
        })
    }

    /// The texts that must not reach the guest in a response: the password as
    /// it goes on the wire in each form the host may have written it.
    pub(crate) fn secrets(&self) -> Vec<Vec<u8>> {
        let Some(password) = &self.password else {
            return Vec::new();
        };
        let mut secrets = vec![password.as_bytes().to_vec()];
        match &self.placement {
            Placement::Basic => secrets.push(basic(&self.login, password).into_bytes()),
            Placement::Query(_) => secrets.push(query_encode(password).into_bytes()),
            Placement::Bearer | Placement::Header(_) => {}
        }
        secrets.sort();
        secrets.dedup();
        secrets
    }

    /// Checks `url` (a path on the connection's origin, or an absolute URL) against
    /// the origin and adds the credential. The error says why, for the guest.
    pub(crate) fn credential(&self, url: &str) -> Result<Credentialed, String> {
        let o = &self.origin;
        let (https, host, port, path_and_query) = if url.starts_with('/') {
            let full = format!("{}{url}", o.base_path);
            (o.https, o.host.clone(), o.port, full)
        } else {
            let uri: Uri = url
                .parse()
                .map_err(|_| format!("`{url}` is neither a path nor an absolute URL"))?;
            let https = match uri.scheme() {
                Some(s) if *s == Scheme::HTTPS => true,
                Some(s) if *s == Scheme::HTTP => false,
                _ => return Err(format!("`{url}` is not an http or https URL")),
            };
            let Some(authority) = uri.authority() else {
                return Err(format!("`{url}` names no host"));
            };
            if authority.as_str().contains('@') {
                return Err(format!("`{url}` carries user information"));
            }
            let host = normalize_host(authority.host());
            let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            (https, host, port, path)
        };
        if host != o.host || port != o.port {
            return Err(format!(
                "connection `{}` may only be used for {}, not {}",
                self.conn_id,
                host_port(&o.host, o.port),
                host_port(&host, port)
            ));
        }
        if o.https && !https {
            return Err(format!(
                "connection `{}` is for https: its credential is never sent over plain HTTP",
                self.conn_id
            ));
        }
        let scheme = if https { "https" } else { "http" };
        let shown = format!("{scheme}://{}{path_and_query}", host_port(&host, port));
        let mut path_and_query = path_and_query;
        let mut headers = Vec::new();
        if let Some(password) = &self.password {
            match &self.placement {
                Placement::Basic => headers.push((
                    http::header::AUTHORIZATION,
                    sensitive(&basic(&self.login, password))?,
                )),
                Placement::Bearer => headers.push((
                    http::header::AUTHORIZATION,
                    sensitive(&format!("Bearer {password}"))?,
                )),
                Placement::Header(name) => headers.push((name.clone(), sensitive(password)?)),
                Placement::Query(name) => {
                    let separator = if path_and_query.contains('?') {
                        '&'
                    } else {
                        '?'
                    };
                    path_and_query = format!(
                        "{path_and_query}{separator}{}={}",
                        query_encode(name),
                        query_encode(password)
                    );
                }
            }
        }
        let uri = format!("{scheme}://{}{path_and_query}", host_port(&host, port))
            .parse()
            .map_err(|_| format!("`{shown}` is not a valid URL"))?;
        Ok(Credentialed {
            uri,
            shown,
            headers,
            https,
        })
    }
}

/// The origin a connection's fields describe: `host` may be a bare name or
/// address, or a URL whose scheme, port and path count; otherwise `schema`
/// (`http` or `https`, as Airflow's HTTP connections use it) gives the scheme,
/// https when it says neither. `port` wins over a port in the URL.
fn origin(
    conn_id: &str,
    host: &str,
    schema: Option<&str>,
    port: Option<u16>,
) -> Result<Origin, String> {
    let bad_host = || format!("connection `{conn_id}`: `host` is not a host name or URL");
    let (https, name, url_port, base_path) = if host.contains("://") {
        let uri: Uri = host.parse().map_err(|_| bad_host())?;
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                return Err(format!(
                    "connection `{conn_id}`: only http and https hosts can carry requests"
                ));
            }
        };
        let authority = uri.authority().ok_or_else(bad_host)?;
        if authority.as_str().contains('@') {
            return Err(bad_host());
        }
        let path = uri.path().trim_end_matches('/').to_owned();
        (
            https,
            authority.host().to_owned(),
            authority.port_u16(),
            path,
        )
    } else {
        let https = !schema.is_some_and(|s| s.eq_ignore_ascii_case("http"));
        let authority: http::uri::Authority = host.parse().map_err(|_| bad_host())?;
        if authority.as_str().contains('@') {
            return Err(bad_host());
        }
        (
            https,
            authority.host().to_owned(),
            authority.port_u16(),
            String::new(),
        )
    };
    let default = if https { 443 } else { 80 };
    Ok(Origin {
        https,
        host: normalize_host(&name),
        port: port.or(url_port).unwrap_or(default),
        base_path,
    })
}

fn basic(login: &str, password: &str) -> String {
    let pair = format!("{login}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A header value marked sensitive, so hyper's and http's debug output hide it.
fn sensitive(value: &str) -> Result<http::HeaderValue, String> {
    let mut value = http::HeaderValue::from_str(value)
        .map_err(|_| "the connection's secret cannot be sent in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(fields: Value) -> Result<HeldConnection, String> {
        HeldConnection::parse("api", &fields.to_string())
    }

    #[test]
    fn the_guest_sees_a_host_held_connection_without_its_password() {
        let stored = json!({"conn_id": "api", "conn_type": "http", "host": "h",
            "login": "me", "password": "pw-123", "exposed": false});
        let seen: Value =
            serde_json::from_str(&guest_view("api", &stored.to_string()).unwrap()).unwrap();
        assert_eq!(seen["password"], Value::Null);
        assert_eq!(seen["host_held"], true);
        assert_eq!(seen["login"], "me");
        assert!(seen.get("exposed").is_none());

        // Exposed by choice, or stored before the flag existed: as stored.
        for stored in [
            json!({"conn_type": "http", "password": "pw-123", "exposed": true}),
            json!({"conn_type": "http", "password": "pw-123"}),
        ] {
            let seen: Value =
                serde_json::from_str(&guest_view("api", &stored.to_string()).unwrap()).unwrap();
            assert_eq!(seen["password"], "pw-123");
            assert!(seen.get("host_held").is_none());
        }
        let err = guest_view("api", "not json pw-123").unwrap_err();
        assert!(!err.contains("pw-123"), "{err}");
    }

    #[test]
    fn the_origin_comes_from_host_schema_and_port() {
        let o = |fields: Value| held(fields).unwrap().origin;
        let origin = o(json!({"host": "API.example.com."}));
        assert_eq!(
            (origin.https, origin.host.as_str(), origin.port),
            (true, "api.example.com", 443)
        );
        let origin = o(json!({"host": "localhost", "schema": "http", "port": 8080}));
        assert_eq!((origin.https, origin.port), (false, 8080));
        let origin = o(json!({"host": "http://127.0.0.1:9000/v2/"}));
        assert_eq!(
            (
                origin.https,
                origin.host.as_str(),
                origin.port,
                origin.base_path.as_str()
            ),
            (false, "127.0.0.1", 9000, "/v2")
        );
        // A database name in `schema` is not a scheme.
        assert!(o(json!({"host": "db", "schema": "sales"})).https);
        assert!(held(json!({"conn_type": "http"})).is_err());
        assert!(held(json!({"host": "ftp://x"})).is_err());
        assert!(held(json!({"host": "https://u:p@x"})).is_err());
    }

    #[test]
    fn the_credential_goes_only_to_the_origin() {
        let c = held(json!({"host": "api.example.com", "login": "me", "password": "pw"})).unwrap();
        assert_eq!(c.placement, Placement::Basic);
        let ok = c.credential("/v1/items?page=2").unwrap();
        assert_eq!(
            ok.uri.to_string(),
            "https://api.example.com:443/v1/items?page=2"
        );
        assert_eq!(ok.headers[0].1, "Basic bWU6cHc=");
        assert!(ok.headers[0].1.is_sensitive());
        assert!(c.credential("https://API.example.com/x").is_ok());
        for (url, why) in [
            (
                "https://other.example.com/",
                "may only be used for api.example.com:443",
            ),
            ("https://api.example.com:8443/", "not api.example.com:8443"),
            ("http://api.example.com:443/", "never sent over plain HTTP"),
            ("https://me@api.example.com/", "user information"),
            ("ftp://api.example.com/", "not an http or https URL"),
            ("api.example.com/x", "neither a path nor an absolute URL"),
        ] {
            let err = c.credential(url).err().unwrap_or_default();
            assert!(err.contains(why), "{url}: {err}");
        }
        // An address is not the name it may resolve to.
        let local = held(json!({"host": "localhost", "schema": "http", "port": 80,
            "password": "t"}))
        .unwrap();
        assert!(local.credential("http://127.0.0.1/").is_err());
        assert!(local.credential("http://localhost/").is_ok());
    }

    #[test]
    fn placements_follow_the_extra() {
        let c = |extra: Value| {
            held(json!({"host": "h", "password": "s e/cret", "extra": extra.to_string()}))
        };
        assert_eq!(c(json!({})).unwrap().placement, Placement::Bearer);
        let bearer = c(json!({})).unwrap().credential("/").unwrap();
        assert_eq!(bearer.headers[0].1, "Bearer s e/cret");
        let header = c(json!({"auth_type": "header", "auth_header": "X-Api-Key"}))
            .unwrap()
            .credential("/")
            .unwrap();
        assert_eq!(header.headers[0].0, "x-api-key");
        let query = c(json!({"auth_type": "query", "auth_query_param": "key"})).unwrap();
        let sent = query.credential("/p?a=1").unwrap();
        assert_eq!(
            sent.uri.path_and_query().unwrap().as_str(),
            "/p?a=1&key=s%20e%2Fcret"
        );
        assert_eq!(sent.shown, "https://h:443/p?a=1");
        assert!(sent.headers.is_empty());
        assert!(query.secrets().contains(&b"s%20e%2Fcret".to_vec()));
        assert!(c(json!({"auth_type": "header"})).is_err());
        assert!(
            c(json!({"auth_type": "digest"}))
                .err()
                .unwrap()
                .contains("digest")
        );
    }
}
