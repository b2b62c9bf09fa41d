//! DAG-folder parse results: DAGs and their versions recorded, import errors kept or
//! cleared, and DAGs whose files are gone deactivated.

use super::{DagEntry, State};
use crate::dag_processor::FileResult;
use crate::metastore::{
    DAG_VERSIONS, DagRecord, DagVersionInfo, IMPORT_ERRORS, ImportErrorRecord, key,
};
use crate::scheduler::Update;
use aileron_model::DagKey;
use aileron_model::dag::DagSpec;
use std::collections::HashSet;
use std::sync::Arc;

impl State {
    /// Gives content `hash` of DAG `dk` the DAG's next version number, unless it
    /// has one (a file put back as it was keeps its number).
    fn number_version(&mut self, dk: &DagKey, hash: &str, now: jiff::Timestamp) {
        let known = self
            .metastore
            .version_info(&dk.tenant, &dk.dag_id, hash)
            .unwrap_or_else(|e| {
                tracing::error!(dag_id = %dk.dag_id, "reading a version number: {e}");
                None
            });
        if known.is_some() {
            return;
        }
        let last = match self.version_numbers.get(dk) {
            Some(n) => *n,
            None => self
                .metastore
                .last_version_number(&dk.tenant, &dk.dag_id)
                .unwrap_or_else(|e| {
                    tracing::error!(dag_id = %dk.dag_id, "reading the version numbers: {e}");
                    0
                }),
        };
        let info = DagVersionInfo {
            number: last + 1,
            hash: hash.to_owned(),
            created_at: now,
        };
        self.batch.put_version_info(&dk.tenant, &dk.dag_id, &info);
        self.version_numbers.insert(dk.clone(), info.number);
    }

    /// Applies DAG-folder parse results.
    pub(super) fn ingest(&mut self, files: Vec<(String, Option<FileResult>)>, full: bool) {
        let now = self.now();
        let seen: HashSet<String> = files.iter().map(|(f, _)| f.clone()).collect();
        for (fileloc, result) in files {
            let tenant = crate::dag_processor::DagFolder::tenant_of(&fileloc).to_owned();
            let err_key = (tenant.clone(), fileloc.clone());
            match result {
                Some(FileResult::Dag(spec)) => {
                    if self.import_errors.remove(&err_key) {
                        self.batch.delete(IMPORT_ERRORS, key(&[&tenant, &fileloc]));
                    }
                    let spec: Arc<DagSpec> = Arc::new(*spec);
                    let dk = DagKey::new(&spec.tenant, &spec.dag_id);
                    let vk = (
                        spec.tenant.clone(),
                        spec.dag_id.clone(),
                        spec.version.clone(),
                    );
                    if !self.versions.contains_key(&vk) {
                        self.batch
                            .put(DAG_VERSIONS, key(&[&vk.0, &vk.1, &vk.2]), spec.as_ref());
                        self.number_version(&dk, &spec.version, now);
                        self.versions.insert(vk, spec.clone());
                    }
                    // A file whose DAG id changed leaves its old DAG behind: deactivate it.
                    self.deactivate_file(&fileloc, Some(&dk));
                    let paused = self.config.paused_at_creation;
                    let entry = self.dags.entry(dk).or_insert_with(|| DagEntry {
                        record: DagRecord {
                            tenant: spec.tenant.clone(),
                            dag_id: spec.dag_id.clone(),
                            fileloc: fileloc.clone(),
                            version: spec.version.clone(),
                            is_paused: paused,
                            is_active: true,
                            last_scheduled_interval: None,
                            last_parsed: now,
                            tags: spec.tags.clone(),
                        },
                        spec: spec.clone(),
                        next_due: None,
                    });
                    entry.record.fileloc = fileloc.clone();
                    entry.record.version = spec.version.clone();
                    entry.record.tags = spec.tags.clone();
                    entry.record.is_active = true;
                    entry.record.last_parsed = now;
                    entry.spec = spec;
                    entry.next_due = None;
                    self.batch.put_dag(&entry.record);
                }
                Some(FileResult::Error(e)) => {
                    let record = ImportErrorRecord {
                        tenant: tenant.clone(),
                        filename: fileloc.clone(),
                        line: e.line,
                        column: e.column,
                        message: e.message.clone(),
                        timestamp: now,
                    };
                    self.batch
                        .put(IMPORT_ERRORS, key(&[&tenant, &fileloc]), &record);
                    self.import_errors.insert(err_key);
                }
                None => {
                    if self.import_errors.remove(&err_key) {
                        self.batch.delete(IMPORT_ERRORS, key(&[&tenant, &fileloc]));
                    }
                    self.deactivate_file(&fileloc, None);
                }
            }
        }
        if full {
            let gone: Vec<String> = self
                .dags
                .values()
                .filter(|d| d.record.is_active && !seen.contains(&d.record.fileloc))
                .map(|d| d.record.fileloc.clone())
                .collect();
            for f in gone {
                self.deactivate_file(&f, None);
            }
            let stale: Vec<_> = self
                .import_errors
                .iter()
                .filter(|(_, f)| !seen.contains(f))
                .cloned()
                .collect();
            for k in stale {
                self.import_errors.remove(&k);
                self.batch.delete(IMPORT_ERRORS, key(&[&k.0, &k.1]));
            }
        }
        self.updates.push(Update::Dags);
    }

    fn deactivate_file(&mut self, fileloc: &str, keep: Option<&DagKey>) {
        for (k, d) in self.dags.iter_mut() {
            if d.record.fileloc == fileloc && d.record.is_active && Some(k) != keep {
                d.record.is_active = false;
                self.batch.put_dag(&d.record);
            }
        }
    }
}
