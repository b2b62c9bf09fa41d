//! Trigger rules: when a TaskInstance may run, given the states of its direct upstreams.
//!
//! This is a faithful port of Airflow 3's `TriggerRuleDep._evaluate_direct_relatives`
//! (`airflow-core/src/airflow/ti_deps/deps/trigger_rule_dep.py`) for the scheduler's
//! normal case (`flag_upstream_failed = True`, no setup/teardown tasks). Airflow checks
//! in two steps and so do we, in the same order:
//!
//! 1. rules that can *decide a state without running the task* (`skipped` or
//!    `upstream_failed`) are checked first — that decision wins even when the
//!    "may run" check below would pass (e.g. `none_failed_min_one_success` with every
//!    upstream skipped);
//! 2. otherwise the task either runs or waits.
//!
//! A task with no upstream task runs whatever its rule (Airflow returns before looking
//! at the rule), and `always` runs at once.
//!
//! Counting follows Airflow's `_UpstreamTIStates.calculate`: only *finished* upstream
//! TaskInstances are counted per state; `done` is the number of finished ones
//! (`success`, `failed`, `skipped`, `upstream_failed`, `removed`), and `total` is the
//! number of upstream TaskInstances (Airflow's `upstream`). So a `removed` upstream
//! counts as done (it lets `all_done` through) but never as a success: like Airflow,
//! `all_success` and `none_failed` keep waiting on it.
//!
//! Not ported: the mapped-TaskInstance adjustments where Airflow subtracts `removed`
//! upstreams for a TaskInstance with `map_index >= 0` (and may mark it `removed`); those
//! only arise when a mapped upstream shrinks on re-expansion. [`evaluate`] is Airflow's
//! answer for a TaskInstance with `map_index = -1`.

use crate::state::TaskInstanceState;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Airflow's trigger rules (CONTRACT: the snake_case names are what DAG files use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    AllDoneMinOneSuccess,
    AllSkipped,
    OneSuccess,
    OneFailed,
    OneDone,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 12] = [
        Self::AllSuccess,
        Self::AllFailed,
        Self::AllDone,
        Self::AllDoneMinOneSuccess,
        Self::AllSkipped,
        Self::OneSuccess,
        Self::OneFailed,
        Self::OneDone,
        Self::NoneFailed,
        Self::NoneFailedMinOneSuccess,
        Self::NoneSkipped,
        Self::Always,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllSuccess => "all_success",
            Self::AllFailed => "all_failed",
            Self::AllDone => "all_done",
            Self::AllDoneMinOneSuccess => "all_done_min_one_success",
            Self::AllSkipped => "all_skipped",
            Self::OneSuccess => "one_success",
            Self::OneFailed => "one_failed",
            Self::OneDone => "one_done",
            Self::NoneFailed => "none_failed",
            Self::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            Self::NoneSkipped => "none_skipped",
            Self::Always => "always",
        }
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a trigger rule name that is not one of Airflow's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger rule `{0}`; expected one of: {list}", list = TriggerRule::ALL.map(TriggerRule::as_str).join(", "))]
pub struct UnknownTriggerRule(pub String);

impl FromStr for TriggerRule {
    type Err = UnknownTriggerRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownTriggerRule(s.to_owned()))
    }
}

/// How many direct upstream TaskInstances are in each finished state.
///
/// Unfinished upstreams (`none`, `scheduled`, `queued`, `running`, `up_for_retry`,
/// `up_for_reschedule`) only count towards `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpstreamCounts {
    pub success: usize,
    pub skipped: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub removed: usize,
    /// Finished upstreams: the sum of the five counts above.
    pub done: usize,
    /// Every upstream TaskInstance, finished or not.
    pub total: usize,
}

impl UpstreamCounts {
    /// Counts the states of the direct upstream TaskInstances (one item per
    /// TaskInstance, so a mapped upstream contributes one item per map index).
    pub fn from_states<I>(states: I) -> Self
    where
        I: IntoIterator<Item = TaskInstanceState>,
    {
        let mut counts = Self::default();
        for state in states {
            counts.add(state);
        }
        counts
    }

    /// Adds one upstream TaskInstance in `state`.
    pub fn add(&mut self, state: TaskInstanceState) {
        self.total += 1;
        let slot = match state {
            TaskInstanceState::Success => &mut self.success,
            TaskInstanceState::Skipped => &mut self.skipped,
            TaskInstanceState::Failed => &mut self.failed,
            TaskInstanceState::UpstreamFailed => &mut self.upstream_failed,
            TaskInstanceState::Removed => &mut self.removed,
            _ => return,
        };
        *slot += 1;
        self.done += 1;
    }

    /// True when every upstream TaskInstance is finished.
    pub fn all_done(&self) -> bool {
        self.done >= self.total
    }
}

impl FromIterator<TaskInstanceState> for UpstreamCounts {
    fn from_iter<I: IntoIterator<Item = TaskInstanceState>>(iter: I) -> Self {
        Self::from_states(iter)
    }
}

/// What the scheduler should do with a TaskInstance whose state is `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerDecision {
    /// The rule is met: the TaskInstance may be scheduled.
    Run,
    /// Not decided yet: some upstream must finish first.
    Wait,
    /// Set the TaskInstance `skipped` without running it (it gets no try).
    Skip,
    /// Set the TaskInstance `upstream_failed` without running it (it gets no try).
    UpstreamFailed,
}

impl TriggerDecision {
    /// The state a decided-without-running TaskInstance gets, if any.
    pub fn decided_state(self) -> Option<TaskInstanceState> {
        match self {
            Self::Skip => Some(TaskInstanceState::Skipped),
            Self::UpstreamFailed => Some(TaskInstanceState::UpstreamFailed),
            Self::Run | Self::Wait => None,
        }
    }
}

/// Evaluates `rule` against the upstream `counts`, in Airflow's order of checks.
pub fn evaluate(rule: TriggerRule, counts: &UpstreamCounts) -> TriggerDecision {
    use TriggerDecision::{Run, Skip, UpstreamFailed, Wait};
    use TriggerRule as R;

    // Airflow: "The task instance did not have any upstream tasks" passes before the
    // rule is even looked at; `always` passes next.
    if counts.total == 0 || rule == R::Always {
        return Run;
    }

    let UpstreamCounts {
        success,
        skipped,
        failed,
        upstream_failed,
        removed,
        done,
        total,
    } = *counts;
    let all_done = counts.all_done();
    let any_failed = failed > 0 || upstream_failed > 0;

    // Step 1: decisions that set a state without running the task.
    let decided = match rule {
        R::AllSuccess if any_failed => Some(UpstreamFailed),
        R::AllSuccess if skipped > 0 => Some(Skip),
        R::AllFailed if success > 0 || skipped > 0 => Some(Skip),
        // Airflow checks "all skipped" before "no success".
        R::OneSuccess if all_done && done == skipped => Some(Skip),
        R::OneSuccess if all_done && success == 0 => Some(UpstreamFailed),
        R::OneFailed if all_done && !any_failed => Some(Skip),
        R::OneDone if all_done && failed == 0 && success == 0 => Some(Skip),
        R::NoneFailed if any_failed => Some(UpstreamFailed),
        R::NoneFailedMinOneSuccess if any_failed => Some(UpstreamFailed),
        // Airflow compares with the upstream count, so this needs every upstream
        // finished (and skipped) without a separate "all done" check.
        R::NoneFailedMinOneSuccess if skipped == total => Some(Skip),
        R::NoneSkipped if skipped > 0 => Some(Skip),
        R::AllSkipped if success > 0 || any_failed => Some(Skip),
        // For this rule a skipped upstream is not "done": one skip decides at once.
        R::AllDoneMinOneSuccess if skipped > 0 => Some(Skip),
        R::AllDoneMinOneSuccess
            if success + failed + upstream_failed + removed >= total.saturating_sub(skipped)
                && success == 0 =>
        {
            Some(UpstreamFailed)
        }
        _ => None,
    };
    if let Some(decision) = decided {
        return decision;
    }

    // Step 2: may it run now? (Airflow's failing statuses, inverted.)
    let runs = match rule {
        R::OneSuccess => success > 0,
        R::OneFailed => any_failed,
        R::OneDone => success + failed > 0,
        R::AllSuccess => total.saturating_sub(success) == 0,
        R::AllFailed => total.saturating_sub(failed + upstream_failed) == 0,
        R::AllDone => all_done,
        R::NoneFailed | R::NoneFailedMinOneSuccess => total.saturating_sub(success + skipped) == 0,
        R::NoneSkipped => all_done && skipped == 0,
        R::AllSkipped => total.saturating_sub(skipped) == 0,
        R::AllDoneMinOneSuccess => {
            skipped == 0 && success + failed + upstream_failed + removed >= total && success > 0
        }
        R::Always => true,
    };
    if runs { Run } else { Wait }
}

#[cfg(test)]
mod tests {
    use super::TriggerDecision::{Run, Skip, UpstreamFailed, Wait};
    use super::*;
    use TaskInstanceState as S;

    fn counts(states: &[S]) -> UpstreamCounts {
        states.iter().copied().collect()
    }

    fn eval(rule: TriggerRule, states: &[S]) -> TriggerDecision {
        evaluate(rule, &counts(states))
    }

    /// Representative upstream mixes, named for the failure messages.
    const MIXES: &[(&str, &[S])] = &[
        ("all success", &[S::Success, S::Success]),
        ("all failed", &[S::Failed, S::Failed]),
        (
            "all upstream_failed",
            &[S::UpstreamFailed, S::UpstreamFailed],
        ),
        ("failed + upstream_failed", &[S::Failed, S::UpstreamFailed]),
        ("all skipped", &[S::Skipped, S::Skipped]),
        ("success + failed", &[S::Success, S::Failed]),
        ("success + skipped", &[S::Success, S::Skipped]),
        ("failed + skipped", &[S::Failed, S::Skipped]),
        ("success + running", &[S::Success, S::Running]),
        ("failed + running", &[S::Failed, S::Running]),
        ("skipped + running", &[S::Skipped, S::Running]),
        ("upstream_failed + queued", &[S::UpstreamFailed, S::Queued]),
        ("none + none", &[S::NoStatus, S::NoStatus]),
        ("up_for_retry + success", &[S::UpForRetry, S::Success]),
        ("success + removed", &[S::Success, S::Removed]),
        ("all removed", &[S::Removed]),
        ("skipped + removed", &[S::Skipped, S::Removed]),
    ];

    /// Expected decision per rule, in the order of `MIXES`.
    fn expected(rule: TriggerRule) -> [TriggerDecision; 17] {
        use TriggerRule as R;
        match rule {
            R::AllSuccess => [
                Run,
                UpstreamFailed,
                UpstreamFailed,
                UpstreamFailed,
                Skip,
                UpstreamFailed,
                Skip,
                UpstreamFailed,
                Wait,
                UpstreamFailed,
                Skip,
                UpstreamFailed,
                Wait,
                Wait,
                Wait,
                Wait,
                Skip,
            ],
            R::AllFailed => [
                Skip, Run, Run, Run, Skip, Skip, Skip, Skip, Skip, Wait, Skip, Wait, Wait, Skip,
                Skip, Wait, Skip,
            ],
            R::AllDone => [
                Run, Run, Run, Run, Run, Run, Run, Run, Wait, Wait, Wait, Wait, Wait, Wait, Run,
                Run, Run,
            ],
            R::AllDoneMinOneSuccess => [
                Run,
                UpstreamFailed,
                UpstreamFailed,
                UpstreamFailed,
                Skip,
                Run,
                Skip,
                Skip,
                Wait,
                Wait,
                Skip,
                Wait,
                Wait,
                Wait,
                Run,
                UpstreamFailed,
                Skip,
            ],
            R::AllSkipped => [
                Skip, Skip, Skip, Skip, Run, Skip, Skip, Skip, Skip, Skip, Wait, Skip, Wait, Skip,
                Skip, Wait, Wait,
            ],
            R::OneSuccess => [
                Run,
                UpstreamFailed,
                UpstreamFailed,
                UpstreamFailed,
                Skip,
                Run,
                Run,
                UpstreamFailed,
                Run,
                Wait,
                Wait,
                Wait,
                Wait,
                Run,
                Run,
                UpstreamFailed,
                UpstreamFailed,
            ],
            R::OneFailed => [
                Skip, Run, Run, Run, Skip, Run, Skip, Run, Wait, Run, Wait, Run, Wait, Wait, Skip,
                Skip, Skip,
            ],
            R::OneDone => [
                Run, Run, Skip, Run, Skip, Run, Run, Run, Run, Run, Wait, Wait, Wait, Run, Run,
                Skip, Skip,
            ],
            R::NoneFailed => [
                Run,
                UpstreamFailed,
                UpstreamFailed,
                UpstreamFailed,
                Run,
                UpstreamFailed,
                Run,
                UpstreamFailed,
                Wait,
                UpstreamFailed,
                Wait,
                UpstreamFailed,
                Wait,
                Wait,
                Wait,
                Wait,
                Wait,
            ],
            R::NoneFailedMinOneSuccess => [
                Run,
                UpstreamFailed,
                UpstreamFailed,
                UpstreamFailed,
                Skip,
                UpstreamFailed,
                Run,
                UpstreamFailed,
                Wait,
                UpstreamFailed,
                Wait,
                UpstreamFailed,
                Wait,
                Wait,
                Wait,
                Wait,
                Wait,
            ],
            R::NoneSkipped => [
                Run, Run, Run, Run, Skip, Run, Skip, Skip, Wait, Wait, Skip, Wait, Wait, Wait, Run,
                Run, Skip,
            ],
            R::Always => [Run; 17],
        }
    }

    #[test]
    fn every_rule_against_every_mix() {
        for rule in TriggerRule::ALL {
            let want = expected(rule);
            for ((name, states), want) in MIXES.iter().zip(want) {
                assert_eq!(
                    eval(rule, states),
                    want,
                    "rule {rule} with upstreams {name}"
                );
            }
        }
    }

    #[test]
    fn no_upstream_always_runs() {
        for rule in TriggerRule::ALL {
            assert_eq!(evaluate(rule, &UpstreamCounts::default()), Run, "{rule}");
        }
    }

    #[test]
    fn decisions_before_all_done() {
        // Rules that decide early, while another upstream is still running.
        assert_eq!(
            eval(TriggerRule::AllSuccess, &[S::Failed, S::Running]),
            UpstreamFailed
        );
        assert_eq!(
            eval(TriggerRule::AllSuccess, &[S::Skipped, S::Running]),
            Skip
        );
        assert_eq!(
            eval(TriggerRule::AllFailed, &[S::Success, S::Running]),
            Skip
        );
        assert_eq!(
            eval(TriggerRule::OneSuccess, &[S::Success, S::Running]),
            Run
        );
        assert_eq!(
            eval(TriggerRule::OneFailed, &[S::UpstreamFailed, S::Running]),
            Run
        );
        assert_eq!(eval(TriggerRule::OneDone, &[S::Failed, S::Running]), Run);
        assert_eq!(
            eval(TriggerRule::NoneSkipped, &[S::Skipped, S::Running]),
            Skip
        );
        assert_eq!(
            eval(TriggerRule::AllDoneMinOneSuccess, &[S::Skipped, S::Running]),
            Skip
        );
        // ...and rules that must wait for everything.
        assert_eq!(
            eval(TriggerRule::OneSuccess, &[S::Failed, S::Running]),
            Wait
        );
        assert_eq!(
            eval(TriggerRule::OneFailed, &[S::Success, S::Running]),
            Wait
        );
        assert_eq!(
            eval(TriggerRule::AllDone, &[S::Success, S::UpForRetry]),
            Wait
        );
    }

    #[test]
    fn decided_state_wins_over_run() {
        // Every upstream skipped: the "may run" check of none_failed_min_one_success
        // passes (no failures), but Airflow marks the task skipped first.
        assert_eq!(
            eval(TriggerRule::NoneFailedMinOneSuccess, &[S::Skipped]),
            Skip
        );
        assert_eq!(eval(TriggerRule::NoneFailed, &[S::Skipped]), Run);
        // one_done counts upstream_failed neither as success nor failure.
        assert_eq!(
            eval(TriggerRule::OneDone, &[S::UpstreamFailed, S::Skipped]),
            Skip
        );
    }

    #[test]
    fn counts_from_states() {
        let c = counts(&[
            S::Success,
            S::Failed,
            S::Skipped,
            S::UpstreamFailed,
            S::Removed,
            S::Running,
            S::NoStatus,
        ]);
        assert_eq!(
            c,
            UpstreamCounts {
                success: 1,
                skipped: 1,
                failed: 1,
                upstream_failed: 1,
                removed: 1,
                done: 5,
                total: 7
            }
        );
        assert!(!c.all_done());
        assert_eq!(Skip.decided_state(), Some(S::Skipped));
        assert_eq!(Run.decided_state(), None);
    }

    #[test]
    fn names_round_trip() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.as_str().parse::<TriggerRule>().unwrap(), rule);
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
            assert_eq!(serde_json::from_str::<TriggerRule>(&json).unwrap(), rule);
        }
        assert_eq!(TriggerRule::default(), TriggerRule::AllSuccess);
        let err = "all_sucess".parse::<TriggerRule>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown trigger rule `all_sucess`; expected one of: all_success,")
        );
    }
}
