//! The records of who may do what: tenants, users, their roles per tenant, API
//! tokens, and the key that signs session tokens. Each change is its own durable
//! transaction; the API is the only writer of these tables.
//!
//! Keys: `tenants` by name; `users` by name; `members` by tenant then user, and
//! `user_tenants` the same pairs the other way round (both written in one
//! transaction), so "the members of a tenant" and "the tenants of a user" are
//! each one range read; `api_tokens` by scope (a tenant, or [`PLATFORM_SCOPE`])
//! then id, with `token_scopes` from id to scope so a presented token is found
//! with two point reads.

use super::*;
use aileron_model::{Role, TenantId, UserName};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The scope part of a platform-wide token's key: not a valid tenant name.
pub const PLATFORM_SCOPE: &str = "*";

/// A tenant: a team sharing this Aileron.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: TenantId,
    #[serde(default)]
    pub description: String,
    pub created_at: Timestamp,
    /// What a platform admin gives it of the shared executor.
    #[serde(default)]
    pub limits: TenantLimits,
}

/// A tenant's share of the executor, set by a platform admin; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// Its weight when tenants compete for executor slots (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Its tries queued or running at once, across every executor and worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Linear memory all its tries running in one process may hold together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
    /// Guest CPU seconds its tries may use in a rolling hour; once spent, its new
    /// tries wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_hour: Option<u64>,
    /// The most `max_active_runs` any of its DAGs may have (those that set
    /// none get the lower of it and Airflow's 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    /// The longest `execution_timeout` (seconds) a task of its DAGs may have
    /// (and the timeout of those that set none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<u64>,
    /// The largest `memory_limit` (bytes) a task of its DAGs may have (and the
    /// limit of those that set none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
}

impl TenantLimits {
    /// The weight admission uses: 1 unless set, never 0.
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(1).max(1)
    }

    /// What the tenant's DAG files may ask for at most.
    pub fn ceilings(&self) -> aileron_model::dag::Ceilings {
        aileron_model::dag::Ceilings {
            max_active_runs: self.max_active_runs,
            execution_timeout: self.execution_timeout.map(std::time::Duration::from_secs),
            memory_limit: self.memory_limit,
        }
    }
}

/// A person who signs in with a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: UserName,
    /// The password's argon2id hash in PHC string form (salt and parameters
    /// included); the password itself is never stored.
    pub password_hash: String,
    /// May manage tenants, users, workers and global operators, and act in every
    /// tenant as its Admin.
    #[serde(default)]
    pub platform_admin: bool,
    pub created_at: Timestamp,
    /// Session tokens issued before this moment are refused: set when the
    /// password changes, so a change signs the user out everywhere.
    #[serde(default)]
    pub sessions_after: Option<Timestamp>,
}

/// A service account's API token, as stored: the secret only as its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    /// The tenant it acts in; `None` for a platform token (a platform admin's
    /// service account, e.g. for Prometheus).
    pub tenant: Option<TenantId>,
    /// The service account's name, shown in lists and the audit log.
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret part. Tokens are 256 random bits, so a fast hash
    /// is enough: there is nothing to guess from it.
    pub secret_sha256: String,
    pub created_by: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// A worker token: accepted by the execution API alone (`aileron worker`),
    /// for the tries of `tenant` (of every tenant when `None`), never by `/api`.
    #[serde(default)]
    pub worker: bool,
}

impl ApiTokenRecord {
    fn scope(&self) -> &str {
        self.tenant.as_ref().map_or(PLATFORM_SCOPE, |t| t.as_str())
    }
}

/// A change to members or tokens that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    #[error("tenant `{0}` not found")]
    NoTenant(String),
    #[error("tenant `{tenant}` still has {what}; remove them first")]
    TenantInUse { tenant: String, what: &'static str },
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("user `{0}` not found")]
    NoUser(String),
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for AccessError {
            fn from(e: $t) -> Self {
                AccessError::Metastore(e.into())
            }
        }
    )*};
}
redb_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("access records serialize")
}

/// The tables a tenant's objects live in, each keyed by the tenant first: what
/// deleting a tenant empties. (DAGs and runs are refused instead, see
/// [`Metastore::delete_tenant`].)
const TENANT_KEYED: [Table; 7] = [
    VARIABLES,
    CONNECTIONS,
    POOLS,
    IMPORT_ERRORS,
    MEMBERS,
    API_TOKENS,
    DAG_FAVORITES,
];

impl Metastore {
    pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.scan(TENANTS, None)
    }

    pub fn tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
        self.get(TENANTS, name)
    }

    pub fn create_tenant(&self, record: &TenantRecord) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TENANTS)?;
            if t.get(record.name.as_str())?.is_some() {
                return Err(AccessError::TenantExists(record.name.to_string()));
            }
            t.insert(record.name.as_str(), json(record).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces an existing tenant's description and limits.
    pub fn update_tenant(&self, record: &TenantRecord) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TENANTS)?;
            if t.get(record.name.as_str())?.is_none() {
                return Err(AccessError::NoTenant(record.name.to_string()));
            }
            t.insert(record.name.as_str(), json(record).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes a tenant with its members, tokens, variables, connections, pools
    /// and import errors, so a tenant created later under the same name starts
    /// empty. Refused while it still has DAGs (their files must go first): runs,
    /// logs and XCom are history that nobody could read any more.
    pub fn delete_tenant(&self, name: &str) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TENANTS)?;
            if t.remove(name)?.is_none() {
                return Err(AccessError::NoTenant(name.to_owned()));
            }
            let (start, end) = prefix_range(name);
            for (table, what) in [(DAGS, "DAGs"), (DAG_RUNS, "DagRuns")] {
                if txn
                    .open_table(table)?
                    .range(start.as_str()..end.as_str())?
                    .next()
                    .is_some()
                {
                    return Err(AccessError::TenantInUse {
                        tenant: name.to_owned(),
                        what,
                    });
                }
            }
            let mut members: Vec<String> = Vec::new();
            for table in TENANT_KEYED {
                txn.open_table(table)?
                    .retain_in(start.as_str()..end.as_str(), |k, _| {
                        if table.name() == MEMBERS.name() {
                            members.push(k[start.len()..].to_owned());
                        }
                        false
                    })?;
            }
            let mut reverse = txn.open_table(USER_TENANTS)?;
            for user in members {
                reverse.remove(key(&[&user, name]).as_str())?;
            }
            txn.open_table(TOKEN_SCOPES)?
                .retain(|_, scope| scope != name.as_bytes())?;
            txn.open_table(TENANT_USAGE)?.remove(name)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.scan(USERS, None)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.get(USERS, name)
    }

    pub fn user_count(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(USERS)?.len()?)
    }

    pub fn create_user(&self, record: &UserRecord) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(USERS)?;
            if t.get(record.username.as_str())?.is_some() {
                return Err(AccessError::UserExists(record.username.to_string()));
            }
            t.insert(record.username.as_str(), json(record).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces a user's record (password, platform flag); the user must exist.
    pub fn update_user(&self, record: &UserRecord) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(USERS)?;
            if t.get(record.username.as_str())?.is_none() {
                return Err(AccessError::NoUser(record.username.to_string()));
            }
            t.insert(record.username.as_str(), json(record).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes a user and every role they held. Their session tokens stop
    /// working at once (each request looks the user up).
    pub fn delete_user(&self, name: &str) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(USERS)?.remove(name)?.is_none() {
                return Err(AccessError::NoUser(name.to_owned()));
            }
            let (start, end) = prefix_range(name);
            let mut tenants: Vec<String> = Vec::new();
            txn.open_table(USER_TENANTS)?
                .retain_in(start.as_str()..end.as_str(), |k, _| {
                    tenants.push(k[start.len()..].to_owned());
                    false
                })?;
            let mut members = txn.open_table(MEMBERS)?;
            for tenant in tenants {
                members.remove(key(&[&tenant, name]).as_str())?;
            }
            super::favorites::forget_user(&txn, name)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The roles a user holds, by tenant: one range read, made on every request
    /// a user signs, so a role taken away is gone at the next request.
    pub fn user_roles(&self, name: &str) -> Result<Vec<(TenantId, Role)>> {
        self.scan_pairs(USER_TENANTS, name)
    }

    /// The members of a tenant and their roles, by name.
    pub fn members(&self, tenant: &str) -> Result<Vec<(UserName, Role)>> {
        self.scan_pairs(MEMBERS, tenant)
    }

    /// Gives a user a role in a tenant (replacing any role they had there).
    pub fn set_member(&self, tenant: &str, user: &str, role: Role) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(TENANTS)?.get(tenant)?.is_none() {
                return Err(AccessError::NoTenant(tenant.to_owned()));
            }
            if txn.open_table(USERS)?.get(user)?.is_none() {
                return Err(AccessError::NoUser(user.to_owned()));
            }
            let role = json(&role);
            txn.open_table(MEMBERS)?
                .insert(key(&[tenant, user]).as_str(), role.as_slice())?;
            txn.open_table(USER_TENANTS)?
                .insert(key(&[user, tenant]).as_str(), role.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Takes a user's role in a tenant away; false if they had none.
    pub fn remove_member(&self, tenant: &str, user: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = {
            let existed = txn
                .open_table(MEMBERS)?
                .remove(key(&[tenant, user]).as_str())?
                .is_some();
            txn.open_table(USER_TENANTS)?
                .remove(key(&[user, tenant]).as_str())?;
            existed
        };
        txn.commit()?;
        Ok(existed)
    }

    pub fn create_api_token(&self, record: &ApiTokenRecord) -> Result<(), AccessError> {
        let txn = self.db.begin_write()?;
        {
            if let Some(tenant) = &record.tenant
                && txn.open_table(TENANTS)?.get(tenant.as_str())?.is_none()
            {
                return Err(AccessError::NoTenant(tenant.to_string()));
            }
            txn.open_table(API_TOKENS)?.insert(
                key(&[record.scope(), &record.id]).as_str(),
                json(record).as_slice(),
            )?;
            txn.open_table(TOKEN_SCOPES)?
                .insert(record.id.as_str(), record.scope().as_bytes())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The token with this id, wherever it lives (two point reads).
    pub fn api_token(&self, id: &str) -> Result<Option<ApiTokenRecord>> {
        let txn = self.db.begin_read()?;
        let Some(scope) = txn
            .open_table(TOKEN_SCOPES)?
            .get(id)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        let k = key(&[&String::from_utf8_lossy(&scope), id]);
        match txn.open_table(API_TOKENS)?.get(k.as_str())? {
            Some(v) => decode(&k, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The tokens of one tenant, or the platform's with `None`, by id.
    pub fn api_tokens(&self, tenant: Option<&str>) -> Result<Vec<ApiTokenRecord>> {
        self.scan(API_TOKENS, Some(tenant.unwrap_or(PLATFORM_SCOPE)))
    }

    /// Writes a token's record back (revocation, last use); false if the token
    /// is gone.
    pub fn update_api_token(&self, record: &ApiTokenRecord) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut t = txn.open_table(API_TOKENS)?;
            let k = key(&[record.scope(), &record.id]);
            let found = t.get(k.as_str())?.is_some();
            if found {
                t.insert(k.as_str(), json(record).as_slice())?;
            }
            found
        };
        txn.commit()?;
        Ok(found)
    }

    /// The key that signs session tokens (JWTs): 32 random bytes made on first
    /// use and kept in `meta`, so sessions survive a restart.
    pub fn session_key(&self) -> Result<[u8; 32]> {
        const KEY: &str = "session_key";
        let read = |bytes: &[u8]| -> Option<[u8; 32]> {
            hex::decode(bytes).ok().and_then(|b| b.try_into().ok())
        };
        if let Some(raw) = self.get_raw(META, KEY)?
            && let Some(key) = read(&raw)
        {
            return Ok(key);
        }
        let txn = self.db.begin_write()?;
        let key = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get(KEY)?.and_then(|v| read(v.value()));
            match existing {
                Some(key) => key,
                None => {
                    let mut key = [0u8; 32];
                    getrandom::fill(&mut key).map_err(|e| MetastoreError::Random(e.to_string()))?;
                    meta.insert(KEY, hex::encode(key).as_bytes())?;
                    key
                }
            }
        };
        txn.commit()?;
        Ok(key)
    }

    /// `(second key part, value)` pairs under a first key part.
    fn scan_pairs<A: std::str::FromStr, B: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        first: &str,
    ) -> Result<Vec<(A, B)>> {
        let mut out = Vec::new();
        for (rest, value) in self.scan_raw(table, first)? {
            let Ok(a) = rest.parse::<A>() else {
                return Err(MetastoreError::BadKey {
                    key: format!("{first}/{rest}"),
                });
            };
            out.push((a, decode(&rest, value.as_bytes())?));
        }
        Ok(out)
    }
}

/// Seeds the tenants of a file written before tenants were records: `default`
/// and every tenant that owns a DAG (schema 5 → 6; also run on a new file).
pub(super) fn seed_tenants(txn: &redb::WriteTransaction) -> Result<()> {
    use redb::ReadableTable;
    let mut names = std::collections::BTreeSet::from([TenantId::DEFAULT.to_owned()]);
    for item in txn.open_table(DAGS)?.iter()? {
        let (k, _) = item?;
        if let Some((tenant, _)) = k.value().split_once('\0') {
            names.insert(tenant.to_owned());
        }
    }
    let mut t = txn.open_table(TENANTS)?;
    let now = Timestamp::now();
    for name in names {
        let Ok(name) = TenantId::new(&name) else {
            continue;
        };
        if t.get(name.as_str())?.is_none() {
            let record = TenantRecord {
                name,
                description: String::new(),
                created_at: now,
                limits: Default::default(),
            };
            t.insert(record.name.as_str(), json(&record).as_slice())?;
        }
    }
    Ok(())
}

impl Metastore {
    /// Records that a token was just used, reading and writing its record in one
    /// transaction so a revocation made meanwhile is never written over.
    pub fn touch_api_token(&self, id: &str, at: Timestamp) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let Some(scope) = txn
                .open_table(TOKEN_SCOPES)?
                .get(id)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned())
            else {
                return Ok(());
            };
            let k = key(&[&scope, id]);
            let mut t = txn.open_table(API_TOKENS)?;
            let record: Option<ApiTokenRecord> = t
                .get(k.as_str())?
                .map(|v| decode(&k, v.value()))
                .transpose()?;
            if let Some(mut record) = record {
                record.last_used_at = Some(at);
                t.insert(k.as_str(), json(&record).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn user(name: &str) -> UserRecord {
        UserRecord {
            username: UserName::new(name).unwrap(),
            password_hash: "$argon2id$x".into(),
            platform_admin: false,
            created_at: now(),
            sessions_after: None,
        }
    }

    #[test]
    fn a_deleted_user_takes_their_favorites_along() {
        let m = Metastore::in_memory().unwrap();
        m.create_user(&user("fan")).unwrap();
        assert!(m.favorite_dag("default", "etl", "fan").unwrap());
        assert!(!m.favorite_dag("default", "etl", "fan").unwrap());
        assert!(m.favorite_dag("default", "etl", "fanatic").unwrap());
        m.delete_user("fan").unwrap();
        m.create_user(&user("fan")).unwrap();
        assert!(m.favorite_dags("default", "fan").unwrap().is_empty());
        // A user whose name starts the same keeps theirs.
        assert!(m.is_favorite("default", "etl", "fanatic").unwrap());
    }

    #[test]
    fn a_new_file_has_the_default_tenant_and_roles_read_both_ways() {
        let m = Metastore::in_memory().unwrap();
        let names: Vec<String> = m
            .tenants()
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, ["default"]);
        m.create_tenant(&TenantRecord {
            name: TenantId::new("team_a").unwrap(),
            description: String::new(),
            created_at: now(),
            limits: Default::default(),
        })
        .unwrap();
        assert!(matches!(
            m.create_tenant(&TenantRecord {
                name: TenantId::new("team_a").unwrap(),
                description: String::new(),
                created_at: now(),
                limits: Default::default(),
            }),
            Err(AccessError::TenantExists(_))
        ));
        m.create_user(&user("ada")).unwrap();
        m.set_member("team_a", "ada", Role::Op).unwrap();
        m.set_member("default", "ada", Role::Viewer).unwrap();
        assert!(matches!(
            m.set_member("nope", "ada", Role::Op),
            Err(AccessError::NoTenant(_))
        ));
        assert!(matches!(
            m.set_member("team_a", "bob", Role::Op),
            Err(AccessError::NoUser(_))
        ));
        let roles: Vec<(String, Role)> = m
            .user_roles("ada")
            .unwrap()
            .into_iter()
            .map(|(t, r)| (t.to_string(), r))
            .collect();
        assert_eq!(
            roles,
            [
                ("default".into(), Role::Viewer),
                ("team_a".into(), Role::Op)
            ]
        );
        assert_eq!(m.members("team_a").unwrap()[0].1, Role::Op);
        // Deleting the user takes both directions away.
        m.delete_user("ada").unwrap();
        assert!(m.user_roles("ada").unwrap().is_empty());
        assert!(m.members("team_a").unwrap().is_empty());
    }

    #[test]
    fn tokens_are_found_by_id_and_go_with_their_tenant() {
        let m = Metastore::in_memory().unwrap();
        let team = TenantId::new("team_b").unwrap();
        m.create_tenant(&TenantRecord {
            name: team.clone(),
            description: String::new(),
            created_at: now(),
            limits: Default::default(),
        })
        .unwrap();
        m.set_variable("team_b", "k", "v").unwrap();
        let record = ApiTokenRecord {
            id: "0123456789abcdef".into(),
            tenant: Some(team),
            name: "ci".into(),
            role: Role::User,
            secret_sha256: "00".into(),
            created_by: "admin".into(),
            created_at: now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            worker: false,
        };
        m.create_api_token(&record).unwrap();
        assert_eq!(m.api_token(&record.id).unwrap().unwrap().name, "ci");
        assert_eq!(m.api_tokens(Some("team_b")).unwrap().len(), 1);
        assert!(m.api_tokens(None).unwrap().is_empty());
        m.touch_api_token(&record.id, now()).unwrap();
        assert!(
            m.api_token(&record.id)
                .unwrap()
                .unwrap()
                .last_used_at
                .is_some()
        );
        m.delete_tenant("team_b").unwrap();
        assert!(m.api_token(&record.id).unwrap().is_none());
        assert!(m.variable("team_b", "k").unwrap().is_none());
        assert!(matches!(
            m.delete_tenant("team_b"),
            Err(AccessError::NoTenant(_))
        ));
    }

    #[test]
    fn the_audit_log_pages_newest_first_per_scope() {
        let m = Metastore::in_memory().unwrap();
        let rec = |tenant: Option<&str>, event: &str| super::super::AuditRecord {
            id: 0,
            when: now(),
            tenant: tenant.map(str::to_owned),
            actor: "ada".into(),
            event: event.into(),
            method: "POST".into(),
            path: "/api/v1/variables".into(),
            dag_id: None,
            run_id: None,
            task_id: None,
            status: 200,
            source: "127.0.0.1".into(),
        };
        for i in 0..5 {
            m.append_audit(rec(Some("default"), &format!("e{i}")), i % 2 == 0)
                .unwrap();
        }
        m.append_audit(rec(None, "post_tenant"), true).unwrap();
        let (page, total) = m.audit_page(Some("default"), 1, 2).unwrap();
        assert_eq!(total, 5);
        let events: Vec<&str> = page.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["e3", "e2"]);
        let (platform, total) = m.audit_page(None, 0, 10).unwrap();
        assert_eq!(
            (platform[0].event.as_str(), platform[0].id, total),
            ("post_tenant", 6, 1)
        );
        assert_eq!(
            m.audit_record(Some("default"), 2).unwrap().unwrap().event,
            "e1"
        );
    }
}
