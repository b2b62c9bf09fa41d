//! Server-sent events of state changes, for the web UI's live updates: every
//! change the scheduler commits to a DagRun or TaskInstance, optionally only for
//! one DAG.
//!
//! Events (each `data` is one JSON object, the fields named as in the resources):
//! `dag_run` ([`DagRunEvent`]), `task_instance` ([`TaskInstanceEvent`]), `dags`
//! (`{}`: the set of DAGs or one of them changed; refetch `/dags`) and `resync`
//! ([`ResyncEvent`]: this client fell behind and missed events; refetch whatever
//! it shows).

use super::ApiState;
use super::Caller;
use super::query::ApiQuery;
use super::states::{DagState, TaskState, task_state};
use crate::scheduler::Update;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::{IntoParams, ToSchema};

/// Data of a `dag_run` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagRunEvent {
    pub dag_id: String,
    pub dag_run_id: String,
    pub state: DagState,
}

/// Data of a `task_instance` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceEvent {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub map_index: i64,
    pub state: Option<TaskState>,
    pub try_number: u32,
}

/// Data of a `resync` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResyncEvent {
    /// How many events this client missed.
    pub missed: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only changes of this DAG (`dags` and `resync` events are always sent).
    dag_id: Option<String>,
}

/// How often an open stream checks that the scheduler still runs. The stream ends
/// when it stops, so a graceful shutdown of the server is not held up by clients
/// that would otherwise keep their connection open forever.
const SCHEDULER_CHECK: Duration = Duration::from_secs(1);

fn event(update: &Update, caller_tenant: &str, dag_filter: Option<&str>) -> Option<Event> {
    let wanted = |tenant: &str, dag_id: &str| {
        tenant == caller_tenant && dag_filter.is_none_or(|d| d == dag_id)
    };
    let event = match update {
        Update::DagRun {
            tenant,
            dag_id,
            run_id,
            state,
        } => {
            if !wanted(tenant, dag_id) {
                return None;
            }
            Event::default().event("dag_run").json_data(DagRunEvent {
                dag_id: dag_id.clone(),
                dag_run_id: run_id.clone(),
                state: (*state).into(),
            })
        }
        Update::TaskInstance {
            tenant,
            dag_id,
            run_id,
            task_id,
            map_index,
            state,
            try_number,
        } => {
            if !wanted(tenant, dag_id) {
                return None;
            }
            Event::default()
                .event("task_instance")
                .json_data(TaskInstanceEvent {
                    dag_id: dag_id.clone(),
                    dag_run_id: run_id.clone(),
                    task_id: task_id.clone(),
                    map_index: *map_index,
                    state: task_state(*state),
                    try_number: *try_number,
                })
        }
        Update::Dags => Ok(Event::default().event("dags").data("{}")),
    };
    // Serializing these plain structs cannot fail; skip rather than panic if it did.
    event.ok()
}

/// Stream state changes as server-sent events.
#[utoipa::path(
    get, path = "/events", tag = "Event", operation_id = "get_events",
    params(EventFilter),
    responses((
        status = 200, content_type = "text/event-stream", body = String,
        description = "Events `dag_run` (data: DagRunEvent), `task_instance` (data: \
            TaskInstanceEvent), `dags` (data: `{}`; refetch the DAG list) and `resync` \
            (data: ResyncEvent; events were missed, refetch everything shown)"
    ))
)]
pub async fn events(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<EventFilter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the answer goes out: nothing committed after the client
    // sees the response headers is missed.
    let updates = s.scheduler.subscribe();
    let scheduler = s.scheduler.clone();
    let stopped = async move {
        let mut tick = tokio::time::interval(SCHEDULER_CHECK);
        while scheduler.is_alive() {
            tick.tick().await;
        }
    };
    Sse::new(stream(updates, caller, q.dag_id, stopped)).keep_alive(KeepAlive::default())
}

/// The events of `updates` for `dag_filter`, until `stopped` completes.
fn stream(
    updates: broadcast::Receiver<Update>,
    caller: Caller,
    dag_filter: Option<String>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> {
    BroadcastStream::new(updates)
        .filter_map(move |item| {
            let event = match item {
                Ok(update) => event(&update, caller.tenant(), dag_filter.as_deref()),
                // The channel dropped updates this client had not read yet.
                Err(BroadcastStreamRecvError::Lagged(missed)) => Event::default()
                    .event("resync")
                    .json_data(ResyncEvent { missed })
                    .ok(),
            };
            std::future::ready(event.map(Ok))
        })
        .take_until(Box::pin(stopped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aileron_model::DagRunState;
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    fn run_update(dag_id: &str, run_id: &str) -> Update {
        Update::DagRun {
            tenant: aileron_model::TenantId::DEFAULT.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            state: DagRunState::Running,
        }
    }

    async fn body_text(
        stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    ) -> String {
        let body = Sse::new(stream).into_response().into_body();
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_told_to_resync() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..5 {
            tx.send(run_update("d", &format!("r{i}"))).unwrap();
        }
        drop(tx);
        let text = body_text(stream(rx, Caller::default(), None, std::future::pending())).await;
        let events: Vec<&str> = text.lines().filter(|l| l.starts_with("event:")).collect();
        assert_eq!(
            events,
            ["event: resync", "event: dag_run", "event: dag_run"],
            "{text}"
        );
        assert!(text.contains(r#"data: {"missed":3}"#), "{text}");
        assert!(text.contains(r#""dag_run_id":"r4""#), "{text}");
    }

    #[tokio::test]
    async fn the_dag_filter_keeps_dag_list_changes_and_other_tenants_are_never_sent() {
        let (tx, rx) = broadcast::channel(16);
        tx.send(run_update("other", "r1")).unwrap();
        tx.send(Update::DagRun {
            tenant: "someone_else".to_owned(),
            dag_id: "d".to_owned(),
            run_id: "r2".to_owned(),
            state: DagRunState::Success,
        })
        .unwrap();
        tx.send(Update::Dags).unwrap();
        tx.send(run_update("d", "r3")).unwrap();
        drop(tx);
        let text = body_text(stream(
            rx,
            Caller::default(),
            Some("d".to_owned()),
            std::future::pending(),
        ))
        .await;
        let events: Vec<&str> = text.lines().filter(|l| l.starts_with("event:")).collect();
        assert_eq!(events, ["event: dags", "event: dag_run"], "{text}");
        assert!(text.contains(r#""dag_run_id":"r3""#), "{text}");
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_scheduler_stops() {
        let (_tx, rx) = broadcast::channel::<Update>(4);
        // `_tx` stays open: only the stop signal can end this stream.
        let text = body_text(stream(rx, Caller::default(), None, std::future::ready(()))).await;
        assert_eq!(text, "");
    }
}
