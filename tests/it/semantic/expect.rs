//! Checking expectations: an `[[expect]]` (or `expect` step) against one run, an
//! `expect_dag` step against a whole DAG, with every mismatch reported at once.

use super::case::{
    CallbackExpect, Expect, OrderItem, label, run_state, sel, state_try, ti_key, ti_state, ts,
};
use super::runner::{Event, Runner};
use aileron::metastore::{CallbackRecord, DagRun};
use aileron_model::TenantId;
use aileron_model::{DagRunState, TaskInstanceState};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

impl Runner {
    /// Checks one expectation; the run it selected, and every mismatch (empty if none).
    pub(super) fn check(&self, e: &Expect) -> (Option<DagRun>, String) {
        let run = match self.find_run(&sel(&e.dag, &e.run_id, &e.logical_date, e.nth), false) {
            Ok(r) => r,
            Err(m) => return (None, format!("    {m}\n")),
        };
        let m = &self.env.app.metastore;
        let mut out = String::new();
        let want = run_state(&e.state);
        if run.state != want {
            let _ = writeln!(out, "    run state: got {}, want {want}", run.state);
        }
        if let Some([start, end]) = &e.data_interval {
            let (start, end) = (ts(start), ts(end));
            if (run.data_interval.start, run.data_interval.end) != (start, end) {
                let _ = writeln!(
                    out,
                    "    data interval: got [{}, {}), want [{start}, {end})",
                    run.data_interval.start, run.data_interval.end
                );
            }
        }
        if let Some(rt) = &e.run_type
            && run.run_type.as_str() != rt
        {
            let _ = writeln!(
                out,
                "    run type: got {}, want {rt}",
                run.run_type.as_str()
            );
        }

        if let Some(label) = &e.dag_version {
            let want = self.versions.get(label).unwrap_or_else(|| {
                panic!(
                    "{}: no DAG version is labelled `{label}` (label one with `version`)",
                    self.name
                )
            });
            if run.dag_version != *want {
                let got = self
                    .versions
                    .iter()
                    .find(|(_, v)| **v == run.dag_version)
                    .map_or(run.dag_version.clone(), |(l, _)| l.clone());
                let _ = writeln!(out, "    dag version: got {got}, want {label}");
            }
        }
        if let Some(want) = &e.callbacks {
            let got = m
                .callbacks(TenantId::DEFAULT, &run.dag_id, &run.run_id)
                .unwrap();
            check_callbacks(&got, want, &mut out);
        }

        let actual: BTreeMap<(String, i64), (TaskInstanceState, u32)> = m
            .task_instances(TenantId::DEFAULT, &run.dag_id, &run.run_id)
            .unwrap()
            .into_iter()
            .map(|t| ((t.task_id, t.map_index), (t.state, t.try_number)))
            .collect();
        let mut expected: BTreeMap<(String, i64), (TaskInstanceState, u32)> = BTreeMap::new();
        for (l, v) in &e.tasks {
            if expected.insert(ti_key(l), state_try(v)).is_some() {
                panic!("{}: `{l}` is listed twice", self.name);
            }
        }
        let mut keys: Vec<&(String, i64)> = actual.keys().chain(expected.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let l = label(&k.0, k.1);
            match (actual.get(k), expected.get(k)) {
                (Some(a), Some(w)) if a != w => {
                    let _ = writeln!(out, "    {l}: got {}/{}, want {}/{}", a.0, a.1, w.0, w.1);
                }
                (Some(a), None) => {
                    let _ = writeln!(
                        out,
                        "    {l}: exists ({}/{}) but the case does not list it",
                        a.0, a.1
                    );
                }
                (None, Some(w)) => {
                    let _ = writeln!(
                        out,
                        "    {l}: listed as {}/{} but there is no such TaskInstance",
                        w.0, w.1
                    );
                }
                _ => {}
            }
        }

        for (l, want) in &e.xcom {
            let (task, index) = ti_key(l);
            let got: Option<Value> = m
                .xcom(
                    TenantId::DEFAULT,
                    &run.dag_id,
                    &run.run_id,
                    &task,
                    "return_value",
                )
                .unwrap()
                .into_iter()
                .find(|(mi, _)| *mi == index)
                .map(|(_, v)| serde_json::from_str(&v).unwrap());
            if got.as_ref() != Some(want) {
                let got = got.map_or("nothing".to_owned(), |v| v.to_string());
                let _ = writeln!(out, "    xcom of {l}: got {got}, want {want}");
            }
        }

        let events: Vec<&Event> = self
            .events
            .iter()
            .filter(|ev| ev.dag_id == run.dag_id && ev.run_id == run.run_id)
            .collect();
        if (e.started.is_some() || e.sequence.is_some()) && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): ordering cannot be checked",
                self.lagged
            );
        }
        if let Some(started) = &e.started {
            let actual: Vec<String> = events
                .iter()
                .filter(|ev| ev.state == TaskInstanceState::Running)
                .map(|ev| ev.label.clone())
                .collect();
            if let Some(problem) = check_started(&actual, started) {
                let _ = writeln!(out, "    started order: {problem}; got {actual:?}");
            }
        }
        if !e.max_active.is_empty() && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): concurrency cannot be checked",
                self.lagged
            );
        }
        check_max_active(events.iter().copied(), &e.max_active, &mut out);
        if let Some(sequence) = &e.sequence {
            let actual: Vec<String> = events
                .iter()
                .map(|ev| format!("{}={}", ev.label, ev.state))
                .collect();
            if let Some(problem) = check_sequence(&actual, sequence, transition) {
                let _ = writeln!(out, "    sequence: {problem}; got {actual:?}");
            }
        }
        if !out.is_empty() {
            let head = format!(
                "  dag `{}`, run `{}` (logical date {}):\n",
                run.dag_id, run.run_id, run.logical_date
            );
            let note = e
                .note
                .as_ref()
                .map(|n| format!("    note: {n}\n"))
                .unwrap_or_default();
            out = format!("{head}{note}{out}{}", self.describe_run(&run));
        }
        (Some(run), out)
    }

    /// Checks of a whole DAG (`expect_dag`); every mismatch, or nothing.
    pub(super) fn check_dag(
        &self,
        dag: &str,
        paused: Option<bool>,
        max_running_runs: Option<usize>,
        max_active: &BTreeMap<String, usize>,
        sequence: &Option<Vec<OrderItem>>,
    ) -> String {
        let mut out = String::new();
        let Some(record) = self
            .env
            .app
            .metastore
            .dags()
            .unwrap()
            .into_iter()
            .find(|d| d.tenant == TenantId::DEFAULT && d.dag_id == dag)
        else {
            return format!("    no DAG `{dag}`\n");
        };
        if let Some(want) = paused
            && record.is_paused != want
        {
            let _ = writeln!(out, "    is_paused: got {}, want {want}", record.is_paused);
        }
        let ordering = max_running_runs.is_some() || !max_active.is_empty() || sequence.is_some();
        if ordering && self.lagged > 0 {
            let _ = writeln!(
                out,
                "    {} scheduler updates were lost (lagged): ordering cannot be checked",
                self.lagged
            );
        }
        if let Some(want) = max_running_runs {
            let mut states: HashMap<&str, DagRunState> = HashMap::new();
            let mut most = 0;
            for ev in self.run_events.iter().filter(|e| e.dag_id == dag) {
                states.insert(&ev.run_id, ev.state);
                let running = states
                    .values()
                    .filter(|s| **s == DagRunState::Running)
                    .count();
                most = most.max(running);
            }
            if most != want {
                let _ = writeln!(
                    out,
                    "    most runs running at once: got {most}, want {want}"
                );
            }
        }
        check_max_active(
            self.events.iter().filter(|e| e.dag_id == dag),
            max_active,
            &mut out,
        );
        if let Some(sequence) = sequence {
            let runs: Vec<String> = self
                .env
                .app
                .metastore
                .dag_runs(TenantId::DEFAULT, dag)
                .unwrap()
                .into_iter()
                .map(|r| r.run_id)
                .collect();
            let actual: Vec<String> = self
                .events
                .iter()
                .filter(|e| e.dag_id == dag)
                .filter_map(|e| {
                    let nth = runs.iter().position(|r| *r == e.run_id)?;
                    Some(format!("{nth}:{}={}", e.label, e.state))
                })
                .collect();
            if let Some(problem) = check_sequence(&actual, sequence, run_transition) {
                let _ = writeln!(out, "    sequence: {problem}; got {actual:?}");
            }
        }
        if !out.is_empty() {
            out = format!("  dag `{dag}`:\n{out}");
        }
        out
    }
}

/// Compares, per task, the most TaskInstances queued or running at once in
/// `events` with `want`; writes the mismatches.
fn check_max_active<'a>(
    events: impl Iterator<Item = &'a Event>,
    want: &BTreeMap<String, usize>,
    out: &mut String,
) {
    if want.is_empty() {
        return;
    }
    let mut states: HashMap<(&str, &str), TaskInstanceState> = HashMap::new();
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for ev in events {
        states.insert((&ev.run_id, &ev.label), ev.state);
        let task = ti_key(&ev.label).0;
        let active = states
            .iter()
            .filter(|((_, l), s)| {
                ti_key(l).0 == task
                    && matches!(s, TaskInstanceState::Queued | TaskInstanceState::Running)
            })
            .count();
        let m = most.entry(task).or_default();
        *m = (*m).max(active);
    }
    for (task, want) in want {
        let got = most.get(task).copied().unwrap_or(0);
        if got != *want {
            let _ = writeln!(
                out,
                "    most TaskInstances of `{task}` queued or running at once: got {got}, want {want}"
            );
        }
    }
}

/// Matches the callbacks a run fired with the expected ones, in any order; writes
/// what is missing and what is unexpected.
fn check_callbacks(got: &[CallbackRecord], want: &[CallbackExpect], out: &mut String) {
    let describe = |c: &CallbackRecord| {
        let who = match &c.task_id {
            Some(t) => format!(
                "task {} try {}",
                label(t, c.map_index.unwrap_or(-1)),
                c.try_number.unwrap_or(0)
            ),
            None => "the DAG".to_owned(),
        };
        format!(
            "{} of {who}: {} ({}), reason {:?}, error {:?}, log {:?}",
            c.event, c.state, c.operator, c.reason, c.error, c.log
        )
    };
    let matches = |c: &CallbackRecord, w: &CallbackExpect| {
        let task_ok = match &w.task {
            None => c.task_id.is_none(),
            Some(l) => {
                let (task, index) = ti_key(l);
                c.task_id.as_deref() == Some(task.as_str()) && c.map_index.unwrap_or(-1) == index
            }
        };
        task_ok
            && c.event == w.event
            && c.state == w.state
            && w.try_number.is_none_or(|t| c.try_number == Some(t))
            && w.reason
                .as_ref()
                .is_none_or(|r| c.reason.as_ref() == Some(r))
            && w.log.as_ref().is_none_or(|l| c.log.contains(l.as_str()))
            && w.error
                .as_ref()
                .is_none_or(|x| c.error.as_ref().is_some_and(|e| e.contains(x.as_str())))
    };
    let mut left: Vec<&CallbackRecord> = got.iter().collect();
    let mut missing = Vec::new();
    for w in want {
        match left.iter().position(|c| matches(c, w)) {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(w),
        }
    }
    if missing.is_empty() && left.is_empty() {
        return;
    }
    for w in missing {
        let _ = writeln!(out, "    callback not fired (or not as listed): {w:?}");
    }
    for c in left {
        let _ = writeln!(out, "    callback fired but not listed: {}", describe(c));
    }
    if !got.is_empty() {
        let _ = writeln!(out, "    every callback of the run:");
        for c in got {
            let _ = writeln!(out, "      {}", describe(c));
        }
    }
}

/// Compares the order in which TaskInstances started with the expected groups.
fn check_started(actual: &[String], want: &[OrderItem]) -> Option<String> {
    let mut at = 0;
    for item in want {
        let mut group: Vec<String> = match item {
            OrderItem::One(l) => vec![l.clone()],
            OrderItem::AnyOrder(ls) => ls.clone(),
        };
        group = group
            .iter()
            .map(|l| label(&ti_key(l).0, ti_key(l).1))
            .collect();
        let Some(slice) = actual.get(at..at + group.len()) else {
            return Some(format!("{} started, the case lists more", actual.len()));
        };
        let mut got = slice.to_vec();
        got.sort();
        group.sort();
        if got != group {
            return Some(format!(
                "at position {at} want {group:?} (any order), got {got:?}"
            ));
        }
        at += group.len();
    }
    (at < actual.len()).then(|| format!("{} more started than the case lists", actual.len() - at))
}

/// `task=state` with the label and state in canonical form.
fn transition(item: &str) -> String {
    let (l, st) = item
        .split_once('=')
        .unwrap_or_else(|| panic!("sequence item `{item}` is not task=state"));
    let (task, index) = ti_key(l);
    format!("{}={}", label(&task, index), ti_state(st))
}

/// `nth:task=state` (an `expect_dag` sequence item) in canonical form.
fn run_transition(item: &str) -> String {
    let (nth, rest) = item
        .split_once(':')
        .unwrap_or_else(|| panic!("sequence item `{item}` is not nth:task=state"));
    let nth: usize = nth
        .parse()
        .unwrap_or_else(|_| panic!("sequence item `{item}`: `{nth}` is not a run index"));
    format!("{nth}:{}", transition(rest))
}

/// Checks that the transitions of each group happen after those of the group
/// before (first occurrences; other transitions may come between). `canon` puts
/// an expected item in the form of `actual`'s.
fn check_sequence(
    actual: &[String],
    want: &[OrderItem],
    canon: fn(&str) -> String,
) -> Option<String> {
    let mut from = 0;
    for item in want {
        let group: Vec<String> = match item {
            OrderItem::One(t) => vec![canon(t)],
            OrderItem::AnyOrder(ts) => ts.iter().map(|t| canon(t)).collect(),
        };
        let mut end = from;
        for t in &group {
            match actual[from..].iter().position(|a| a == t) {
                Some(p) => end = end.max(from + p + 1),
                None => {
                    return Some(format!(
                        "`{t}` does not happen after position {from} (the items before it)"
                    ));
                }
            }
        }
        from = end;
    }
    None
}
