//! Running the steps of a case (`do = "trigger"`, `"clear"`, `"advance"`, ...).

use super::case::{
    PoolSetup, Step, label, parse_label, run_state, sel, sorted_labels, ti_key, ti_state, ts,
};
use super::runner::{POLL, Runner, WAIT, make_pool};
use aileron::metastore::TaskInstance;
use aileron::scheduler::{BackfillRequest, ClearOptions};
use aileron_model::TenantId;
use aileron_model::clock::Clock;
use jiff::{SignedDuration, Timestamp};

impl Runner {
    /// Fails the step unless `got` is exactly the TaskInstances `want` lists (when
    /// the case lists any).
    fn check_listed(
        &self,
        step: usize,
        what: &str,
        verb: &str,
        got: &[TaskInstance],
        want: &Option<Vec<String>>,
    ) {
        let Some(want) = want else { return };
        let got = sorted_labels(got.iter().map(|t| label(&t.task_id, t.map_index)));
        if got != sorted_labels(want.iter().cloned()) {
            self.fail(step, what, format!("{verb} {got:?}, want {want:?}"));
        }
    }

    pub(super) async fn run_step(&mut self, n: usize, step: &Step) {
        let what = step.name();
        let s = self.env.app.scheduler.clone();
        match step {
            Step::Trigger {
                dag,
                run_id,
                logical_date,
                conf,
                wait,
                expect_error,
            } => {
                let result = s
                    .trigger(
                        TenantId::DEFAULT,
                        dag,
                        run_id.clone(),
                        logical_date.as_deref().map(ts),
                        conf.clone(),
                    )
                    .await;
                if let Some(want) = expect_error {
                    match result {
                        Ok(run) => self.fail(
                            n,
                            what,
                            format!("created run `{}`, want an error with {want:?}", run.run_id),
                        ),
                        Err(e) if !e.to_string().contains(want.as_str()) => {
                            self.fail(n, what, format!("error `{e}` does not contain {want:?}"))
                        }
                        Err(_) => return,
                    }
                }
                let run = result.unwrap_or_else(|e| self.fail(n, what, e));
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (trigger)"))
                        .await;
                }
            }
            Step::Wait {
                dag,
                run_id,
                logical_date,
                nth,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                self.wait_run(dag, &run.run_id, &format!("step #{n} (wait)"))
                    .await;
            }
            Step::WaitTask {
                dag,
                run_id,
                logical_date,
                nth,
                task,
                state,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let (task_id, map_index) = ti_key(task);
                let want = ti_state(state);
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    self.drain_events();
                    let ti = self
                        .env
                        .app
                        .metastore
                        .task_instance(TenantId::DEFAULT, dag, &run.run_id, &task_id, map_index)
                        .unwrap();
                    if ti.as_ref().is_some_and(|t| t.state == want) {
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        let now = ti.map_or("missing".to_owned(), |t| t.state.to_string());
                        self.fail(n, what, format!("{task} is still {now}, not {want}"));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Step::Settle {} => self.settle(&format!("step #{n} (settle)")).await,
            Step::Advance { by, to, settle } => {
                let now = self.env.clock.now();
                let target = match (by, to) {
                    (Some(by), None) => {
                        let d = aileron_model::units::parse_duration(by)
                            .unwrap_or_else(|e| self.fail(n, what, e));
                        now + SignedDuration::try_from(d).unwrap()
                    }
                    (None, Some(to)) => ts(to),
                    _ => self.fail(n, what, "give exactly one of `by` and `to`"),
                };
                if target < now {
                    self.fail(n, what, format!("{target} is before the clock ({now})"));
                }
                self.env.clock.set(target);
                s.sync().await.unwrap();
                if *settle {
                    self.settle(&format!("step #{n} (advance)")).await;
                }
            }
            Step::Clear {
                dag,
                run_id,
                logical_date,
                nth,
                tasks,
                downstream,
                upstream,
                only_failed,
                cleared,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let opts = ClearOptions {
                    task_ids: tasks.clone(),
                    downstream: *downstream,
                    upstream: *upstream,
                    only_failed: *only_failed,
                    dry_run: false,
                };
                let got = s
                    .clear(TenantId::DEFAULT, dag, &run.run_id, opts)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.check_listed(n, what, "cleared", &got, cleared);
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (clear)"))
                        .await;
                }
            }
            Step::MarkTask {
                dag,
                run_id,
                logical_date,
                nth,
                task,
                state,
                downstream,
                upstream,
                changed,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                let (task_id, map_index) = parse_label(task);
                let got = s
                    .set_task_state(
                        TenantId::DEFAULT,
                        dag,
                        &run.run_id,
                        &task_id,
                        map_index,
                        ti_state(state),
                        *downstream,
                        *upstream,
                    )
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.check_listed(n, what, "changed", &got, changed);
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (mark_task)"))
                        .await;
                }
            }
            Step::MarkRun {
                dag,
                run_id,
                logical_date,
                nth,
                state,
                wait,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                s.set_run_state(TenantId::DEFAULT, dag, &run.run_id, run_state(state))
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                if *wait {
                    self.wait_run(dag, &run.run_id, &format!("step #{n} (mark_run)"))
                        .await;
                }
            }
            Step::Pause { dag } => {
                s.set_paused(TenantId::DEFAULT, dag, true)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
            }
            Step::Unpause { dag, settle } => {
                s.set_paused(TenantId::DEFAULT, dag, false)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                s.sync().await.unwrap();
                if *settle {
                    self.settle(&format!("step #{n} (unpause)")).await;
                }
            }
            Step::SetVariable { key, value } => {
                self.env
                    .app
                    .metastore
                    .set_variable(TenantId::DEFAULT, key, value)
                    .unwrap();
            }
            Step::DeleteRun {
                dag,
                run_id,
                logical_date,
                nth,
            } => {
                let run = self.step_run(n, what, &sel(dag, run_id, logical_date, *nth));
                s.delete_run(TenantId::DEFAULT, dag, &run.run_id)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
            }
            Step::Expect(e) => {
                if e.callbacks.is_some() {
                    self.wait_callbacks(&format!("step #{n} (expect)")).await;
                }
                self.sync_events().await;
                let (_, problems) = self.check(e);
                if !problems.is_empty() {
                    self.fail(n, what, format!("\n{problems}"));
                }
            }
            Step::ExpectRuns { dag, logical_dates } => {
                let got: Vec<Timestamp> = self
                    .env
                    .app
                    .metastore
                    .dag_runs(TenantId::DEFAULT, dag)
                    .unwrap()
                    .iter()
                    .map(|r| r.logical_date)
                    .collect();
                let want: Vec<Timestamp> = logical_dates.iter().map(|d| ts(d)).collect();
                if got != want {
                    self.fail(
                        n,
                        what,
                        format!("runs of `{dag}` have logical dates {got:?}, want {want:?}"),
                    );
                }
            }
            Step::Backfill {
                dag,
                from,
                to,
                reprocess,
                max_active_runs,
                run_backwards,
                conf,
                actions,
                wait,
            } => {
                let request = BackfillRequest {
                    tenant: TenantId::DEFAULT.to_owned(),
                    dag_id: dag.clone(),
                    from_date: ts(from),
                    to_date: ts(to),
                    run_backwards: *run_backwards,
                    dag_run_conf: conf.clone(),
                    reprocess_behavior: *reprocess,
                    max_active_runs: *max_active_runs,
                    dry_run: false,
                };
                let (record, plan) = s
                    .create_backfill(request)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                self.backfills.insert(dag.clone(), record.id);
                if let Some(want) = actions {
                    let got: Vec<&str> = plan.iter().map(|d| d.action.as_str()).collect();
                    if got != *want {
                        let dates: Vec<String> =
                            plan.iter().map(|d| d.logical_date.to_string()).collect();
                        self.fail(
                            n,
                            what,
                            format!("planned {got:?} for {dates:?}, want {want:?}"),
                        );
                    }
                }
                s.sync().await.unwrap();
                if *wait {
                    self.settle(&format!("step #{n} (backfill)")).await;
                }
            }
            Step::CancelBackfill { dag } => {
                let Some(id) = self.backfills.get(dag).copied() else {
                    self.fail(n, what, format!("no backfill of `{dag}` was created"))
                };
                s.cancel_backfill(TenantId::DEFAULT, id)
                    .await
                    .unwrap_or_else(|e| self.fail(n, what, e));
                s.sync().await.unwrap();
            }
            Step::PutDag {
                dag,
                file,
                source,
                version,
            } => {
                let file = file.clone().unwrap_or_else(|| format!("{dag}.toml"));
                self.env.put_dag(&file, source).await;
                let errors: Vec<String> = self
                    .env
                    .import_errors()
                    .into_iter()
                    .filter(|e| e.starts_with(&format!("{file}:")))
                    .collect();
                if !errors.is_empty() {
                    self.fail(n, what, format!("{file} does not import: {errors:?}"));
                }
                if let Some(label) = version {
                    self.label_version(&file, label)
                        .unwrap_or_else(|e| self.fail(n, what, e));
                }
            }
            Step::Pool { name, slots } => {
                let pool = PoolSetup {
                    name: name.clone(),
                    slots: *slots,
                    description: None,
                };
                make_pool(&self.env, &pool).await;
                s.sync().await.unwrap();
            }
            Step::ExpectDag {
                dag,
                paused,
                max_running_runs,
                max_active,
                sequence,
            } => {
                self.sync_events().await;
                let problems =
                    self.check_dag(dag, *paused, *max_running_runs, max_active, sequence);
                if !problems.is_empty() {
                    self.fail(n, what, format!("\n{problems}"));
                }
            }
        }
    }
}
