//! The `aileron` command.
fn main() {}
