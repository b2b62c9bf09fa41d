//! How failures read: a failed step's panic, and the runs and TaskInstances found,
//! written in the form of a case file.

use super::case::label;
use super::runner::Runner;
use aileron::metastore::DagRun;
use aileron_model::TenantId;
use std::fmt::Write as _;

impl Runner {
    pub(super) fn fail(&self, step: usize, what: &str, message: impl std::fmt::Display) -> ! {
        panic!(
            "semantic case `{}`, step #{step} ({what}): {message}",
            self.name
        )
    }

    /// Every run of a DAG with its TaskInstances, for messages.
    pub(super) fn describe_dag(&self, dag: &str) -> String {
        let runs = self
            .env
            .app
            .metastore
            .dag_runs(TenantId::DEFAULT, dag)
            .unwrap_or_default();
        let mut out = String::new();
        for run in runs {
            let _ = write!(
                out,
                "  run `{}` (logical date {}):\n{}",
                run.run_id,
                run.logical_date,
                self.describe_run(&run)
            );
        }
        out
    }

    /// Every TaskInstance of a run, in the `tasks = { ... }` form of a case file.
    pub(super) fn describe_run(&self, run: &DagRun) -> String {
        let tis = self
            .env
            .app
            .metastore
            .task_instances(TenantId::DEFAULT, &run.dag_id, &run.run_id)
            .unwrap();
        let mut keyed: Vec<((String, i64), String)> = tis
            .iter()
            .map(|t| {
                (
                    (t.task_id.clone(), t.map_index),
                    format!("{}/{}", t.state, t.try_number),
                )
            })
            .collect();
        keyed.sort();
        let mut out = format!("    found: state = \"{}\"\n", run.state);
        for ((task, m), st) in keyed {
            let l = label(&task, m);
            let quoted = if m >= 0 { format!("\"{l}\"") } else { l };
            let _ = writeln!(out, "      {quoted} = \"{st}\"");
        }
        out
    }
}
