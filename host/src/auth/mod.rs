//! Who is calling: turns the credentials a request carries (a session token, an
//! API token, or a user's password over HTTP Basic) into a [`Principal`], the
//! roles it holds per tenant. The API's access layer (`api/access.rs`) then checks
//! that against each route's policy.
//!
//! Time here is the wall clock, not the scheduler's: expiry of credentials is a
//! fact about the real world, and a simulated clock jumping through a catch-up
//! must not sign everyone out.

pub mod api_token;
pub mod limiter;
pub mod password;
pub mod session;

use crate::metastore::{ApiTokenRecord, Metastore, MetastoreError, UserRecord};
use aileron_model::{Role, TenantId, UserName};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who a principal is, for the audit log and `GET /auth/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(UserName),
    /// A service account's API token.
    Token {
        id: String,
        name: String,
    },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(u) => write!(f, "{u}"),
            Actor::Token { name, .. } => write!(f, "token:{name}"),
        }
    }
}

/// A signed-in caller and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    /// Manages the platform, and acts as Admin in every tenant.
    pub platform_admin: bool,
    /// Roles held, by tenant name.
    pub roles: Vec<(TenantId, Role)>,
}

impl Principal {
    /// The role held in `tenant` by membership (a platform admin's implied
    /// Admin is the access layer's business: it needs the tenant to exist).
    pub fn role_in(&self, tenant: &str) -> Option<Role> {
        self.roles
            .iter()
            .find(|(t, _)| t.as_str() == tenant)
            .map(|(_, r)| *r)
    }
}

/// Credentials as a request presents them.
pub enum Credentials<'a> {
    /// `Authorization: Bearer …` or the UI's session cookie: a session token or
    /// an API token.
    Bearer(&'a str),
    /// `Authorization: Basic …` (Airflow 2's clients).
    Basic { user: &'a str, password: &'a str },
}

/// Why credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong, expired, revoked, or of someone who no longer exists: 401. The
    /// message says which, never anything about other users.
    #[error("{0}")]
    Refused(String),
    /// Too many failed sign-ins: 429.
    #[error("too many failed sign-ins; try again in {0} s")]
    Locked(u64),
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
}

/// How long a verified Basic password is remembered: argon2 costs tens of
/// milliseconds by design, which Airflow 2's clients would pay on every request.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
const BASIC_CACHE_MAX: usize = 4096;
/// A token's stored last use is refreshed at most this often, so using a token
/// does not cost a durable write per request.
const TOUCH_EVERY: Duration = Duration::from_secs(300);

/// Checks credentials; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    metastore: Metastore,
    session_key: [u8; 32],
    limiter: limiter::Limiter,
    /// SHA-256 of (salt, user, password) → (the PHC string it verified against,
    /// when). Keyed by a salted hash so the cache never holds a password.
    basic_cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    cache_salt: [u8; 32],
    touched: Mutex<HashMap<String, Instant>>,
}

fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

impl Auth {
    pub fn new(metastore: Metastore) -> Result<Self, MetastoreError> {
        let session_key = metastore.session_key()?;
        let mut cache_salt = [0u8; 32];
        getrandom::fill(&mut cache_salt).map_err(|e| MetastoreError::Random(e.to_string()))?;
        Ok(Auth {
            inner: Arc::new(Inner {
                metastore,
                session_key,
                limiter: limiter::Limiter::default(),
                basic_cache: Mutex::new(HashMap::new()),
                cache_salt,
                touched: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The principal behind `creds`, or why not. `source` is the client's
    /// address, for the sign-in limit.
    pub async fn authenticate(
        &self,
        creds: Credentials<'_>,
        source: &str,
    ) -> Result<Principal, AuthError> {
        match creds {
            Credentials::Bearer(text) => match api_token::parse(text) {
                Some((id, secret)) => self.api_token(id, secret),
                None => self.session(text),
            },
            Credentials::Basic { user, password } => {
                self.password(user, password, source).await.map(|(_, p)| p)
            }
        }
    }

    /// Checks a user's password (`POST /auth/token`, the UI's sign-in, Basic) and
    /// returns a fresh session token with the principal.
    pub async fn sign_in(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<(String, Principal), AuthError> {
        let (name, principal) = self.password(user, password, source).await?;
        Ok((
            session::issue(&self.inner.session_key, name.as_str(), now_secs()),
            principal,
        ))
    }

    fn session(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = session::verify(&self.inner.session_key, token, now_secs())
            .map_err(|e| AuthError::Refused(format!("session token refused: {e}")))?;
        let gone = || AuthError::Refused("session token refused: its user no longer exists".into());
        let record = self.inner.metastore.user(&claims.sub)?.ok_or_else(gone)?;
        if record
            .sessions_after
            .is_some_and(|after| claims.iat < after.as_second())
        {
            return Err(AuthError::Refused(
                "session token refused: the password was changed since; sign in again".into(),
            ));
        }
        self.user_principal(record)
    }

    fn user_principal(&self, record: UserRecord) -> Result<Principal, AuthError> {
        Ok(Principal {
            roles: self.inner.metastore.user_roles(record.username.as_str())?,
            platform_admin: record.platform_admin,
            actor: Actor::User(record.username),
        })
    }

    fn api_token(&self, id: &str, secret: &str) -> Result<Principal, AuthError> {
        let record = self.live_token(id, secret)?;
        if record.worker {
            return Err(AuthError::Refused(
                "API token refused: it is a worker token, for `aileron worker` alone".into(),
            ));
        }
        let platform_admin = record.tenant.is_none();
        Ok(Principal {
            actor: Actor::Token {
                id: record.id,
                name: record.name,
            },
            platform_admin,
            roles: record
                .tenant
                .map(|t| vec![(t, record.role)])
                .unwrap_or_default(),
        })
    }

    /// The tenant a worker token serves (`None`: every tenant), for the
    /// execution API. An API token that is not a worker token is refused.
    pub fn worker_token(&self, text: &str) -> Result<Option<TenantId>, AuthError> {
        let (id, secret) = api_token::parse(text)
            .ok_or_else(|| AuthError::Refused("wrong worker token".into()))?;
        let record = self.live_token(id, secret)?;
        if !record.worker {
            return Err(AuthError::Refused(
                "API token refused: it is not a worker token".into(),
            ));
        }
        Ok(record.tenant)
    }

    /// The token `id` if `secret` is its secret and it is neither revoked nor
    /// expired; its use is recorded.
    fn live_token(&self, id: &str, secret: &str) -> Result<ApiTokenRecord, AuthError> {
        let refused = |why: &str| AuthError::Refused(format!("API token refused: {why}"));
        let record = self
            .inner
            .metastore
            .api_token(id)?
            .filter(|r| api_token::matches(secret, &r.secret_sha256))
            .ok_or_else(|| refused("unknown token"))?;
        let now = Timestamp::now();
        if record.revoked_at.is_some() {
            return Err(refused("it was revoked"));
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(refused("it has expired"));
        }
        self.touch(&record.id, now);
        Ok(record)
    }

    /// Refreshes a token's stored last use off the request's path, at most every
    /// [`TOUCH_EVERY`].
    fn touch(&self, id: &str, now: Timestamp) {
        let due = {
            let mut touched = self.inner.touched.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = touched.get(id).is_some_and(|at| at.elapsed() < TOUCH_EVERY);
            if !fresh {
                if touched.len() > 100_000 {
                    touched.clear();
                }
                touched.insert(id.to_owned(), Instant::now());
            }
            !fresh
        };
        if due {
            let (metastore, id) = (self.inner.metastore.clone(), id.to_owned());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = metastore.touch_api_token(&id, now) {
                    tracing::warn!("cannot record the use of API token {id}: {e}");
                }
            });
        }
    }

    async fn password(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<(UserName, Principal), AuthError> {
        let wrong = || AuthError::Refused("wrong user name or password".into());
        let keys = [format!("user:{user}"), format!("addr:{source}")];
        let started = Instant::now();
        let Ok(name) = UserName::new(user) else {
            self.inner.limiter.fail(&keys, started);
            return Err(wrong());
        };
        let record = self.inner.metastore.user(name.as_str())?;
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(self.inner.cache_salt)
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let cached = record.as_ref().is_some_and(|r| {
            let cache = self
                .inner
                .basic_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cache
                .get(&cache_key)
                .is_some_and(|(phc, at)| *phc == r.password_hash && at.elapsed() < BASIC_CACHE_TTL)
        });
        // A password that verified a moment ago passes even while the name or
        // address is locked out: the lock stops guessing, and must not let a
        // guesser lock the real user (or a script already signed in) out.
        if !cached {
            self.inner
                .limiter
                .check(&keys, started)
                .map_err(AuthError::Locked)?;
        }
        let ok = cached || {
            // A user that does not exist costs the same hash as one that does,
            // so timing does not tell which names exist.
            let phc = record
                .as_ref()
                .map_or_else(|| DUMMY_HASH.to_owned(), |r| r.password_hash.clone());
            let password = password.to_owned();
            let matched = tokio::task::spawn_blocking(move || password::verify(&password, &phc))
                .await
                .unwrap_or(false);
            matched && record.is_some()
        };
        let Some(record) = record.filter(|_| ok) else {
            self.inner.limiter.fail(&keys, Instant::now());
            return Err(wrong());
        };
        self.inner.limiter.succeed(&keys[0]);
        if !cached {
            let mut cache = self
                .inner
                .basic_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if cache.len() >= BASIC_CACHE_MAX {
                cache.clear();
            }
            cache.insert(cache_key, (record.password_hash.clone(), Instant::now()));
        }
        Ok((name, self.user_principal(record)?))
    }
}

/// A valid argon2id hash of a random password nobody knows, checked against when
/// the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0q3ZHoCqFNt1CyMHdDPd4wh+tEeBzCcwQ8UOfwdYLX8";

/// Where a home's first admin password is written when none was given.
pub fn admin_password_path(home: &Path) -> std::path::PathBuf {
    home.join("admin.password")
}

/// Why the first admin could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("AILERON_ADMIN_PASSWORD: {0}")]
    Password(#[from] password::PasswordError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("no random bytes for the admin password: {0}")]
    Random(String),
    #[error(transparent)]
    Access(#[from] crate::metastore::AccessError),
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
}

/// On a home with no users (new, or from before users existed), makes the
/// platform admin `admin`, Admin of `default`: its password is `given`
/// (`AILERON_ADMIN_PASSWORD`) or a generated one, written owner-readable to
/// `HOME/admin.password` and printed once in the log. Does nothing otherwise.
pub fn bootstrap_admin(
    metastore: &Metastore,
    home: &Path,
    given: Option<&str>,
) -> Result<(), BootstrapError> {
    if metastore.user_count()? > 0 {
        return Ok(());
    }
    let (password, generated) = match given {
        Some(p) => (p.to_owned(), false),
        None => (
            password::generate().map_err(|e| BootstrapError::Random(e.to_string()))?,
            true,
        ),
    };
    let record = UserRecord {
        username: UserName::new(UserName::ADMIN).expect("`admin` is a user name"),
        password_hash: password::hash(&password)?,
        platform_admin: true,
        created_at: Timestamp::now(),
        sessions_after: None,
    };
    if generated {
        let path = admin_password_path(home);
        write_owner_only(&path, &password).map_err(|source| BootstrapError::Write {
            path: path.clone(),
            source,
        })?;
        tracing::warn!(
            "created the platform admin `admin` with the generated password {password} \
             (also in {}, readable by this account only); change it with \
             `aileron users set-password admin`",
            path.display()
        );
    } else {
        tracing::info!(
            "created the platform admin `admin` with the password in AILERON_ADMIN_PASSWORD"
        );
    }
    metastore.create_user(&record)?;
    metastore.set_member(TenantId::DEFAULT, UserName::ADMIN, Role::Admin)?;
    Ok(())
}

/// Writes a secret to a new file only its owner can read.
pub fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode above applies only to a new file.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_hash_is_a_real_argon2id_hash_that_matches_nothing() {
        // If it did not parse, a sign-in as a missing user would answer at once
        // and the timing would tell which names exist.
        let parsed = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!password::verify("", DUMMY_HASH));
        assert!(!password::verify("admin", DUMMY_HASH));
    }

    #[test]
    fn the_first_admin_is_made_once_with_an_owner_only_password_file() {
        let home = tempfile::tempdir().unwrap();
        let m = Metastore::in_memory().unwrap();
        bootstrap_admin(&m, home.path(), None).unwrap();
        let path = admin_password_path(home.path());
        let written = std::fs::read_to_string(&path).unwrap();
        let admin = m.user("admin").unwrap().unwrap();
        assert!(admin.platform_admin);
        assert!(password::verify(written.trim(), &admin.password_hash));
        assert_eq!(m.user_roles("admin").unwrap()[0].1, Role::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second start keeps the admin as it is.
        bootstrap_admin(&m, home.path(), Some("another password")).unwrap();
        assert_eq!(
            m.user("admin").unwrap().unwrap().password_hash,
            admin.password_hash
        );
    }

    #[tokio::test]
    async fn credentials_become_principals_until_revoked_expired_or_deleted() {
        let home = tempfile::tempdir().unwrap();
        let m = Metastore::in_memory().unwrap();
        bootstrap_admin(&m, home.path(), Some("admin password")).unwrap();
        let auth = Auth::new(m.clone()).unwrap();
        let refused = |r: Result<Principal, AuthError>| matches!(r, Err(AuthError::Refused(_)));

        let (session, p) = auth
            .sign_in("admin", "admin password", "10.0.0.1")
            .await
            .unwrap();
        assert!(p.platform_admin);
        let again = auth
            .authenticate(Credentials::Bearer(&session), "x")
            .await
            .unwrap();
        assert_eq!(again.actor, Actor::User(UserName::new("admin").unwrap()));
        assert!(refused(
            auth.sign_in("admin", "wrong", "10.0.0.1")
                .await
                .map(|(_, p)| p)
        ));
        assert!(refused(
            auth.sign_in("nobody", "admin password", "10.0.0.1")
                .await
                .map(|(_, p)| p)
        ));
        let basic = Credentials::Basic {
            user: "admin",
            password: "admin password",
        };
        assert!(auth.authenticate(basic, "x").await.is_ok());

        let new = api_token::generate().unwrap();
        let mut record = crate::metastore::ApiTokenRecord {
            id: new.id.clone(),
            tenant: Some(TenantId::default()),
            name: "ci".into(),
            role: Role::User,
            secret_sha256: new.secret_sha256,
            created_by: "admin".into(),
            created_at: Timestamp::now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            worker: false,
        };
        m.create_api_token(&record).unwrap();
        let p = auth
            .authenticate(Credentials::Bearer(&new.text), "x")
            .await
            .unwrap();
        assert_eq!(
            (p.platform_admin, p.role_in("default")),
            (false, Some(Role::User))
        );
        record.expires_at = Some(Timestamp::now() - jiff::SignedDuration::from_secs(1));
        m.update_api_token(&record).unwrap();
        assert!(refused(
            auth.authenticate(Credentials::Bearer(&new.text), "x").await
        ));
        record.expires_at = None;
        record.revoked_at = Some(Timestamp::now());
        m.update_api_token(&record).unwrap();
        assert!(refused(
            auth.authenticate(Credentials::Bearer(&new.text), "x").await
        ));

        // A second admin, so the first can go; the first's session dies with it.
        m.create_user(&UserRecord {
            username: UserName::new("root2").unwrap(),
            password_hash: password::hash("another one").unwrap(),
            platform_admin: true,
            created_at: Timestamp::now(),
            sessions_after: None,
        })
        .unwrap();
        m.delete_user("admin").unwrap();
        assert!(refused(
            auth.authenticate(Credentials::Bearer(&session), "x").await
        ));
    }

    #[tokio::test]
    async fn repeated_wrong_passwords_lock_the_name_out() {
        let home = tempfile::tempdir().unwrap();
        let m = Metastore::in_memory().unwrap();
        bootstrap_admin(&m, home.path(), Some("admin password")).unwrap();
        let auth = Auth::new(m).unwrap();
        for _ in 0..limiter::MAX_FAILURES {
            assert!(auth.sign_in("admin", "guess", "10.0.0.2").await.is_err());
        }
        // Now even the right password is refused for a while.
        assert!(matches!(
            auth.sign_in("admin", "admin password", "10.0.0.3").await,
            Err(AuthError::Locked(_))
        ));
    }
}
