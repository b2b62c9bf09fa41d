//! Builds the standard operators in `plugins/` as wasm32-wasip2 components and
//! embeds them: writes `$OUT_DIR/standard_plugins.rs` with `STANDARD_PLUGINS`, one
//! `(operator name, component bytes)` pair per operator, for
//! `include!(concat!(env!("OUT_DIR"), "/standard_plugins.rs"))`.
//!
//! Also builds this crate's test guests (`tests/guests/`) and writes
//! `$OUT_DIR/test_guests.rs`, one `pub const NAME: &str = "/abs/path.wasm";` per
//! guest, for `tests/sandbox.rs`. They are not embedded in the library.
//!
//! `plugins/` is a workspace of its own (it targets wasm32-wasip2, this one the
//! host), so this script runs a nested `cargo build` on it (see `wasm_build.rs`,
//! shared with `tests/build.rs`).

#[path = "wasm_build.rs"]
mod wasm_build;

use std::env;
use std::fs;
use std::path::PathBuf;
use wasm_build::fail;

/// The standard operators, in the order the host lists them. Operator `x` is the
/// crate `aileron-op-x` in `plugins/x/`, whose component is `aileron_op_x.wasm`.
const STANDARD_PLUGINS: [&str; 9] = [
    "noop",
    "echo",
    "sleep",
    "fail",
    "skip",
    "branch",
    "short_circuit",
    "wait_until",
    "http_sensor",
];

/// This crate's test guests: (constant name, component file stem).
const TEST_GUESTS: [(&str, &str); 2] = [
    ("OPERATOR_V0_1", "operator_v0_1"),
    ("OPERATOR_V0_2", "operator_v0_2"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("host/sandbox sits two levels below the repository root");

    let target_dir = repo.join("target").join("wasm-plugins");
    let built = wasm_build::build(
        &repo.join("plugins"),
        &[repo.join("sdk"), repo.join("wit")],
        &target_dir,
    );
    let embedded = out_dir.join("standard_plugins");
    let entries: Vec<String> = STANDARD_PLUGINS
        .iter()
        .map(|name| {
            let path = wasm_build::copy_out(
                &built.join(format!("aileron_op_{name}.wasm")),
                &embedded,
                &format!("{name}.wasm"),
                &format!("plugins/{name}"),
            );
            format!("({name:?}, include_bytes!({path:?}))")
        })
        .collect();
    let source = format!(
        "/// The standard operators, built from `plugins/`: (operator name, component bytes).\n\
         pub static STANDARD_PLUGINS: &[(&str, &[u8])] = &[{}];\n",
        entries.join(", ")
    );
    let generated = out_dir.join("standard_plugins.rs");
    fs::write(&generated, source)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", generated.display())));

    let guests = wasm_build::build(&manifest_dir.join("tests").join("guests"), &[], &target_dir);
    let copies = out_dir.join("test_guests");
    let mut source = String::new();
    for (constant, stem) in TEST_GUESTS {
        let path = wasm_build::copy_out(
            &guests.join(format!("{stem}.wasm")),
            &copies,
            &format!("{stem}.wasm"),
            &format!("host/sandbox/tests/guests/{stem}"),
        );
        source.push_str(&format!("pub const {constant}: &str = {path:?};\n"));
    }
    let generated = out_dir.join("test_guests.rs");
    fs::write(&generated, source)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", generated.display())));
}
