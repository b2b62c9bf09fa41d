//! What can go wrong reading or writing the metastore.

use super::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    #[error("cannot open the metastore: {0}")]
    Open(#[from] redb::DatabaseError),
    #[error("metastore transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("metastore table error: {0}")]
    Table(#[from] redb::TableError),
    #[error("metastore storage error: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("metastore durability setting refused: {0}")]
    Durability(#[from] redb::SetDurabilityError),
    #[error("metastore commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("corrupt record under `{key}`: {source}")]
    Codec {
        key: String,
        source: serde_json::Error,
    },
    #[error("malformed key `{key}`")]
    BadKey { key: String },
    #[error("corrupt record under `{key}`: {reason}")]
    BadRecord { key: String, reason: &'static str },
    #[error(
        "the metastore has schema version {found}, newer than this Aileron understands ({SCHEMA_VERSION}); upgrade Aileron"
    )]
    TooNew { found: u32 },
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
    #[error("connection encryption key: {0}")]
    Secrets(String),
    #[error("cannot create the execution key: {0}")]
    ExecutionKey(#[from] aileron_protocol::KeyError),
}

pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;
