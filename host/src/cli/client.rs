//! A small client of the REST API (`/api/v2`, Airflow 3's, with Aileron's own
//! resources beside it) for the commands that talk to a server.

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
            base: format!("{}/api/v2", args.server.trim_end_matches('/')),
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
            anyhow::bail!("the server answered {status}: {}", detail(&value));
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request(reqwest::Method::GET, path, None).await
    }
}

/// An error answer's explanation: `detail` as text, or a validation error's
/// list of `{loc, msg}` as `loc: msg` lines joined.
fn detail(answer: &Value) -> String {
    match answer.get("detail") {
        Some(Value::String(d)) => d.clone(),
        Some(Value::Array(errors)) => errors
            .iter()
            .map(|e| {
                let loc: Vec<String> = e["loc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                    .collect();
                format!(
                    "{}: {}",
                    loc.join("."),
                    e["msg"].as_str().unwrap_or("invalid")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no detail".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::detail;
    use serde_json::json;

    #[test]
    fn details_read_as_text_or_as_validation_errors() {
        assert_eq!(detail(&json!({"detail": "no such DAG"})), "no such DAG");
        let v = json!({"detail": [{"loc": ["body", "key"], "msg": "missing", "type": "x"}]});
        assert_eq!(detail(&v), "body.key: missing");
        assert_eq!(detail(&json!(null)), "no detail");
    }
}
