//! Backfills (Airflow 3's first-class backfill): runs of one DAG over a range of
//! past logical dates, created up front as `queued` and started by the scheduler
//! within the backfill's own `max_active_runs`, beside the normal schedule. A date
//! that already has a run is never given a second one: depending on
//! `reprocess_behavior` that run is cleared and re-run, or left alone.

use super::*;
use crate::metastore::{BackfillRecord, ReprocessBehavior};
use crate::scheduler::{ClearOptions, run_id_for};

/// Most logical dates one backfill may cover: a guard against a range typed wrong
/// (a minutely DAG over ten years) filling the metastore.
pub const MAX_BACKFILL_RUNS: usize = 10_000;

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub tenant: String,
    pub dag_id: String,
    pub from_date: Timestamp,
    pub to_date: Timestamp,
    pub run_backwards: bool,
    pub dag_run_conf: serde_json::Map<String, serde_json::Value>,
    pub reprocess_behavior: ReprocessBehavior,
    pub max_active_runs: u32,
    pub dry_run: bool,
}

/// What a backfill does with one logical date.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BackfillDate {
    pub logical_date: Timestamp,
    /// `create`, `reprocess` (an existing run is cleared and re-run), or `skip`.
    pub action: String,
    /// The existing run, when there is one.
    pub run_id: Option<String>,
    /// Why a date is skipped: `in flight` (its run is not finished) or `already
    /// exists` (its run is finished and `reprocess_behavior` leaves it).
    pub reason: Option<String>,
}

impl State {
    pub(super) fn load_backfills(&mut self) -> Result<(), SchedulerError> {
        for b in self.metastore.all_backfills()? {
            self.next_backfill_id = self.next_backfill_id.max(b.id + 1);
            if b.completed_at.is_none() {
                self.track_backfill(b);
            }
        }
        Ok(())
    }

    /// Plans a backfill, and unless `dry_run` creates it with its runs.
    pub(super) fn create_backfill(
        &mut self,
        req: BackfillRequest,
    ) -> Result<(BackfillRecord, Vec<BackfillDate>), SchedulerError> {
        let now = self.now();
        let dk = DagKey::new(&req.tenant, &req.dag_id);
        let spec = self
            .dags
            .get(&dk)
            .filter(|d| d.record.is_active)
            .map(|d| d.spec.clone())
            .ok_or_else(|| SchedulerError::DagNotFound(req.dag_id.clone()))?;
        let invalid = |m: String| Err(SchedulerError::Invalid(m));
        if !spec.schedule.is_periodic() {
            return invalid(format!(
                "DAG `{}` has no periodic schedule, so it has no past intervals to backfill",
                req.dag_id
            ));
        }
        if req.from_date > req.to_date {
            return invalid("from_date must not be after to_date".to_owned());
        }
        if req.from_date > now {
            return invalid("from_date is in the future; a backfill covers past dates".to_owned());
        }
        if req.max_active_runs == 0 {
            return invalid("max_active_runs must be at least 1".to_owned());
        }
        if spec.tasks.iter().any(|t| t.depends_on_past) {
            // Airflow's rules: runs that depend on the past must go oldest first,
            // and their earlier runs must be re-run for the order to mean anything.
            if req.run_backwards {
                return invalid(
                    "the DAG has tasks with depends_on_past, so it cannot be backfilled backwards"
                        .to_owned(),
                );
            }
            if req.reprocess_behavior == ReprocessBehavior::None {
                return invalid("the DAG has tasks with depends_on_past: set reprocess_behavior to failed or completed".to_owned());
            }
        }
        spec.resolve_params(&req.dag_run_conf)
            .map_err(|e| SchedulerError::Invalid(format!("invalid conf: {e}")))?;
        if !req.dry_run
            && let Some(b) = self
                .backfills
                .values()
                .find(|b| b.tenant == req.tenant && b.dag_id == req.dag_id)
        {
            return Err(SchedulerError::InvalidState(format!(
                "DAG `{}` already has a backfill in progress (id {}); cancel it or wait for it to finish",
                req.dag_id, b.id
            )));
        }

        // Every interval whose logical date is in [from, to] and that is complete
        // now; the DAG's own start_date does not limit a backfill (as in Airflow).
        let ctx = aileron_model::schedule::ScheduleContext {
            start_date: Some(req.from_date),
            end_date: Some(req.to_date),
            catchup: true,
            ..spec.schedule_context()
        };
        let mut intervals = Vec::new();
        let mut last = None;
        while let Some(i) = spec.schedule.next_dagrun(&ctx, last.as_ref(), now) {
            if i.end > now || i.start > req.to_date {
                break;
            }
            intervals.push(i);
            if intervals.len() > MAX_BACKFILL_RUNS {
                return invalid(format!(
                    "the range covers more than {MAX_BACKFILL_RUNS} runs; split it into smaller backfills"
                ));
            }
            last = Some(i);
        }
        if intervals.is_empty() {
            return invalid(format!(
                "no complete schedule interval of `{}` has a logical date between {} and {}",
                req.dag_id, req.from_date, req.to_date
            ));
        }
        if req.run_backwards {
            intervals.reverse();
        }

        let mut plan = Vec::with_capacity(intervals.len());
        for i in &intervals {
            let existing = self.run_at(&dk, i.start);
            let (action, reason) = match &existing {
                None => ("create", None),
                Some(run_id) => {
                    let state = self.run_state(&RunKey::new(&dk.tenant, &dk.dag_id, run_id))?;
                    match (state, req.reprocess_behavior) {
                        (Some(s), _) if !s.is_finished() => ("skip", Some("in flight")),
                        (Some(DagRunState::Failed), ReprocessBehavior::Failed)
                        | (Some(_), ReprocessBehavior::Completed) => ("reprocess", None),
                        _ => ("skip", Some("already exists")),
                    }
                }
            };
            plan.push(BackfillDate {
                logical_date: i.start,
                action: action.to_owned(),
                run_id: existing,
                reason: reason.map(str::to_owned),
            });
        }

        let mut record = BackfillRecord {
            id: self.next_backfill_id,
            tenant: req.tenant.clone(),
            dag_id: req.dag_id.clone(),
            from_date: req.from_date,
            to_date: req.to_date,
            run_backwards: req.run_backwards,
            dag_run_conf: req.dag_run_conf.clone(),
            reprocess_behavior: req.reprocess_behavior,
            max_active_runs: req.max_active_runs,
            is_paused: false,
            created_at: now,
            completed_at: None,
            run_ids: Vec::new(),
            skipped_dates: Vec::new(),
        };
        if req.dry_run {
            return Ok((record, plan));
        }
        self.next_backfill_id += 1;
        for (entry, interval) in plan.iter().zip(&intervals) {
            match entry.action.as_str() {
                "create" => {
                    let created = self.create_run(
                        &req.tenant,
                        &req.dag_id,
                        RunType::Backfill,
                        Some(run_id_for(RunType::Backfill, interval.start)),
                        Some(interval.start),
                        Some(*interval),
                        req.dag_run_conf.clone(),
                    );
                    match created {
                        Ok(run) => {
                            self.tag_backfill_run(&run.run_id, &record, None);
                            record.run_ids.push(run.run_id);
                        }
                        // A manual run already took the backfill's run id: leave
                        // that date alone rather than give up half-way.
                        Err(e) => {
                            tracing::warn!(dag_id = %req.dag_id, "backfill skips {}: {e}", interval.start);
                            record.skipped_dates.push(entry.logical_date);
                        }
                    }
                }
                "reprocess" => {
                    let Some(run_id) = entry
                        .run_id
                        .clone()
                        .expected("the run to reprocess", &entry.logical_date)
                    else {
                        record.skipped_dates.push(entry.logical_date);
                        continue;
                    };
                    self.clear(&req.tenant, &req.dag_id, &run_id, ClearOptions::default())?;
                    let conf = (!req.dag_run_conf.is_empty()).then(|| req.dag_run_conf.clone());
                    self.tag_backfill_run(&run_id, &record, conf);
                    record.run_ids.push(run_id);
                }
                _ => record.skipped_dates.push(entry.logical_date),
            }
        }
        if record.run_ids.is_empty() {
            record.completed_at = Some(now);
        } else {
            self.track_backfill(record.clone());
        }
        self.batch.put_backfill(&record);
        self.updates.push(Update::Dags);
        Ok((record, plan))
    }

    /// Marks a run as the backfill's: Airflow re-types a reprocessed run too.
    fn tag_backfill_run(
        &mut self,
        run_id: &str,
        b: &BackfillRecord,
        conf: Option<serde_json::Map<String, serde_json::Value>>,
    ) {
        let rk = RunKey::new(&b.tenant, &b.dag_id, run_id);
        if let Some(r) = self.runs.get_mut(&rk) {
            r.run.backfill_id = Some(b.id);
            r.run.run_type = RunType::Backfill;
            if let Some(conf) = conf {
                r.run.conf = conf;
            }
            let run = r.run.clone();
            self.batch.put_run(&run);
        }
    }

    pub(super) fn set_backfill_paused(
        &mut self,
        tenant: &str,
        id: u64,
        paused: bool,
    ) -> Result<BackfillRecord, SchedulerError> {
        let b = self.active_backfill(tenant, id)?;
        b.is_paused = paused;
        let b = b.clone();
        self.batch.put_backfill(&b);
        self.updates.push(Update::Dags);
        Ok(b)
    }

    /// Airflow's cancel: the backfill stops, its queued runs fail, runs already
    /// running finish on their own.
    pub(super) fn cancel_backfill(
        &mut self,
        tenant: &str,
        id: u64,
    ) -> Result<BackfillRecord, SchedulerError> {
        let mut b = self.active_backfill(tenant, id)?.clone();
        let now = self.now();
        for run_id in &b.run_ids {
            let rk = RunKey::new(&b.tenant, &b.dag_id, run_id);
            if self
                .runs
                .get(&rk)
                .is_some_and(|r| r.run.state == DagRunState::Queued)
            {
                // Airflow fails the DagRun only; its TaskInstances keep no state.
                self.end_run(&rk, DagRunState::Failed, now);
                self.retire_run(&rk);
                self.dirty_runs.remove(&rk);
            }
        }
        self.untrack_backfill(id);
        b.is_paused = true;
        b.completed_at = Some(now);
        self.batch.put_backfill(&b);
        self.updates.push(Update::Dags);
        Ok(b)
    }

    fn active_backfill(
        &mut self,
        tenant: &str,
        id: u64,
    ) -> Result<&mut BackfillRecord, SchedulerError> {
        match self.backfills.get_mut(&id) {
            Some(b) if b.tenant == tenant => Ok(b),
            _ => match self.metastore.backfill(tenant, id)? {
                Some(_) => Err(SchedulerError::InvalidState(format!(
                    "backfill {id} is already complete"
                ))),
                None => Err(SchedulerError::BackfillNotFound(id)),
            },
        }
    }

    /// Backfills whose runs have all finished are complete.
    pub(super) fn complete_backfills(&mut self, now: Timestamp) {
        if self.backfills.is_empty() {
            return;
        }
        let going: HashSet<u64> = self
            .runs
            .values()
            .filter_map(|r| r.run.backfill_id)
            .collect();
        let done: Vec<u64> = self
            .backfills
            .keys()
            .filter(|id| !going.contains(id))
            .copied()
            .collect();
        for id in done {
            let Some(mut b) = self.untrack_backfill(id).expected("the backfill", &id) else {
                continue;
            };
            b.completed_at = Some(now);
            self.batch.put_backfill(&b);
            self.updates.push(Update::Dags);
        }
    }

    /// The first run of a backfill may start whatever its previous run did
    /// (Airflow passes `depends_on_past` for it).
    pub(super) fn is_first_of_backfill(&self, rk: &RunKey) -> bool {
        let Some(run) = self.runs.get(rk) else {
            return false;
        };
        run.run
            .backfill_id
            .and_then(|id| self.backfills.get(&id))
            .is_some_and(|b| b.run_ids.first() == Some(&rk.run_id))
    }

    /// Where a queued backfill run stands in its backfill's order, for starting
    /// runs: `None` if it is not a backfill run (or its backfill is over).
    pub(super) fn backfill_slot(&self, run: &DagRun) -> Option<(u64, bool, u32, usize)> {
        let id = run.backfill_id?;
        let b = self.backfills.get(&id)?;
        let ordinal = *self.backfill_order.get(&id)?.get(&run.run_id)?;
        Some((b.id, b.is_paused, b.max_active_runs, ordinal))
    }

    /// Keeps a backfill in progress in memory, with each run's place in its order
    /// (looked up for every queued run on every turn, so not a list scan).
    fn track_backfill(&mut self, b: BackfillRecord) {
        let order = b
            .run_ids
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), i))
            .collect();
        self.backfill_order.insert(b.id, order);
        self.backfills.insert(b.id, b);
    }

    pub(super) fn untrack_backfill(&mut self, id: u64) -> Option<BackfillRecord> {
        self.backfill_order.remove(&id);
        self.backfills.remove(&id)
    }
}
