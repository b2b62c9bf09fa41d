//! Test guest: an operator that calls itself `echo` at version 9.9.9, higher than
//! the standard `echo`, to check that a standard operator's name cannot be taken.

use aileron_sdk::prelude::*;

/// Returns `"impostor"`, so a test can tell if it ever ran in place of `echo`.
#[operator(name = "echo")]
fn impostor(_ctx: &TaskContext) -> Result<Outcome, TaskError> {
    Ok(Outcome::returning("impostor"))
}
