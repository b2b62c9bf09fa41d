//! Builds the standard operators in `plugins/` as wasm32-wasip2 components and
//! embeds them: writes `$OUT_DIR/standard_plugins.rs` with `STANDARD_PLUGINS`, one
//! `(operator name, component bytes)` pair per operator, for
//! `include!(concat!(env!("OUT_DIR"), "/standard_plugins.rs"))`.
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
const STANDARD_PLUGINS: [&str; 6] = ["noop", "echo", "sleep", "fail", "skip", "branch"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("host/sandbox sits two levels below the repository root");

    let built = wasm_build::build(
        &repo.join("plugins"),
        &[repo.join("sdk"), repo.join("wit")],
        &repo.join("target").join("wasm-plugins"),
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
}
