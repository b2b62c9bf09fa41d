//! The SDKs and project templates compiled into the binary, and writing them
//! into an operator project: an author never installs an SDK from a registry,
//! and the SDK a project builds with is always the one of the `aileron` that
//! runs it.

use anyhow::Context;
use rust_embed::RustEmbed;
use std::path::Path;

/// The Rust SDK crate and its macros (`sdk/`); it reads the WIT at
/// `../wit/operator.wit`, which [`Wit`] provides beside it.
#[derive(RustEmbed)]
#[folder = "../sdk/"]
#[include = "Cargo.toml"]
#[include = "src/**/*.rs"]
#[include = "macros/Cargo.toml"]
#[include = "macros/src/*"]
struct RustSdk;

/// The current operator WIT package.
#[derive(RustEmbed)]
#[folder = "../wit/"]
#[include = "operator.wit"]
struct Wit;

/// The Python SDK package (`sdk/python/aileron`), with its WIT (the link to
/// `wit/operator.wit` is followed, so the copy holds the file).
#[derive(RustEmbed)]
#[folder = "../sdk/python/aileron/"]
#[exclude = "*.pyc"]
#[exclude = "__pycache__/*"]
struct PythonSdk;

/// The JavaScript SDK package, as npm would install it.
#[derive(RustEmbed)]
#[folder = "../sdk/js/"]
#[include = "package.json"]
#[include = "README.md"]
#[include = "*.js"]
#[include = "*.d.ts"]
#[include = "src/**/*.rs"]
#[include = "bin/*"]
#[exclude = "node_modules/*"]
#[exclude = "test/*"]
struct JsSdk;

/// `plugins new`'s project templates, one folder per language.
#[derive(RustEmbed)]
#[folder = "src/cli/templates/"]
struct Templates;

/// Where a project keeps the SDKs the CLI writes (git-ignored).
pub const SDK_DIR: &str = ".aileron/sdk";

/// Writes the SDK of `lang` into `project`: Rust and Python under
/// [`SDK_DIR`] (with the WIT), JavaScript as `node_modules/aileron-sdk`.
/// What was there before is replaced whole, so no file of an older SDK stays.
pub fn materialize(project: &Path, lang: super::Lang) -> anyhow::Result<()> {
    let sdk = project.join(SDK_DIR);
    match lang {
        super::Lang::Rust => {
            write_all::<RustSdk>(&sdk.join("rust"))?;
            write_all::<Wit>(&sdk.join("wit"))
        }
        super::Lang::Python => write_all::<PythonSdk>(&sdk.join("python/aileron")),
        super::Lang::Js => {
            write_all::<Wit>(&sdk.join("wit"))?;
            write_all::<JsSdk>(&project.join("node_modules/aileron-sdk"))
        }
    }
}

/// Writes the template of `lang` into `dir`, with `{{name}}`, `{{ident}}` and
/// `{{aileron_version}}` filled in (in file names too).
pub fn write_template(dir: &Path, lang: super::Lang, name: &str) -> anyhow::Result<Vec<String>> {
    let ident = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{ident}}", &ident)
            .replace("{{aileron_version}}", env!("CARGO_PKG_VERSION"))
    };
    let prefix = format!("{}/", lang.template());
    let mut written = Vec::new();
    for path in Templates::iter() {
        let Some(relative) = path.strip_prefix(&prefix) else {
            continue;
        };
        let file = Templates::get(&path).expect("listed by iter");
        let text = std::str::from_utf8(&file.data)
            .with_context(|| format!("template {path} is not UTF-8"))?;
        let relative = fill(relative);
        write(&dir.join(&relative), fill(text).as_bytes())?;
        written.push(relative);
    }
    written.sort();
    Ok(written)
}

fn write_all<E: RustEmbed>(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot clear {}", dir.display())),
    }
    for path in E::iter() {
        let file = E::get(&path).expect("listed by iter");
        write(&dir.join(path.as_ref()), &file.data)?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the SDKs need is embedded, and nothing of the development
    /// trees (tests, installed packages, bytecode).
    #[test]
    fn the_sdks_are_embedded_whole_and_only_them() {
        let names = |it: Box<dyn Iterator<Item = std::borrow::Cow<'static, str>>>| {
            it.map(|p| p.into_owned()).collect::<Vec<_>>()
        };
        let rust = names(Box::new(RustSdk::iter()));
        for needed in ["src/lib.rs", "src/http/wasi.rs"] {
            assert!(rust.contains(&needed.to_owned()), "{needed}: {rust:?}");
        }
        assert!(rust.contains(&"macros/src/lib.rs".to_owned()), "{rust:?}");
        assert!(
            !rust
                .iter()
                .any(|p| p.starts_with("python") || p.starts_with("js"))
        );
        let python = names(Box::new(PythonSdk::iter()));
        for needed in [
            "__init__.py",
            "componentize-py.toml",
            "wit/deps/operator/operator.wit",
        ] {
            assert!(python.contains(&needed.to_owned()), "{needed}: {python:?}");
        }
        assert!(!python.iter().any(|p| p.ends_with(".pyc")), "{python:?}");
        let js = names(Box::new(JsSdk::iter()));
        for needed in [
            "package.json",
            "index.js",
            "testing.js",
            "bin/aileron-build.mjs",
        ] {
            assert!(js.contains(&needed.to_owned()), "{needed}: {js:?}");
        }
        assert!(
            !js.iter()
                .any(|p| p.starts_with("node_modules") || p.starts_with("test/"))
        );
        // The WIT the Python SDK carries is the current one, not a stale copy.
        let theirs = PythonSdk::get("wit/deps/operator/operator.wit").unwrap();
        assert_eq!(theirs.data, Wit::get("operator.wit").unwrap().data);
    }
}
