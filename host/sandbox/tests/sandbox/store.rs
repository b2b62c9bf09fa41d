//! The component store: drop-ins, watching, serving bytes, the compile cache.

use super::*;

fn store_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn open_store_loads_the_store_and_ingests_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();

    // First start: a good and a bad drop-in.
    let good = simple_operator("dropped", "1.0.0");
    std::fs::write(plugins.join("dropped.wasm"), &good).unwrap();
    std::fs::write(plugins.join("broken.wasm"), b"not wasm").unwrap();
    std::fs::write(plugins.join("notes.txt"), b"ignored").unwrap();
    let sandbox = empty_sandbox();
    let loaded = sandbox.registry().open_store(plugins).unwrap();
    assert_eq!(loaded.len(), 1);
    let digest = loaded[0].digest.clone();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(store_files(plugins), [format!("sha256-{hex}.wasm")]);
    let rejected = sandbox.registry().rejected();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].path.ends_with("broken.wasm"));
    assert!(
        rejected[0].error.contains("not a WebAssembly binary"),
        "{rejected:?}"
    );

    // `install` adds to the store too.
    let installed = sandbox
        .registry()
        .install(plugins, &simple_operator("installed", "2.0.0"))
        .unwrap();
    assert_eq!(store_files(plugins).len(), 2);

    // Next start: the store alone brings both back, even with the drop-in gone.
    std::fs::remove_file(plugins.join("dropped.wasm")).unwrap();
    let again = empty_sandbox();
    let loaded = again.registry().open_store(plugins).unwrap();
    let mut names: Vec<&str> = loaded.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["dropped", "installed"]);
    assert_eq!(again.registry().resolve("installed").unwrap(), installed);
    assert!(!again.registry().get(&digest).unwrap().builtin);
}

#[test]
fn a_corrupt_store_file_is_reported_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    std::fs::create_dir_all(plugins.join("store")).unwrap();
    let liar = plugins
        .join("store")
        .join(format!("sha256-{}.wasm", "ab".repeat(32)));
    std::fs::write(&liar, simple_operator("liar", "1.0.0")).unwrap();
    let sandbox = empty_sandbox();
    assert!(sandbox.registry().open_store(plugins).unwrap().is_empty());
    let rejected = sandbox.registry().rejected();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].error.contains("not the digest its name says"),
        "{rejected:?}"
    );
}

#[test]
fn component_bytes_are_served_from_the_embedded_operators_and_the_store() {
    // A standard operator: its embedded bytes.
    let sandbox = shared();
    let noop = digest_of(sandbox, "noop");
    let embedded = STANDARD_PLUGINS
        .iter()
        .find(|(name, _)| *name == "noop")
        .unwrap()
        .1;
    let bytes = sandbox.registry().component_bytes(&noop).unwrap();
    assert_eq!(bytes.as_deref(), Some(embedded));

    // Unknown digests, and components only added (never stored), have none.
    let unknown = format!("sha256:{}", "00".repeat(32));
    assert_eq!(sandbox.registry().component_bytes(&unknown).unwrap(), None);
    assert_eq!(sandbox.registry().component_bytes("noop").unwrap(), None);
    let first = empty_sandbox();
    let registry = first.registry();
    let added = registry.add(&simple_operator("added", "1.0.0")).unwrap();
    assert_eq!(registry.component_bytes(&added.digest).unwrap(), None);

    // Installed, dropped in, or loaded from the store at a later start: the store file.
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let installed_bytes = simple_operator("installed", "1.0.0");
    let installed = registry.install(plugins, &installed_bytes).unwrap();
    let dropped_bytes = simple_operator("dropped", "1.0.0");
    std::fs::write(plugins.join("dropped.wasm"), &dropped_bytes).unwrap();
    registry.open_store(plugins).unwrap();
    let dropped = registry.resolve("dropped").unwrap();
    std::fs::remove_file(plugins.join("dropped.wasm")).unwrap();
    // `add` first and `install` later counts too.
    let added = registry
        .install(plugins, &simple_operator("added", "1.0.0"))
        .unwrap();
    let again = empty_sandbox();
    again.registry().open_store(plugins).unwrap();
    for registry in [registry, again.registry()] {
        let bytes = |digest: &str| registry.component_bytes(digest).unwrap().unwrap();
        assert_eq!(bytes(&installed.digest), installed_bytes);
        assert_eq!(bytes(&dropped.digest), dropped_bytes);
        assert_eq!(bytes(&added.digest), simple_operator("added", "1.0.0"));
    }

    // A store file changed or removed behind the registry's back is an error, not
    // bytes that are not the digest's.
    let hex = installed.digest.strip_prefix("sha256:").unwrap();
    let file = plugins.join("store").join(format!("sha256-{hex}.wasm"));
    std::fs::write(&file, &dropped_bytes).unwrap();
    let err = registry.component_bytes(&installed.digest).unwrap_err();
    assert!(
        matches!(err, RegistryError::CorruptStoreFile { .. }),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();
    let err = registry.component_bytes(&installed.digest).unwrap_err();
    assert!(matches!(err, RegistryError::Io { .. }), "{err}");
}

#[tokio::test]
async fn watching_picks_up_new_drop_ins_and_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().to_owned();
    let sandbox = empty_sandbox();
    sandbox.registry().open_store(&plugins).unwrap();
    let _guard = sandbox.registry().watch(&plugins).unwrap();
    let mut events = sandbox.registry().subscribe();

    std::fs::write(plugins.join("late.wasm"), simple_operator("late", "1.0.0")).unwrap();
    let meta = announced(&mut events, "late", Duration::from_secs(3)).await;
    assert_eq!(sandbox.registry().resolve("late").unwrap(), meta);

    // Another process installing into the store (here: another registry).
    let other = empty_sandbox();
    other
        .registry()
        .install(&plugins, &simple_operator("elsewhere", "1.0.0"))
        .unwrap();
    announced(&mut events, "elsewhere", Duration::from_secs(3)).await;

    // A bad drop-in is reported, and forgotten once removed.
    let bad = plugins.join("bad.wasm");
    std::fs::write(&bad, b"garbage").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while sandbox.registry().rejected().is_empty() {
        assert!(Instant::now() < deadline, "bad drop-in not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&bad).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !sandbox.registry().rejected().is_empty() {
        assert!(Instant::now() < deadline, "removed drop-in still reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_default_configuration_fits_this_machine() {
    // 1000 slots reserve about 8 TiB of address space for linear memories; this
    // checks the pool can be created, not that it is used.
    let sandbox = Sandbox::new(SandboxConfig {
        load_builtin: false,
        ..SandboxConfig::default()
    })
    .expect("default sandbox");
    assert!(sandbox.registry().list().is_empty());
}

#[test]
fn compiled_components_are_cached_per_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        max_concurrent: 8,
        load_builtin: false,
        cache_dir: Some(dir.path().to_owned()),
        ..SandboxConfig::default()
    };
    let bytes = simple_operator("cached", "1.0.0");
    let meta = Sandbox::new(config())
        .unwrap()
        .registry()
        .add(&bytes)
        .unwrap();
    let hex = meta.digest.strip_prefix("sha256:").unwrap();
    let engines: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(engines.len(), 1, "one directory per engine configuration");
    let artifact = engines[0].join(format!("{hex}.cwasm"));
    assert!(artifact.is_file());

    // A later start loads it; a damaged artifact is compiled again, not fatal.
    assert_eq!(
        Sandbox::new(config())
            .unwrap()
            .registry()
            .add(&bytes)
            .unwrap(),
        meta
    );
    std::fs::write(&artifact, b"damaged").unwrap();
    assert_eq!(
        Sandbox::new(config())
            .unwrap()
            .registry()
            .add(&bytes)
            .unwrap(),
        meta
    );
    assert!(std::fs::read(&artifact).unwrap().len() > 100, "rewritten");
}
