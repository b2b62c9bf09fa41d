//! API tokens of service accounts: `ail_<id>_<secret>`, shown once when made.
//! The id finds the record; the secret is kept only as its SHA-256 and compared
//! in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

const PREFIX: &str = "ail_";

/// A freshly made token: the text to hand over once, its id and the hash to keep.
pub struct NewToken {
    pub text: String,
    pub id: String,
    pub secret_sha256: String,
}

pub fn generate() -> Result<NewToken, getrandom::Error> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex::encode(id);
    let secret = B64.encode(secret);
    Ok(NewToken {
        text: format!("{PREFIX}{id}_{secret}"),
        secret_sha256: digest(&secret),
        id,
    })
}

/// `(id, secret)` of a text shaped like one of our tokens.
pub fn parse(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() == 43)
        .then_some((id, secret))
}

/// Whether `secret` is the one whose hash was kept.
pub fn matches(secret: &str, kept_sha256: &str) -> bool {
    let presented = digest(secret);
    // Constant time: the comparison must not tell how many leading characters
    // of the hash were right.
    presented.len() == kept_sha256.len()
        && presented
            .bytes()
            .zip(kept_sha256.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_and_matches_its_kept_hash_only() {
        let t = generate().unwrap();
        let (id, secret) = parse(&t.text).unwrap();
        assert_eq!(id, t.id);
        assert!(matches(secret, &t.secret_sha256));
        assert!(!matches("x", &t.secret_sha256));
        assert!(!t.secret_sha256.contains(secret));
        for bad in ["", "ail_", "ail_zz_yy", "tok_0123456789abcdef_x", "a.b.c"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
