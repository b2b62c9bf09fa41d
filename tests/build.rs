//! Builds the test guests in `tests/guests/` as wasm32-wasip2 components and writes
//! `$OUT_DIR/guests.rs`, one `pub const NAME: &str = "/abs/path/name.wasm";` per
//! guest, for `harness/guests.rs` to include.
//!
//! `tests/guests/` is a workspace of its own (it targets wasm32-wasip2), so this
//! script runs a nested `cargo build` on it, with the code `host/sandbox/build.rs`
//! uses for the standard operators.

#[path = "../host/sandbox/wasm_build.rs"]
mod wasm_build;

use std::env;
use std::fs;
use std::path::PathBuf;
use wasm_build::fail;

/// The guests: (constant name, component file stem, what the constant documents).
/// tests/guests/README.md is the contract of each.
const GUESTS: [(&str, &str, &str); 5] = [
    (
        "TESTKIT",
        "testkit",
        "Operator `testkit` 0.1.0: its `mode` param selects a hostile, buggy or probing behaviour.",
    ),
    (
        "VERSIONED_V1",
        "versioned_v1",
        "Operator `versioned` 1.0.0: returns `\"1.0.0\"`.",
    ),
    (
        "VERSIONED_V2",
        "versioned_v2",
        "Operator `versioned` 2.0.0: returns `\"2.0.0\"`.",
    ),
    (
        "IMPOSTOR_ECHO",
        "impostor_echo",
        "Operator `echo` 9.9.9: claims a standard operator's name; returns `\"impostor\"`.",
    ),
    (
        "NOT_AN_OPERATOR",
        "not_an_operator",
        "A plain WASI command component that does not implement the operator world.",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .join("..")
        .canonicalize()
        .expect("tests/ sits one level below the repository root");

    let built = wasm_build::build(
        &repo.join("tests").join("guests"),
        &[repo.join("sdk"), repo.join("wit")],
        &repo.join("target").join("wasm-guests"),
    );
    let copies = out_dir.join("guests");
    let mut source = String::new();
    for (constant, stem, doc) in GUESTS {
        let path = wasm_build::copy_out(
            &built.join(format!("{stem}.wasm")),
            &copies,
            &format!("{stem}.wasm"),
            &format!("tests/guests/{stem}"),
        );
        source.push_str(&format!(
            "/// {doc}\npub const {constant}: &str = {path:?};\n"
        ));
    }
    let generated = out_dir.join("guests.rs");
    fs::write(&generated, source)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", generated.display())));
}
