//! The web UI, embedded in the binary from `web/` so a release is one file.
//!
//! `web/index.html` is the single page; everything it loads lives under
//! `web/assets/` (plain ES modules and CSS, no build step) and is served from
//! `/assets/…`. The UI routes on the URL's hash (`/#/dags/example_etl/grid`), so the
//! server only ever has to answer `/` and `/assets/…` for any deep link to work.
//!
//! Caching: nothing has a content hash in its name, so every response carries a
//! strong `ETag` (the file's SHA-256) with `Cache-Control: no-cache`: browsers keep
//! the files and revalidate them with a cheap `304 Not Modified`, and a new binary
//! is picked up on the next load.

use crate::api::RouteTable;
use crate::api::access::{Policy, plain_route};
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use std::sync::OnceLock;

/// `web/assets/`, compiled into the binary (in debug builds too: the `debug-embed`
/// feature), so tests drive exactly what a release serves.
#[derive(RustEmbed)]
#[folder = "../web/assets/"]
struct Assets;

const INDEX: &str = include_str!("../../web/index.html");

/// The pages' Content-Security-Policy: the UI loads nothing but its own files and
/// talks to nothing but its own API, so an injected string can never run script.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/` and `/assets/{*path}`, public (the sign-in page is made of these files,
/// and they hold no data), with their entries in the route table.
pub fn router() -> (Router, RouteTable) {
    let mut table = RouteTable::default();
    let mut public = |path: &str, mr| {
        plain_route(
            &mut table,
            "",
            path,
            &[Method::GET],
            Policy::Public,
            "web_ui",
            mr,
        )
    };
    let router = Router::new()
        .route("/", public("/", get(index)))
        .route("/index.html", public("/index.html", get(index)))
        .route("/assets/{*path}", public("/assets/{*path}", get(asset)));
    (router, table)
}

/// The single page (`/`).
pub async fn index(headers: HeaderMap) -> Response {
    static ETAG: OnceLock<String> = OnceLock::new();
    let etag = ETAG.get_or_init(|| etag_of(&sha256(INDEX.as_bytes())));
    respond(
        &headers,
        etag,
        "text/html; charset=utf-8",
        INDEX.as_bytes().to_vec(),
    )
}

/// One file under `web/assets/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such asset",
        )
            .into_response();
    };
    let etag = etag_of(&file.metadata.sha256_hash());
    respond(&headers, &etag, content_type(&path), file.data.into_owned())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn etag_of(hash: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(&hash[..16]))
}

fn respond(headers: &HeaderMap, etag: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        router()
            .0
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(r: Response) -> String {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn index_is_html_that_loads_the_app() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = text(r).await;
        assert!(body.contains(r#"src="/assets/app.js""#));
        assert!(body.contains(r#"href="/assets/style.css""#));
    }

    #[tokio::test]
    async fn assets_have_content_types_and_revalidate_with_etags() {
        let r = get("/assets/app.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = get("/assets/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(text(again).await.is_empty());
        let css = get("/assets/style.css", None).await;
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        let stale = get("/assets/style.css", Some("\"nope\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_assets_and_traversal_are_404() {
        for uri in [
            "/assets/nope.js",
            "/assets/../index.html",
            "/assets/%2e%2e/README.md",
        ] {
            assert_eq!(
                get(uri, None).await.status(),
                StatusCode::NOT_FOUND,
                "{uri}"
            );
        }
    }

    /// Every relative `import … from "./x.js"` in every module names an embedded
    /// file: a typo would otherwise only show as a blank page in a browser.
    #[test]
    fn every_module_import_resolves() {
        let names: Vec<String> = Assets::iter().map(|n| n.into_owned()).collect();
        assert!(names.iter().any(|n| n == "app.js"));
        for name in names.iter().filter(|n| n.ends_with(".js")) {
            let file = Assets::get(name).unwrap();
            let src = std::str::from_utf8(&file.data).unwrap();
            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            for spec in src
                .split("from \"")
                .skip(1)
                .filter_map(|s| s.split_once('"').map(|(p, _)| p))
            {
                let Some(rel) = spec.strip_prefix("./") else {
                    panic!("{name}: import `{spec}` is not relative to the module");
                };
                let target = if dir.is_empty() {
                    rel.to_owned()
                } else {
                    format!("{dir}/{rel}")
                };
                assert!(
                    names.contains(&target),
                    "{name} imports `{spec}`, which is not in web/assets"
                );
            }
        }
    }
}
