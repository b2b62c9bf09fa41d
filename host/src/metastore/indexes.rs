//! Secondary indexes of DagRuns and TaskInstances, kept by [`Metastore::commit`]
//! in the same write transaction as the records themselves, so they can never
//! disagree with them:
//!
//! - `run_order`: each run under its DAG and under its tenant (all DAGs), once in
//!   creation order and once in logical-date order, with its state, type and id in
//!   the value. A page of runs in either order, in either direction, is a range
//!   read of `limit` entries after skipping `offset`; a state filter skips entries
//!   without decoding a record.
//! - `run_counts`: how many runs each DAG (and each tenant) has in each state, so a
//!   page's `total_entries` costs four reads, not a count of history.
//! - `runs_unfinished`: the keys of queued and running runs: what a starting
//!   scheduler must load, found without reading every run ever made.
//! - `ti_counts`: how many TaskInstances each DAG has in each state (summed per
//!   tenant for the `/metrics` gauges and list totals), moved by the commits that
//!   change them.

use super::*;
use aileron_model::DagRunState;
use std::collections::HashMap;

/// Scope part of the index keys that stands for "every DAG of the tenant". A
/// control character, which no DAG id may contain.
pub(super) const ALL_DAGS: &str = "\u{1}";

/// The orders `run_order` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOrder {
    /// Creation order (`seq`), Airflow's `id`.
    Id,
    LogicalDate,
}

impl RunOrder {
    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::Id => "i",
            Self::LogicalDate => "l",
        }
    }
}

/// One page of runs and how many match in all.
#[derive(Debug)]
pub struct RunPage {
    pub runs: Vec<DagRun>,
    pub total: usize,
}

/// A query for one page of runs.
#[derive(Debug, Clone)]
pub struct RunQuery<'a> {
    pub tenant: &'a str,
    /// `None`: every DAG of the tenant.
    pub dag_id: Option<&'a str>,
    pub order: RunOrder,
    pub descending: bool,
    /// `None`: every state.
    pub states: Option<&'a [DagRunState]>,
    pub offset: usize,
    pub limit: usize,
}

/// A logical date as text that sorts like the date: seconds shifted to be
/// positive (jiff's range is ±10,000 years), then nanoseconds.
const DATE_SHIFT: i64 = 400_000_000_000;

pub(super) fn date_part(t: jiff::Timestamp) -> String {
    format!(
        "{:013}{:09}",
        t.as_second() + DATE_SHIFT,
        t.subsec_nanosecond().max(0)
    )
}

fn seq_part(seq: u64) -> String {
    format!("{seq:020}")
}

fn order_key(run: &DagRun, scope: &str, order: RunOrder) -> String {
    let sort = match order {
        RunOrder::Id => seq_part(run.seq),
        // The seq after the date keeps runs of equal dates apart, in creation order.
        RunOrder::LogicalDate => format!("{}\0{}", date_part(run.logical_date), seq_part(run.seq)),
    };
    key(&[&run.tenant, scope, order.tag(), &sort])
}

/// `state \0 type \0 dag id \0 run id`: what a page needs to filter and to find
/// the record.
fn order_value(run: &DagRun) -> String {
    key(&[
        run.state.as_str(),
        run.run_type.as_str(),
        &run.dag_id,
        &run.run_id,
    ])
}

/// An [`order_value`] read back.
pub(super) struct OrderValue<'a> {
    pub state: &'a str,
    pub run_type: &'a str,
    pub dag_id: &'a str,
    pub run_id: &'a str,
}

pub(super) fn parse_order_value(value: &[u8]) -> Option<OrderValue<'_>> {
    let mut parts = std::str::from_utf8(value).ok()?.splitn(4, '\0');
    Some(OrderValue {
        state: parts.next()?,
        run_type: parts.next()?,
        dag_id: parts.next()?,
        run_id: parts.next()?,
    })
}

fn count_key(tenant: &str, scope: &str, state: DagRunState) -> String {
    key(&[tenant, scope, state.as_str()])
}

pub(super) fn parse_state(s: &str) -> Option<DagRunState> {
    DagRunState::ALL.into_iter().find(|x| x.as_str() == s)
}

/// The tables one commit keeps open, by name (redb allows one handle per table).
pub(super) type OpenTables<'t> = HashMap<String, redb::Table<'t, &'static str, &'static [u8]>>;

/// The open handle of `def` in this commit, opened on first use.
pub(super) fn open<'t, 'o>(
    txn: &'t redb::WriteTransaction,
    tables: &'o mut OpenTables<'t>,
    def: Table,
) -> Result<&'o mut redb::Table<'t, &'static str, &'static [u8]>> {
    use std::collections::hash_map::Entry;
    Ok(match tables.entry(def.name().to_owned()) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(txn.open_table(def)?),
    })
}

/// Brings the indexes from `old` (the stored run, if any) to `new` (the run being
/// written, or `None` when it is deleted).
pub(super) fn reindex<'t>(
    txn: &'t redb::WriteTransaction,
    tables: &mut OpenTables<'t>,
    old: Option<&DagRun>,
    new: Option<&DagRun>,
) -> Result<()> {
    if let Some(old) = old {
        let order = open(txn, tables, RUN_ORDER)?;
        for scope in [old.dag_id.as_str(), ALL_DAGS] {
            for o in [RunOrder::Id, RunOrder::LogicalDate] {
                order.remove(order_key(old, scope, o).as_str())?;
            }
        }
        if !old.state.is_finished() {
            open(txn, tables, RUNS_UNFINISHED)?
                .remove(run_key(&old.tenant, &old.dag_id, &old.run_id).as_str())?;
        }
        bump(txn, tables, old, -1)?;
    }
    if let Some(new) = new {
        let value = order_value(new);
        let order = open(txn, tables, RUN_ORDER)?;
        for scope in [new.dag_id.as_str(), ALL_DAGS] {
            for o in [RunOrder::Id, RunOrder::LogicalDate] {
                order.insert(order_key(new, scope, o).as_str(), value.as_bytes())?;
            }
        }
        if !new.state.is_finished() {
            open(txn, tables, RUNS_UNFINISHED)?.insert(
                run_key(&new.tenant, &new.dag_id, &new.run_id).as_str(),
                [].as_slice(),
            )?;
        }
        bump(txn, tables, new, 1)?;
    }
    Ok(())
}

/// Adds `by` to the counts of `run`'s state, for its DAG and its tenant.
fn bump<'t>(
    txn: &'t redb::WriteTransaction,
    tables: &mut OpenTables<'t>,
    run: &DagRun,
    by: i64,
) -> Result<()> {
    let counts = open(txn, tables, RUN_COUNTS)?;
    for scope in [run.dag_id.as_str(), ALL_DAGS] {
        let k = count_key(&run.tenant, scope, run.state);
        let now = counts
            .get(k.as_str())?
            .map_or(0, |v| decode_count(v.value()));
        let next = now.saturating_add_signed(by);
        if next == 0 {
            counts.remove(k.as_str())?;
        } else {
            counts.insert(k.as_str(), next.to_string().as_bytes())?;
        }
    }
    Ok(())
}

fn decode_count(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// TaskInstance count changes of one commit, by (tenant, DAG, state): summed
/// while the batch is applied and written once at its end.
#[derive(Default)]
pub(super) struct TiCountDelta(HashMap<(String, String, aileron_model::TaskInstanceState), i64>);

impl TiCountDelta {
    /// Counts a TaskInstance record going away (`by` -1) or arriving (+1). A
    /// record that does not decode is not counted either way.
    pub(super) fn add(&mut self, key: &str, record: &[u8], by: i64) {
        if let Some(counted) = super::stored_ti::counted_as(key, record) {
            *self.0.entry(counted).or_default() += by;
        }
    }

    pub(super) fn write<'t>(
        self,
        txn: &'t redb::WriteTransaction,
        tables: &mut OpenTables<'t>,
    ) -> Result<()> {
        let counts = open(txn, tables, TI_COUNTS)?;
        for ((tenant, dag_id, state), by) in self.0 {
            if by == 0 {
                continue;
            }
            let k = key(&[&tenant, &dag_id, state.as_str()]);
            let now = counts
                .get(k.as_str())?
                .map_or(0, |v| decode_count(v.value()));
            let next = now.saturating_add_signed(by);
            if next == 0 {
                counts.remove(k.as_str())?;
            } else {
                counts.insert(k.as_str(), next.to_string().as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Builds the indexes of a store that has records but no indexes yet (schema
/// 2 → 3).
pub(super) fn build_all(txn: &redb::WriteTransaction) -> Result<()> {
    let runs: Vec<DagRun> = {
        let t = txn.open_table(DAG_RUNS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push(decode(k.value(), v.value())?);
        }
        out
    };
    let mut tables = OpenTables::new();
    for run in &runs {
        reindex(txn, &mut tables, None, Some(run))?;
    }
    let mut tis = TiCountDelta::default();
    {
        let t = txn.open_table(TASK_INSTANCES)?;
        for item in t.iter()? {
            let (k, v) = item?;
            tis.add(k.value(), v.value(), 1);
        }
    }
    tis.write(txn, &mut tables)
}

impl Metastore {
    /// One page of runs in an indexed order, and how many match in all. Reads the
    /// page's entries and records only: the cost does not grow with history.
    pub fn runs_page(&self, q: &RunQuery<'_>) -> Result<RunPage> {
        let txn = self.db.begin_read()?;
        let scope = q.dag_id.unwrap_or(ALL_DAGS);
        let counts = txn.open_table(RUN_COUNTS)?;
        let mut total = 0u64;
        for state in DagRunState::ALL {
            if q.states.is_some_and(|s| !s.contains(&state)) {
                continue;
            }
            if let Some(v) = counts.get(count_key(q.tenant, scope, state).as_str())? {
                total += decode_count(v.value());
            }
        }
        let order = txn.open_table(RUN_ORDER)?;
        let runs_table = txn.open_table(DAG_RUNS)?;
        let (start, end) = prefix_range(&key(&[q.tenant, scope, q.order.tag()]));
        let range = order.range(start.as_str()..end.as_str())?;
        let entries: Box<dyn Iterator<Item = _>> = if q.descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut skipped = 0;
        let mut runs = Vec::new();
        for item in entries {
            if runs.len() >= q.limit {
                break;
            }
            let (_, v) = item?;
            let Some(OrderValue {
                state,
                dag_id,
                run_id,
                ..
            }) = parse_order_value(v.value())
            else {
                continue;
            };
            if let Some(states) = q.states
                && !parse_state(state).is_some_and(|s| states.contains(&s))
            {
                continue;
            }
            if skipped < q.offset {
                skipped += 1;
                continue;
            }
            let record_key = run_key(q.tenant, dag_id, run_id);
            if let Some(r) = runs_table.get(record_key.as_str())? {
                runs.push(decode(&record_key, r.value())?);
            }
        }
        Ok(RunPage {
            runs,
            total: usize::try_from(total).unwrap_or(usize::MAX),
        })
    }

    /// Runs that are queued or running, of every tenant: what a starting scheduler
    /// loads.
    pub fn unfinished_runs(&self) -> Result<Vec<DagRun>> {
        let txn = self.db.begin_read()?;
        let pending = txn.open_table(RUNS_UNFINISHED)?;
        let runs = txn.open_table(DAG_RUNS)?;
        let mut out = Vec::new();
        for item in pending.iter()? {
            let (k, _) = item?;
            if let Some(v) = runs.get(k.value())? {
                out.push(decode(k.value(), v.value())?);
            }
        }
        Ok(out)
    }
}

/// A run as `run_order` lists it: enough to order, filter and find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEntry {
    pub logical_date: jiff::Timestamp,
    pub seq: u64,
    pub run_id: String,
    pub run_type: String,
    pub state: Option<DagRunState>,
}

/// An entry of the logical-date order: the date and seq from its key, the rest
/// from its value.
fn parse_entry(key: &str, value: &[u8]) -> Option<RunEntry> {
    let mut tail = key.rsplit('\0');
    let seq = tail.next()?.parse().ok()?;
    let date = tail.next()?;
    let secs: i64 = date.get(..13)?.parse().ok()?;
    let nanos: i32 = date.get(13..)?.parse().ok()?;
    let logical_date = jiff::Timestamp::new(secs - DATE_SHIFT, nanos).ok()?;
    let OrderValue {
        state,
        run_type,
        run_id,
        ..
    } = parse_order_value(value)?;
    Some(RunEntry {
        logical_date,
        seq,
        run_id: run_id.to_owned(),
        run_type: run_type.to_owned(),
        state: parse_state(state),
    })
}

impl Metastore {
    /// The runs of one DAG at exactly `date` (normally one), in creation order.
    pub fn runs_at(
        &self,
        tenant: &str,
        dag_id: &str,
        date: jiff::Timestamp,
    ) -> Result<Vec<RunEntry>> {
        let txn = self.db.begin_read()?;
        let order = txn.open_table(RUN_ORDER)?;
        let (start, end) = prefix_range(&key(&[
            tenant,
            dag_id,
            RunOrder::LogicalDate.tag(),
            &date_part(date),
        ]));
        let mut out = Vec::new();
        for item in order.range(start.as_str()..end.as_str())? {
            let (k, v) = item?;
            if let Some(e) = parse_entry(k.value(), v.value()) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The runs of one DAG with a logical date before `before` (all runs when
    /// `None`), latest date first, as long as `keep` wants more: it sees each
    /// entry and returns false to stop.
    pub fn runs_before(
        &self,
        tenant: &str,
        dag_id: &str,
        before: Option<jiff::Timestamp>,
        mut keep: impl FnMut(RunEntry) -> bool,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let order = txn.open_table(RUN_ORDER)?;
        let prefix = key(&[tenant, dag_id, RunOrder::LogicalDate.tag()]);
        let (start, mut end) = prefix_range(&prefix);
        if let Some(d) = before {
            end = format!("{prefix}\0{}", date_part(d));
        }
        for item in order.range(start.as_str()..end.as_str())?.rev() {
            let (k, v) = item?;
            if let Some(e) = parse_entry(k.value(), v.value())
                && !keep(e)
            {
                break;
            }
        }
        Ok(())
    }

    /// One more than the highest run `seq` ever stored (1 for an empty store):
    /// the scheduler's next creation number.
    pub fn next_run_seq(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let order = txn.open_table(RUN_ORDER)?;
        let mut next = 1;
        // Each tenant's all-DAGs creation index ends with its highest seq; tenants
        // are few, so look at the last entry of each.
        let mut from = String::new();
        loop {
            let Some(item) = order.range(from.as_str()..)?.next() else {
                break;
            };
            let (k, _) = item?;
            let k = k.value().to_owned();
            let tenant = k.split('\0').next().unwrap_or_default().to_owned();
            let (s, e) = prefix_range(&key(&[&tenant, ALL_DAGS, RunOrder::Id.tag()]));
            if let Some(last) = order.range(s.as_str()..e.as_str())?.next_back() {
                let (lk, _) = last?;
                if let Some(seq) = lk
                    .value()
                    .rsplit('\0')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    next = next.max(seq + 1);
                }
            }
            from = format!("{tenant}\u{1}");
        }
        Ok(next)
    }
}

impl Metastore {
    /// DagRuns by state over every tenant (the `/metrics` gauge).
    pub fn run_counts(&self) -> Result<HashMap<DagRunState, u64>> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(RUN_COUNTS)?;
        let mut out = HashMap::new();
        for item in counts.iter()? {
            let (k, v) = item?;
            // Only the all-DAGs scope: each run is counted there once.
            let mut parts = k.value().split('\0');
            let (Some(_), Some(ALL_DAGS), Some(state)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Some(state) = parse_state(state) {
                *out.entry(state).or_default() += decode_count(v.value());
            }
        }
        Ok(out)
    }

    /// TaskInstances by state over every tenant (the `/metrics` gauge).
    pub fn ti_counts(&self) -> Result<HashMap<aileron_model::TaskInstanceState, u64>> {
        self.ti_counts_under("")
    }

    /// One tenant's TaskInstances by state.
    pub fn tenant_ti_counts(
        &self,
        tenant: &str,
    ) -> Result<HashMap<aileron_model::TaskInstanceState, u64>> {
        self.ti_counts_under(&format!("{tenant}\0"))
    }

    /// One DAG's TaskInstances by state.
    pub fn dag_ti_counts(
        &self,
        tenant: &str,
        dag_id: &str,
    ) -> Result<HashMap<aileron_model::TaskInstanceState, u64>> {
        self.ti_counts_under(&format!("{}\0", key(&[tenant, dag_id])))
    }

    /// The TaskInstance counts whose keys start with `prefix`, summed by state.
    fn ti_counts_under(
        &self,
        prefix: &str,
    ) -> Result<HashMap<aileron_model::TaskInstanceState, u64>> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(TI_COUNTS)?;
        let mut out = HashMap::new();
        for item in counts.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            let state = k.value().rsplit('\0').next().unwrap_or_default();
            if let Some(state) = aileron_model::TaskInstanceState::ALL
                .into_iter()
                .find(|s| s.as_str() == state)
            {
                *out.entry(state).or_default() += decode_count(v.value());
            }
        }
        Ok(out)
    }

    /// Visits a tenant's runs (of one DAG, or of all with `None`) in creation
    /// order as (DAG id, run id), from the index alone, until `visit` says stop.
    pub fn visit_runs<E: From<MetastoreError>>(
        &self,
        tenant: &str,
        dag_id: Option<&str>,
        mut visit: impl FnMut(&str, &str) -> std::result::Result<bool, E>,
    ) -> std::result::Result<(), E> {
        let txn = self.db.begin_read().map_err(MetastoreError::from)?;
        let order = txn.open_table(RUN_ORDER).map_err(MetastoreError::from)?;
        let (start, end) = prefix_range(&key(&[
            tenant,
            dag_id.unwrap_or(ALL_DAGS),
            RunOrder::Id.tag(),
        ]));
        for item in order
            .range(start.as_str()..end.as_str())
            .map_err(MetastoreError::from)?
        {
            let (_, v) = item.map_err(MetastoreError::from)?;
            let Some(entry) = parse_order_value(v.value()) else {
                continue;
            };
            if !visit(entry.dag_id, entry.run_id)? {
                break;
            }
        }
        Ok(())
    }
}
