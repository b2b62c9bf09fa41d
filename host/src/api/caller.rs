//! Who is calling: decided once per request by the access layer (`access.rs`),
//! which puts a [`Caller`] in the request; every handler of `/api/v1` takes one,
//! so no handler can act without knowing whose objects it may see or change. A
//! request that reached a handler without passing the access layer finds no
//! `Caller` and is refused: the failure is closed.

use super::ApiError;
use crate::auth::Principal;
use aileron_model::{Role, TenantId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// The caller of one API request: who, and the tenant it acts in.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant: TenantId,
    /// `None` only for routes that need no sign-in (none take a `Caller` today).
    principal: Option<Arc<Principal>>,
    /// The role held in `tenant` (a platform admin's is Admin).
    role: Option<Role>,
}

impl Caller {
    pub fn new(tenant: TenantId, principal: Arc<Principal>, role: Option<Role>) -> Self {
        Caller {
            tenant,
            principal: Some(principal),
            role,
        }
    }

    /// The tenant whose objects this caller sees and changes.
    pub fn tenant(&self) -> &str {
        self.tenant.as_str()
    }

    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// The caller's role in its tenant.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Whether the caller may manage the platform.
    pub fn platform_admin(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| p.platform_admin)
    }

    /// Who, as the audit log names them.
    pub fn actor(&self) -> String {
        self.principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), |p| p.actor.to_string())
    }
}

#[cfg(test)]
impl Default for Caller {
    /// A caller of the default tenant, for unit tests of handlers' helpers.
    fn default() -> Self {
        Caller {
            tenant: TenantId::default(),
            principal: None,
            role: Some(Role::Admin),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "this request is not signed in",
            )
        })
    }
}
