//! Assembling a DAG from its raw tables: DAG-level keys, every task, and the
//! tasks in dependency order (a cycle is an error naming it).

use super::*;

impl Parser<'_> {
    pub(super) fn build(
        &self,
        tenant: &str,
        raw: RawDag,
        catalog: &dyn OperatorCatalog,
    ) -> Result<DagSpec> {
        let dag_id = match &raw.id {
            Some(id) => {
                validate_id("dag id", id.get_ref()).map_err(|m| self.at(id, m))?;
                id.get_ref().clone()
            }
            None => {
                let stem = file_stem(self.fileloc);
                validate_id("dag id", stem).map_err(|m| {
                    self.error(
                        None,
                        format!("{m} (it comes from the file name; set `id = \"…\"`)"),
                    )
                })?;
                stem.to_owned()
            }
        };

        let schedule = match &raw.schedule {
            Some(s) => Schedule::parse(Some(s.get_ref())).map_err(|e| self.at(s, e.to_string()))?,
            None => Schedule::Manual,
        };

        let timezone = match &raw.timezone {
            Some(tz) => {
                TimeZone::get(tz.get_ref()).map_err(|_| {
                    self.at(tz, format!("unknown time zone `{}`; expected an IANA name such as \"UTC\" or \"Europe/Berlin\"", tz.get_ref()))
                })?;
                tz.get_ref().clone()
            }
            None => "UTC".to_owned(),
        };
        let tz = TimeZone::get(&timezone).unwrap_or(TimeZone::UTC);
        let start_date = raw
            .start_date
            .as_ref()
            .map(|d| self.date("start_date", d, &tz))
            .transpose()?;
        let end_date = raw
            .end_date
            .as_ref()
            .map(|d| self.date("end_date", d, &tz))
            .transpose()?;
        if let (Some(start), Some(end), Some(end_raw)) = (start_date, end_date, &raw.end_date)
            && end < start
        {
            return Err(self.at(
                end_raw,
                format!("end_date {end} is before start_date {start}"),
            ));
        }
        let catchup = raw.catchup.as_ref().is_some_and(|c| *c.get_ref());
        if let Some(c) = &raw.catchup
            && catchup
            && start_date.is_none()
            && schedule.is_periodic()
        {
            return Err(self.at(c, "catchup = true needs a start_date to catch up from"));
        }

        let positive = |field: &Option<Spanned<u32>>, name: &str, default: u32| -> Result<u32> {
            match field {
                Some(v) if *v.get_ref() == 0 => {
                    Err(self.at(v, format!("{name} must be at least 1")))
                }
                Some(v) => Ok(*v.get_ref()),
                None => Ok(default),
            }
        };
        let ceilings = catalog.ceilings();
        let max_active_runs = match (&raw.max_active_runs, ceilings.max_active_runs) {
            (Some(v), Some(ceiling)) if *v.get_ref() > ceiling => {
                return Err(self.at(
                    v,
                    format!(
                        "max_active_runs of {} is above the tenant's ceiling of {ceiling} (set by \
                         a platform admin)",
                        v.get_ref()
                    ),
                ));
            }
            // Airflow's default of 16, or the tenant's ceiling when lower.
            (None, ceiling) => ceiling.map_or(16, |c| c.min(16)),
            (field, _) => positive(field, "max_active_runs", 16)?,
        };
        let max_active_tasks = positive(&raw.max_active_tasks, "max_active_tasks", 16)?;
        let dagrun_timeout = raw
            .dagrun_timeout
            .as_ref()
            .map(|d| self.positive_duration("dagrun_timeout", d))
            .transpose()?;

        let (params, param_specs) = match &raw.params {
            Some(p) => match toml_table_to_json(p.get_ref(), "params") {
                Ok(map) => self
                    .param_specs(map, schedule.is_periodic() || schedule == Schedule::Once)
                    .map_err(|m| self.at(p, m))?,
                Err(m) => return Err(self.at(p, m)),
            },
            None => (Map::new(), BTreeMap::new()),
        };
        let mut callbacks = Callbacks::default();
        if let Some(v) = &raw.on_success {
            callbacks.on_success = self.callbacks("on_success", v, catalog)?;
        }
        if let Some(v) = &raw.on_failure {
            callbacks.on_failure = self.callbacks("on_failure", v, catalog)?;
        }

        let defaults = match &raw.defaults {
            Some(d) => self.options(d.options(), catalog)?,
            None => TaskOptions::default(),
        };

        let Some(raw_tasks) = &raw.tasks else {
            return Err(self.error(
                None,
                "the DAG has no tasks: add at least one [tasks.<task_id>] table",
            ));
        };
        if raw_tasks.get_ref().is_empty() {
            return Err(self.at(
                raw_tasks,
                "the DAG has no tasks: add at least one [tasks.<task_id>] table",
            ));
        }
        // File order: the tasks table is sorted by name, the spans say where each was.
        let mut ordered: Vec<(&Spanned<String>, &Spanned<RawTask>)> =
            raw_tasks.get_ref().iter().collect();
        ordered.sort_by_key(|(name, _)| name.span().start);

        let mut tasks = Vec::with_capacity(ordered.len());
        for (name, task) in &ordered {
            tasks.push(self.task(name, task, &defaults, catalog)?);
        }
        let tasks = self.order_tasks(tasks, &ordered)?;
        let version = version_of(self.source, &ceilings, &tasks, &callbacks);

        Ok(DagSpec {
            dag_id,
            tenant: tenant.to_owned(),
            fileloc: self.fileloc.to_owned(),
            description: raw.description,
            doc: raw.doc,
            schedule_str: raw.schedule.map(Spanned::into_inner),
            schedule,
            start_date,
            end_date,
            timezone,
            catchup,
            max_active_runs,
            max_active_tasks,
            dagrun_timeout,
            max_consecutive_failed_dag_runs: raw.max_consecutive_failed_dag_runs.filter(|n| *n > 0),
            tags: raw.tags.unwrap_or_default(),
            owner: raw.owner.unwrap_or_else(|| "aileron".to_owned()),
            params,
            param_specs,
            callbacks,
            tasks,
            version,
            source: self.source.to_owned(),
            task_index: TaskIndex::default(),
        })
    }

    /// Checks the graph and returns the tasks in a stable topological order with
    /// `downstream` filled in.
    pub(super) fn order_tasks(
        &self,
        tasks: Vec<TaskSpec>,
        raw: &[(&Spanned<String>, &Spanned<RawTask>)],
    ) -> Result<Vec<TaskSpec>> {
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.task_id.as_str(), i))
            .collect();
        // Unknown upstreams, pointing at the entry in the `upstream` list.
        for (i, task) in tasks.iter().enumerate() {
            for up in &task.upstream {
                if !index.contains_key(up.as_str()) {
                    let span = raw[i]
                        .1
                        .get_ref()
                        .upstream
                        .as_ref()
                        .and_then(|l| l.get_ref().iter().find(|u| u.get_ref() == up))
                        .map(Spanned::span);
                    let mut msg = format!("task `{}`: unknown upstream task `{up}`", task.task_id);
                    if let Some(close) = closest(up, index.keys().copied()) {
                        msg.push_str(&format!("; did you mean `{close}`?"));
                    }
                    return Err(self.error(span, msg));
                }
            }
        }

        // Kahn's algorithm; the ready set is ordered by file position.
        let n = tasks.len();
        let mut pending: Vec<usize> = tasks.iter().map(|t| t.upstream.len()).collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, task) in tasks.iter().enumerate() {
            for up in &task.upstream {
                children[index[up.as_str()]].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &c in &children[i] {
                pending[c] -= 1;
                if pending[c] == 0 {
                    ready.insert(c);
                }
            }
        }
        if order.len() < n {
            let cycle = find_cycle(&tasks, &index, &pending);
            let first = cycle[0];
            let path: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|&i| tasks[i].task_id.as_str())
                .collect();
            return Err(self.at(
                raw[first].1,
                format!("cycle detected: {}", path.join(" -> ")),
            ));
        }

        let position: HashMap<usize, usize> =
            order.iter().enumerate().map(|(pos, &i)| (i, pos)).collect();
        let mut downstream: Vec<Vec<usize>> = children;
        for list in &mut downstream {
            list.sort_by_key(|c| position[c]);
        }
        let mut slots: Vec<Option<TaskSpec>> = tasks.into_iter().map(Some).collect();
        let ids: Vec<String> = slots
            .iter()
            .map(|t| t.as_ref().map(|t| t.task_id.clone()).unwrap_or_default())
            .collect();
        Ok(order
            .into_iter()
            .filter_map(|i| {
                let mut task = slots[i].take()?;
                task.downstream = downstream[i].iter().map(|&c| ids[c].clone()).collect();
                Some(task)
            })
            .collect())
    }
}

/// A cycle among the tasks still `pending` after the topological sort, as indexes in
/// dependency order (each is upstream of the next, the last upstream of the first).
fn find_cycle(tasks: &[TaskSpec], index: &HashMap<&str, usize>, pending: &[usize]) -> Vec<usize> {
    // Every unsorted task has an unsorted upstream, so walking upstream edges from one
    // of them must revisit a task: that loop is a cycle.
    let start = (0..tasks.len()).find(|&i| pending[i] > 0).unwrap_or(0);
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut current = start;
    loop {
        if let Some(&pos) = seen.get(&current) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            // The walk went upstream; report it downstream-wards, starting at the task
            // that comes first in the file.
            cycle.reverse();
            let min_pos = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(p, _)| p);
            cycle.rotate_left(min_pos);
            return cycle;
        }
        seen.insert(current, path.len());
        path.push(current);
        let next = tasks[current]
            .upstream
            .iter()
            .map(|u| index[u.as_str()])
            .find(|&u| pending[u] > 0);
        match next {
            Some(n) => current = n,
            None => return path,
        }
    }
}

// ---------------------------------------------------------------------------------
// Helpers

/// A DAG version: the file's text, the tenant's ceilings it was read under,
/// and the component every task and callback resolved to. A new build of an
/// operator a DAG names without pinning it (or a rebuild replacing its
/// version) makes a new version, so runs keep the build they started with.
fn version_of(
    source: &str,
    ceilings: &Ceilings,
    tasks: &[TaskSpec],
    callbacks: &Callbacks,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update(ceilings.fingerprint().as_bytes());
    hasher.update(b"\n#components");
    for digest in component_digests(tasks, callbacks) {
        hasher.update(b" ");
        hasher.update(digest.as_bytes());
    }
    hex::encode(hasher.finalize())
}
