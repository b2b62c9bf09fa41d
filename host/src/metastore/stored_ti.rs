//! The stored form of a TaskInstance, the most numerous record of all: what the
//! `task_instances` table holds, and the only code that writes or reads it.
//!
//! A finished TaskInstance is kept for as long as history is, so its value says
//! each thing once: the key already names the tenant, DAG, run, task and map
//! index; absent values are left out instead of written as `null`; a try keeps
//! only what differs from the TaskInstance's own state, dates, operator build,
//! host and attempt (the latest try of a finished TaskInstance is its number
//! alone); a duration is kept only when it is not end minus start; times are
//! integer nanoseconds since the Unix epoch. It stays JSON, readable with any redb
//! tool.

use super::{MetastoreError, Result, TaskInstance, TryRecord};
use aileron_model::TaskInstanceState;
use aileron_sandbox::TryUsage;
use jiff::Timestamp;
use jiff::fmt::serde::timestamp::nanosecond;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct StoredTi {
    state: TaskInstanceState,
    #[serde(default, skip_serializing_if = "is_zero")]
    try_number: u32,
    max_tries: u32,
    operator: String,
    plugin_digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    hostname: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    attempt: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    queued_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    start_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    end_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "StoredDuration::is_derived")]
    duration: StoredDuration,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    next_try_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rendered_params: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rendered_fields: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tries: Vec<StoredTry>,
}

/// A try, with every field but its number left out when it is the
/// TaskInstance's own (as all are for the latest try of a finished one).
#[derive(Serialize, Deserialize)]
struct StoredTry {
    try_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<TaskInstanceState>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    start_date: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "nanosecond::optional"
    )]
    end_date: Option<Timestamp>,
    /// Only when it is not end minus start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<StoredUsage>,
}

/// What a try used, in short names: one per try of every TaskInstance kept.
#[derive(Serialize, Deserialize)]
struct StoredUsage {
    cpu: f64,
    host: f64,
    mem: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    refused: u32,
}

impl From<&TryUsage> for StoredUsage {
    fn from(u: &TryUsage) -> Self {
        StoredUsage {
            cpu: u.cpu_seconds,
            host: u.host_call_seconds,
            mem: u.peak_memory_bytes,
            refused: u.refused_allocations,
        }
    }
}

impl From<StoredUsage> for TryUsage {
    fn from(u: StoredUsage) -> Self {
        TryUsage {
            cpu_seconds: u.cpu,
            host_call_seconds: u.host,
            peak_memory_bytes: u.mem,
            refused_allocations: u.refused,
        }
    }
}

/// `value` unless the TaskInstance has the same.
fn unless_same<T: PartialEq + Clone>(value: &T, own: &T) -> Option<T> {
    (value != own).then(|| value.clone())
}

/// A TaskInstance's duration: left out when it is end minus start (or there is no
/// end), `null` when it is absent although both dates are there.
#[derive(Default)]
enum StoredDuration {
    #[default]
    Derived,
    Absent,
    Seconds(f64),
}

impl StoredDuration {
    fn is_derived(&self) -> bool {
        matches!(self, Self::Derived)
    }
}

impl Serialize for StoredDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Seconds(d) => s.serialize_some(d),
            Self::Derived | Self::Absent => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for StoredDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map_or(Self::Absent, Self::Seconds))
    }
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Seconds from `start` to `end`, as the scheduler computes a duration.
fn span(start: Timestamp, end: Timestamp) -> f64 {
    end.duration_since(start).as_secs_f64()
}

/// `duration` unless it is what `start` and `end` give anyway.
fn unless_derived(duration: f64, start: Timestamp, end: Timestamp) -> Option<f64> {
    (duration.to_bits() != span(start, end).to_bits()).then_some(duration)
}

/// The stored bytes of `ti` (its key is [`super::ti_record_key`]).
pub(super) fn encode(ti: &TaskInstance) -> Vec<u8> {
    let duration = match (ti.duration, ti.start_date, ti.end_date) {
        (Some(d), Some(s), Some(e)) => {
            unless_derived(d, s, e).map_or(StoredDuration::Derived, StoredDuration::Seconds)
        }
        (None, Some(_), Some(_)) => StoredDuration::Absent,
        (Some(d), ..) => StoredDuration::Seconds(d),
        (None, ..) => StoredDuration::Derived,
    };
    let stored = StoredTi {
        state: ti.state,
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        operator: ti.operator.clone(),
        plugin_digest: ti.plugin_digest.clone(),
        hostname: ti.hostname.clone(),
        attempt: ti.attempt,
        queued_at: ti.queued_at,
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration,
        next_try_at: ti.next_try_at,
        rendered_params: ti.rendered_params.clone(),
        rendered_fields: ti.rendered_fields.clone(),
        tries: ti
            .tries
            .iter()
            .map(|t| StoredTry {
                try_number: t.try_number,
                state: unless_same(&t.state, &ti.state),
                start_date: unless_same(&Some(t.start_date), &ti.start_date).flatten(),
                end_date: unless_same(&Some(t.end_date), &ti.end_date).flatten(),
                duration: unless_derived(t.duration, t.start_date, t.end_date),
                plugin_digest: unless_same(&t.plugin_digest, &ti.plugin_digest),
                error: t.error.clone(),
                hostname: unless_same(&t.hostname, &ti.hostname),
                attempt: unless_same(&t.attempt, &ti.attempt),
                usage: t.usage.as_ref().map(StoredUsage::from),
            })
            .collect(),
    };
    serde_json::to_vec(&stored).expect("a TaskInstance always serializes")
}

/// The identity parts of a TaskInstance key: tenant, DAG, run, task, map index.
struct KeyParts<'k> {
    tenant: &'k str,
    dag_id: &'k str,
    run_id: &'k str,
    task_id: &'k str,
    map_index: i64,
}

fn key_parts(key: &str) -> Option<KeyParts<'_>> {
    let mut parts = key.split('\0');
    let parts = KeyParts {
        tenant: parts.next()?,
        dag_id: parts.next()?,
        run_id: parts.next()?,
        task_id: parts.next()?,
        map_index: parts.next()?.parse::<i64>().ok()? - 1,
    };
    Some(parts)
}

fn bad_key(key: &str) -> MetastoreError {
    MetastoreError::BadKey {
        key: key.replace('\0', "/"),
    }
}

fn bad_try(key: &str) -> MetastoreError {
    MetastoreError::BadRecord {
        key: key.replace('\0', "/"),
        reason: "a try without its dates",
    }
}

/// The tenant and DAG a TaskInstance key belongs to, and the state its value
/// records: what the counts need, without decoding the rest.
pub(super) fn counted_as(key: &str, bytes: &[u8]) -> Option<(String, String, TaskInstanceState)> {
    #[derive(Deserialize)]
    struct StateOnly {
        state: TaskInstanceState,
    }
    let parts = key_parts(key)?;
    let s: StateOnly = serde_json::from_slice(bytes).ok()?;
    Some((parts.tenant.to_owned(), parts.dag_id.to_owned(), s.state))
}

/// The TaskInstance stored under `key`.
pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<TaskInstance> {
    let parts = key_parts(key).ok_or_else(|| bad_key(key))?;
    let s: StoredTi = super::decode(key, bytes)?;
    let duration = match (s.duration, s.start_date, s.end_date) {
        (StoredDuration::Derived, Some(start), Some(end)) => Some(span(start, end)),
        (StoredDuration::Derived | StoredDuration::Absent, ..) => None,
        (StoredDuration::Seconds(d), ..) => Some(d),
    };
    let tries = s
        .tries
        .into_iter()
        .map(|t| {
            // A date left out is the TaskInstance's; a try always has both.
            let start_date = t.start_date.or(s.start_date).ok_or_else(|| bad_try(key))?;
            let end_date = t.end_date.or(s.end_date).ok_or_else(|| bad_try(key))?;
            Ok(TryRecord {
                try_number: t.try_number,
                state: t.state.unwrap_or(s.state),
                start_date,
                end_date,
                duration: t.duration.unwrap_or_else(|| span(start_date, end_date)),
                plugin_digest: t.plugin_digest.unwrap_or_else(|| s.plugin_digest.clone()),
                error: t.error,
                hostname: t.hostname.unwrap_or_else(|| s.hostname.clone()),
                attempt: t.attempt.unwrap_or(s.attempt),
                usage: t.usage.map(TryUsage::from),
            })
        })
        .collect::<Result<_>>()?;
    Ok(TaskInstance {
        tenant: parts.tenant.to_owned(),
        dag_id: parts.dag_id.to_owned(),
        run_id: parts.run_id.to_owned(),
        task_id: parts.task_id.to_owned(),
        map_index: parts.map_index,
        state: s.state,
        try_number: s.try_number,
        max_tries: s.max_tries,
        operator: s.operator,
        plugin_digest: s.plugin_digest,
        queued_at: s.queued_at,
        start_date: s.start_date,
        end_date: s.end_date,
        duration,
        next_try_at: s.next_try_at,
        rendered_params: s.rendered_params,
        rendered_fields: s.rendered_fields,
        tries,
        hostname: s.hostname,
        attempt: s.attempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metastore::ti_record_key;

    fn at(secs: i64, nanos: i32) -> Timestamp {
        Timestamp::new(secs, nanos).unwrap()
    }

    fn finished() -> TaskInstance {
        let (start, end) = (at(1_780_000_000, 123_456_789), at(1_780_000_002, 5));
        let first = TryRecord {
            try_number: 1,
            state: TaskInstanceState::UpForRetry,
            start_date: at(1_779_999_000, 1),
            end_date: at(1_779_999_001, 0),
            duration: 0.999_999_999,
            plugin_digest: "sha256:old".into(),
            error: Some("boom".into()),
            hostname: "worker-1".into(),
            attempt: 7,
            usage: None,
        };
        let second = TryRecord {
            try_number: 2,
            state: TaskInstanceState::Success,
            start_date: start,
            end_date: end,
            duration: span(start, end),
            plugin_digest: "sha256:new".into(),
            error: None,
            hostname: "host-a".into(),
            attempt: 9,
            usage: None,
        };
        TaskInstance {
            tenant: "team-a".into(),
            dag_id: "etl".into(),
            run_id: "scheduled__2026-05-28T00:00:00+00:00".into(),
            task_id: "load".into(),
            map_index: 3,
            state: TaskInstanceState::Success,
            try_number: 2,
            max_tries: 3,
            operator: "echo".into(),
            plugin_digest: "sha256:new".into(),
            queued_at: Some(at(1_779_999_999, 42)),
            start_date: Some(start),
            end_date: Some(end),
            duration: Some(span(start, end)),
            next_try_at: None,
            rendered_params: Some(serde_json::json!({"n": 3})),
            rendered_fields: Some(serde_json::json!({"message": "hi"})),
            tries: vec![first, second],
            hostname: "host-a".into(),
            attempt: 9,
        }
    }

    fn round_trip(ti: &TaskInstance) -> TaskInstance {
        decode(&ti_record_key(ti), &encode(ti)).unwrap()
    }

    fn json(ti: &TaskInstance) -> serde_json::Value {
        serde_json::to_value(ti).unwrap()
    }

    #[test]
    fn every_field_survives_the_stored_form() {
        let ti = finished();
        assert_eq!(json(&round_trip(&ti)), json(&ti));

        // A running TaskInstance (no end), a cleared one (nothing), one whose
        // duration was not end minus start, and one with dates but no duration.
        let mut running = finished();
        running.state = TaskInstanceState::Running;
        running.end_date = None;
        running.duration = None;
        let mut cleared = finished();
        cleared.try_number = 0;
        cleared.queued_at = None;
        cleared.start_date = None;
        cleared.end_date = None;
        cleared.duration = None;
        cleared.tries.clear();
        cleared.hostname.clear();
        cleared.attempt = 0;
        cleared.rendered_params = None;
        cleared.rendered_fields = None;
        let mut odd = finished();
        odd.duration = Some(12.5);
        odd.next_try_at = Some(at(1_780_000_100, 0));
        let mut undated = finished();
        undated.duration = None;
        for ti in [running, cleared, odd, undated] {
            assert_eq!(json(&round_trip(&ti)), json(&ti));
        }
    }

    #[test]
    fn the_stored_form_says_each_thing_once() {
        let ti = finished();
        let text = String::from_utf8(encode(&ti)).unwrap();
        for (part, times) in [
            ("team-a", 0),
            ("scheduled__", 0),
            ("null", 0),
            ("sha256:new", 1),
            ("host-a", 1),
            ("sha256:old", 1),
            ("worker-1", 1),
        ] {
            assert_eq!(text.matches(part).count(), times, "{part} in {text}");
        }
        // Two tries in the full JSON of schema 4 took about 1,300 bytes.
        assert!(text.len() < 600, "{} bytes: {text}", text.len());
    }

    #[test]
    fn a_key_that_is_not_a_task_instance_key_is_an_error() {
        let bytes = encode(&finished());
        assert!(matches!(
            decode("team-a\0etl", &bytes),
            Err(MetastoreError::BadKey { .. })
        ));
    }
}
