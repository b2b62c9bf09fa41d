//! Time-driven decisions: runs past their `dagrun_timeout`, and the next moment a
//! waiting TaskInstance or run needs the scheduler.

use super::ActiveRun;
use aileron_model::{DagRunState, RunKey};
use jiff::{SignedDuration, Timestamp};

/// When a run's `dagrun_timeout` runs out (none before it starts).
pub fn run_deadline(r: &ActiveRun) -> Option<Timestamp> {
    let timeout = SignedDuration::try_from(r.spec.dagrun_timeout?).ok()?;
    r.run.start_date?.checked_add(timeout).ok()
}

/// The running runs of unpaused DAGs whose `dagrun_timeout` has run out at `now`.
pub fn timed_out_runs<'a>(
    runs: impl IntoIterator<Item = (&'a RunKey, &'a ActiveRun)>,
    is_paused: impl Fn(&RunKey) -> bool,
    now: Timestamp,
) -> Vec<RunKey> {
    runs.into_iter()
        .filter(|(rk, r)| {
            r.run.state == DagRunState::Running
                && !is_paused(rk)
                && run_deadline(r).is_some_and(|d| d <= now)
        })
        .map(|(rk, _)| rk.clone())
        .collect()
}

/// The earliest moment after `after` at which something in `run` becomes due: a
/// retry or reschedule delay ends, or the run times out. `None` when nothing waits
/// on time (or the run is not running).
pub fn next_run_timer(run: &ActiveRun, after: Timestamp) -> Option<Timestamp> {
    if run.run.state != DagRunState::Running {
        return None;
    }
    run.census()
        .next_delay_after(after)
        .into_iter()
        .chain(run_deadline(run).filter(|t| *t > after))
        .min()
}
