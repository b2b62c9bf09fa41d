//! Passwords: kept only as argon2id hashes, checked in constant time by argon2,
//! and generated for the first admin when none is given.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted when one is set (the generated ones are longer).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted: argon2 takes any length, but hashing a megabyte on every
/// sign-in attempt is a cheap way to burn the server's CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The argon2id PHC string of `password`, with a fresh random salt and the
/// crate's default cost (19 MiB, 2 passes: OWASP's recommendation), which takes
/// some tens of milliseconds here: slow for a guesser, fine for a sign-in.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A malformed stored hash
/// matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && Argon2::default()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
}

/// A random password of 24 characters from an alphabet without look-alikes
/// (about 138 bits), for the first admin.
pub fn generate() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    // 256 is not a multiple of 57, so take only bytes below the largest
    // multiple, drawing again for the rest, to keep every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(24);
    let mut pool = bytes.to_vec();
    while out.len() < 24 {
        match pool.pop() {
            Some(b) if (b as usize) < limit => {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char)
            }
            Some(_) => {}
            None => {
                let mut more = [0u8; 24];
                getrandom::fill(&mut more)?;
                pool.extend_from_slice(&more);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a phc string"));
        assert!(matches!(hash("short"), Err(PasswordError::TooShort)));
        assert!(matches!(
            hash(&"x".repeat(2000)),
            Err(PasswordError::TooLong)
        ));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, generate().unwrap());
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() && !"lIO01".contains(c))
        );
    }
}
