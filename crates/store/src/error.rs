//! Storage errors. `Unreachable` and `Migration` stop the start with a clear message; `Conflict`
//! is an expected outcome callers handle (a unique key already taken); `Database` is anything else
//! and becomes a 500 with the cause logged.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the {engine} database at {target}: {cause}")]
    Unreachable { engine: &'static str, target: String, cause: String },
    #[error("migration {version} ({name}): {cause}")]
    Migration { version: i64, name: &'static str, cause: String },
    #[error("the row already exists")]
    Conflict,
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A caller's mistake, such as a name that cannot be a table or column.
    #[error("invalid request to the store: {0}")]
    Invalid(String),
}

impl StoreError {
    /// The database did not answer (gone, restarting, out of connections), as opposed to
    /// answering with an error: an outage to wait out, not a bug.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            // A broken conversation (the connection cut while it was being set up, so the peer's
            // answer to the TLS request or the start-up was not PostgreSQL's) is the network or a
            // restarting server between us and the database: also an outage.
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
            ),
            _ => false,
        }
    }

    /// Stable code for logs and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unreachable { .. } => "database_unreachable",
            StoreError::Migration { .. } => "database_migration_failed",
            StoreError::Conflict => "conflict",
            StoreError::InvalidUrl(_) => "database_url_invalid",
            StoreError::Database(_) => "database_error",
            StoreError::Invalid(_) => "store_request_invalid",
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`], anything else to `Database`.
pub(crate) fn conflict_or(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}
