//! `aileron login`: signs in to a server and keeps the session token in
//! `~/.aileron/credentials` (owner-readable only), which every client command
//! then uses when it is given no `--token`.

use super::ServerArgs;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The user to sign in as.
    #[arg(long, short, default_value = "admin")]
    pub username: String,
    /// The password; read from the first line of standard input when absent.
    #[arg(long, env = "AILERON_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Where the token is kept: `$AILERON_CREDENTIALS`, else `~/.aileron/credentials`.
pub fn credentials_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AILERON_CREDENTIALS") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aileron").join("credentials"))
}

/// The token `aileron login` kept for `server`, if any.
pub fn stored_token(server: &str) -> Option<String> {
    let text = std::fs::read_to_string(credentials_path()?).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(server.trim_end_matches('/'))?
        .as_str()
        .map(str::to_owned)
}

/// A line from standard input after `prompt` (on stderr), without its newline:
/// how the CLI takes a password it was not given.
pub fn read_secret(prompt: &str) -> std::io::Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn run(a: LoginArgs) -> anyhow::Result<std::process::ExitCode> {
    let password = match a.password {
        Some(p) => p,
        None => read_secret(&format!("Password for {}: ", a.username))?,
    };
    let server = a.server.server.trim_end_matches('/').to_owned();
    let url = format!("{server}/auth/token");
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "username": a.username, "password": password }))
        .send()
        .await
        .with_context(|| format!("cannot reach the Aileron server at {url}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let detail = body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("no detail");
        anyhow::bail!("the server answered {status}: {detail}");
    }
    let token = body["access_token"]
        .as_str()
        .context("the server's answer has no access_token")?;
    let path =
        credentials_path().context("no HOME to keep the token in; set AILERON_CREDENTIALS")?;
    let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.insert(server.clone(), token.into());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::auth::write_owner_only(&path, &serde_json::Value::Object(all).to_string())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "Signed in to {server} as {}; the token is in {}",
        a.username,
        path.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}
