//! Who may call what. Every HTTP route the server answers is added through this
//! module with its [`Policy`], at the place the route is defined: an OpenAPI
//! route through [`ApiRoutes::add`], any other through [`plain`]. Both wrap the
//! route in [`enforce`], and both record the route in a [`RouteTable`], which is
//! how the authorization-matrix test walks every route: a route added any other
//! way is missing from the table and fails that test, and has no [`Caller`], so
//! every handler that takes one refuses it.
//!
//! Deny by default: no credentials is 401, a role too small in the caller's own
//! tenant is 403, and another tenant's object is 404 because every read and
//! write is keyed by the caller's tenant (the handlers never see another's).
//! Naming a tenant one holds no role in is 404 too, so a caller cannot learn
//! which tenants exist.

use super::{ApiError, Caller};
use crate::auth::{Auth, Credentials, Principal};
use crate::metastore::{AuditRecord, Metastore};
use aileron_model::{Role, TenantId};
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone: `/health`, the sign-in endpoints and the UI's files (the sign-in
    /// page is made of them; they hold no data).
    Public,
    /// Any signed-in caller (who am I, the OpenAPI document).
    SignedIn,
    /// At least this role in the tenant the request acts in.
    Tenant(Role),
    /// Platform admins only (tenants, users, workers, `/metrics`).
    Platform,
    /// The execution API: workers sign each call with their own tokens, which
    /// that API checks itself; user credentials mean nothing there.
    Worker,
}

/// One route and its policy.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub method: Method,
    /// The full path template, e.g. `/api/v1/dags/{dag_id}`.
    pub path: String,
    pub policy: Policy,
    /// The OpenAPI operation id (or a name for a plain route): the audit log's
    /// `event`.
    pub operation: String,
}

/// Every route of a surface with its policy.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(pub Vec<RouteEntry>);

impl RouteTable {
    pub fn extend(&mut self, other: RouteTable) {
        self.0.extend(other.0);
    }
}

/// What the access layer needs: put in every request by the server's router.
#[derive(Clone)]
pub struct Access {
    pub auth: Auth,
    pub metastore: Metastore,
}

/// An OpenAPI router whose routes all carry a policy.
pub struct ApiRoutes<S> {
    router: OpenApiRouter<S>,
    prefix: &'static str,
    table: RouteTable,
}

impl<S: Clone + Send + Sync + 'static> ApiRoutes<S> {
    /// `prefix` is where the router will be nested (for the table's paths).
    pub fn new(router: OpenApiRouter<S>, prefix: &'static str) -> Self {
        ApiRoutes {
            router,
            prefix,
            table: RouteTable::default(),
        }
    }

    /// Adds the operations of one `routes!(…)` under `policy`.
    pub fn add(
        mut self,
        policy: Policy,
        (schemas, mut paths, method_router): UtoipaMethodRouter<S>,
    ) -> Self {
        for item in paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                document(policy, op);
            }
        }
        let mut operation = String::new();
        for (path, item) in &paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if let Some(op) = op {
                    let id = op.operation_id.clone().unwrap_or_default();
                    operation = if operation.is_empty() {
                        id.clone()
                    } else {
                        format!("{operation},{id}")
                    };
                    self.table.0.push(RouteEntry {
                        method,
                        path: format!("{}{path}", self.prefix),
                        policy,
                        operation: id,
                    });
                }
            }
        }
        let method_router = guarded(policy, operation, method_router);
        self.router = self.router.routes((schemas, paths, method_router));
        self
    }

    /// Adds a route that is not in the OpenAPI document.
    pub fn plain(
        mut self,
        path: &str,
        methods: &[Method],
        policy: Policy,
        operation: &str,
        mr: MethodRouter<S>,
    ) -> Self {
        self.router = self.router.route(
            path,
            plain_route(
                &mut self.table,
                self.prefix,
                path,
                methods,
                policy,
                operation,
                mr,
            ),
        );
        self
    }

    pub fn split(self) -> (OpenApiRouter<S>, RouteTable) {
        (self.router, self.table)
    }
}

/// A route outside the OpenAPI document with its policy, recorded in `table`.
/// `methods` are the methods `mr` answers (a `MethodRouter` does not say).
pub fn plain_route<S: Clone + Send + Sync + 'static>(
    table: &mut RouteTable,
    prefix: &str,
    path: &str,
    methods: &[Method],
    policy: Policy,
    operation: &str,
    mr: MethodRouter<S>,
) -> MethodRouter<S> {
    for m in methods {
        table.0.push(RouteEntry {
            method: m.clone(),
            path: format!("{prefix}{path}"),
            policy,
            operation: operation.to_owned(),
        });
    }
    guarded(policy, operation.to_owned(), mr)
}

fn guarded<S: Clone + Send + Sync + 'static>(
    policy: Policy,
    operation: String,
    mr: MethodRouter<S>,
) -> MethodRouter<S> {
    let operation: Arc<str> = operation.into();
    mr.route_layer(axum::middleware::from_fn(
        move |req: Request, next: Next| enforce(policy, operation.clone(), req, next),
    ))
}

/// The UI's session cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "aileron_session";
/// The UI's CSRF cookie, readable by the page, echoed in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "aileron_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Which tenant a request acts in; the UI keeps its choice in a cookie of the
/// same name.
pub const TENANT_HEADER: &str = "x-aileron-tenant";
const TENANT_COOKIE: &str = "aileron_tenant";
/// Longest `Authorization` value looked at; ours are under 300 bytes.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// Checks the caller against `policy`, gives the handler its [`Caller`], and
/// writes an audit record for every request that asks for a change.
async fn enforce(policy: Policy, operation: Arc<str>, mut req: Request, next: Next) -> Response {
    if matches!(policy, Policy::Public | Policy::Worker) {
        return next.run(req).await;
    }
    let Some(access) = req.extensions().get::<Access>().cloned() else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "this server has no access layer")
            .into_response();
    };
    let method = req.method().clone();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let source = client_address(req.extensions().get::<ConnectInfo<SocketAddr>>());
    let decided = decide(&access, policy, req.headers(), changes, &source).await;
    let audit = if changes {
        Some(pending_audit(&mut req, &operation, &source).await)
    } else {
        None
    };
    let (response, who) = match decided {
        Ok(caller) => {
            req.extensions_mut().insert(caller.clone());
            let who = Who::of(&caller, policy);
            (next.run(req).await, who)
        }
        Err((e, who)) => (e.into_response(), who),
    };
    if let Some(audit) = audit {
        write_audit(&access.metastore, audit, who, response.status()).await;
    }
    response
}

/// What the audit record says about the request itself, taken before the
/// request goes to the handler.
struct PendingAudit {
    event: String,
    method: String,
    path: String,
    dag_id: Option<String>,
    run_id: Option<String>,
    task_id: Option<String>,
    source: String,
}

async fn pending_audit(req: &mut Request, operation: &str, source: &str) -> PendingAudit {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    *req = Request::from_parts(parts, body);
    let get = |name: &str| {
        params.as_ref().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    };
    PendingAudit {
        event: operation.to_owned(),
        method: req.method().to_string(),
        // The full path: a nested router sees only its own part.
        path: req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned()),
        dag_id: get("dag_id"),
        run_id: get("dag_run_id"),
        task_id: get("task_id"),
        source: source.to_owned(),
    }
}

/// Who asked, and the tenant the audit record belongs to (`None`: the
/// platform's log).
#[derive(Default)]
struct Who {
    actor: Option<String>,
    tenant: Option<String>,
}

impl Who {
    fn of(caller: &Caller, policy: Policy) -> Who {
        Who {
            actor: Some(caller.actor()),
            tenant: matches!(policy, Policy::Tenant(_)).then(|| caller.tenant().to_owned()),
        }
    }
}

async fn write_audit(metastore: &Metastore, p: PendingAudit, who: Who, status: StatusCode) {
    let record = AuditRecord {
        id: 0,
        when: jiff::Timestamp::now(),
        tenant: who.tenant,
        actor: who.actor.unwrap_or_else(|| "anonymous".to_owned()),
        event: p.event,
        method: p.method,
        path: p.path,
        dag_id: p.dag_id,
        run_id: p.run_id,
        task_id: p.task_id,
        status: status.as_u16(),
        source: p.source,
    };
    let durable = status.is_success();
    let metastore = metastore.clone();
    let write = tokio::task::spawn_blocking(move || metastore.append_audit(record, durable));
    // A change waits for its record (it already waited for its own commit); a
    // refusal does not, so refusals cost the server no waiting.
    if durable {
        match write.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("cannot write the audit log: {e}"),
            Err(e) => tracing::error!("the audit write ended abnormally: {e}"),
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address as the audit log and the sign-in limit name it: the
/// server puts the peer of each connection in the request (`server::serve`).
pub(super) fn client_address(peer: Option<&ConnectInfo<SocketAddr>>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn unauthorized(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, detail)
}

/// The names of the security schemes in the OpenAPI document
/// ([`SecuritySchemes`]).
const SCHEMES: [&str; 3] = ["bearer", "basic", "session"];

/// Writes an operation's policy into its OpenAPI entry: which credentials it
/// takes, and the refusals it can answer with (401 without valid ones, 429 after
/// too many failed sign-ins, 403 when the role or platform rights are missing).
fn document(policy: Policy, op: &mut utoipa::openapi::path::Operation) {
    use super::error::{Forbidden, TooManyRequests, Unauthorized};
    use utoipa::IntoResponses;
    use utoipa::openapi::security::SecurityRequirement;
    if matches!(policy, Policy::Public) {
        return;
    }
    op.security = Some(
        SCHEMES
            .iter()
            .map(|name| SecurityRequirement::new(*name, Vec::<String>::new()))
            .collect(),
    );
    let mut refusals = Unauthorized::responses();
    refusals.extend(TooManyRequests::responses());
    if matches!(policy, Policy::Tenant(_) | Policy::Platform) {
        refusals.extend(Forbidden::responses());
    }
    for (status, response) in refusals {
        op.responses.responses.entry(status).or_insert(response);
    }
}

/// Adds the credentials the API takes to the OpenAPI document's components.
pub struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SCHEMES[0],
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT from POST /auth/token, or an API token ail_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            SCHEMES[1],
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            SCHEMES[2],
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The UI's session (POST /auth/login); a change also needs the X-CSRF-Token header",
            ))),
        );
    }
}

/// The caller of a request under `policy`, or the refusal.
async fn decide(
    access: &Access,
    policy: Policy,
    headers: &HeaderMap,
    changes: bool,
    source: &str,
) -> Result<Caller, (ApiError, Who)> {
    let principal = Arc::new(
        authenticate(access, headers, changes, source)
            .await
            .map_err(|e| (e, Who::default()))?,
    );
    let actor = principal.actor.to_string();
    let refuse = |e: ApiError, tenant: Option<&str>| {
        (
            e,
            Who {
                actor: Some(actor.clone()),
                tenant: tenant.map(str::to_owned),
            },
        )
    };
    let requested = headers
        .get(TENANT_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| cookie(headers, TENANT_COOKIE).map(str::to_owned))
        .filter(|t| !t.is_empty());
    let not_found = |t: &str| ApiError::not_found(format!("tenant `{t}` not found"));
    let (tenant, role) = match requested {
        Some(name) => {
            let tenant = TenantId::new(&name).map_err(|_| refuse(not_found(&name), None))?;
            match principal.role_in(tenant.as_str()) {
                Some(role) => (tenant, Some(role)),
                None if principal.platform_admin => {
                    let exists = access
                        .metastore
                        .tenant(tenant.as_str())
                        .map_err(|e| refuse(e.into(), None))?;
                    if exists.is_none() {
                        return Err(refuse(not_found(&name), None));
                    }
                    (tenant, Some(Role::Admin))
                }
                None => return Err(refuse(not_found(&name), None)),
            }
        }
        None => default_tenant(&principal),
    };
    let caller = Caller::new(tenant, principal.clone(), role);
    match policy {
        Policy::Public | Policy::Worker | Policy::SignedIn => Ok(caller),
        Policy::Platform if principal.platform_admin => Ok(caller),
        Policy::Platform => Err(refuse(
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is not a platform admin; only a platform admin may do this",
                    principal.actor
                ),
            ),
            None,
        )),
        Policy::Tenant(need) => match role {
            Some(role) if role >= need => Ok(caller),
            Some(role) => Err(refuse(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} is {role} in tenant `{}`; this needs {need} or more",
                        principal.actor,
                        caller.tenant()
                    ),
                ),
                Some(caller.tenant()),
            )),
            None => Err(refuse(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("{} holds no role in any tenant", principal.actor),
                ),
                None,
            )),
        },
    }
}

/// The tenant a request acts in when it names none: the caller's only one, else
/// `default` if the caller is in it (or a platform admin), else the first by
/// name.
fn default_tenant(p: &Principal) -> (TenantId, Option<Role>) {
    if let [(t, r)] = p.roles.as_slice() {
        return (t.clone(), Some(*r));
    }
    if let Some(r) = p.role_in(TenantId::DEFAULT) {
        return (TenantId::default(), Some(r));
    }
    if p.platform_admin {
        return (TenantId::default(), Some(Role::Admin));
    }
    match p.roles.first() {
        Some((t, r)) => (t.clone(), Some(*r)),
        None => (TenantId::default(), None),
    }
}

/// The principal behind a request's credentials: `Authorization` (Bearer or
/// Basic) or the UI's session cookie, which for a change must come with the
/// matching CSRF header.
async fn authenticate(
    access: &Access,
    headers: &HeaderMap,
    changes: bool,
    source: &str,
) -> Result<Principal, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(unauthorized("the Authorization header is too long"));
        }
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        // Basic's decoded `user:password` lives here so the credentials can
        // borrow from it.
        let decoded: String;
        let creds = if scheme.eq_ignore_ascii_case("bearer") {
            Credentials::Bearer(rest)
        } else if scheme.eq_ignore_ascii_case("basic") {
            let malformed =
                || unauthorized("the Basic credentials are not base64 of `user:password`");
            decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(malformed)?;
            let (user, password) = decoded.split_once(':').ok_or_else(malformed)?;
            Credentials::Basic { user, password }
        } else {
            return Err(unauthorized(format!(
                "unknown Authorization scheme `{scheme}`; use Bearer (a token from POST /auth/token, or an API token) or Basic"
            )));
        };
        return Ok(access.auth.authenticate(creds, source).await?);
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        if changes {
            let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
            let kept = cookie(headers, CSRF_COOKIE).map(str::as_bytes);
            if sent.is_none() || sent != kept {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a change made with the session cookie needs the X-CSRF-Token header; reload the page",
                ));
            }
        }
        return Ok(access
            .auth
            .authenticate(Credentials::Bearer(token), source)
            .await?);
    }
    Err(unauthorized(
        "sign in: send `Authorization: Bearer <token>` (POST /auth/token gives one) or Basic credentials",
    ))
}
