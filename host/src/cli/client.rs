//! A small client of the REST API for the commands that talk to a server.

use super::ServerArgs;
pub use aileron_protocol::seg;
use anyhow::Context;
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    tenant: Option<String>,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{}/api/v1", args.server.trim_end_matches('/')),
            // `--token`/AILERON_TOKEN, else what `aileron login` kept.
            token: args
                .token
                .clone()
                .or_else(|| super::login::stored_token(&args.server)),
            tenant: args.tenant.clone(),
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.send(method, path, |req| match body {
            Some(b) => req.json(&b),
            None => req,
        })
        .await
    }

    /// Sends `bytes` as the body, with `content_type`: an operator component.
    pub async fn upload(
        &self,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, |req| {
            req.header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes)
        })
        .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(t) = &self.tenant {
            req = req.header("x-aileron-tenant", t);
        }
        let resp = body(req)
            .send()
            .await
            .with_context(|| format!("cannot reach the Aileron server at {url}; is it running? (set --server or AILERON_SERVER)"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("no detail");
            anyhow::bail!("the server answered {status}: {detail}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request(reqwest::Method::GET, path, None).await
    }
}
