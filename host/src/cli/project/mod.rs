//! `aileron plugins new|build|test`: operator projects in Rust, Python and
//! JavaScript, from a template to a checked component. The language's own
//! toolchain does the work (cargo, componentize-py, componentize-js, pinned
//! in each project's manifest); this module writes the SDK in first, runs the
//! tool, and checks what it built the way `plugins add` would.

mod embedded;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The languages a project may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn template(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The language of the project in `dir`, by its manifest.
    fn of(dir: &Path) -> anyhow::Result<Self> {
        let found = [
            ("Cargo.toml", Lang::Rust),
            ("pyproject.toml", Lang::Python),
            ("package.json", Lang::Js),
        ]
        .into_iter()
        .find(|(manifest, _)| dir.join(manifest).is_file());
        match found {
            Some((_, lang)) => Ok(lang),
            None => bail!(
                "{} has no Cargo.toml, pyproject.toml or package.json: not an operator project \
                 (`aileron plugins new NAME --lang rust|python|js` makes one)",
                dir.display()
            ),
        }
    }
}

/// `plugins new`: a ready project in `dir` (default `./NAME`).
pub fn new(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if let Some(problem) = aileron_sandbox::operator_name_problem(name) {
        bail!("cannot make operator `{name}`: {problem}");
    }
    if let Some(why) = name_clash(name, lang) {
        bail!(
            "cannot make operator `{name}` in {}: {why}",
            lang.template()
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let files = embedded::write_template(&dir, lang, name)?;
    embedded::materialize(&dir, lang)?;
    println!(
        "Made {} operator `{name}` in {}:",
        lang.template(),
        dir.display()
    );
    for file in files {
        println!("  {file}");
    }
    let setup = match lang {
        Lang::Rust => "rustup target add wasm32-wasip2",
        Lang::Python => {
            "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1 pytest==9.2.0"
        }
        Lang::Js => "npm install",
    };
    println!("Next, in {} (its README says more):", dir.display());
    for step in [
        setup,
        "aileron plugins test",
        "aileron plugins build",
        &format!("aileron plugins add dist/{name}.wasm"),
    ] {
        println!("  {step}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Names a project cannot take though the host would accept them: the
/// template makes the name a Python module or a Rust function, and a keyword,
/// the SDK's own name or a dependency's would break the build.
fn name_clash(name: &str, lang: Lang) -> Option<&'static str> {
    // Keywords, and the modules the SDK and its tests import, which a project
    // module of the same name would hide (the project comes first on the path).
    const PYTHON: &[&str] = &[
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
        "json",
        "typing",
        "dataclasses",
        "enum",
        "inspect",
        "logging",
        "datetime",
        "re",
        "types",
        "traceback",
        "functools",
        "collections",
        "contextlib",
        "os",
        "sys",
        "gc",
        "math",
        "time",
        "abc",
        "pytest",
        "test",
    ];
    // Strict and reserved keywords, and the crates the template uses.
    const RUST: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "fn", "for", "if",
        "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "static", "struct", "super", "trait", "type", "unsafe", "use", "where", "while", "async",
        "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
        "typeof", "unsized", "virtual", "yield", "try", "gen", "serde", "schemars", "test", "core",
        "std", "alloc",
    ];
    let ident = name.replace('-', "_");
    if ident == "aileron" || ident.starts_with("aileron_") {
        return Some("it would hide the Aileron SDK");
    }
    let words = match lang {
        Lang::Python => PYTHON,
        Lang::Rust => RUST,
        Lang::Js => return None,
    };
    words
        .contains(&ident.as_str())
        .then_some("it is a keyword or a module the project needs")
}

/// `plugins build`: the component at `dist/<ident>.wasm`, checked.
pub fn build(dir: &Path, home: &super::HomeArgs) -> anyhow::Result<ExitCode> {
    let lang = Lang::of(dir)?;
    embedded::materialize(dir, lang)?;
    let name = name_of(dir, lang)?;
    let out = dir.join("dist").join(format!("{name}.wasm"));
    std::fs::create_dir_all(dir.join("dist"))?;
    let relative_out = format!("dist/{name}.wasm");
    let status = match lang {
        Lang::Rust => {
            let status = run(
                Command::new("cargo").args(["build", "--release", "--target", "wasm32-wasip2"]),
                dir,
                "cargo (https://rustup.rs, then `rustup target add wasm32-wasip2`)",
            )?;
            if status {
                let built = cargo_target_dir(dir)
                    .join("wasm32-wasip2/release")
                    .join(format!("{}.wasm", rust_lib_name(dir)?));
                std::fs::copy(&built, &out)
                    .with_context(|| format!("cargo built no {}", built.display()))?;
            }
            status
        }
        Lang::Python => run(
            python(dir)
                .args(["-m", "aileron", "build", "-o", &relative_out])
                .env("PYTHONPATH", format!("{}/python", embedded::SDK_DIR)),
            dir,
            "python3 with componentize-py (see the project's README)",
        )?,
        Lang::Js => run(
            Command::new("node").args([
                "node_modules/aileron-sdk/bin/aileron-build.mjs",
                "--project",
                ".",
                "--wit",
                &format!("{}/wit", embedded::SDK_DIR),
                "--out",
                &relative_out,
            ]),
            dir,
            "node (and `npm install` in the project for its pinned toolchain)",
        )?,
    };
    if !status {
        bail!("the build failed (its output is above)");
    }
    check(&out, home)?;
    Ok(ExitCode::SUCCESS)
}

/// `plugins test`: the project's own tests, against the language's test host.
pub fn test(dir: &Path) -> anyhow::Result<ExitCode> {
    let lang = Lang::of(dir)?;
    embedded::materialize(dir, lang)?;
    let passed = match lang {
        Lang::Rust => run(Command::new("cargo").arg("test"), dir, "cargo")?,
        Lang::Python => run(
            python(dir).args(["-m", "pytest", "-q"]),
            dir,
            "python3 with pytest (see the project's README)",
        )?,
        Lang::Js => run(Command::new("node").arg("--test"), dir, "node")?,
    };
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks the component implements the operator world, as `plugins add`
/// will (compiling it into HOME's cache, so the add that follows is quick).
fn check(component: &Path, home: &super::HomeArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(component)
        .with_context(|| format!("the build wrote no {}", component.display()))?;
    let cache_dir = (home.cache_dir.clone()).unwrap_or_else(|| home.home().join("cache"));
    let sandbox = aileron_sandbox::Sandbox::new(aileron_sandbox::SandboxConfig {
        cache_dir: Some(cache_dir),
        max_concurrent: 2,
        // Only this component is looked at.
        load_builtin: false,
        ..aileron_sandbox::SandboxConfig::default()
    })?;
    let meta = sandbox
        .registry()
        .inspect(&bytes)
        .with_context(|| format!("{} is not a usable operator", component.display()))?;
    println!(
        "Built {}: operator {}@{} ({}), {:.1} MiB, {}",
        component.display(),
        meta.name,
        meta.version,
        meta.world,
        meta.size as f64 / f64::from(1 << 20),
        meta.digest
    );
    println!(
        "Add it with: aileron plugins add {} (or `aileron plugins publish` to a server)",
        component.display()
    );
    Ok(())
}

/// Runs `command` in `dir` with its output shown; whether it succeeded.
fn run(command: &mut Command, dir: &Path, what: &str) -> anyhow::Result<bool> {
    let program = command.get_program().to_string_lossy().into_owned();
    match command.current_dir(dir).status() {
        Ok(status) => Ok(status.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("`{program}` was not found: this needs {what}")
        }
        Err(e) => Err(e).with_context(|| format!("cannot run `{program}`")),
    }
}

/// The project's virtualenv's Python if it has one, else `python3`.
fn python(dir: &Path) -> Command {
    let venv = dir.join(".venv/bin/python");
    Command::new(if venv.is_file() {
        venv.into_os_string()
    } else {
        "python3".into()
    })
}

/// Where cargo puts a project's build: `CARGO_TARGET_DIR` or `target/`.
fn cargo_target_dir(dir: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => dir.join(target),
        None => dir.join("target"),
    }
}

/// The name the component file takes (`dist/<name>.wasm`): the project's
/// name in its manifest (`[package]`, `[project]` or `"name"`), which
/// `plugins new` sets to the operator's name.
fn name_of(dir: &Path, lang: Lang) -> anyhow::Result<String> {
    let name = match lang {
        Lang::Rust => toml_str(dir, "Cargo.toml", &["package", "name"])?,
        Lang::Python => toml_str(dir, "pyproject.toml", &["project", "name"])?,
        Lang::Js => {
            let text = read(dir, "package.json")?;
            let manifest: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", dir.join("package.json").display()))?;
            manifest["name"].as_str().map(str::to_owned)
        }
    };
    let Some(name) = name else {
        bail!("{}'s manifest names no project", dir.display());
    };
    // A scoped npm name (`@team/op`) keeps its last part; anything a file
    // name should not hold becomes `_`.
    let last = name.rsplit('/').next().unwrap_or(&name);
    Ok(last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// The file name cargo gives a Rust project's component: its `[lib]` name, or
/// its package name with `-` as `_`.
fn rust_lib_name(dir: &Path) -> anyhow::Result<String> {
    let lib = toml_str(dir, "Cargo.toml", &["lib", "name"])?;
    let package = toml_str(dir, "Cargo.toml", &["package", "name"])?;
    match lib.or(package) {
        Some(name) => Ok(name.replace('-', "_")),
        None => bail!("{}'s Cargo.toml names no package", dir.display()),
    }
}

fn read(dir: &Path, file: &str) -> anyhow::Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The string at `keys` in the TOML file `file` of `dir`, if it has one.
fn toml_str(dir: &Path, file: &str, keys: &[&str]) -> anyhow::Result<Option<String>> {
    let table: toml::Table = read(dir, file)?
        .parse()
        .with_context(|| format!("{} is not TOML", dir.join(file).display()))?;
    let mut value = Some(&toml::Value::Table(table));
    for key in keys {
        value = value.and_then(|v| v.get(key));
    }
    Ok(value.and_then(|v| v.as_str()).map(str::to_owned))
}
