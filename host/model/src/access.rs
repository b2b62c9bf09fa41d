//! Who may do what: the [`Role`]s a member holds in a tenant and the names of the
//! people and service accounts that hold them ([`UserName`]). Pure rules only; the
//! server decides who is calling and checks these against each route's policy.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A member's role in one tenant, with Airflow's names. Each role can do what the
/// one before it can, and more, so "at least `User`" is a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads the tenant's DAGs, runs, TaskInstances, logs, XCom, pools, import
    /// errors, operators and audit log.
    Viewer,
    /// Also triggers, clears, marks, deletes runs, backfills and pauses DAGs.
    User,
    /// Also reads and changes variables, connections and pools, and adds and
    /// removes the tenant's own operators.
    Op,
    /// Also manages the tenant's members and API tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Op, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::User => "User",
            Role::Op => "Op",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role: use Viewer, User, Op or Admin")]
pub struct InvalidRole(pub String);

impl std::str::FromStr for Role {
    type Err = InvalidRole;
    /// Airflow's names, in any case.
    fn from_str(s: &str) -> Result<Self, InvalidRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidRole(s.to_owned()))
    }
}

/// The name of a user or a service account: 1 to 64 ASCII letters, digits and
/// `. _ - @` (an e-mail address fits), starting with a letter or digit. Kept
/// narrow because it appears in keys, logs and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

/// Why a text is not a user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a user name: use 1 to 64 ASCII letters, digits, `.`, `_`, `-` and `@`, \
     starting with a letter or digit"
)]
pub struct InvalidUserName(pub String);

impl UserName {
    /// The platform administrator every new home starts with.
    pub const ADMIN: &'static str = "admin";

    pub fn new(name: &str) -> Result<Self, InvalidUserName> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok {
            Ok(UserName(name.to_owned()))
        } else {
            Err(InvalidUserName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UserName {
    type Err = InvalidUserName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UserName::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::User && Role::User < Role::Op && Role::Op < Role::Admin);
        assert_eq!("op".parse::<Role>(), Ok(Role::Op));
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert!("Owner".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::User).unwrap(), "\"User\"");
    }

    #[test]
    fn user_names_are_narrow() {
        for ok in ["admin", "ada.lovelace@example.com", "svc-etl_2", "7"] {
            assert!(UserName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a b", "a\0b", "ünï", &"x".repeat(65), "a/b"] {
            assert!(UserName::new(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<UserName>("\"a b\"").is_err());
    }
}
