//! Try tokens: HMAC-SHA256 signed claims that scope a remote worker's calls to one
//! dispatch of one TaskInstance try, and the scheduler key that signs them.
//!
//! A token is `v1.<claims>.<mac>`, where `<claims>` is the claims' JSON and `<mac>`
//! the HMAC-SHA256, under the [`ExecutionKey`], of the bytes `v1.<claims>`; both
//! are base64url without padding, so a token goes into an HTTP header or a Redis
//! field as is. The MAC covers the encoded text rather than re-serialized JSON, so
//! checking it never depends on how JSON is written, and the claims are parsed only
//! once the MAC has checked out.
//!
//! A token is defence in depth: what fences a stale worker is the scheduler's
//! attempt and lease check. The token keeps a worker to the try it was handed
//! (its attempt must match the route's) and only for a bounded time.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The format version, the token's first part. Another format gets another
/// prefix, so a token of another version is refused rather than misread.
const VERSION: &str = "v1";

/// Length of the key and of the MAC in bytes: SHA-256's output, which RFC 2104
/// recommends as the least key length for HMAC with it.
const KEY_BYTES: usize = 32;

/// How long a token stays valid after it is minted: 7 days. Long enough that a
/// try queued behind a long backlog, or a worker cut off over a weekend, still
/// holds a valid token (stale workers are stopped by the fencing, not by expiry);
/// short enough that a token copied out of Redis does not stay usable for good.
/// An entry whose token expired is acked and re-added with a fresh one.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a try token says: which try of which TaskInstance it is for, and until
/// when. On the wire `try_number` is `try` and `expires_at` is `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TryClaims {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// -1 for a task that is not mapped, as in the metastore's keys.
    pub map_index: i64,
    /// The try of the TaskInstance, 1 for the first.
    #[serde(rename = "try")]
    pub try_number: u32,
    /// The global attempt number of this dispatch: the fencing token, which must
    /// equal the `{attempt}` of the route the token is presented on.
    pub attempt: u64,
    /// The component to run, `sha256:<hex>`.
    pub digest: String,
    /// Unix time in seconds from which the token is no longer accepted.
    #[serde(rename = "exp")]
    pub expires_at: i64,
}

impl TryClaims {
    /// The `expires_at` of a token minted at `minted_at`: [`TOKEN_LIFETIME`] later.
    pub fn expiry(minted_at: jiff::Timestamp) -> i64 {
        // A const of 7 days always fits an i64.
        minted_at
            .as_second()
            .saturating_add(TOKEN_LIFETIME.as_secs() as i64)
    }
}

/// Why a token was refused. The API answers each with 403 and the worker gives up
/// the try; the variants tell the log what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format: wrong shape, version or encoding.
    #[error("malformed try token: {0}")]
    Malformed(&'static str),
    /// Well formed, but not signed with this scheduler's key, or altered since.
    #[error("try token signature does not match")]
    BadSignature,
    /// Signed and intact, but past its expiry.
    #[error("try token expired at {}", unix_time(*expires_at))]
    Expired { expires_at: i64 },
}

/// The scheduler's secret for signing try tokens: 32 random bytes, created once and
/// kept in the metastore so that tokens already handed out survive a restart.
///
/// `Debug` does not show it; [`to_hex`](ExecutionKey::to_hex) and `Serialize`
/// (a hex string) do, for storing it.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecutionKey([u8; KEY_BYTES]);

/// Why an execution key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an execution key must be 64 hex digits (32 bytes)")]
    InvalidHex,
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

impl ExecutionKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(ExecutionKey(bytes))
    }

    /// A key with these bytes (tests, and keys kept elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        ExecutionKey(bytes)
    }

    /// Parses the 64 hex digits [`to_hex`](ExecutionKey::to_hex) writes (either case).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0; KEY_BYTES];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::InvalidHex)?;
        Ok(ExecutionKey(bytes))
    }

    /// The key as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A token carrying `claims`, signed with this key.
    pub fn mint(&self, claims: &TryClaims) -> String {
        let json = serde_json::to_vec(claims).expect("claims are strings and numbers");
        let mut token = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let mac = self.mac().chain_update(token.as_bytes()).finalize();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(mac.into_bytes()));
        token
    }

    /// The claims of `token` if it was minted with this key, unaltered, and has not
    /// expired at `now`. The MAC is compared in constant time, and checked before
    /// anything in the claims is trusted or even parsed.
    pub fn verify(&self, token: &str, now: jiff::Timestamp) -> Result<TryClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(version), Some(claims), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        if version != VERSION {
            return Err(TokenError::Malformed("unknown version"));
        }
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        if mac.len() != KEY_BYTES {
            return Err(TokenError::Malformed("signature is not 32 bytes"));
        }
        let signed = &token[..version.len() + 1 + claims.len()];
        self.mac()
            .chain_update(signed.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed by us, so these only fail if the format changed under a key.
        let json = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        let claims: TryClaims = serde_json::from_slice(&json)
            .map_err(|_| TokenError::Malformed("claims are not the expected JSON"))?;
        if now.as_second() >= claims.expires_at {
            return Err(TokenError::Expired {
                expires_at: claims.expires_at,
            });
        }
        Ok(claims)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

impl fmt::Debug for ExecutionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExecutionKey(..)")
    }
}

impl Serialize for ExecutionKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ExecutionKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ExecutionKey::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Unix seconds as RFC 3339 where they are a representable time.
fn unix_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map_or_else(|_| format!("Unix time {secs}"), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    /// 2026-01-08T00:00:00Z.
    const EXP: i64 = 1_767_830_400;

    fn claims() -> TryClaims {
        TryClaims {
            tenant: "default".into(),
            dag_id: "etl".into(),
            run_id: "manual__2026-01-01T00:00:00+00:00".into(),
            task_id: "extract".into(),
            map_index: -1,
            try_number: 2,
            attempt: 81234,
            digest: format!("sha256:{}", "9f".repeat(32)),
            expires_at: EXP,
        }
    }

    fn key() -> ExecutionKey {
        ExecutionKey::from_bytes(std::array::from_fn(|i| i as u8))
    }

    /// Base64url of `text`, for building tokens by hand.
    fn b64(text: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test cases 1, 2, 3, 6 and 7 of RFC 4231 §4 (HMAC-SHA-256 column); 6 and 7
        // have keys longer than SHA-256's block, which HMAC hashes first.
        let cases: [(&[u8], &[u8], &str); 5] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &[0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            let mac = HmacSha256::new_from_slice(key)
                .unwrap()
                .chain_update(data)
                .finalize();
            assert_eq!(hex::encode(mac.into_bytes()), expected);
        }
    }

    #[test]
    fn a_minted_token_verifies_to_its_claims() {
        let key = key();
        let token = key.mint(&claims());
        assert!(token.starts_with("v1."), "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "not URL-safe: {token}"
        );
        assert_eq!(key.verify(&token, at(EXP - 1)).unwrap(), claims());
        let mapped = TryClaims {
            map_index: 7,
            ..claims()
        };
        assert_eq!(key.verify(&key.mint(&mapped), at(0)).unwrap(), mapped);
    }

    #[test]
    fn the_wire_format_is_fixed() {
        // Computed independently (Python's hmac, json and base64 modules), so a
        // change of format, field names or field order cannot go unnoticed.
        let claims_json = format!(
            r#"{{"tenant":"default","dag_id":"etl","run_id":"manual__2026-01-01T00:00:00+00:00","task_id":"extract","map_index":-1,"try":2,"attempt":81234,"digest":"sha256:{}","exp":1767830400}}"#,
            "9f".repeat(32)
        );
        let token = key().mint(&claims());
        let (signed, mac) = token.rsplit_once('.').unwrap();
        assert_eq!(signed, format!("v1.{}", b64(claims_json.as_bytes())));
        assert_eq!(mac, EXPECTED_MAC);
    }

    /// base64url(HMAC-SHA256(key 00 01 … 1f, `v1.<claims>`)) of [`claims`].
    const EXPECTED_MAC: &str = "2Icny3qTY9B8E6sVl_Pp-wUuTuC95XR48jyFA9w_GrA";

    #[test]
    fn altered_or_foreign_tokens_do_not_verify() {
        let key = key();
        let token = key.mint(&claims());
        let now = at(EXP - 1);
        let (_, claims_part, mac) = {
            let mut p = token.split('.');
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        };

        // Another attempt with the original MAC.
        let other = TryClaims {
            attempt: 81235,
            ..claims()
        };
        let forged = format!("v1.{}.{mac}", b64(&serde_json::to_vec(&other).unwrap()));
        assert_eq!(key.verify(&forged, now), Err(TokenError::BadSignature));

        // A changed MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(mac).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("v1.{claims_part}.{}", b64(&bytes));
        assert_eq!(key.verify(&flipped, now), Err(TokenError::BadSignature));

        // Another scheduler's key.
        let stranger = ExecutionKey::from_bytes([7; 32]);
        assert_eq!(stranger.verify(&token, now), Err(TokenError::BadSignature));

        // A forged token is refused as forged even when it is also expired: nothing
        // in unverified claims is looked at.
        assert_eq!(key.verify(&forged, at(EXP)), Err(TokenError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_signature_check() {
        let key = key();
        let token = key.mint(&claims());
        let (signed, mac) = token.rsplit_once('.').unwrap();
        let claims_part = signed.strip_prefix("v1.").unwrap();
        let malformed = |t: &str| match key.verify(t, at(0)) {
            Err(TokenError::Malformed(why)) => why,
            other => panic!("{t:?}: {other:?}"),
        };
        assert_eq!(malformed(""), "not three dot-separated parts");
        assert_eq!(malformed("v1"), "not three dot-separated parts");
        assert_eq!(malformed(signed), "not three dot-separated parts");
        assert_eq!(
            malformed(&format!("{token}.x")),
            "not three dot-separated parts"
        );
        assert_eq!(
            malformed(&format!("v2.{claims_part}.{mac}")),
            "unknown version"
        );
        assert_eq!(
            malformed(&format!("{signed}.{mac}=")),
            "signature is not base64url"
        );
        assert_eq!(
            malformed(&format!("{signed}.{}", b64(&[0; 31]))),
            "signature is not 32 bytes"
        );
        assert_eq!(
            malformed(&format!("{signed}.")),
            "signature is not 32 bytes"
        );
    }

    #[test]
    fn tokens_expire_at_their_exp() {
        let key = key();
        let token = key.mint(&claims());
        assert!(key.verify(&token, at(0)).is_ok());
        assert!(key.verify(&token, at(EXP - 1)).is_ok());
        let expired = TokenError::Expired { expires_at: EXP };
        assert_eq!(key.verify(&token, at(EXP)), Err(expired.clone()));
        assert_eq!(key.verify(&token, at(EXP + 86_400)), Err(expired.clone()));
        assert_eq!(
            expired.to_string(),
            "try token expired at 2026-01-08T00:00:00Z"
        );

        let minted = at(EXP);
        let expiry = TryClaims::expiry(minted);
        assert_eq!(expiry, EXP + 7 * 24 * 3600);
        let fresh = key.mint(&TryClaims {
            expires_at: expiry,
            ..claims()
        });
        assert!(key.verify(&fresh, minted).is_ok());
    }

    #[test]
    fn keys_are_random_and_kept_as_hex() {
        let a = ExecutionKey::generate().unwrap();
        let b = ExecutionKey::generate().unwrap();
        assert_ne!(a, b);
        let hex = a.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(ExecutionKey::from_hex(&hex).unwrap(), a);
        assert_eq!(ExecutionKey::from_hex(&hex.to_uppercase()).unwrap(), a);
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(66), &"g".repeat(64)] {
            assert!(
                matches!(ExecutionKey::from_hex(bad), Err(KeyError::InvalidHex)),
                "{bad:?}"
            );
        }
        // Serde writes the hex string; Debug never shows the key.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<ExecutionKey>(&json).unwrap(), a);
        assert!(serde_json::from_str::<ExecutionKey>("\"abc\"").is_err());
        assert_eq!(format!("{a:?}"), "ExecutionKey(..)");
        // A token of one key does not verify under another.
        let token = a.mint(&claims());
        assert_eq!(b.verify(&token, at(0)), Err(TokenError::BadSignature));
    }
}
