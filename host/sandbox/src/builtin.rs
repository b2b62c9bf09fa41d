//! The standard operators (noop, echo, sleep, fail, skip, branch, short_circuit,
//! wait_until, http_sensor), built from `plugins/` by this crate's build script and
//! embedded in the host.

include!(concat!(env!("OUT_DIR"), "/standard_plugins.rs"));
