//! Who is calling: decided once per request, by an extractor every handler of
//! `/api/v1` takes, so that no handler can act without knowing whose objects it
//! may see or change.
//!
//! Until tenants sign in (the multi-tenancy issues), every caller acts in the
//! default tenant. Changing where the tenant comes from (a token, a user) is a
//! change to this file alone.

use super::ApiError;
use aileron_model::TenantId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The caller of one API request.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant: TenantId,
}

impl Caller {
    /// The tenant whose objects this caller sees and changes.
    pub fn tenant(&self) -> &str {
        self.tenant.as_str()
    }
}

impl Default for Caller {
    /// The caller every request is until tenants sign in: the default tenant.
    fn default() -> Self {
        Caller {
            tenant: TenantId::default(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Caller::default())
    }
}
