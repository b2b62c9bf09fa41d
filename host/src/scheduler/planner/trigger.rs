//! Trigger rules applied to a run: for one task, what becomes of its TaskInstances
//! that have no state yet, given the states of its upstream tasks' TaskInstances.

use super::ActiveRun;
use aileron_model::TaskInstanceState as S;
use aileron_model::dag::TaskSpec;
use aileron_model::trigger_rule::{self, TriggerDecision, UpstreamCounts};

/// What to do with one task's TaskInstances that have no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerStep {
    /// None of them is waiting on its trigger rule.
    Nothing,
    /// The trigger rule cannot decide yet (an upstream is still unfinished).
    Wait,
    /// Move these map indexes to `state`: `scheduled`, `skipped` or
    /// `upstream_failed`.
    Set { map_indexes: Vec<i64>, state: S },
    /// The task is mapped and has not expanded yet: its `expand` must be rendered
    /// and the placeholder replaced by one TaskInstance per value.
    Expand,
}

impl TriggerStep {
    /// Whether the step would let the task run (subject to `depends_on_past`).
    pub fn runs(&self) -> bool {
        matches!(
            self,
            Self::Expand
                | Self::Set {
                    state: S::Scheduled,
                    ..
                }
        )
    }
}

/// The trigger rule of `task` over the current states of `run`.
pub fn trigger_step(run: &ActiveRun, task: &TaskSpec) -> TriggerStep {
    let pending: Vec<i64> = run
        .tis_of(&task.task_id)
        .filter(|ti| ti.state == S::NoStatus)
        .map(|ti| ti.map_index)
        .collect();
    if pending.is_empty() {
        return TriggerStep::Nothing;
    }
    let counts = UpstreamCounts::from_states(
        task.upstream
            .iter()
            .flat_map(|u| run.tis_of(u).map(|ti| ti.state)),
    );
    let state = match trigger_rule::evaluate(task.trigger_rule, &counts) {
        TriggerDecision::Wait => return TriggerStep::Wait,
        TriggerDecision::Run => S::Scheduled,
        TriggerDecision::Skip => S::Skipped,
        TriggerDecision::UpstreamFailed => S::UpstreamFailed,
    };
    // A mapped task expands once every TaskInstance of it is still pending (only
    // the placeholder, or the old map indexes after a clear).
    let all_pending = run.tis_of(&task.task_id).count() == pending.len();
    if state == S::Scheduled && task.expand.is_some() && all_pending {
        return TriggerStep::Expand;
    }
    TriggerStep::Set {
        map_indexes: pending,
        state,
    }
}
