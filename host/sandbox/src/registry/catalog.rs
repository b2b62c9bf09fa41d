//! The registry as the operator catalog DAG files are parsed against: the global
//! catalog, and one tenant's (the global operators and its own).

use aileron_model::TenantId;

use super::{OperatorScope, Registry};
use crate::error::chain;

/// DAG parsing resolves `operator = "…"` through the registry; the error text is
/// shown to the DAG author as an import error.
impl aileron_model::dag::OperatorCatalog for Registry {
    fn resolve(&self, reference: &str) -> Result<aileron_model::dag::ResolvedOperator, String> {
        TenantOperators {
            registry: self,
            scope: OperatorScope::Global,
        }
        .resolve(reference)
    }

    fn max_memory_bytes(&self) -> u64 {
        self.runtime().config.max_memory_bytes
    }
}

/// The operators one tenant's DAG files may name: the global ones and its own.
pub struct TenantOperators<'a> {
    registry: &'a Registry,
    scope: OperatorScope,
}

impl Registry {
    /// The catalog a DAG file of `tenant` is parsed against.
    pub fn for_tenant(&self, tenant: &TenantId) -> TenantOperators<'_> {
        TenantOperators {
            registry: self,
            scope: OperatorScope::Tenant(tenant.clone()),
        }
    }
}

impl aileron_model::dag::OperatorCatalog for TenantOperators<'_> {
    fn resolve(&self, reference: &str) -> Result<aileron_model::dag::ResolvedOperator, String> {
        let meta = self
            .registry
            .resolve_in(&self.scope, reference)
            .map_err(|e| chain(&e))?;
        Ok(aileron_model::dag::ResolvedOperator {
            name: meta.name,
            version: meta.version,
            digest: meta.digest,
            params_schema: meta.params_schema,
        })
    }

    fn max_memory_bytes(&self) -> u64 {
        self.registry.runtime().config.max_memory_bytes
    }
}
