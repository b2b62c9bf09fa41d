//! A cap on failed sign-ins, per user name and per client address, so a
//! password cannot be guessed at the speed of the network (argon2 already makes
//! each guess cost tens of milliseconds of the server's time).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per window before further attempts are refused outright.
pub const MAX_FAILURES: u32 = 10;
/// The window: a locked-out name or address may try again this long after its
/// first failure.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Entries kept at most; past it, expired ones are dropped, then the map is
/// cleared (forgetting failures is the safe direction for availability, and an
/// attacker needs this many distinct names or addresses to force it).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    /// `Err(seconds to wait)` while any of `keys` is locked out.
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if let Some((since, n)) = map.get(k)
                && *n >= MAX_FAILURES
                && now.duration_since(*since) < WINDOW
            {
                return Err((WINDOW - now.duration_since(*since)).as_secs().max(1));
            }
        }
        Ok(())
    }

    pub fn fail(&self, keys: &[String], now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert((now, 0));
            if now.duration_since(e.0) >= WINDOW {
                *e = (now, 0);
            }
            e.1 += 1;
        }
    }

    /// A success forgets the name's failures (not the address's: one good
    /// password must not reset a guessing run against other names).
    pub fn succeed(&self, user_key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_locked_after_the_failures_and_free_after_the_window() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let keys = ["user:ada".to_owned(), "addr:10.0.0.1".to_owned()];
        for _ in 0..MAX_FAILURES {
            assert!(l.check(&keys, t0).is_ok());
            l.fail(&keys, t0);
        }
        assert!(l.check(&keys, t0).is_err());
        assert!(l.check(&["addr:10.0.0.1".to_owned()], t0).is_err());
        assert!(l.check(&["user:bob".to_owned()], t0).is_ok());
        assert!(l.check(&keys, t0 + WINDOW).is_ok());
    }
}
