//! The web frontend, embedded in the binary from `web/` so a release is one file.

use axum::response::Html;

const INDEX: &str = include_str!("../../web/index.html");

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}
