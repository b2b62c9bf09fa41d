//! `aileron tenants|users|roles|tokens ...`: who may do what, managed through a
//! running server's API (so every change is checked and audited like any other).
//! Tenants and users need a platform admin; roles and tokens a tenant's Admin.

use super::ServerArgs;
use super::client::{Client, seg};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// List every tenant.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create a tenant; its DAG files go in `dags/<name>/`.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set a tenant's share of the executor and its quotas. Each limit takes a
    /// value or `none` to lift it.
    Set {
        name: String,
        /// 1 to 1000 (every tenant starts at 1).
        #[arg(long)]
        weight: Option<u32>,
        /// Tries queued or running at once: a number.
        #[arg(long)]
        max_running: Option<String>,
        /// Memory its tries in one process hold together: `512MiB`, `2GiB`.
        #[arg(long)]
        max_memory: Option<String>,
        /// Guest CPU per rolling hour: `10m`, `600s`, `2h`.
        #[arg(long)]
        cpu_per_hour: Option<String>,
        /// Ceiling of its DAGs' max_active_runs: a number.
        #[arg(long)]
        max_active_runs: Option<String>,
        /// Ceiling of its tasks' execution_timeout: `30m`, `2h`.
        #[arg(long)]
        execution_timeout: Option<String>,
        /// Ceiling of its tasks' memory_limit: `256MiB`.
        #[arg(long)]
        memory_limit: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a tenant with its members, tokens, variables, connections, pools
    /// and operators (refused while it has DAGs).
    Delete {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List every user and their roles.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create a user; the password is read from AILERON_USER_PASSWORD or stdin.
    Create {
        username: String,
        /// A role to give at once, as TENANT=ROLE (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long)]
        platform_admin: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set a user's password (read from AILERON_USER_PASSWORD or stdin); every
    /// session of theirs ends.
    SetPassword {
        username: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a user.
    Delete {
        username: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
pub enum RolesCommand {
    /// The members of the tenant and their roles.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give a user a role (Viewer, User, Op, Admin) in the tenant.
    Grant {
        username: String,
        role: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Take a user's role in the tenant away.
    Revoke {
        username: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// The tenant's API tokens (revoked ones included), with their last use.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make an API token for a service account; it is printed this once.
    Create {
        name: String,
        /// Viewer (default), User, Op or Admin.
        #[arg(long)]
        role: Option<String>,
        /// When it stops working (a date or date-time).
        #[arg(long)]
        expires: Option<String>,
        /// A worker token: `aileron worker --token` with it takes this
        /// tenant's tries alone; the REST API refuses it.
        #[arg(long)]
        worker: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id.
    Revoke {
        token_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn print(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AILERON_USER_PASSWORD") {
        return Ok(p);
    }
    Ok(super::login::read_secret("Password: ")?)
}

pub async fn tenants(cmd: TenantsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantsCommand::List { server } => {
            print(&Client::new(&server).get("/tenants").await?["tenants"])
        }
        TenantsCommand::Create {
            name,
            description,
            server,
        } => {
            let body = json!({ "name": name, "description": description });
            print(
                &Client::new(&server)
                    .request(Method::POST, "/tenants", Some(body))
                    .await?,
            )
        }
        TenantsCommand::Set {
            name,
            weight,
            max_running,
            max_memory,
            cpu_per_hour,
            max_active_runs,
            execution_timeout,
            memory_limit,
            description,
            server,
        } => {
            use aileron_model::units::{parse_duration, parse_size};
            let mut body = serde_json::Map::new();
            if let Some(w) = weight {
                body.insert("weight".into(), json!(w));
            }
            let count = |t: &str| t.parse::<u64>().map_err(|e| e.to_string());
            let size = |t: &str| parse_size(t).map_err(|e| e.to_string());
            let secs = |t: &str| {
                parse_duration(t)
                    .map(|d| d.as_secs())
                    .map_err(|e| e.to_string())
            };
            // (field, the flag's text, how it is read)
            type Flag<'a> = (
                &'a str,
                Option<String>,
                &'a dyn Fn(&str) -> Result<u64, String>,
            );
            let limits: [Flag; 6] = [
                ("max_running", max_running, &count),
                ("max_memory", max_memory, &size),
                ("cpu_per_hour", cpu_per_hour, &secs),
                ("max_active_runs", max_active_runs, &count),
                ("execution_timeout", execution_timeout, &secs),
                ("memory_limit", memory_limit, &size),
            ];
            for (field, value, parse) in limits {
                let Some(text) = value else { continue };
                let value = match text.as_str() {
                    "none" => Value::Null,
                    t => json!(parse(t).map_err(|e| anyhow::anyhow!(
                        "--{} takes a value or `none`: {e}",
                        field.replace('_', "-")
                    ))?),
                };
                body.insert(field.into(), value);
            }
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            print(
                &Client::new(&server)
                    .request(
                        Method::PATCH,
                        &format!("/tenants/{}", seg(&name)),
                        Some(Value::Object(body)),
                    )
                    .await?,
            )
        }
        TenantsCommand::Delete { name, server } => {
            Client::new(&server)
                .request(Method::DELETE, &format!("/tenants/{}", seg(&name)), None)
                .await?;
            println!("Deleted tenant {name}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::List { server } => print(&Client::new(&server).get("/users").await?["users"]),
        UsersCommand::Create {
            username,
            roles,
            platform_admin,
            server,
        } => {
            let mut by_tenant = serde_json::Map::new();
            for r in roles {
                let (tenant, role) = r
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--role takes TENANT=ROLE, like team_a=Op"))?;
                by_tenant.insert(tenant.to_owned(), role.into());
            }
            let body = json!({
                "username": username, "password": read_password()?,
                "platform_admin": platform_admin, "roles": by_tenant,
            });
            print(
                &Client::new(&server)
                    .request(Method::POST, "/users", Some(body))
                    .await?,
            )
        }
        UsersCommand::SetPassword { username, server } => {
            let body = json!({ "password": read_password()? });
            Client::new(&server)
                .request(
                    Method::PATCH,
                    &format!("/users/{}", seg(&username)),
                    Some(body),
                )
                .await?;
            println!("Changed the password of {username}.");
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Delete { username, server } => {
            Client::new(&server)
                .request(Method::DELETE, &format!("/users/{}", seg(&username)), None)
                .await?;
            println!("Deleted user {username}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn roles(cmd: RolesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RolesCommand::List { server } => {
            print(&Client::new(&server).get("/members").await?["members"])
        }
        RolesCommand::Grant {
            username,
            role,
            server,
        } => print(
            &Client::new(&server)
                .request(
                    Method::PUT,
                    &format!("/members/{}", seg(&username)),
                    Some(json!({ "role": role })),
                )
                .await?,
        ),
        RolesCommand::Revoke { username, server } => {
            Client::new(&server)
                .request(
                    Method::DELETE,
                    &format!("/members/{}", seg(&username)),
                    None,
                )
                .await?;
            println!("{username} no longer holds a role in this tenant.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn tokens(cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokensCommand::List { server } => {
            print(&Client::new(&server).get("/tokens").await?["tokens"])
        }
        TokensCommand::Create {
            name,
            role,
            expires,
            worker,
            server,
        } => {
            let body =
                json!({ "name": name, "role": role, "expires_at": expires, "worker": worker });
            let v = Client::new(&server)
                .request(Method::POST, "/tokens", Some(body))
                .await?;
            eprintln!("Keep this token now: it is not shown again.");
            println!("{}", v["token"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke { token_id, server } => {
            Client::new(&server)
                .request(Method::DELETE, &format!("/tokens/{}", seg(&token_id)), None)
                .await?;
            println!("Revoked token {token_id}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
