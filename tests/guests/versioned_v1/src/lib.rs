//! Test guest: operator `versioned` at version 1.0.0 (the crate's version), which
//! returns its version so a test can tell which of two loaded versions ran.

use aileron_sdk::prelude::*;

/// Returns its own version as its return value.
#[operator(name = "versioned")]
fn versioned(_ctx: &TaskContext) -> Result<Outcome, TaskError> {
    Ok(Outcome::returning(env!("CARGO_PKG_VERSION")))
}
