//! The registry: the operator catalog, references, versions, refusals, hostile `describe`.

use super::*;

#[test]
fn the_standard_operators_are_registered_and_listed_in_order() {
    let list = shared().registry().list();
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "branch",
            "echo",
            "fail",
            "http_sensor",
            "noop",
            "short_circuit",
            "skip",
            "sleep",
            "wait_until"
        ]
    );
    assert_eq!(STANDARD_PLUGINS.len(), 9);
    for meta in &list {
        assert!(meta.builtin);
        assert_eq!(meta.world, "aileron:operator/operator@0.3.0");
        assert!(meta.digest.starts_with("sha256:") && meta.digest.len() == 71);
        assert!(meta.params_schema.is_object());
        assert!(meta.size > 0);
    }
    let echo = list.iter().find(|m| m.name == "echo").unwrap();
    assert_eq!(echo.params_schema["required"], json!(["message"]));
}

#[test]
fn references_resolve_by_name_version_or_digest() {
    let registry = shared().registry();
    let echo = registry.resolve("echo").unwrap();
    assert_eq!(echo.version, "0.1.0");
    assert_eq!(registry.resolve("echo@0.1.0").unwrap(), echo);
    assert_eq!(
        registry.resolve(&format!("echo@{}", echo.digest)).unwrap(),
        echo
    );
    assert_eq!(registry.get(&echo.digest).unwrap(), echo);

    let err = |r: &str| registry.resolve(r).unwrap_err().to_string();
    let unknown = err("http");
    assert!(unknown.contains("unknown operator `http`"), "{unknown}");
    assert!(
        unknown.contains(
            "branch, echo, fail, http_sensor, noop, short_circuit, skip, sleep, wait_until"
        ),
        "{unknown}"
    );
    let version = err("echo@9.9.9");
    assert!(
        version.contains("has no version 9.9.9; available versions: 0.1.0"),
        "{version}"
    );
    let noop = registry.resolve("noop").unwrap();
    let mismatch = err(&format!("echo@{}", noop.digest));
    assert!(
        mismatch.contains("is operator `noop`, not `echo`"),
        "{mismatch}"
    );
    assert!(err("echo@sha256:00").contains("no registered component has digest"));
    assert!(err("Echo").contains("invalid operator reference"));
    assert!(err("echo@").contains("invalid operator reference"));
    assert!(err("echo@latest").contains("invalid operator reference"));
}

#[test]
fn the_registry_is_an_operator_catalog_for_dag_parsing() {
    use aileron_model::dag::OperatorCatalog;
    let registry = shared().registry();
    let resolved = OperatorCatalog::resolve(registry, "sleep").unwrap();
    assert_eq!(
        (resolved.name.as_str(), resolved.version.as_str()),
        ("sleep", "0.1.0")
    );
    assert_eq!(resolved.digest, registry.resolve("sleep").unwrap().digest);
    assert!(resolved.params_schema.is_object());
    let err = OperatorCatalog::resolve(registry, "nope").unwrap_err();
    assert!(err.contains("registered operators: branch, echo"), "{err}");
}

#[test]
fn adding_known_bytes_is_idempotent() {
    let registry = shared().registry();
    let (name, bytes) = STANDARD_PLUGINS.iter().find(|(n, _)| *n == "echo").unwrap();
    let mut events = registry.subscribe();
    let meta = registry.add(bytes).unwrap();
    assert_eq!(&meta.name, name);
    assert!(meta.builtin, "the builtin registration is kept");
    assert!(events.try_recv().is_err(), "no event for a known component");
}

#[test]
fn a_new_build_under_a_registered_version_is_refused() {
    let registry = shared().registry();
    let (_, bytes) = STANDARD_PLUGINS.iter().find(|(n, _)| *n == "echo").unwrap();
    let rebuilt = with_custom_section(bytes, "rebuilt");
    let err = registry.add(&rebuilt).unwrap_err();
    assert!(
        matches!(err, RegistryError::VersionConflict { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("echo@0.1.0 is already registered as sha256:"),
        "{err}"
    );
    assert!(err.to_string().contains("give the new build"), "{err}");
}

#[test]
fn a_standard_operator_name_cannot_be_taken_by_another_component() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    registry.load_builtin().unwrap();
    let standard = registry.resolve("echo").unwrap();
    for (name, version) in [
        ("echo", "9.9.9"),
        ("noop", "0.0.1"),
        ("http_sensor", "2.0.0"),
    ] {
        let err = registry.add(&simple_operator(name, version)).unwrap_err();
        assert!(
            matches!(&err, RegistryError::ReservedName { name: n, .. } if n == name),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "operator name `{name}` is reserved for the standard operator; \
                 give {name}@{version} a name of its own"
            )
        );
    }
    // A bare name, a version and the digest all still mean the standard one.
    assert_eq!(registry.resolve("echo").unwrap(), standard);
    assert!(registry.resolve("echo@9.9.9").is_err());
    assert_eq!(
        registry.list().iter().filter(|m| m.name == "echo").count(),
        1
    );
    // Names that merely contain a standard one are free.
    registry.add(&simple_operator("echo2", "1.0.0")).unwrap();
}

#[test]
fn versions_live_side_by_side_and_the_highest_wins() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    let mut events = registry.subscribe();
    for version in ["1.9.0", "1.10.0", "1.10.0-rc.1", "0.3.0"] {
        registry.add(&simple_operator("multi", version)).unwrap();
        assert_eq!(events.try_recv().unwrap().version, version);
    }
    assert_eq!(registry.resolve("multi").unwrap().version, "1.10.0");
    assert_eq!(registry.resolve("multi@1.9.0").unwrap().version, "1.9.0");
    let versions: Vec<String> = registry.list().into_iter().map(|m| m.version).collect();
    assert_eq!(versions, ["0.3.0", "1.9.0", "1.10.0-rc.1", "1.10.0"]);
    let err = registry.resolve("multi@2.0.0").unwrap_err().to_string();
    assert!(
        err.contains("available versions: 0.3.0, 1.9.0, 1.10.0-rc.1, 1.10.0"),
        "{err}"
    );
}

#[test]
fn what_is_not_an_operator_is_refused_with_what_is_wrong() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    let err = |bytes: &[u8]| registry.add(bytes).unwrap_err().to_string();

    let empty = err(&wat::parse_str("(component)").unwrap());
    assert!(
        empty.contains(
            "does not target aileron:operator/operator@0.3.0 (nor the older 0.2.0 or 0.1.0)"
        ) && empty.contains("does not export `describe` or `execute` (its exports: none)"),
        "{empty}"
    );

    let run_only = wat::parse_str(
        r#"(component
             (core module $m (func (export "run") (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "run") (result (result)) (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let run_only = err(&run_only);
    assert!(run_only.contains("(its exports: run)"), "{run_only}");

    let wrong_type = wat::parse_str(
        r#"(component
             (core module $m (func (export "f") (param i32) (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "describe") (param "x" u32) (result u32) (canon lift (core func $i "f")))
             (func (export "execute") (param "x" u32) (result u32) (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let wrong_type = err(&wrong_type);
    assert!(
        wrong_type.contains("does not target aileron:operator/operator@0.3.0"),
        "{wrong_type}"
    );

    let core = err(&wat::parse_str("(module)").unwrap());
    assert!(
        core.contains("core WebAssembly module") && core.contains("wasm32-wasip2"),
        "{core}"
    );
    assert!(err(b"#!/bin/sh\necho hi\n").contains("not a WebAssembly binary"));
    assert!(registry.list().is_empty());
}

#[test]
fn a_component_needing_imports_the_sandbox_lacks_is_refused() {
    let sandbox = empty_sandbox();
    let needy = wat::parse_str(
        r#"(component
             (import "wasi:keyvalue/store@0.2.0" (instance (export "open" (func))))
             (core module $m (func (export "f") (param i32) (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "describe") (param "x" u32) (result u32) (canon lift (core func $i "f")))
             (func (export "execute") (param "x" u32) (result u32) (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let err = sandbox.registry().add(&needy).unwrap_err();
    assert!(matches!(err, RegistryError::UnsupportedImport(_)), "{err}");
    assert!(
        err.to_string().contains("wasi:keyvalue/store@0.2.0")
            && err
                .to_string()
                .contains("wasi:http/outgoing-handler included"),
        "{err}"
    );
}

#[test]
fn a_hostile_describe_cannot_hang_or_exhaust_the_host() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();

    let started = Instant::now();
    let looping = wat_operator("looping", "1.0.0", "(loop $l (br $l))", "(i32.const 2048)");
    let err = registry.add(&looping).unwrap_err().to_string();
    assert_eq!(err, "describe() failed: it did not return within 0.3s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let bomb = wat_operator(
        "bomb",
        "1.0.0",
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))",
        "(i32.const 2048)",
    );
    let err = registry.add(&bomb).unwrap_err().to_string();
    assert_eq!(
        err,
        "describe() failed: memory limit of 268435456 bytes (256 MiB) exceeded"
    );

    let trapping = wat_operator("trapping", "1.0.0", "unreachable", "(i32.const 2048)");
    let err = registry.add(&trapping).unwrap_err().to_string();
    assert!(err.contains("describe() failed: wasm trap"), "{err}");
    assert!(registry.list().is_empty());
}

#[test]
fn describe_must_return_a_sane_name_and_version() {
    let sandbox = empty_sandbox();
    let err = |name: &str, version: &str| {
        sandbox
            .registry()
            .add(&simple_operator(name, version))
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("Bad Name", "1.0.0").contains("name `Bad Name` must start with a lower-case letter")
    );
    assert!(err("ok", "one").contains("version `one` is not a semantic version"));
}
