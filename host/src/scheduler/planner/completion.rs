//! When a DagRun is finished, and in which state (SEMANTICS "DagRun state").

use super::ActiveRun;
use aileron_model::DagRunState;
use aileron_model::TaskInstanceState as S;

/// How a run stands after its TaskInstances were evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Something runs, waits or may still run.
    Continue,
    /// Every TaskInstance is finished: the run ends in `state`.
    Finished(DagRunState),
    /// Nothing runs and nothing can (Airflow's deadlock): the TaskInstances with no
    /// state become `upstream_failed` and the run fails.
    Deadlocked,
}

/// How `run` stands. `pending_evaluation` says the run has changes its trigger
/// rules have not seen yet, so a quiet moment is not a deadlock.
pub fn run_outcome(run: &ActiveRun, pending_evaluation: bool) -> RunOutcome {
    let census = run.census();
    if census.any_unfinished() {
        let progressing = census.any(&[
            S::Scheduled,
            S::Queued,
            S::Running,
            S::UpForRetry,
            S::UpForReschedule,
        ]);
        if progressing || pending_evaluation {
            return RunOutcome::Continue;
        }
        // Airflow skips deadlock detection while an unfinished task depends on the
        // past or has a per-task concurrency cap: such a task may be waiting on
        // another run, and the run stays running until it can go on.
        let may_wait_elsewhere = run.tis().values().any(|ti| {
            !ti.state.is_finished()
                && run.spec.task(&ti.task_id).is_some_and(|t| {
                    t.depends_on_past
                        || t.max_active_tis_per_dag.is_some()
                        || t.max_active_tis_per_dagrun.is_some()
                })
        });
        if may_wait_elsewhere {
            return RunOutcome::Continue;
        }
        return RunOutcome::Deadlocked;
    }
    // A run fails when a leaf task failed.
    let leaf_failed = run
        .spec
        .tasks
        .iter()
        .filter(|t| t.downstream.is_empty())
        .any(|t| {
            run.tis_of(&t.task_id)
                .any(|ti| matches!(ti.state, S::Failed | S::UpstreamFailed))
        });
    RunOutcome::Finished(if leaf_failed {
        DagRunState::Failed
    } else {
        DagRunState::Success
    })
}
