//! Session tokens: JWTs (HS256) that `POST /auth/token` and the UI's sign-in
//! issue, as Airflow 3 does. Only one header is accepted, `{"alg":"HS256",…}`:
//! a token naming any other algorithm (`none` above all) is refused before its
//! signature is looked at, so there is no algorithm confusion to exploit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a session token is good for: a working day, and Airflow 3's default
/// `jwt_expiration_time`. Changing a password ends every session at once.
pub const SESSION_SECONDS: i64 = 24 * 3600;
/// Longest token looked at: ours are under 300 bytes.
const MAX_TOKEN_BYTES: usize = 4096;
const ISSUER: &str = "aileron";

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user's name.
    pub sub: String,
    /// Issued at and expiry, seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Why a presented session token is refused. Each says what was wrong without
/// saying anything about the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

/// A token for `user`, valid from `now` (seconds since the epoch) for
/// [`SESSION_SECONDS`].
pub fn issue(key: &[u8; 32], user: &str, now: i64) -> String {
    let claims = SessionClaims {
        sub: user.to_owned(),
        iat: now,
        exp: now + SESSION_SECONDS,
        iss: ISSUER.to_owned(),
    };
    sign(key, &claims)
}

/// Signs any claims (tests use it for expired tokens).
pub fn sign(key: &[u8; 32], claims: &SessionClaims) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// The claims of a token signed with `key` and not expired at `now`.
pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<SessionClaims, SessionError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(SessionError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionError::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header: Header = B64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(SessionError::Malformed)?;
    if header.alg != "HS256" || header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(SessionError::Algorithm);
    }
    let sig = B64.decode(sig).map_err(|_| SessionError::Malformed)?;
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    m.verify_slice(&sig).map_err(|_| SessionError::Signature)?;
    let claims: SessionClaims = B64
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(SessionError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(SessionError::Malformed);
    }
    if now >= claims.exp {
        return Err(SessionError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_token_verifies_until_it_expires() {
        let t = issue(&KEY, "ada", 1_000);
        let c = verify(&KEY, &t, 1_001).unwrap();
        assert_eq!((c.sub.as_str(), c.exp), ("ada", 1_000 + SESSION_SECONDS));
        assert_eq!(
            verify(&KEY, &t, 1_000 + SESSION_SECONDS),
            Err(SessionError::Expired)
        );
        assert_eq!(verify(&[8; 32], &t, 1_001), Err(SessionError::Signature));
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let t = issue(&KEY, "ada", 1_000);
        let (head, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        // Another user's name under the same signature.
        let forged = B64.encode(br#"{"sub":"admin","iat":1000,"exp":99999999999,"iss":"aileron"}"#);
        assert_eq!(
            verify(&KEY, &format!("{head}.{forged}.{sig}"), 1_001),
            Err(SessionError::Signature)
        );
        // `alg: none`, with and without a signature.
        let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        for token in [
            format!("{none}.{forged}."),
            format!("{none}.{forged}.{sig}"),
        ] {
            assert_eq!(verify(&KEY, &token, 1_001), Err(SessionError::Algorithm));
        }
        let rs = B64.encode(br#"{"alg":"RS256"}"#);
        assert_eq!(
            verify(&KEY, &format!("{rs}.{forged}.{sig}"), 1_001),
            Err(SessionError::Algorithm)
        );
        for junk in ["", "a.b", "a.b.c.d", "...", &"x".repeat(5000), "%%.%%.%%"] {
            assert_eq!(
                verify(&KEY, junk, 1_001),
                Err(SessionError::Malformed),
                "{junk}"
            );
        }
    }
}
