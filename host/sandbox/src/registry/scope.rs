//! Who sees which operator: the name index of every scope (global, or one tenant),
//! and the rule that keeps `name@version` meaning one component wherever it is seen.
//!
//! A tenant sees the global operators and its own. A name may be in both (a global
//! publish of a tenant's operator keeps the tenant's DAGs working), but a
//! `name@version` seen by a tenant always means one digest: publishing a version
//! that another build already holds in a scope that shares its view is refused.

use std::collections::BTreeMap;
use std::fmt;

use aileron_model::TenantId;

/// Where an operator is published: for every tenant, or for one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorScope {
    Global,
    Tenant(TenantId),
}

impl OperatorScope {
    /// The tenant this scope belongs to; `None` for global operators.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            OperatorScope::Global => None,
            OperatorScope::Tenant(t) => Some(t),
        }
    }

    /// Whether `name` may not be a tenant's: its plugins folder would be the
    /// global store.
    pub fn reserved_tenant(name: &str) -> bool {
        name == super::store::STORE_DIR
    }

    /// Whether a DAG of this scope's tenant (any tenant, for global) may use what
    /// is published in `other`.
    fn sees(&self, other: &OperatorScope) -> bool {
        *other == OperatorScope::Global || other == self
    }
}

impl fmt::Display for OperatorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorScope::Global => f.write_str("global"),
            OperatorScope::Tenant(t) => write!(f, "tenant `{t}`"),
        }
    }
}

/// name → version → digest.
pub(super) type Versions = BTreeMap<semver::Version, String>;

/// The names published in each scope.
#[derive(Default)]
pub(super) struct ScopedNames {
    scopes: BTreeMap<OperatorScope, BTreeMap<String, Versions>>,
}

/// Why a publish is refused: another digest holds this name and version where the
/// new one would be seen.
pub(super) struct Conflict {
    pub(super) existing: String,
}

impl ScopedNames {
    /// The versions of `name` published in `scope` itself.
    pub(super) fn own(&self, scope: &OperatorScope, name: &str) -> Option<&Versions> {
        self.scopes.get(scope)?.get(name)
    }

    /// Whether `digest` is published as `name@version` in `scope`.
    pub(super) fn holds(&self, scope: &OperatorScope, name: &str, digest: &str) -> bool {
        self.own(scope, name)
            .is_some_and(|versions| versions.values().any(|d| d == digest))
    }

    /// Whether any scope publishes `digest`.
    pub(super) fn publishes(&self, digest: &str) -> bool {
        self.scopes
            .values()
            .flat_map(|names| names.values())
            .any(|versions| versions.values().any(|d| d == digest))
    }

    /// Publishes `digest` as `name@version` in `scope`, unless a scope that shares
    /// a view with it (the global one and the scope itself for a tenant; every scope
    /// for a global publish) holds another digest under that name and version.
    pub(super) fn publish(
        &mut self,
        scope: &OperatorScope,
        name: &str,
        version: &semver::Version,
        digest: &str,
    ) -> Result<(), Conflict> {
        let shares_view = |other: &OperatorScope| scope.sees(other) || other.sees(scope);
        for (other, names) in &self.scopes {
            if !shares_view(other) {
                continue;
            }
            if let Some(existing) = names.get(name).and_then(|v| v.get(version))
                && existing != digest
            {
                return Err(Conflict {
                    existing: existing.clone(),
                });
            }
        }
        self.scopes
            .entry(scope.clone())
            .or_default()
            .entry(name.to_owned())
            .or_default()
            .insert(version.clone(), digest.to_owned());
        Ok(())
    }

    /// Takes `name@version` out of `scope`, returning its digest.
    pub(super) fn unpublish(
        &mut self,
        scope: &OperatorScope,
        name: &str,
        version: &semver::Version,
    ) -> Option<String> {
        let names = self.scopes.get_mut(scope)?;
        let versions = names.get_mut(name)?;
        let digest = versions.remove(version)?;
        if versions.is_empty() {
            names.remove(name);
        }
        if names.is_empty() {
            self.scopes.remove(scope);
        }
        Some(digest)
    }

    /// The versions of `name` that `viewer` sees: its own and the global ones.
    pub(super) fn versions(&self, viewer: &OperatorScope, name: &str) -> Option<Versions> {
        let mut out: Option<Versions> = None;
        for (scope, names) in &self.scopes {
            if !viewer.sees(scope) {
                continue;
            }
            if let Some(versions) = names.get(name) {
                out.get_or_insert_with(Versions::new)
                    .extend(versions.clone());
            }
        }
        out
    }

    /// Every name `viewer` sees, sorted.
    pub(super) fn names(&self, viewer: &OperatorScope) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .scopes
            .iter()
            .filter(|(scope, _)| viewer.sees(scope))
            .flat_map(|(_, names)| names.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// What `viewer` may use: (scope, digest) by name, then version. `None` lists
    /// every scope (the platform's view).
    pub(super) fn listing(
        &self,
        viewer: Option<&OperatorScope>,
    ) -> Vec<(&OperatorScope, &str, &semver::Version, &str)> {
        let mut out: Vec<_> = self
            .scopes
            .iter()
            .filter(|(scope, _)| viewer.is_none_or(|v| v.sees(scope)))
            .flat_map(|(scope, names)| {
                names.iter().flat_map(move |(name, versions)| {
                    versions
                        .iter()
                        .map(move |(v, d)| (scope, name.as_str(), v, d.as_str()))
                })
            })
            .collect();
        out.sort_by(|a, b| (a.1, a.2, a.0).cmp(&(b.1, b.2, b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> OperatorScope {
        OperatorScope::Tenant(TenantId::new(name).unwrap())
    }

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn a_tenant_sees_its_own_and_the_global_operators_only() {
        let mut names = ScopedNames::default();
        let (a, b) = (tenant("a"), tenant("b"));
        names.publish(&a, "load", &v("1.0.0"), "d-a").ok().unwrap();
        names.publish(&b, "load", &v("1.0.0"), "d-b").ok().unwrap();
        names
            .publish(&OperatorScope::Global, "shared", &v("2.0.0"), "d-g")
            .ok()
            .unwrap();
        assert_eq!(names.versions(&a, "load").unwrap()[&v("1.0.0")], "d-a");
        assert_eq!(names.versions(&b, "load").unwrap()[&v("1.0.0")], "d-b");
        assert!(names.versions(&OperatorScope::Global, "load").is_none());
        assert_eq!(names.names(&a), ["load", "shared"]);
        assert_eq!(names.listing(Some(&a)).len(), 2);
        assert_eq!(names.listing(None).len(), 3);
    }

    #[test]
    fn one_name_and_version_means_one_digest_wherever_it_is_seen() {
        let mut names = ScopedNames::default();
        let a = tenant("a");
        names.publish(&a, "load", &v("1.0.0"), "d1").ok().unwrap();
        // The same build published globally is fine (a promotion); another is not.
        assert!(
            names
                .publish(&OperatorScope::Global, "load", &v("1.0.0"), "d1")
                .is_ok()
        );
        let refused = names.publish(&OperatorScope::Global, "load", &v("2.0.0"), "d2");
        assert!(refused.is_ok(), "a new version is not a conflict");
        let Err(conflict) = names.publish(&a, "load", &v("2.0.0"), "d3") else {
            panic!("a tenant build under a global version must be refused");
        };
        assert_eq!(conflict.existing, "d2");
        // Another tenant's versions are no conflict for a tenant.
        assert!(names.publish(&a, "solo", &v("1.0.0"), "d5").is_ok());
        assert!(
            names
                .publish(&tenant("b"), "solo", &v("1.0.0"), "d6")
                .is_ok()
        );
        assert_eq!(
            names.unpublish(&a, "load", &v("1.0.0")).as_deref(),
            Some("d1")
        );
        assert!(names.publishes("d1"), "still global");
        assert_eq!(
            names.unpublish(&OperatorScope::Global, "load", &v("1.0.0")),
            Some("d1".into())
        );
        assert!(!names.publishes("d1"));
    }
}
