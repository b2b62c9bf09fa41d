//! Builds the test guests in `tests/guests/` as wasm32-wasip2 components and writes
//! `$OUT_DIR/guests.rs`, one `pub const NAME: &str = "/abs/path/name.wasm";` per
//! guest, for `harness/guests.rs` to include.
//!
//! `tests/guests/` is a workspace of its own (it targets wasm32-wasip2), so this
//! script runs a nested `cargo build` on it with a target directory of its own.
//! `host/sandbox/build.rs` builds the standard operators the same way; keep the
//! two in step.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

/// The guests: (constant name, component file stem, what the constant documents).
/// tests/guests/README.md is the contract of each.
const GUESTS: [(&str, &str, &str); 4] = [
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
        "NOT_AN_OPERATOR",
        "not_an_operator",
        "A plain WASI command component that does not implement the operator world.",
    ),
];

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .join("..")
        .canonicalize()
        .expect("tests/ sits one level below the repository root");

    let guests = repo.join("tests").join("guests");
    for watched in [&guests, &repo.join("sdk"), &repo.join("wit")] {
        watch_sources(watched);
    }

    let target_dir = repo.join("target").join("wasm-guests");
    build_wasm_workspace(&guests.join("Cargo.toml"), &target_dir);

    // Hand out copies kept in OUT_DIR rather than the nested build's outputs, so
    // that deleting target/wasm-guests cannot leave the tests pointing at nothing
    // while this script sees no reason to run again.
    let built = target_dir.join(WASM_TARGET).join("release");
    let copies = out_dir.join("guests");
    fs::create_dir_all(&copies)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", copies.display())));
    let mut source = String::new();
    for (constant, stem, doc) in GUESTS {
        let component = built.join(format!("{stem}.wasm"));
        let copy = copies.join(format!("{stem}.wasm"));
        fs::copy(&component, &copy).unwrap_or_else(|e| {
            fail(&format!(
                "the nested build succeeded but {} is missing ({e}); is tests/guests/{stem} a member of tests/guests/Cargo.toml?",
                component.display()
            ))
        });
        let path = copy
            .to_str()
            .unwrap_or_else(|| fail(&format!("{} is not UTF-8", copy.display())));
        source.push_str(&format!(
            "/// {doc}\npub const {constant}: &str = {path:?};\n"
        ));
    }
    let generated = out_dir.join("guests.rs");
    fs::write(&generated, source)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", generated.display())));
}

/// Asks cargo to rerun this script when anything under `dir` changes, except a
/// `target/` directory inside it: building `tests/guests/` by hand leaves one there, and
/// watching it would rebuild the host after every such build.
fn watch_sources(dir: &Path) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
        if entry.file_name() == "target" {
            continue;
        }
        // A directory is scanned recursively by cargo.
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
}

/// Runs `cargo build --release --target wasm32-wasip2` on the workspace at
/// `manifest`, failing this build with the nested cargo's output if it fails.
fn build_wasm_workspace(manifest: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            // Progress lines would bury the error in the failure message below.
            "--quiet",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(manifest.parent().expect("a manifest path has a parent"));
    for (key, _) in env::vars_os() {
        if is_outer_build_setting(&key) {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run cargo for {}: {e}", manifest.display())));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("may not be installed") {
            format!("\nhint: install the target with `rustup target add {WASM_TARGET}`")
        } else {
            String::new()
        };
        fail(&format!(
            "building {} for {WASM_TARGET} failed:\n{stderr}{hint}",
            manifest.display()
        ));
    }
}

/// Whether `key` is an environment variable the outer cargo set for this build
/// (or for the host target) that would misdirect the nested one: its target
/// directory and triple, flags and wrappers meant for host code (`cargo clippy`
/// sets `RUSTC_WORKSPACE_WRAPPER`, coverage tools set `RUSTFLAGS`), its jobserver,
/// and the package, profile and cfg values it describes this build script with.
///
/// Settings of the user's environment that apply to any build (registry, network,
/// `CARGO_HOME`, job count, terminal) are kept, as is `RUSTC`: the nested build
/// should use the very compiler the outer one does.
fn is_outer_build_setting(key: &OsStr) -> bool {
    const KEPT_CARGO: [&str; 2] = ["CARGO_HOME", "CARGO_BUILD_JOBS"];
    const KEPT_CARGO_PREFIXES: [&str; 5] = [
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVED: [&str; 15] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "NUM_JOBS",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
    ];
    let Some(key) = key.to_str() else {
        return false;
    };
    if key.starts_with("__CARGO") {
        return true;
    }
    if key.starts_with("CARGO_") {
        return !KEPT_CARGO.contains(&key)
            && !KEPT_CARGO_PREFIXES
                .iter()
                .any(|prefix| key.starts_with(prefix));
    }
    REMOVED.contains(&key)
}

/// Fails the build with `message`; cargo shows a build script's stderr on failure.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
