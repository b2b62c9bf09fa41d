//! Typed identities, parsed once at the edge: [`TenantId`] names the team that
//! owns an object, and the keys of a DAG, a DagRun and a TaskInstance
//! ([`DagKey`], [`RunKey`], [`TiKey`]) each carry their tenant, so code that
//! works on an object cannot forget whose it is.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A tenant: ASCII letters, digits, `-` and `_`, at most 63 characters (so it can
/// be a folder name, a DNS label and a key part). `default` owns the top of the
/// DAGs folder and everything made before tenants existed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a text is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a tenant name: use 1 to 63 ASCII letters, digits, `-` and `_`")]
pub struct InvalidTenant(pub String);

impl TenantId {
    /// The name of the default tenant.
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: &str) -> Result<Self, InvalidTenant> {
        if Self::is_valid(name) {
            Ok(TenantId(name.to_owned()))
        } else {
            Err(InvalidTenant(name.to_owned()))
        }
    }

    /// Whether `name` is a well-formed tenant id.
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        TenantId(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidTenant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Maps keyed by tenant are looked up with the `&str` a key type carries.
impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Identifies one DAG: its tenant and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DagKey {
    pub tenant: String,
    pub dag_id: String,
}

/// Identifies one DagRun. Ordered by tenant, DAG, then run id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunKey {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
}

/// Identifies one TaskInstance (`map_index` -1 for a task that is not mapped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TiKey {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
}

/// Identifies one pool: pools belong to a tenant, like everything tasks use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolKey {
    pub tenant: String,
    pub name: String,
}

impl PoolKey {
    pub fn new(tenant: &str, name: &str) -> Self {
        PoolKey {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl DagKey {
    pub fn new(tenant: &str, dag_id: &str) -> Self {
        DagKey {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
        }
    }
}

impl RunKey {
    pub fn new(tenant: &str, dag_id: &str, run_id: &str) -> Self {
        RunKey {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        }
    }

    /// The DAG the run belongs to.
    pub fn dag(&self) -> DagKey {
        DagKey::new(&self.tenant, &self.dag_id)
    }

    /// One TaskInstance of the run.
    pub fn ti(&self, task_id: &str, map_index: i64) -> TiKey {
        TiKey {
            tenant: self.tenant.clone(),
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: task_id.to_owned(),
            map_index,
        }
    }
}

impl TiKey {
    /// The DagRun the TaskInstance belongs to.
    pub fn run_key(&self) -> RunKey {
        RunKey::new(&self.tenant, &self.dag_id, &self.run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_follow_the_folder_rule() {
        for good in ["default", "acme", "team-1", "A_b", &"x".repeat(63)] {
            assert_eq!(TenantId::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a/b", "..", "é", &"x".repeat(64)] {
            assert_eq!(TenantId::new(bad), Err(InvalidTenant(bad.to_owned())));
        }
        assert_eq!(TenantId::default().as_str(), TenantId::DEFAULT);
        let parsed: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"acme\"");
        assert!(serde_json::from_str::<TenantId>("\"a/b\"").is_err());
    }
}
