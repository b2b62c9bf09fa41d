//! Locks that one panic cannot poison for everyone after it.
//!
//! The state behind these mutexes (leases, worker lists, live logs) is updated in
//! single steps, so it stays consistent even if a holder panicked; refusing every
//! later request because of that one panic would turn one bug into an outage.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// `lock()` that takes over a poisoned mutex instead of panicking.
pub trait LockExt<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.lock().is_err(), "the mutex is poisoned");
        *m.locked() += 1;
        assert_eq!(*m.locked(), 2);
    }
}
