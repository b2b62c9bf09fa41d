//! The metastore against a real redb file: schema versions, reopening, the
//! pending-callback index, the execution key, prefix deletes.

use super::*;

#[test]
fn schema_version_is_recorded_and_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let m = Metastore::open(&path).unwrap();
        assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
        m.set_variable("default", "answer", "42").unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(
        m.variable("default", "answer").unwrap().as_deref(),
        Some("42")
    );
    assert_eq!(m.variable("other", "answer").unwrap(), None);
}

#[test]
fn unfinished_callbacks_are_found_through_the_pending_index() {
    let m = Metastore::in_memory().unwrap();
    let t = jiff::Timestamp::UNIX_EPOCH;
    let mut c = CallbackRecord {
        tenant: "t".into(),
        dag_id: "d".into(),
        run_id: "r".into(),
        seq: 0,
        event: "on_failure".into(),
        task_id: None,
        map_index: None,
        try_number: None,
        operator: "echo".into(),
        plugin_digest: "sha256:x".into(),
        state: "queued".into(),
        reason: None,
        queued_at: t,
        start_date: None,
        end_date: None,
        error: None,
        log: String::new(),
    };
    let mut b = WriteBatch::default();
    b.put_callback(&c);
    c.seq = 1;
    c.state = "success".into();
    b.put_callback(&c);
    m.commit(b).unwrap();
    let pending = m.unfinished_callbacks().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].seq, 0);
    let mut done = pending[0].clone();
    done.state = "failed".into();
    let mut b = WriteBatch::default();
    b.put_callback(&done);
    m.commit(b).unwrap();
    assert!(m.unfinished_callbacks().unwrap().is_empty());
    assert_eq!(m.callbacks("t", "d", "r").unwrap().len(), 2);
}

#[test]
fn variables_connections_and_pools_list_and_delete() {
    let m = Metastore::in_memory().unwrap();
    m.set_variable("t", "b", "2").unwrap();
    m.set_variable("t", "a", "1").unwrap();
    m.set_variable("other", "c", "3").unwrap();
    assert_eq!(
        m.variables("t").unwrap(),
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert!(m.delete_variable("t", "a").unwrap());
    assert!(!m.delete_variable("t", "a").unwrap());
    assert_eq!(m.variables("t").unwrap().len(), 1);

    m.set_connection("t", "db", "{}").unwrap();
    assert_eq!(
        m.connections("t").unwrap(),
        vec![("db".into(), "{}".into())]
    );
    assert!(m.delete_connection("t", "db").unwrap());
    assert!(m.connections("t").unwrap().is_empty());

    m.set_pool("t", "p", r#"{"slots":2}"#).unwrap();
    assert_eq!(m.pool("t", "p").unwrap().as_deref(), Some(r#"{"slots":2}"#));
    assert_eq!(m.pools("t").unwrap().len(), 1);
    assert!(m.delete_pool("t", "p").unwrap());
    assert_eq!(m.pool("t", "p").unwrap(), None);
}

#[test]
fn the_execution_key_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    let key = {
        let m = Metastore::open(&path).unwrap();
        let key = m.execution_key().unwrap();
        assert_eq!(m.execution_key().unwrap(), key);
        key
    };
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.execution_key().unwrap(), key);
    // Stored as a JSON string of hex digits, readable with any redb tool.
    let stored = m.get_raw(META, "execution_key").unwrap().unwrap();
    assert_eq!(stored, format!("\"{}\"", key.to_hex()).into_bytes());
    // Another metastore gets another key.
    let other = Metastore::in_memory().unwrap().execution_key().unwrap();
    assert_ne!(other, key);
}

#[test]
fn a_corrupt_execution_key_is_an_error_not_replaced() {
    let m = Metastore::in_memory().unwrap();
    let mut b = WriteBatch::default();
    b.put_raw(META, "execution_key".into(), b"\"not hex\"".to_vec());
    m.commit(b).unwrap();
    let err = m.execution_key().unwrap_err();
    assert!(
        matches!(&err, MetastoreError::Codec { key, .. } if key == "execution_key"),
        "{err}"
    );
    assert_eq!(
        m.get_raw(META, "execution_key").unwrap().unwrap(),
        b"\"not hex\""
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "999".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Metastore::open(&path).err().unwrap();
    assert!(
        matches!(err, MetastoreError::TooNew { found: 999 }),
        "{err}"
    );
}

#[test]
fn prefix_delete_removes_only_that_prefix() {
    let m = Metastore::in_memory().unwrap();
    let mut b = WriteBatch::default();
    b.put_raw(
        XCOM,
        key(&["t", "d", "r1", "a", "0000000000", "k"]),
        b"1".to_vec(),
    );
    b.put_raw(
        XCOM,
        key(&["t", "d", "r10", "a", "0000000000", "k"]),
        b"2".to_vec(),
    );
    m.commit(b).unwrap();
    let mut b = WriteBatch::default();
    b.delete_prefix(XCOM, run_key("t", "d", "r1"));
    m.commit(b).unwrap();
    assert!(m.xcom("t", "d", "r1", "a", "k").unwrap().is_empty());
    assert_eq!(
        m.xcom("t", "d", "r10", "a", "k").unwrap(),
        vec![(-1, "2".to_owned())]
    );
}

fn test_run(dag_id: &str, seq: u64, hour: i64, state: aileron_model::DagRunState) -> DagRun {
    let t = jiff::Timestamp::from_second(hour * 3600).unwrap();
    DagRun {
        tenant: "t".into(),
        dag_id: dag_id.into(),
        run_id: format!("run_{seq}"),
        run_type: RunType::Scheduled,
        state,
        logical_date: t,
        data_interval: aileron_model::schedule::DataInterval { start: t, end: t },
        conf: serde_json::Map::new(),
        dag_version: "v".into(),
        queued_at: t,
        start_date: None,
        end_date: None,
        seq,
        backfill_id: None,
    }
}

fn page_ids(m: &Metastore, q: RunQuery<'_>) -> (Vec<String>, usize) {
    let page = m.runs_page(&q).unwrap();
    (
        page.runs.iter().map(|r| r.run_id.clone()).collect(),
        page.total,
    )
}

#[test]
fn run_pages_come_from_the_indexes_and_follow_every_change() {
    use aileron_model::DagRunState::{Failed, Queued, Running, Success};
    let m = Metastore::in_memory().unwrap();
    let mut b = WriteBatch::default();
    // Creation order and logical-date order differ: run_3 is the oldest date.
    b.put_run(&test_run("a", 1, 10, Success));
    b.put_run(&test_run("a", 2, 20, Failed));
    b.put_run(&test_run("a", 3, 5, Running));
    b.put_run(&test_run("b", 4, 1, Queued));
    m.commit(b).unwrap();
    let q = RunQuery {
        tenant: "t",
        dag_id: Some("a"),
        order: RunOrder::Id,
        descending: false,
        states: None,
        offset: 0,
        limit: 10,
    };
    assert_eq!(
        page_ids(&m, q.clone()),
        (vec!["run_1".into(), "run_2".into(), "run_3".into()], 3)
    );
    let by_date = RunQuery {
        order: RunOrder::LogicalDate,
        descending: true,
        ..q.clone()
    };
    assert_eq!(
        page_ids(&m, by_date.clone()),
        (vec!["run_2".into(), "run_1".into(), "run_3".into()], 3)
    );
    let second = RunQuery {
        offset: 1,
        limit: 1,
        ..by_date.clone()
    };
    assert_eq!(page_ids(&m, second), (vec!["run_1".into()], 3));
    let finished = [Success, Failed];
    let only_finished = RunQuery {
        states: Some(&finished),
        ..q.clone()
    };
    assert_eq!(
        page_ids(&m, only_finished.clone()),
        (vec!["run_1".into(), "run_2".into()], 2)
    );
    // Every DAG of the tenant, and no other tenant's.
    let all = RunQuery {
        dag_id: None,
        ..q.clone()
    };
    assert_eq!(page_ids(&m, all.clone()).1, 4);
    let other = RunQuery {
        tenant: "u",
        ..all.clone()
    };
    assert_eq!(page_ids(&m, other), (vec![], 0));
    let unfinished: Vec<String> = m
        .unfinished_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(unfinished, ["run_3", "run_4"]);

    // A state change moves the counts and the unfinished set; a delete removes the
    // run from every index.
    let mut b = WriteBatch::default();
    b.put_run(&test_run("a", 3, 5, Success));
    b.delete(DAG_RUNS, run_key("t", "a", "run_1"));
    m.commit(b).unwrap();
    assert_eq!(
        page_ids(&m, only_finished),
        (vec!["run_2".into(), "run_3".into()], 2)
    );
    assert_eq!(page_ids(&m, q).1, 2);
    assert_eq!(page_ids(&m, all).1, 3);
    assert_eq!(m.unfinished_runs().unwrap().len(), 1);
}

#[test]
fn a_version_2_store_gets_its_run_indexes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let m = Metastore::open(&path).unwrap();
        let mut b = WriteBatch::default();
        b.put_run(&test_run("a", 1, 1, aileron_model::DagRunState::Running));
        m.commit(b).unwrap();
        // Make it look like a store written before the indexes existed.
        let txn = m.db.begin_write().unwrap();
        for t in [RUN_ORDER, RUN_COUNTS, RUNS_UNFINISHED] {
            txn.delete_table(t).unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "2".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(m.unfinished_runs().unwrap().len(), 1);
    let q = RunQuery {
        tenant: "t",
        dag_id: Some("a"),
        order: RunOrder::LogicalDate,
        descending: false,
        states: None,
        offset: 0,
        limit: 5,
    };
    assert_eq!(page_ids(&m, q), (vec!["run_1".into()], 1));
}

#[test]
fn counts_by_state_follow_puts_and_deletes() {
    use aileron_model::TaskInstanceState as S;
    let m = Metastore::in_memory().unwrap();
    let ti = |task: &str, state: &str| -> TaskInstance {
        serde_json::from_value(serde_json::json!({
            "tenant": "t", "dag_id": "a", "run_id": "run_1", "task_id": task,
            "map_index": -1, "state": state, "try_number": 0, "max_tries": 1,
            "operator": "noop", "plugin_digest": "sha256:x", "queued_at": null,
            "start_date": null, "end_date": null, "duration": null, "next_try_at": null,
            "rendered_params": null, "tries": [], "hostname": "h",
        }))
        .unwrap()
    };
    let mut b = WriteBatch::default();
    b.put_run(&test_run("a", 1, 1, aileron_model::DagRunState::Running));
    b.put_ti(&ti("x", "scheduled"));
    b.put_ti(&ti("y", "scheduled"));
    // The same record written twice in one batch counts once.
    b.put_ti(&ti("x", "running"));
    m.commit(b).unwrap();
    let counts = m.ti_counts().unwrap();
    assert_eq!(
        (counts.get(&S::Running), counts.get(&S::Scheduled)),
        (Some(&1), Some(&1))
    );
    // Counted per DAG too: another DAG's TaskInstances are not this one's.
    let mut other = ti("x", "failed");
    other.dag_id = "b".into();
    let mut b = WriteBatch::default();
    b.put_ti(&other);
    m.commit(b).unwrap();
    let a = m.dag_ti_counts("t", "a").unwrap();
    assert_eq!((a.get(&S::Running), a.get(&S::Failed)), (Some(&1), None));
    assert_eq!(m.dag_ti_counts("t", "b").unwrap().get(&S::Failed), Some(&1));
    assert_eq!(m.tenant_ti_counts("t").unwrap().values().sum::<u64>(), 3);
    let mut b = WriteBatch::default();
    b.delete_prefix(TASK_INSTANCES, dag_key("t", "b"));
    m.commit(b).unwrap();
    assert_eq!(
        m.run_counts()
            .unwrap()
            .get(&aileron_model::DagRunState::Running),
        Some(&1)
    );
    let mut b = WriteBatch::default();
    b.delete_prefix(TASK_INSTANCES, run_key("t", "a", "run_1"));
    b.delete(DAG_RUNS, run_key("t", "a", "run_1"));
    m.commit(b).unwrap();
    assert!(m.ti_counts().unwrap().is_empty());
    assert!(m.run_counts().unwrap().is_empty());
}

#[test]
fn a_version_3_store_gets_tags_on_its_dag_records_on_open() {
    struct AnyOperator;
    impl aileron_model::dag::OperatorCatalog for AnyOperator {
        fn resolve(&self, r: &str) -> Result<aileron_model::dag::ResolvedOperator, String> {
            Ok(aileron_model::dag::ResolvedOperator {
                name: r.to_owned(),
                version: "1.0.0".to_owned(),
                digest: format!("sha256:{r}"),
                params_schema: serde_json::json!({}),
            })
        }
        fn max_memory_bytes(&self) -> u64 {
            1 << 32
        }
    }
    let source = "tags = [\"finance\", \"daily\"]\n[tasks.a]\noperator = \"noop\"\n";
    let spec = aileron_model::dag::parse_dag_file("t", "t/etl.toml", source, &AnyOperator)
        .expect("the test DAG parses");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let m = Metastore::open(&path).unwrap();
        let mut record = DagRecord {
            tenant: "t".into(),
            dag_id: spec.dag_id.clone(),
            fileloc: "t/etl.toml".into(),
            version: spec.version.clone(),
            is_paused: false,
            is_active: true,
            last_scheduled_interval: None,
            last_parsed: jiff::Timestamp::UNIX_EPOCH,
            tags: Vec::new(),
        };
        let mut b = WriteBatch::default();
        b.put(
            DAG_VERSIONS,
            key(&["t", &spec.dag_id, &spec.version]),
            &spec,
        );
        // A record as schema 3 wrote it: no tags field at all.
        record.tags.clear();
        let mut old = serde_json::to_value(&record).unwrap();
        old.as_object_mut().unwrap().remove("tags");
        b.put(DAGS, dag_key("t", &spec.dag_id), &old);
        m.commit(b).unwrap();
        let txn = m.db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "3".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
    let dags = m.tenant_dags("t").unwrap();
    assert_eq!(dags.len(), 1);
    assert_eq!(dags[0].tags, vec!["finance".to_owned(), "daily".to_owned()]);
    assert!(m.tenant_dags("other").unwrap().is_empty());
}

#[test]
fn expired_runs_are_old_finished_and_not_a_dags_latest_scheduled_run() {
    use aileron_model::DagRunState::{Failed, Running, Success};
    let m = Metastore::in_memory().unwrap();
    let hours = |h: i64| jiff::Timestamp::from_second(h * 3600).unwrap();
    let mut b = WriteBatch::default();
    // DAG a: scheduled runs at hours 1..=4, a manual one at 5; b: one old run
    // still running and one old finished run re-run at hour 100.
    for seq in 1..=4 {
        b.put_run(&test_run("a", seq, seq as i64, Success));
    }
    let mut manual = test_run("a", 5, 5, Failed);
    manual.run_type = RunType::Manual;
    b.put_run(&manual);
    b.put_run(&test_run("b", 6, 1, Running));
    let mut rerun = test_run("b", 7, 2, Success);
    rerun.end_date = Some(hours(100));
    b.put_run(&rerun);
    let mut other_tenant = test_run("a", 8, 1, Success);
    other_tenant.tenant = "u".into();
    b.put_run(&other_tenant);
    b.put_ti(
        &serde_json::from_value(serde_json::json!({
            "tenant": "t", "dag_id": "a", "run_id": "run_1", "task_id": "x",
            "map_index": -1, "state": "success", "try_number": 1, "max_tries": 1,
            "operator": "noop", "plugin_digest": "sha256:x", "queued_at": null,
            "start_date": null, "end_date": null, "duration": null, "next_try_at": null,
            "rendered_params": null, "tries": [], "hostname": "h",
        }))
        .unwrap(),
    );
    m.commit(b).unwrap();
    let ids = |tenant: Option<&str>, before: i64, limit: usize| -> Vec<String> {
        m.expired_runs(tenant, hours(before), limit)
            .unwrap()
            .iter()
            .map(|e| format!("{}/{}", e.run.dag_id, e.run.run_id))
            .collect()
    };
    // run_4 is a's latest scheduled run: kept. The manual run_5 may go; b's
    // running run and its re-run one stay.
    assert_eq!(
        ids(Some("t"), 50, 100),
        ["a/run_1", "a/run_2", "a/run_3", "a/run_5"]
    );
    assert_eq!(ids(Some("t"), 3, 100), ["a/run_1", "a/run_2"]);
    assert_eq!(ids(Some("t"), 50, 2), ["a/run_1", "a/run_2"]);
    assert_eq!(ids(None, 50, 100).len(), 4, "u's only run is its latest");
    let first = &m.expired_runs(Some("t"), hours(50), 1).unwrap()[0];
    assert_eq!(first.task_instances, 1);
}

#[test]
fn a_version_4_store_gets_compact_task_instances_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    let ti = |task: &str| -> TaskInstance {
        serde_json::from_value(serde_json::json!({
            "tenant": "t", "dag_id": "a", "run_id": "run_1", "task_id": task,
            "map_index": -1, "state": "success", "try_number": 1, "max_tries": 1,
            "operator": "noop", "plugin_digest": "sha256:x",
            "queued_at": "2026-01-01T00:00:00Z", "start_date": "2026-01-01T00:00:01Z",
            "end_date": "2026-01-01T00:00:03.5Z", "duration": 2.5, "next_try_at": null,
            "rendered_params": null, "hostname": "h", "attempt": 4,
            "tries": [{"try_number": 1, "state": "success",
                "start_date": "2026-01-01T00:00:01Z", "end_date": "2026-01-01T00:00:03.5Z",
                "duration": 2.5, "plugin_digest": "sha256:x", "error": null,
                "hostname": "h", "attempt": 4}],
        }))
        .unwrap()
    };
    // Enough records for several of the migration's chunks.
    let tasks: Vec<String> = (0..12_000).map(|i| format!("task_{i:05}")).collect();
    {
        let m = Metastore::open(&path).unwrap();
        let mut b = WriteBatch::default();
        b.put_run(&test_run("a", 1, 1, aileron_model::DagRunState::Success));
        // Records as schema 4 wrote them: the whole TaskInstance as JSON.
        for task in &tasks {
            let ti = ti(task);
            b.put_raw(
                TASK_INSTANCES,
                ti_record_key(&ti),
                serde_json::to_vec(&ti).unwrap(),
            );
        }
        m.commit(b).unwrap();
        let txn = m.db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "4".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
    let read = m.task_instances("t", "a", "run_1").unwrap();
    assert_eq!(read.len(), tasks.len());
    for got in [&read[0], &read[tasks.len() - 1]] {
        assert_eq!(
            serde_json::to_value(got).unwrap(),
            serde_json::to_value(ti(&got.task_id)).unwrap()
        );
    }
    let raw = m
        .get_raw(TASK_INSTANCES, &ti_record_key(&read[0]))
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        !raw.contains("\"tenant\"") && !raw.contains("null"),
        "{raw}"
    );
    assert_eq!(
        m.ti_counts()
            .unwrap()
            .get(&aileron_model::TaskInstanceState::Success),
        Some(&(tasks.len() as u64))
    );
    assert_eq!(
        m.dag_ti_counts("t", "a")
            .unwrap()
            .get(&aileron_model::TaskInstanceState::Success),
        Some(&(tasks.len() as u64))
    );
    assert!(m.dag_ti_counts("t", "b").unwrap().is_empty());
}

#[test]
fn schema_5_files_gain_a_tenant_record_for_every_tenant_owning_a_dag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let m = Metastore::open(&path).unwrap();
        let mut b = WriteBatch::default();
        for tenant in ["default", "team_x"] {
            b.put_dag(&DagRecord {
                tenant: tenant.into(),
                dag_id: "etl".into(),
                fileloc: "etl.toml".into(),
                version: "v".into(),
                is_paused: false,
                is_active: true,
                last_scheduled_interval: None,
                last_parsed: jiff::Timestamp::UNIX_EPOCH,
                tags: Vec::new(),
            });
        }
        m.commit(b).unwrap();
        // As schema 5 left it: no tenant records at all.
        let txn = m.db.begin_write().unwrap();
        txn.open_table(TENANTS)
            .unwrap()
            .retain(|_, _| false)
            .unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "5".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
    let names: Vec<String> = m
        .tenants()
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["default", "team_x"]);
    assert_eq!(m.dag("team_x", "etl").unwrap().unwrap().dag_id, "etl");
}

#[test]
fn a_version_6_store_numbers_its_dag_versions_on_open() {
    use aileron_model::DagRunState::Success;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aileron.redb");
    {
        let m = Metastore::open(&path).unwrap();
        let mut b = WriteBatch::default();
        // Three versions of `etl`: `old` ran first (hour 1), `mid` later (hour
        // 5), `unused` never; `cur` is the DAG's current one.
        for hash in ["cur", "mid", "old", "unused"] {
            b.put_raw(DAG_VERSIONS, key(&["t", "etl", hash]), b"{}".to_vec());
        }
        for (seq, hour, hash) in [(1, 5, "mid"), (2, 1, "old"), (3, 9, "cur")] {
            let mut run = test_run("etl", seq, hour, Success);
            run.dag_version = hash.into();
            b.put_run(&run);
        }
        b.put_dag(&DagRecord {
            tenant: "t".into(),
            dag_id: "etl".into(),
            fileloc: "t/etl.toml".into(),
            version: "cur".into(),
            is_paused: false,
            is_active: true,
            last_scheduled_interval: None,
            last_parsed: jiff::Timestamp::UNIX_EPOCH,
            tags: Vec::new(),
        });
        m.commit(b).unwrap();
        let txn = m.db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", "6".as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let m = Metastore::open(&path).unwrap();
    assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
    let (versions, total) = m.version_page("t", "etl", false, 0, 10).unwrap();
    let order: Vec<(u32, &str)> = versions
        .iter()
        .map(|v| (v.number, v.hash.as_str()))
        .collect();
    assert_eq!(order, [(1, "old"), (2, "mid"), (3, "unused"), (4, "cur")]);
    assert_eq!(total, 4);
    assert_eq!(
        versions[0].created_at,
        jiff::Timestamp::from_second(3600).unwrap()
    );
    assert_eq!(
        m.version_info("t", "etl", "mid").unwrap().unwrap().number,
        2
    );
    assert_eq!(
        m.version_by_number("t", "etl", 4).unwrap().unwrap().hash,
        "cur"
    );
    assert_eq!(m.last_version_number("t", "etl").unwrap(), 4);
    assert_eq!(m.last_version_number("t", "other").unwrap(), 0);
    // Newest first, one page.
    let (page, _) = m.version_page("t", "etl", true, 1, 2).unwrap();
    assert_eq!(page.iter().map(|v| v.number).collect::<Vec<_>>(), [3, 2]);
}
