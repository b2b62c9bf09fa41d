//! One stream entry from delivery to acknowledgement (`docs/design/multi-node.md`
//! §3.1 steps 4–7): fetch the component, `/start`, run the sandbox while
//! heartbeating, keeping the entry and shipping the log, then `/finish` until the
//! scheduler has the outcome, and XACK + XDEL. A refusal at any step fences the
//! try: the sandbox is aborted and its output dropped.

use super::Ctx;
use super::api::{Api, Failure, TryAuth};
use super::queue::Delivery;
use super::remote_host::{Fence, RemoteHost};
use aileron_protocol::backoff::Backoff;
use aileron_protocol::wire::{
    Entry, FinishRequest, LogChunk, StartRequest, StartResponse, TryHeartbeat,
};
use aileron_sandbox::{LiveUsage, LogBuffer, LogLevel, TryReport, TryRequest, TryResult};
use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The largest log chunk sent at once, and the amount of new text that is sent
/// without waiting for [`LOG_INTERVAL`].
pub const LOG_CHUNK_BYTES: usize = 64 << 10;
/// Log text is sent at most this often: live enough for the UI's tail, and a
/// chatty task costs the scheduler one request a second.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts at acknowledging a finished entry before leaving it to the
/// scheduler's reconciliation, which deletes entries of finished attempts.
const ACK_ATTEMPTS: u32 = 5;

/// Runs one delivered entry to its end, holding `permit` (one slot) throughout.
pub async fn run(ctx: Arc<Ctx>, delivery: Delivery, permit: OwnedSemaphorePermit) {
    let entry = match delivery.entry() {
        Ok(entry) => entry,
        Err(e) => {
            tracing::error!(
                stream = %delivery.stream,
                id = %delivery.id,
                "dropping an unreadable stream entry: {e}"
            );
            ack(&ctx, &delivery).await;
            return;
        }
    };
    // The same attempt twice on one worker: a duplicate entry (which the
    // scheduler tolerates, but whose `/start` from this same worker would be
    // accepted again) or this worker's own entry taken back by XAUTOCLAIM.
    let claimed = {
        let mut active = ctx.lock_active();
        match active.get(&entry.attempt) {
            Some(id) if *id == delivery.id => Claim::Ours,
            Some(_) => Claim::Duplicate,
            None => {
                active.insert(entry.attempt, delivery.id.clone());
                Claim::New
            }
        }
    };
    match claimed {
        Claim::Ours => return,
        Claim::Duplicate => {
            tracing::info!(
                attempt = entry.attempt,
                "dropping a duplicate entry {} of an attempt this worker runs",
                delivery.id
            );
            ack(&ctx, &delivery).await;
            return;
        }
        Claim::New => {}
    }
    let _active = ActiveGuard {
        ctx: ctx.clone(),
        attempt: entry.attempt,
    };
    // Touch the entry every heartbeat interval from now on, download included,
    // so nobody's XAUTOCLAIM takes a try this worker is busy with.
    let _keep = AbortOnDrop(tokio::spawn(keep_entry(ctx.clone(), delivery.clone())));
    run_entry(&ctx, &entry).await;
    ack(&ctx, &delivery).await;
    drop(permit);
}

enum Claim {
    New,
    Ours,
    Duplicate,
}

/// Everything between reading an entry and acknowledging it.
async fn run_entry(ctx: &Ctx, entry: &Entry) {
    let label = label(entry);
    let auth = TryAuth {
        attempt: entry.attempt,
        token: entry.token.clone(),
    };
    let log = Arc::new(LogBuffer::new(entry.limits.log_bytes));
    if let Err(e) = ctx.components.ensure(&entry.digest).await {
        // The try still starts and then fails with the sandbox's "not
        // registered": the scheduler records the failure and retries apply.
        tracing::error!(attempt = entry.attempt, "{label}: {e}");
        log.append_line(LogLevel::Error, &e.to_string());
    }

    let started = match start(ctx, &auth, &label).await {
        Ok(s) => s,
        Err(Stop::Fenced(fence)) => return fenced(entry, &label, &fence),
        Err(Stop::Refused(failure)) => {
            tracing::error!(
                attempt = entry.attempt,
                "{label}: the scheduler refused to start it ({failure}); dropping the entry"
            );
            return;
        }
    };
    tracing::info!(attempt = entry.attempt, "running {label}");

    let (fence_tx, mut fence_rx) = watch::channel(None);
    let host = RemoteHost::new(ctx.api.clone(), auth.clone(), log.clone(), fence_tx.clone());
    let live = Arc::new(LiveUsage::default());
    let request = TryRequest {
        tenant: entry.key.tenant.clone(),
        digest: entry.digest.clone(),
        info: entry.task.clone(),
        params: entry.params.clone(),
        limits: entry.limits.clone(),
        host: Arc::new(host),
        log: log.clone(),
        live: live.clone(),
    };
    let sandbox = ctx.sandbox.clone();
    // Its own task, so a guest that computes long between yields never delays
    // the heartbeats; dropping the guard aborts it.
    let mut sandbox_run = AbortOnDrop(tokio::spawn(async move { sandbox.run(request).await }));
    let shipped = AtomicUsize::new(started.log_offset.min(log.len()));
    let ran = tokio::select! {
        joined = &mut sandbox_run.0 => Ok(joined.unwrap_or_else(|e| lost(&log, &e.to_string()))),
        fence = heartbeat_try(ctx, &auth, &live) => Err(fence),
        fence = ship_logs(&ctx.api, &auth, &log, &shipped) => Err(fence),
        fence = wait_fence(&mut fence_rx) => Err(fence),
    };
    drop(sandbox_run);
    let report = match ran {
        Ok(report) => report,
        Err(fence) => return fenced(entry, &label, &fence),
    };
    // A host call fenced just as the guest finished: the report is not ours to send.
    if let Some(fence) = fence_rx.borrow().clone() {
        return fenced(entry, &label, &fence);
    }

    match finish(ctx, &auth, &log, shipped.load(Ordering::Relaxed), &report).await {
        Ok(state) => tracing::info!(attempt = entry.attempt, "finished {label}: {state}"),
        Err(Stop::Fenced(fence)) => fenced(entry, &label, &fence),
        Err(Stop::Refused(failure)) => tracing::error!(
            attempt = entry.attempt,
            "{label}: the scheduler refused its outcome ({failure}); dropping it"
        ),
    }
}

/// Why a try ends early on this worker.
enum Stop {
    Fenced(Fence),
    /// The scheduler refused a call in a way that repeating cannot change.
    Refused(Failure),
}

fn stop(during: &'static str, failure: Failure) -> Stop {
    match failure {
        Failure::Fenced { status, reason } => Stop::Fenced(Fence {
            during,
            status,
            reason,
        }),
        other => Stop::Refused(other),
    }
}

/// `POST /start`, retried while the scheduler is unavailable.
async fn start(ctx: &Ctx, auth: &TryAuth, label: &str) -> Result<StartResponse, Stop> {
    let request = StartRequest {
        // Informational: the scheduler records the `aileron-worker` header (the
        // worker id, not the machine's name, as several workers may share a
        // machine) as the TaskInstance's hostname and checks leases against it.
        hostname: ctx.id.clone(),
    };
    let mut backoff = Backoff::new();
    loop {
        match ctx.api.start(auth, &request).await {
            Ok(answer) => return Ok(answer),
            Err(f) if f.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    attempt = auth.attempt,
                    "cannot start {label}: {f}; backing off {delay:.1?}"
                );
                tokio::time::sleep(delay).await;
            }
            Err(f) => return Err(stop("start", f)),
        }
    }
}

/// `PUT /heartbeat` every heartbeat interval until the scheduler refuses one,
/// with what the try used so far (its tenant is charged as it runs, and for
/// the last figure if the try is stopped or lost). An unreachable scheduler
/// is not a reason to stop the try: it adopts running tries when it comes
/// back, and fences them if it decided otherwise meanwhile.
async fn heartbeat_try(ctx: &Ctx, auth: &TryAuth, live: &LiveUsage) -> Fence {
    let mut failing = false;
    loop {
        tokio::time::sleep(ctx.timing().heartbeat).await;
        let beat = TryHeartbeat {
            usage: live.snapshot(),
        };
        match ctx.api.try_heartbeat(auth, &beat).await {
            Ok(()) => failing = false,
            Err(Failure::Fenced { status, reason }) => {
                return Fence {
                    during: "heartbeat",
                    status,
                    reason,
                };
            }
            Err(f) => {
                // Once per outage: the worker's own heartbeat reports the rest.
                if !failing {
                    tracing::warn!(
                        attempt = auth.attempt,
                        "try heartbeat failed: {f}; backing off to the heartbeat interval"
                    );
                }
                failing = true;
            }
        }
    }
}

/// Touches the entry every heartbeat interval (XCLAIM … JUSTID), for as long as
/// the runner lives. Redis being away costs nothing here: its entries are gone or
/// untouched, and the outcome travels over HTTP.
async fn keep_entry(ctx: Arc<Ctx>, delivery: Delivery) {
    loop {
        tokio::time::sleep(ctx.timing().heartbeat).await;
        if let Err(e) = ctx.queue.keep(&delivery.stream, &delivery.id).await {
            tracing::debug!(id = %delivery.id, "cannot touch the stream entry: {e}");
        }
    }
}

/// The part of `text` (the log from some offset) to send next: at most `max`
/// bytes, ending at a line end when one is in reach, else at a character
/// boundary. Never empty when `text` is not.
pub fn next_chunk(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(nl) = text[..end].rfind('\n') {
        return &text[..=nl];
    }
    if end == 0 {
        // A `max` smaller than one character: send that character.
        end = text.chars().next().map_or(0, char::len_utf8);
    }
    &text[..end]
}

/// Where to go on after the scheduler answered a gap with `expected`: its
/// offset, unless it claims more than this worker ever wrote (then nothing is
/// left to resend until new text comes).
pub fn resend_from(expected: usize, log_len: usize) -> usize {
    expected.min(log_len)
}

/// Ships the log as it grows, in chunks of at most [`LOG_CHUNK_BYTES`], at most
/// every [`LOG_INTERVAL`] unless a full chunk is waiting. `shipped` is the
/// offset the scheduler has, so the finish can send the rest. Ends only when
/// fenced.
async fn ship_logs(api: &Api, auth: &TryAuth, log: &LogBuffer, shipped: &AtomicUsize) -> Fence {
    let mut changes = log.subscribe();
    let mut backoff = Backoff::new();
    let mut last_post: Option<Instant> = None;
    loop {
        let from = shipped.load(Ordering::Relaxed);
        let waiting = log.len().saturating_sub(from);
        if waiting == 0 {
            wait_change(&mut changes).await;
            continue;
        }
        if waiting < LOG_CHUNK_BYTES
            && let Some(due) = last_post.map(|t| t + LOG_INTERVAL)
            && Instant::now() < due
        {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = wait_change(&mut changes) => continue,
            }
        }
        let text = log.read_from(from);
        let chunk = LogChunk {
            offset: from,
            text: next_chunk(&text, LOG_CHUNK_BYTES).to_owned(),
        };
        match api.logs(auth, &chunk).await {
            Ok(()) => {
                shipped.store(from + chunk.text.len(), Ordering::Relaxed);
                last_post = Some(Instant::now());
                backoff.reset();
            }
            Err(Failure::LogGap { expected_offset }) if expected_offset != from => {
                // The scheduler restarted (it expects 0) or missed a chunk.
                shipped.store(resend_from(expected_offset, log.len()), Ordering::Relaxed);
            }
            Err(Failure::Fenced { status, reason }) => {
                return Fence {
                    during: "logs",
                    status,
                    reason,
                };
            }
            Err(
                f @ (Failure::Unavailable(_) | Failure::Unauthorized(_) | Failure::LogGap { .. }),
            ) => {
                let delay = backoff.next_delay();
                tracing::debug!(
                    attempt = auth.attempt,
                    "cannot ship the log: {f}; backing off {delay:.1?}"
                );
                tokio::time::sleep(delay).await;
            }
            Err(f) => {
                // Sending it again would be refused again; the finish carries
                // the rest of the log.
                tracing::warn!(
                    attempt = auth.attempt,
                    "the scheduler refused a log chunk ({f}); the log follows with the outcome"
                );
                return pending().await;
            }
        }
    }
}

/// `POST /finish` until the scheduler has the outcome, heartbeating the try
/// while the calls fail so its lease does not run out meanwhile. Returns the
/// state the TaskInstance is now in.
async fn finish(
    ctx: &Ctx,
    auth: &TryAuth,
    log: &LogBuffer,
    shipped: usize,
    report: &TryReport,
) -> Result<String, Stop> {
    let mut from = shipped;
    let mut backoff = Backoff::new();
    let mut last_beat = Instant::now();
    loop {
        let request = FinishRequest {
            outcome: report.result.clone(),
            xcom: report.xcom.clone(),
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            usage: report.usage,
            log: LogChunk {
                offset: from,
                text: log.read_from(from),
            },
        };
        let failure = match ctx.api.finish(auth, &request).await {
            Ok(Some(answer)) if answer.duplicate => return Ok(format!("{} (again)", answer.state)),
            Ok(Some(answer)) => return Ok(answer.state),
            Ok(None) => return Ok("recorded".to_owned()),
            Err(Failure::LogGap { expected_offset }) if expected_offset != from => {
                from = resend_from(expected_offset, log.len());
                continue;
            }
            Err(
                f @ (Failure::Unavailable(_) | Failure::Unauthorized(_) | Failure::LogGap { .. }),
            ) => f,
            Err(f) => return Err(stop("finish", f)),
        };
        let delay = backoff.next_delay();
        tracing::warn!(
            attempt = auth.attempt,
            "cannot report the outcome: {failure}; holding it and backing off {delay:.1?}"
        );
        tokio::time::sleep(delay).await;
        if last_beat.elapsed() >= ctx.timing().heartbeat {
            last_beat = Instant::now();
            let beat = TryHeartbeat {
                usage: report.usage,
            };
            if let Err(Failure::Fenced { status, reason }) =
                ctx.api.try_heartbeat(auth, &beat).await
            {
                return Err(Stop::Fenced(Fence {
                    during: "heartbeat",
                    status,
                    reason,
                }));
            }
        }
    }
}

/// Logs that a try was taken from this worker; the caller then acknowledges its
/// entry. Nothing of the try is sent after this.
fn fenced(entry: &Entry, label: &str, fence: &Fence) {
    tracing::warn!(
        attempt = entry.attempt,
        "fenced: attempt {} of {label} is no longer this worker's: {fence}; its output is dropped",
        entry.attempt
    );
}

/// XACK + XDEL, retried a few times: an entry left behind is harmless (its
/// `/start` is refused, and reconciliation deletes it), so a long Redis outage
/// does not keep the slot.
async fn ack(ctx: &Ctx, delivery: &Delivery) {
    let mut backoff = Backoff::new();
    for attempt in 1..=ACK_ATTEMPTS {
        match ctx.queue.ack(&delivery.stream, &delivery.id).await {
            Ok(()) => return,
            Err(e) if attempt < ACK_ATTEMPTS => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    id = %delivery.id,
                    "cannot acknowledge the stream entry: {e}; backing off {delay:.1?}"
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => tracing::warn!(
                id = %delivery.id,
                "giving up acknowledging the stream entry ({e}); the scheduler's reconciliation deletes it"
            ),
        }
    }
}

/// The report of a try whose sandbox task ended without one (it cannot panic,
/// so this is not expected): the try failed, and its log says so.
fn lost(log: &LogBuffer, why: &str) -> TryReport {
    let reason = format!("the worker lost the try: {why}");
    log.append_closing_line(LogLevel::Error, &reason);
    TryReport {
        result: TryResult::Failed(reason),
        xcom: Vec::new(),
        duration: Duration::ZERO,
        usage: Default::default(),
    }
}

/// `dag.task[map] try n`, for the worker's log.
fn label(entry: &Entry) -> String {
    let map = match entry.key.map_index {
        i if i < 0 => String::new(),
        i => format!("[{i}]"),
    };
    format!(
        "{}.{}{map} of run {} try {}",
        entry.key.dag_id, entry.key.task_id, entry.key.run_id, entry.try_number
    )
}

async fn wait_fence(rx: &mut watch::Receiver<Option<Fence>>) -> Fence {
    loop {
        if let Some(fence) = rx.borrow_and_update().clone() {
            return fence;
        }
        if rx.changed().await.is_err() {
            return pending().await;
        }
    }
}

/// Waits until the log grows. The buffer owns the sender and the caller holds
/// the buffer, so the channel does not close; if it did, nothing would come.
async fn wait_change(rx: &mut watch::Receiver<usize>) {
    if rx.changed().await.is_err() {
        pending::<()>().await;
    }
}

/// Aborts a task when dropped, so no exit path of the runner leaves it behind.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes the attempt out of the worker's active set when the runner ends.
struct ActiveGuard {
    ctx: Arc<Ctx>,
    attempt: u64,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.ctx.lock_active().remove(&self.attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_lines_and_never_split_characters() {
        assert_eq!(next_chunk("", 10), "");
        assert_eq!(next_chunk("short\n", 10), "short\n");
        assert_eq!(next_chunk("one\ntwo\nthree\n", 10), "one\ntwo\n");
        // No line end in reach: cut at the cap.
        assert_eq!(next_chunk("abcdefghijkl\n", 5), "abcde");
        // `é` is two bytes: a cap in its middle cuts before it.
        assert_eq!(next_chunk("abcé\n", 4), "abc");
        // A cap smaller than one character still makes progress.
        assert_eq!(next_chunk("élan", 1), "é");
    }

    #[test]
    fn chunks_cover_a_log_exactly() {
        let log = LogBuffer::new(1 << 20);
        for i in 0..3000 {
            log.append_line(LogLevel::Info, &format!("line {i} {}", "ü".repeat(i % 40)));
        }
        let mut offset = 0;
        let mut sent = String::new();
        let mut chunks = 0;
        while offset < log.len() {
            let text = log.read_from(offset);
            let chunk = next_chunk(&text, LOG_CHUNK_BYTES);
            assert!(!chunk.is_empty() && chunk.len() <= LOG_CHUNK_BYTES);
            assert!(chunk.ends_with('\n'));
            sent.push_str(chunk);
            offset += chunk.len();
            chunks += 1;
        }
        assert_eq!(sent, log.snapshot());
        assert!(chunks > 1, "{chunks}");
    }

    /// A scheduler's log route, as the execution API keeps a try's log: it
    /// appends what it lacks, answers a gap with the offset it expects, and can
    /// restart (forget the log) or fence the try.
    #[derive(Default)]
    struct FakeLogs {
        have: String,
        posts: usize,
        fenced: bool,
    }

    async fn fake_scheduler(state: Arc<std::sync::Mutex<FakeLogs>>) -> String {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let route = move |axum::Json(chunk): axum::Json<LogChunk>| {
            let state = state.clone();
            async move {
                let mut s = state.lock().unwrap();
                s.posts += 1;
                let problem = |status: StatusCode, reason: Option<&str>, expected| {
                    let body = aileron_protocol::wire::ExecError {
                        title: "refused".into(),
                        status: status.as_u16(),
                        detail: String::new(),
                        reason: reason.map(str::to_owned),
                        expected_offset: expected,
                    };
                    (status, axum::Json(body)).into_response()
                };
                if s.fenced {
                    return problem(StatusCode::CONFLICT, Some("superseded"), None);
                }
                let have = s.have.len();
                if chunk.offset > have {
                    return problem(StatusCode::UNPROCESSABLE_ENTITY, None, Some(have));
                }
                if chunk.offset + chunk.text.len() > have {
                    s.have.push_str(&chunk.text[have - chunk.offset..]);
                }
                StatusCode::NO_CONTENT.into_response()
            }
        };
        let app = axum::Router::new().route(
            "/execution/v1/tries/{attempt}/logs",
            axum::routing::post(route),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_log_reaches_the_scheduler_across_a_restart_until_fenced() {
        let state = Arc::new(std::sync::Mutex::new(FakeLogs::default()));
        let server = fake_scheduler(state.clone()).await;
        let api = Api::new(&server, "token", "w-1").unwrap();
        let auth = TryAuth {
            attempt: 7,
            token: "v1.a.b".into(),
        };
        let log = Arc::new(LogBuffer::new(1 << 20));
        let shipped = Arc::new(AtomicUsize::new(0));
        let shipper = {
            let (log, shipped) = (log.clone(), shipped.clone());
            tokio::spawn(async move { ship_logs(&api, &auth, &log, &shipped).await })
        };
        let have = || state.lock().unwrap().have.clone();

        // More than two chunks at once: sent in pieces of at most 64 KiB.
        for i in 0..2500 {
            log.append_line(LogLevel::Info, &format!("line {i} {}", "x".repeat(50)));
        }
        assert!(log.len() > 2 * LOG_CHUNK_BYTES);
        until("the whole log", || have() == log.snapshot()).await;
        assert!(state.lock().unwrap().posts >= 3);
        assert_eq!(shipped.load(Ordering::Relaxed), log.len());

        // The scheduler restarts and has nothing: the next chunk is answered
        // with a gap at 0, and the log is sent again from the start.
        state.lock().unwrap().have.clear();
        log.append_line(LogLevel::Info, "after the restart");
        until("the log sent again", || have() == log.snapshot()).await;

        // Fenced: the shipper stops and says why; nothing more is stored.
        state.lock().unwrap().fenced = true;
        let before = have();
        log.append_line(LogLevel::Info, "too late");
        let fence = tokio::time::timeout(Duration::from_secs(10), shipper)
            .await
            .expect("the shipper stops when fenced")
            .unwrap();
        assert_eq!(
            fence,
            Fence {
                during: "logs",
                status: 409,
                reason: "superseded".into()
            }
        );
        assert_eq!(have(), before);
    }

    #[test]
    fn a_gap_resends_from_what_the_scheduler_has() {
        assert_eq!(resend_from(0, 500), 0);
        assert_eq!(resend_from(120, 500), 120);
        assert_eq!(resend_from(900, 500), 500);
    }
}
