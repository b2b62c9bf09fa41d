//! The execution API's handlers (`/execution/v1`): what a worker calls to register,
//! fetch components, start, heartbeat, log, read XCom, variables and connections,
//! and finish a try. Start and finish go through the scheduler actor, which checks
//! the attempt; everything else is answered from the leases in [`Remote`], so a
//! heartbeat never costs a commit.

use crate::api::RouteTable;
use crate::api::access::{Policy, plain_route};
use crate::executors::remote::{Remote, WorkerInfo, memory_holder};
use crate::metastore::Metastore;
use crate::scheduler::{Command, MetastoreHost, SchedulerHandle};
use crate::sync::LockExt;
use aileron_model::{TenantId, TiKey};
use aileron_protocol::TryClaims;
use aileron_protocol::wire::{
    ConnectionResponse, ExecError, FinishRequest, FinishResponse, LogChunk, MemoryHoldRequest,
    MemoryHoldResponse, Refusal, RegisterRequest, RegisterResponse, StartRequest, StartResponse,
    TRY_TOKEN_HEADER, TryHeartbeat, ValueResponse, WORKER_HEADER, WorkerHeartbeat,
};
use aileron_sandbox::{Held, HoldRequest, HostServices, LogBuffer, Registry, TryReport};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Finish bodies carry the rest of a log (up to its cap) and the XCom pushes.
/// JSON escaping can make a log several times its size (a control character is
/// six bytes), so this is well above the 1 MiB log and 1 MiB XCom caps.
const MAX_BODY_BYTES: usize = 16 << 20;
/// Longest worker id, name or queue name accepted.
const MAX_NAME: usize = 64;

#[derive(Clone)]
pub struct ExecState {
    pub remote: Arc<Remote>,
    pub scheduler: SchedulerHandle,
    pub metastore: Metastore,
    pub registry: Registry,
    /// Checks worker tokens kept in the metastore (per tenant, or the
    /// platform's) beside the shared `--worker-token`.
    pub auth: crate::auth::Auth,
}

/// The `/execution/v1` router (to be nested there).
pub fn router(state: ExecState) -> Router {
    routes().0.with_state(state)
}

/// Every route of the execution API, each under [`Policy::Worker`] (workers
/// sign each call with the worker token and, for a try, its try token; these
/// handlers check both), and the table of them.
pub fn routes() -> (Router<ExecState>, RouteTable) {
    let mut table = RouteTable::default();
    let mut worker = |path: &str, method: Method, op: &str, mr| {
        plain_route(
            &mut table,
            "/execution/v1",
            path,
            &[method],
            Policy::Worker,
            op,
            mr,
        )
    };
    let router = Router::new()
        .route(
            "/workers/{id}/register",
            worker(
                "/workers/{id}/register",
                Method::POST,
                "register_worker",
                post(register),
            ),
        )
        .route(
            "/workers/{id}/heartbeat",
            worker(
                "/workers/{id}/heartbeat",
                Method::PUT,
                "worker_heartbeat",
                put(worker_heartbeat),
            ),
        )
        .route(
            "/workers/{id}/memory",
            worker(
                "/workers/{id}/memory",
                Method::PUT,
                "hold_memory",
                put(hold_memory),
            ),
        )
        .route(
            "/workers/{id}/stop",
            worker(
                "/workers/{id}/stop",
                Method::POST,
                "stop_worker",
                post(worker_stop),
            ),
        )
        .route(
            "/components/{digest}",
            worker(
                "/components/{digest}",
                Method::GET,
                "get_component",
                get(component),
            ),
        )
        .route(
            "/tries/{attempt}/start",
            worker(
                "/tries/{attempt}/start",
                Method::POST,
                "start_try",
                post(start),
            ),
        )
        .route(
            "/tries/{attempt}/heartbeat",
            worker(
                "/tries/{attempt}/heartbeat",
                Method::PUT,
                "try_heartbeat",
                put(try_heartbeat),
            ),
        )
        .route(
            "/tries/{attempt}/logs",
            worker(
                "/tries/{attempt}/logs",
                Method::POST,
                "post_logs",
                post(logs),
            ),
        )
        .route(
            "/tries/{attempt}/xcom/{task_id}",
            worker(
                "/tries/{attempt}/xcom/{task_id}",
                Method::GET,
                "get_xcom",
                get(xcom),
            ),
        )
        .route(
            "/tries/{attempt}/variables/{key}",
            worker(
                "/tries/{attempt}/variables/{key}",
                Method::GET,
                "get_variable",
                get(variable),
            ),
        )
        .route(
            "/tries/{attempt}/connections/{conn_id}",
            worker(
                "/tries/{attempt}/connections/{conn_id}",
                Method::GET,
                "get_connection",
                get(connection),
            ),
        )
        .route(
            "/tries/{attempt}/finish",
            worker(
                "/tries/{attempt}/finish",
                Method::POST,
                "finish_try",
                post(finish),
            ),
        )
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such execution API endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    (router, table)
}

/// An error answer: problem JSON plus a machine-readable reason.
#[derive(Debug)]
struct Fail(StatusCode, ExecError);

fn err(status: StatusCode, detail: impl Into<String>) -> Fail {
    Fail(
        status,
        ExecError {
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            reason: None,
            expected_offset: None,
        },
    )
}

impl Fail {
    fn refused(r: Refusal) -> Self {
        metrics::counter!("aileron_worker_fenced_total").increment(1);
        let mut f = err(
            StatusCode::CONFLICT,
            format!("this try is no longer yours ({})", r.as_str()),
        );
        f.1.reason = Some(r.as_str().to_owned());
        f
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

impl From<JsonRejection> for Fail {
    fn from(r: JsonRejection) -> Self {
        err(r.status(), r.body_text())
    }
}

type Res<T> = Result<T, Fail>;

/// Which tenants' work a caller may do: the tenant of its worker token, or
/// every tenant (`None`: the shared `--worker-token`, or a platform worker
/// token).
type Grant = Option<TenantId>;

/// The caller's worker token: the shared one (compared in constant time), or
/// a worker token made through the API, which may be one tenant's.
fn authorize(s: &ExecState, headers: &HeaderMap) -> Res<Grant> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "missing `Authorization: Bearer <worker token>`",
            )
        })?;
    let want = s.remote.worker_token.as_bytes();
    let bytes = given.as_bytes();
    let same = want.len() == bytes.len()
        && want
            .iter()
            .zip(bytes)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        return Ok(None);
    }
    s.auth.worker_token(given).map_err(|e| match e {
        // Revoked, expired, not a worker token, or no token at all: the worker's
        // operator is told which.
        crate::auth::AuthError::Refused(why) => err(StatusCode::UNAUTHORIZED, why),
        other => {
            tracing::error!("checking a worker token: {other}");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the worker token could not be checked",
            )
        }
    })
}

/// Whether a caller with `grant` may act for `tenant`.
fn serves(grant: &Grant, tenant: &str) -> bool {
    grant.as_ref().is_none_or(|t| t.as_str() == tenant)
}

/// A try call's identity: the verified token for exactly this attempt, and the
/// calling worker (Airflow's `ti:self` check).
struct TryCall {
    claims: TryClaims,
    worker: String,
}

impl TryCall {
    fn key(&self) -> TiKey {
        TiKey {
            tenant: self.claims.tenant.clone(),
            dag_id: self.claims.dag_id.clone(),
            run_id: self.claims.run_id.clone(),
            task_id: self.claims.task_id.clone(),
            map_index: self.claims.map_index,
        }
    }
}

fn try_call(s: &ExecState, headers: &HeaderMap, attempt: u64) -> Res<TryCall> {
    let grant = authorize(s, headers)?;
    let remote = &s.remote;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = text(TRY_TOKEN_HEADER).ok_or_else(|| {
        err(
            StatusCode::FORBIDDEN,
            format!("missing `{TRY_TOKEN_HEADER}`"),
        )
    })?;
    let worker = text(WORKER_HEADER)
        .filter(|w| !w.is_empty() && w.len() <= 2 * MAX_NAME)
        .ok_or_else(|| err(StatusCode::FORBIDDEN, format!("missing `{WORKER_HEADER}`")))?;
    let claims = remote
        .key
        .verify(token, remote.clock.now())
        .map_err(|e| err(StatusCode::FORBIDDEN, e.to_string()))?;
    if claims.attempt != attempt {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the try token is for another attempt",
        ));
    }
    // A try token read from another tenant's stream is of no use to a worker
    // of one tenant.
    if !serves(&grant, &claims.tenant) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "this worker token does not serve the try's tenant",
        ));
    }
    Ok(TryCall {
        claims,
        worker: worker.to_owned(),
    })
}

fn check_name(what: &str, s: &str) -> Res<()> {
    if s.is_empty() || s.len() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{what} must be 1 to {MAX_NAME} characters without control characters"),
        ));
    }
    Ok(())
}

async fn register(
    State(s): State<ExecState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<RegisterRequest>, JsonRejection>,
) -> Res<axum::Json<RegisterResponse>> {
    let grant = authorize(&s, &headers)?;
    let axum::Json(req) = body?;
    if id.is_empty() || id.len() > 2 * MAX_NAME || id.chars().any(char::is_control) {
        return Err(err(StatusCode::BAD_REQUEST, "bad worker id"));
    }
    check_name("name", &req.name)?;
    if req.queues.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "a worker serves at least one queue",
        ));
    }
    for q in &req.queues {
        check_name("a queue name", q)?;
    }
    if req.slots == 0 || req.slots > 10_000 {
        return Err(err(StatusCode::BAD_REQUEST, "slots must be 1 to 10000"));
    }
    let tenants = worker_tenants(&grant, req.tenants)?;
    let now = s.remote.clock.now();
    let mut workers = s.remote.workers.locked();
    if workers.get(&id).is_some_and(|w| w.grant != grant) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "a worker of another token registered with this id",
        ));
    }
    let first_online = workers.get(&id).map_or(now, |w| w.first_online);
    // What its running tries hold of capped tenants' quotas (all of it after
    // a scheduler restart; nothing for a fresh worker), for its tenants only.
    let holder = memory_holder(&id);
    let held = req
        .memory_held
        .into_iter()
        .filter(|(t, _)| serves(&grant, t))
        .take(1000)
        .collect();
    tracing::info!(worker = %id, queues = ?req.queues, ?tenants, slots = req.slots, "worker registered");
    workers.insert(
        id.clone(),
        WorkerInfo {
            id,
            name: req.name,
            hostname: req.hostname.chars().take(255).collect(),
            queues: req.queues,
            tenants: tenants.clone(),
            grant,
            slots: req.slots,
            version: req.version.chars().take(64).collect(),
            first_online,
            last_heartbeat: now,
            last_beat: now,
            stopped: false,
            tenant_memory: Default::default(),
        },
    );
    drop(workers);
    s.remote.memory.adopt(&holder, &held);
    let t = s.remote.timing;
    Ok(axum::Json(RegisterResponse {
        heartbeat_interval_ms: millis(t.heartbeat_interval()),
        worker_timeout_ms: millis(t.worker_timeout),
        claim_idle_ms: millis(t.claim_idle()),
        tenants,
    }))
}

/// The tenants a registering worker serves: those it asked for, which its
/// token must allow; a tenant's token serves that tenant alone.
fn worker_tenants(grant: &Grant, asked: Option<Vec<String>>) -> Res<Option<Vec<String>>> {
    let Some(asked) = asked else {
        return Ok(grant.as_ref().map(|t| vec![t.to_string()]));
    };
    if asked.is_empty() || asked.len() > 1000 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "`tenants` names 1 to 1000 tenants, or is absent for every tenant",
        ));
    }
    for t in &asked {
        TenantId::new(t).map_err(|e| err(StatusCode::BAD_REQUEST, format!("tenant {t:?}: {e}")))?;
        if !serves(grant, t) {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("this worker token does not serve tenant {t}"),
            ));
        }
    }
    Ok(Some(asked))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn worker_heartbeat(
    State(s): State<ExecState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<WorkerHeartbeat>, JsonRejection>,
) -> Res<StatusCode> {
    let grant = authorize(&s, &headers)?;
    let axum::Json(beat) = body?;
    let now = s.remote.clock.now();
    {
        let mut workers = s.remote.workers.locked();
        match workers.get_mut(&id) {
            Some(w) if !w.stopped && w.grant == grant => {
                w.last_beat = now;
                w.last_heartbeat = now;
                // A worker of one tenant reports that tenant's memory only.
                w.tenant_memory = beat
                    .tenant_memory
                    .iter()
                    .filter(|(t, _)| grant.as_ref().is_none_or(|g| g.as_str() == t.as_str()))
                    .take(1000)
                    .map(|(t, m)| (t.clone(), *m))
                    .collect();
            }
            // Unknown (this scheduler restarted) or stopped: register again.
            _ => return Err(err(StatusCode::NOT_FOUND, "unknown worker; register again")),
        }
    }
    // The worker's beat also keeps its tries alive.
    let mut d = s.remote.dispatch.locked();
    for attempt in beat.running {
        if let Some(l) = d.leases.get_mut(&attempt)
            && l.worker == id
        {
            l.last_beat = now;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A worker asks to hold part of a capped tenant's `max_memory`, or gives
/// some back: the ledger's answer, which a worker of one tenant can ask only
/// for that tenant.
async fn hold_memory(
    State(s): State<ExecState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<MemoryHoldRequest>, JsonRejection>,
) -> Res<axum::Json<MemoryHoldResponse>> {
    let grant = authorize(&s, &headers)?;
    let axum::Json(req) = body?;
    let known = s
        .remote
        .workers
        .locked()
        .get(&id)
        .is_some_and(|w| !w.stopped && w.grant == grant);
    if !known {
        return Err(err(StatusCode::NOT_FOUND, "unknown worker; register again"));
    }
    TenantId::new(&req.tenant).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("tenant {:?}: {e}", req.tenant),
        )
    })?;
    if !serves(&grant, &req.tenant) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("this worker token does not serve tenant {}", req.tenant),
        ));
    }
    if req.cap == 0 || req.need > req.want {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "`cap` must be positive and `need` at most `want`",
        ));
    }
    let answer = s.remote.memory.hold(
        &memory_holder(&id),
        HoldRequest {
            tenant: &req.tenant,
            cap: req.cap,
            need: req.need,
            want: req.want,
        },
    );
    Ok(axum::Json(match answer {
        Held::Granted { bytes, tight } => MemoryHoldResponse {
            granted: Some(bytes),
            tight,
            others: 0,
        },
        Held::Refused { others } => MemoryHoldResponse {
            granted: None,
            tight: true,
            others,
        },
    }))
}

/// A worker's report of what a try used, kept within what is possible: finite,
/// not negative, and no more CPU than the try's wall-clock time (a guest runs
/// on one thread). A worker is trusted to run tries, but a tenant's own worker
/// must not be able to talk its tenant out of a CPU budget.
fn plausible(usage: aileron_sandbox::TryUsage, duration_ms: u64) -> aileron_sandbox::TryUsage {
    let most = duration_ms as f64 / 1000.0 + 0.02;
    let clean = |v: f64| {
        if v.is_finite() {
            v.clamp(0.0, most)
        } else {
            most
        }
    };
    aileron_sandbox::TryUsage {
        cpu_seconds: clean(usage.cpu_seconds),
        host_call_seconds: clean(usage.host_call_seconds),
        ..usage
    }
}

async fn worker_stop(
    State(s): State<ExecState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Res<StatusCode> {
    let grant = authorize(&s, &headers)?;
    if let Some(w) = s
        .remote
        .workers
        .locked()
        .get_mut(&id)
        .filter(|w| w.grant == grant)
    {
        tracing::info!(worker = %id, "worker stopped");
        w.stopped = true;
        s.remote.memory.forget(&memory_holder(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn component(
    State(s): State<ExecState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Res<Response> {
    let grant = authorize(&s, &headers)?;
    // A worker of one tenant gets only what that tenant's DAGs may run (the
    // same answer as for a digest nobody has).
    if let Some(t) = &grant
        && !s
            .registry
            .sees(&aileron_sandbox::OperatorScope::Tenant(t.clone()), &digest)
    {
        return Err(err(StatusCode::NOT_FOUND, format!("no component {digest}")));
    }
    let registry = s.registry.clone();
    let d = digest.clone();
    let bytes = tokio::task::spawn_blocking(move || registry.component_bytes(&d))
        .await
        .map_err(|_| {
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the component failed",
            )
        })?
        .map_err(|e| {
            tracing::error!("cannot read component {digest}: {e}");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the component",
            )
        })?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no component {digest}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/wasm".to_owned()),
            (header::ETAG, format!("\"{digest}\"")),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn start(
    State(s): State<ExecState>,
    Path(attempt): Path<u64>,
    headers: HeaderMap,
    body: Result<axum::Json<StartRequest>, JsonRejection>,
) -> Res<axum::Json<StartResponse>> {
    let call = try_call(&s, &headers, attempt)?;
    let _ = body?;
    let (reply, rx) = oneshot::channel();
    s.scheduler
        .send(Command::RemoteStart {
            key: call.key(),
            try_number: call.claims.try_number,
            attempt,
            worker: call.worker.clone(),
            reply,
        })
        .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "the scheduler has stopped"))?;
    let answer = rx
        .await
        .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "the scheduler has stopped"))?;
    let try_number = answer.map_err(Fail::refused)?;
    // The scheduler made the lease when it committed the start (or the first start
    // of this worker, whose answer was lost). Without one the try was cancelled
    // meanwhile.
    let mut d = s.remote.dispatch.locked();
    match d.leases.get_mut(&attempt) {
        Some(l) if l.worker == call.worker => {
            l.last_beat = s.remote.clock.now();
            Ok(axum::Json(StartResponse {
                try_number,
                log_offset: l.log.len(),
            }))
        }
        _ => Err(Fail::refused(Refusal::NotRunning)),
    }
}

/// Keeps a try's lease, and takes what it used so far (a body older workers
/// did not send, so an empty one is a beat without figures).
async fn try_heartbeat(
    State(s): State<ExecState>,
    Path(attempt): Path<u64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Res<StatusCode> {
    let call = try_call(&s, &headers, attempt)?;
    // No body, or `null`: a beat without figures.
    let beat: Result<Option<TryHeartbeat>, _> = if body.is_empty() {
        Ok(None)
    } else {
        serde_json::from_slice(&body)
    };
    let now = s.remote.clock.now();
    let mut d = s.remote.dispatch.locked();
    match d.leases.get_mut(&attempt) {
        Some(l) if l.worker == call.worker => {
            let beat = beat
                .map_err(|e| {
                    err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("a heartbeat's body: {e}"),
                    )
                })?
                .unwrap_or_default();
            l.last_beat = now;
            let ran_ms = now.duration_since(l.started).as_millis().max(0) as u64;
            let usage = plausible(beat.usage, ran_ms);
            // Figures only grow: a beat overtaken by a later one changes nothing.
            l.live.publish(&usage.max(&l.live.snapshot()));
            Ok(StatusCode::NO_CONTENT)
        }
        Some(_) => Err(Fail::refused(Refusal::RunningElsewhere)),
        None => Err(Fail::refused(Refusal::NotRunning)),
    }
}

/// Appends a chunk to the scheduler's copy of the log: only the part it does not
/// have; a chunk that starts past its end is refused with the offset to resend
/// from.
fn append_chunk(log: &LogBuffer, chunk: &LogChunk) -> Res<()> {
    let have = log.len();
    let end = chunk.offset.saturating_add(chunk.text.len());
    if chunk.offset > have
        || (chunk.offset < have && !chunk.text.is_char_boundary(have - chunk.offset))
    {
        let mut f = err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the log continues at byte {have}"),
        );
        f.1.expected_offset = Some(have);
        return Err(f);
    }
    if end > have {
        log.append_raw(&chunk.text[have - chunk.offset..]);
    }
    Ok(())
}

async fn logs(
    State(s): State<ExecState>,
    Path(attempt): Path<u64>,
    headers: HeaderMap,
    body: Result<axum::Json<LogChunk>, JsonRejection>,
) -> Res<StatusCode> {
    let call = try_call(&s, &headers, attempt)?;
    let axum::Json(chunk) = body?;
    let log = s
        .remote
        .check_lease(attempt, &call.worker)
        .map_err(Fail::refused)?;
    append_chunk(&log, &chunk)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct XcomQuery {
    key: Option<String>,
}

/// Host calls read the metastore as the local executor's do, once the lease is
/// checked: a fenced-off worker cannot read secrets either.
fn host_for(s: &ExecState, call: &TryCall, attempt: u64) -> Res<MetastoreHost> {
    s.remote
        .check_lease(attempt, &call.worker)
        .map_err(Fail::refused)?;
    Ok(MetastoreHost::new(
        s.metastore.clone(),
        &call.claims.tenant,
        &call.claims.dag_id,
        &call.claims.run_id,
    ))
}

async fn xcom(
    State(s): State<ExecState>,
    Path((attempt, task_id)): Path<(u64, String)>,
    Query(q): Query<XcomQuery>,
    headers: HeaderMap,
) -> Res<axum::Json<ValueResponse>> {
    let call = try_call(&s, &headers, attempt)?;
    let host = host_for(&s, &call, attempt)?;
    let value = host.xcom_pull(&task_id, q.key.as_deref()).await;
    Ok(axum::Json(ValueResponse { value }))
}

async fn variable(
    State(s): State<ExecState>,
    Path((attempt, key)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Res<axum::Json<ValueResponse>> {
    let call = try_call(&s, &headers, attempt)?;
    let host = host_for(&s, &call, attempt)?;
    let value = host.variable(&key).await;
    Ok(axum::Json(ValueResponse { value }))
}

async fn connection(
    State(s): State<ExecState>,
    Path((attempt, conn_id)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Res<axum::Json<ConnectionResponse>> {
    let call = try_call(&s, &headers, attempt)?;
    let host = host_for(&s, &call, attempt)?;
    Ok(axum::Json(match host.connection(&conn_id).await {
        Ok(c) => ConnectionResponse {
            connection: Some(c),
            error: None,
        },
        Err(e) => ConnectionResponse {
            connection: None,
            error: Some(e),
        },
    }))
}

async fn finish(
    State(s): State<ExecState>,
    Path(attempt): Path<u64>,
    headers: HeaderMap,
    body: Result<axum::Json<FinishRequest>, JsonRejection>,
) -> Res<axum::Json<FinishResponse>> {
    let call = try_call(&s, &headers, attempt)?;
    let axum::Json(req) = body?;
    let log = match s.remote.check_lease(attempt, &call.worker) {
        Ok(log) => log,
        Err(r) => {
            return match s.remote.finished_state(attempt, &call.worker) {
                Some(state) => Ok(axum::Json(FinishResponse {
                    state,
                    duplicate: true,
                })),
                None => Err(Fail::refused(r)),
            };
        }
    };
    append_chunk(&log, &req.log)?;
    let (reply, rx) = oneshot::channel();
    s.scheduler
        .send(Command::RemoteFinish {
            key: call.key(),
            try_number: call.claims.try_number,
            attempt,
            worker: call.worker.clone(),
            report: TryReport {
                result: req.outcome,
                xcom: req.xcom,
                duration: Duration::from_millis(req.duration_ms),
                usage: plausible(req.usage, req.duration_ms),
            },
            reply,
        })
        .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "the scheduler has stopped"))?;
    let answer = rx
        .await
        .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "the scheduler has stopped"))?;
    match answer {
        Ok(state) => {
            s.remote.dispatch.locked().leases.remove(&attempt);
            s.remote
                .record_finish(attempt, &call.worker, state.as_str());
            Ok(axum::Json(FinishResponse {
                state: state.as_str().to_owned(),
                duplicate: false,
            }))
        }
        Err(r) => match s.remote.finished_state(attempt, &call.worker) {
            Some(state) => Ok(axum::Json(FinishResponse {
                state,
                duplicate: true,
            })),
            None => Err(Fail::refused(r)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_chunks_append_only_what_is_new() {
        let log = LogBuffer::new(1 << 20);
        let chunk = |offset: usize, text: &str| LogChunk {
            offset,
            text: text.to_owned(),
        };
        append_chunk(&log, &chunk(0, "a\n")).unwrap();
        // A resend that overlaps adds only its new tail.
        append_chunk(&log, &chunk(0, "a\nb\n")).unwrap();
        // A duplicate adds nothing.
        append_chunk(&log, &chunk(2, "b\n")).unwrap();
        assert_eq!(log.snapshot(), "a\nb\n");
        // A gap is refused with where to resend from.
        let Fail(status, body) = append_chunk(&log, &chunk(9, "z\n")).err().unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body.expected_offset, Some(4));
        assert_eq!(log.snapshot(), "a\nb\n");
    }
}
