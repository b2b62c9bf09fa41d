//! Each run's TaskInstances counted by state, with the delays those waiting to be
//! retried or rescheduled wait on, kept as they change.
//!
//! Whether a run is finished, whether it has TaskInstances its trigger rules must
//! look at, and when it next needs the scheduler were answered by walking every
//! TaskInstance of the run, after every change to it and before every wait. A
//! run of 10,000 tasks made each of those turns cost 10,000 steps, however
//! little had changed. [`ActiveRun`]'s changing methods keep this census
//! instead, so each answer costs a lookup.
//!
//! [`ActiveRun`]: super::ActiveRun

use crate::metastore::TaskInstance;
use aileron_model::TaskInstanceState as S;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::ops::Bound;

/// What the census counts of one TaskInstance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    state: S,
    /// When it may be tried again, if it waits on a delay.
    delay: Option<Timestamp>,
}

impl Tally {
    pub(super) fn of(ti: &TaskInstance) -> Self {
        let waits = matches!(ti.state, S::UpForRetry | S::UpForReschedule);
        Tally {
            state: ti.state,
            delay: ti.next_try_at.filter(|_| waits),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// TaskInstances by state, indexed by the state's place in `S::ALL`.
    by_state: [usize; S::ALL.len()],
    /// The delays of TaskInstances waiting to be retried or rescheduled, each
    /// with how many wait until that moment.
    delays: BTreeMap<Timestamp, usize>,
}

impl Census {
    pub(super) fn of<'a>(tis: impl IntoIterator<Item = &'a TaskInstance>) -> Self {
        let mut census = Census::default();
        for ti in tis {
            census.add(Tally::of(ti));
        }
        census
    }

    pub(super) fn add(&mut self, t: Tally) {
        self.by_state[t.state as usize] += 1;
        if let Some(d) = t.delay {
            *self.delays.entry(d).or_default() += 1;
        }
    }

    pub(super) fn remove(&mut self, t: Tally) {
        let n = &mut self.by_state[t.state as usize];
        *n = n.saturating_sub(1);
        if let Some(d) = t.delay
            && let Some(n) = self.delays.get_mut(&d)
        {
            *n -= 1;
            if *n == 0 {
                self.delays.remove(&d);
            }
        }
    }

    /// How many TaskInstances are in `state`.
    pub fn count(&self, state: S) -> usize {
        self.by_state[state as usize]
    }

    /// Whether any TaskInstance is in one of `states`.
    pub fn any(&self, states: &[S]) -> bool {
        states.iter().any(|s| self.count(*s) > 0)
    }

    /// Whether any TaskInstance is not finished.
    pub fn any_unfinished(&self) -> bool {
        S::ALL
            .iter()
            .any(|s| !s.is_finished() && self.count(*s) > 0)
    }

    /// The earliest delay after `after` a TaskInstance waits on.
    pub fn next_delay_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.delays
            .range((Bound::Excluded(after), Bound::Unbounded))
            .next()
            .map(|(t, _)| *t)
    }
}
