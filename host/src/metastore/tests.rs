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
