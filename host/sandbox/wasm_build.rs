//! Shared by `host/sandbox/build.rs` and `tests/build.rs` (each includes it with
//! `#[path]`): building a wasm32-wasip2 workspace with a nested `cargo build` and
//! handing its components to the outer build.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Builds the workspace at `workspace` (watching it and `also_watched` for changes)
/// into `target_dir`, and returns the folder holding its release components.
pub fn build(workspace: &Path, also_watched: &[PathBuf], target_dir: &Path) -> PathBuf {
    watch_sources(workspace);
    for dir in also_watched {
        watch_sources(dir);
    }
    build_wasm_workspace(&workspace.join("Cargo.toml"), target_dir);
    target_dir.join(WASM_TARGET).join("release")
}

/// Copies `component` into `dir` as `name` and returns the copy's path as a string
/// for `include_bytes!` or a `const`. Copies in OUT_DIR rather than the nested
/// build's outputs: deleting `target/wasm-*` then cannot leave the outer build
/// pointing at nothing while this script sees no reason to run again.
pub fn copy_out(component: &Path, dir: &Path, name: &str, member_hint: &str) -> String {
    fs::create_dir_all(dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
    let copy = dir.join(name);
    fs::copy(component, &copy).unwrap_or_else(|e| {
        fail(&format!(
            "the nested build succeeded but {} is missing ({e}); is {member_hint} a member of its workspace?",
            component.display()
        ))
    });
    copy.to_str()
        .unwrap_or_else(|| fail(&format!("{} is not UTF-8", copy.display())))
        .to_owned()
}

/// Asks cargo to rerun this script when anything under `dir` changes, except a
/// `target/` directory inside it: building `plugins/` by hand leaves one there, and
/// watching it would rebuild the host after every such build.
pub fn watch_sources(dir: &Path) {
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
pub fn build_wasm_workspace(manifest: &Path, target_dir: &Path) {
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
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
