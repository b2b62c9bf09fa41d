//! The layout of the metastore file: its tables, the schema version and the
//! migration steps from older versions.

use super::MetastoreError;
use redb::TableDefinition;

/// Version of the layout below. Bump it and add a step to [`MIGRATIONS`] whenever a
/// table or a record changes in a way old data cannot be read as.
pub const SCHEMA_VERSION: u32 = 7;

/// Migration steps: `MIGRATIONS[i]` turns a version `i + 1` store into version `i + 2`.
pub(super) type Migration = fn(&redb::WriteTransaction) -> Result<(), MetastoreError>;
pub(super) const MIGRATIONS: &[Migration] = &[
    // 1 → 2: TaskInstances and tries gain `attempt` (read as 0 when absent) and
    // `meta.next_attempt` appears with the first dispatch; nothing to rewrite.
    |_| Ok(()),
    // 2 → 3: the indexes appear (`run_order`, `run_counts`, `runs_unfinished`,
    // `ti_counts`); built once from the stored records.
    super::indexes::build_all,
    // 3 → 4: DAG records carry their current spec's tags.
    fill_dag_tags,
    // 4 → 5: TaskInstances are kept in their compact stored form (`stored_ti.rs`)
    // and counted per DAG, not per tenant.
    compact_task_instances,
    // 5 → 6: tenants, users, roles, tokens and the audit log appear (new tables);
    // `default` and every tenant owning a DAG become tenant records. An older
    // binary, which would ignore who may do what, refuses the file from here on.
    super::access::seed_tenants,
    // 6 → 7: DAG versions are numbered per DAG (`versions.rs`).
    super::versions::number_versions,
];

/// Copies each DAG's tags from its current spec onto its record (schema 3 → 4).
fn fill_dag_tags(txn: &redb::WriteTransaction) -> Result<(), MetastoreError> {
    use redb::ReadableTable;
    let mut dags: Vec<(String, super::DagRecord)> = Vec::new();
    {
        let t = txn.open_table(DAGS)?;
        for item in t.iter()? {
            let (k, v) = item?;
            dags.push((k.value().to_owned(), super::decode(k.value(), v.value())?));
        }
    }
    let versions = txn.open_table(DAG_VERSIONS)?;
    let mut t = txn.open_table(DAGS)?;
    for (k, mut record) in dags {
        let spec_key = super::key(&[&record.tenant, &record.dag_id, &record.version]);
        let Some(v) = versions.get(spec_key.as_str())? else {
            continue;
        };
        let spec: aileron_model::dag::DagSpec = super::decode(&spec_key, v.value())?;
        record.tags = spec.tags;
        let bytes = serde_json::to_vec(&record).map_err(|source| MetastoreError::Codec {
            key: k.replace('\0', "/"),
            source,
        })?;
        t.insert(k.as_str(), bytes.as_slice())?;
    }
    Ok(())
}

/// Rewrites every TaskInstance record from the full JSON of schema 4 into the
/// compact stored form, a chunk of keys at a time so a large history is never
/// all in memory, and counts them again per DAG (schema 4 → 5).
fn compact_task_instances(txn: &redb::WriteTransaction) -> Result<(), MetastoreError> {
    use redb::ReadableTable;
    const CHUNK: usize = 5_000;
    txn.open_table(TI_COUNTS)?.retain(|_, _| false)?;
    let mut counts = super::indexes::TiCountDelta::default();
    let mut t = txn.open_table(TASK_INSTANCES)?;
    let mut after: Option<String> = None;
    loop {
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::with_capacity(CHUNK);
        {
            let range = match &after {
                Some(k) => t.range::<&str>((
                    std::ops::Bound::Excluded(k.as_str()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => t.range::<&str>(..)?,
            };
            for item in range.take(CHUNK) {
                let (k, v) = item?;
                let ti: super::TaskInstance = super::decode(k.value(), v.value())?;
                chunk.push((k.value().to_owned(), super::stored_ti::encode(&ti)));
            }
        }
        let Some((last, _)) = chunk.last() else {
            drop(t);
            let mut tables = super::indexes::OpenTables::new();
            return counts.write(txn, &mut tables);
        };
        after = Some(last.clone());
        for (k, v) in &chunk {
            counts.add(k, v, 1);
            t.insert(k.as_str(), v.as_slice())?;
        }
    }
}

pub(crate) type Table = TableDefinition<'static, &'static str, &'static [u8]>;
pub(super) const META: Table = TableDefinition::new("meta");
pub(crate) const DAGS: Table = TableDefinition::new("dags");
pub(crate) const DAG_VERSIONS: Table = TableDefinition::new("dag_versions");
pub(crate) const DAG_RUNS: Table = TableDefinition::new("dag_runs");
pub(crate) const TASK_INSTANCES: Table = TableDefinition::new("task_instances");
pub(crate) const XCOM: Table = TableDefinition::new("xcom");
pub(crate) const VARIABLES: Table = TableDefinition::new("variables");
pub(crate) const CONNECTIONS: Table = TableDefinition::new("connections");
pub(crate) const IMPORT_ERRORS: Table = TableDefinition::new("import_errors");
pub(crate) const LOGS: Table = TableDefinition::new("logs");
/// Pools by tenant and name. A new table, not a new layout: `init` creates it in
/// an existing file, so no migration step is needed.
pub(crate) const POOLS: Table = TableDefinition::new("pools");
pub(crate) const CALLBACKS: Table = TableDefinition::new("callbacks");
/// Keys of the callbacks not finished yet (empty values): what a restart must
/// close, found without reading every callback ever run.
pub(crate) const CALLBACKS_PENDING: Table = TableDefinition::new("callbacks_pending");
pub(crate) const BACKFILLS: Table = TableDefinition::new("backfills");
/// Run indexes, written only by `commit` alongside `dag_runs` (see `run_index`).
pub(super) const RUN_ORDER: Table = TableDefinition::new("run_order");
pub(super) const RUN_COUNTS: Table = TableDefinition::new("run_counts");
pub(super) const RUNS_UNFINISHED: Table = TableDefinition::new("runs_unfinished");
pub(super) const TI_COUNTS: Table = TableDefinition::new("ti_counts");
/// Who may do what (`access.rs`) and what they did (`audit.rs`).
pub(super) const TENANTS: Table = TableDefinition::new("tenants");
pub(super) const USERS: Table = TableDefinition::new("users");
pub(super) const MEMBERS: Table = TableDefinition::new("members");
pub(super) const USER_TENANTS: Table = TableDefinition::new("user_tenants");
pub(super) const API_TOKENS: Table = TableDefinition::new("api_tokens");
pub(super) const TOKEN_SCOPES: Table = TableDefinition::new("token_scopes");
pub(super) const AUDIT: Table = TableDefinition::new("audit");
/// Each tenant's metered usage (`usage.rs`), by tenant name.
pub(crate) const TENANT_USAGE: Table = TableDefinition::new("tenant_usage");
/// DAG version numbers (`versions.rs`): by content hash, and by number.
pub(crate) const DAG_VERSION_NUMBERS: Table = TableDefinition::new("dag_version_numbers");
pub(crate) const DAG_VERSION_LIST: Table = TableDefinition::new("dag_version_list");
/// Each user's favorite DAGs (`favorites.rs`), by tenant, DAG and user. A new
/// table, so no migration step.
pub(crate) const DAG_FAVORITES: Table = TableDefinition::new("dag_favorites");
pub(super) const ALL_TABLES: [Table; 29] = [
    META,
    DAGS,
    DAG_VERSIONS,
    DAG_RUNS,
    TASK_INSTANCES,
    XCOM,
    VARIABLES,
    CONNECTIONS,
    IMPORT_ERRORS,
    LOGS,
    POOLS,
    CALLBACKS,
    CALLBACKS_PENDING,
    BACKFILLS,
    RUN_ORDER,
    RUN_COUNTS,
    RUNS_UNFINISHED,
    TI_COUNTS,
    TENANTS,
    USERS,
    MEMBERS,
    USER_TENANTS,
    API_TOKENS,
    TOKEN_SCOPES,
    AUDIT,
    TENANT_USAGE,
    DAG_VERSION_NUMBERS,
    DAG_VERSION_LIST,
    DAG_FAVORITES,
];
