//! Paths of the test guest components, built from `tests/guests/` by `tests/build.rs`
//! (`TESTKIT`, `VERSIONED_V1`, `VERSIONED_V2`, `NOT_AN_OPERATOR`); what each guest
//! does is the contract in tests/guests/README.md.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
