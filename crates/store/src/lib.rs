//! PassMe's storage layer: one engine-agnostic API over SQLite (the embedded default) and
//! PostgreSQL (production), with one set of portable migrations.
//!
//! Each query is written once; [`on_pool!`] compiles it against both drivers, so the SQL text is
//! shared wherever the dialects agree and the few places they differ (`FOR UPDATE SKIP LOCKED`,
//! schema introspection) are explicit. Core code calls the methods here and never sees a driver.

mod accounts;
mod analytics;
mod archives;
mod audit;
mod billing;
mod compliance;
mod error;
mod fleet;
mod fraud;
mod ids;
mod instances;
mod jobs;
mod linking;
mod messaging;
mod migrate;
mod requests;
mod retention;
mod rights;
mod schema;
mod support;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{AccountRow, AccountStatus, ApiTokenRow, RememberRow, SessionRow};
pub use analytics::{BreakdownRow, DayRow, Dimension, EventRow, Totals, VisitRow};
pub use archives::ArchiveRow;
pub use audit::{AuditAnchor, AuditFilter, AuditRow, Chain};
pub use billing::{BillingEventRow, InvoiceRow, SubscriptionRow};
pub use compliance::{AuthorityRequestRow, TermsActionRow};
pub use error::StoreError;
pub use fleet::{Bucket, LeaseRow};
pub use fraud::{FraudCounts, FraudDecisionRow, FraudEventRow, FraudListRow, FraudRuleRow};
pub use ids::AccountId;
pub use instances::InstanceRow;
pub use jobs::{Job, JobCounts, JobStatus, JobSummary, KindDepth, NewJob};
pub use linking::{FlowRow, LinkRow, PartnerProfileRow, SuggestionRow, TokenRow, VaultKeyRow};
pub use messaging::{
    CampaignRow, MessageRecipient, MessageRow, NewMessage, PartnerExportRow, PrefRow, PushSubscriptionRow, Recipient, Segment,
};
pub use migrate::{MIGRATIONS, Migration};
pub use requests::PrivacyRequestRow;
pub use retention::{RANDOM_ID, RetentionRunRow, RetentionStep};
pub use rights::{ErasureReceiptRow, LegalHoldRow};
pub use schema::TableSchema;
pub use support::{CannedRow, TicketMessageRow, TicketRow};

/// Runs `$body` with `$pool` bound to whichever engine's pool the store holds. The body is
/// compiled once per engine, so it must be valid for both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite(sqlite) => {
                let $pool = &sqlite.pool;
                $body
            }
            $crate::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A function that reads one row of either engine into `$out`: the bounds sqlx needs for text,
/// account ids, integers and their nullable forms, written once.
macro_rules! row_mapper {
    ($name:ident -> $out:ty, |$row:ident| $body:block) => {
        fn $name<R: sqlx::Row>($row: &R) -> Result<$out, $crate::StoreError>
        where
            for<'c> &'c str: sqlx::ColumnIndex<R>,
            for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> $crate::AccountId: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        $body
    };
}
pub(crate) use row_mapper;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// A handle to the database. Cheap to clone (it wraps a pool).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgPool),
}

/// SQLite: the pool, and the queue its busy writers wait in.
///
/// SQLite lets one transaction write at a time. A writer that finds the lock taken sleeps in
/// SQLite's busy handler (1, 2, 5, 10 … ms) and tries again, so a stream of short writes (the
/// page-view group commits) loses whole milliseconds to each long one (the minute pass). The
/// heavy writers take turns here instead, and acknowledgements go first: a background write
/// (the pass, in transactions of a millisecond or two) waits while an acknowledgement is waiting,
/// but never longer than [`BACKGROUND_DEFER`], so the pass still moves under any load.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writers: Arc<Writers>,
}

#[derive(Debug)]
struct Writers {
    turn: tokio::sync::Mutex<()>,
    /// Acknowledging writers waiting for the turn.
    urgent: std::sync::atomic::AtomicUsize,
    /// Told when the last of them got it.
    calm: tokio::sync::Notify,
    /// When an acknowledging writer last got the turn, in milliseconds since `epoch`.
    last_urgent_ms: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
}

impl Writers {
    fn new() -> Writers {
        Writers {
            turn: tokio::sync::Mutex::new(()),
            urgent: std::sync::atomic::AtomicUsize::new(0),
            calm: tokio::sync::Notify::new(),
            last_urgent_ms: std::sync::atomic::AtomicU64::new(0),
            // Long enough ago that a fresh store counts as quiet.
            epoch: std::time::Instant::now() - Duration::from_secs(3600),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn since_urgent_ms(&self) -> u64 {
        self.now_ms().saturating_sub(self.last_urgent_ms.load(std::sync::atomic::Ordering::Acquire))
    }
}

/// The longest a background write waits for acknowledgements to stop queueing.
pub const BACKGROUND_DEFER: Duration = Duration::from_millis(10);
/// Without an acknowledging write for this long, the database counts as quiet.
const QUIET_AFTER_MS: u64 = 1_000;

pub(crate) type WriteTurn<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

/// Where the data lives: a PostgreSQL URL, or else a SQLite file in the data folder.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub database_url: Option<SecretString>,
    pub data_dir: PathBuf,
    pub max_connections: u32,
}

impl Store {
    /// Opens the database. Does not migrate: call [`Store::migrate`].
    pub async fn connect(options: &StoreOptions) -> Result<Store, StoreError> {
        match &options.database_url {
            Some(url) if is_postgres(url.expose_secret()) => Self::connect_postgres(url, options.max_connections).await,
            Some(url) => match url.expose_secret().strip_prefix("sqlite://") {
                Some(path) => Self::open_sqlite(Path::new(path), options.max_connections).await,
                None => Err(StoreError::InvalidUrl(format!("{}: expected postgres://… or sqlite://PATH", redact_url(url.expose_secret())))),
            },
            None => {
                std::fs::create_dir_all(&options.data_dir).map_err(|e| StoreError::Unreachable {
                    engine: "sqlite",
                    target: options.data_dir.display().to_string(),
                    cause: format!("cannot create the data folder: {e}"),
                })?;
                Self::open_sqlite(&options.data_dir.join("passme.db"), options.max_connections).await
            }
        }
    }

    /// Opens (creating if needed) a SQLite database file in WAL mode.
    pub async fn open_sqlite(path: &Path, max_connections: u32) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process crash (kill -9); only an OS crash may lose
            // the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 4 MiB of page cache per connection (the default is 2 MiB): the visit pass touches
            // pages of the per-visitor index all over, and misses cost a read each. Not more:
            // the pool hands out its ten connections in turn and each fills its own cache (with
            // 32 MiB the server passed 200 MB while ingesting).
            .pragma("cache_size", "-4096")
            // Room for an insert of every group size up to 64 (see `insert_events`) beside the
            // other statements.
            .statement_cache_capacity(256)
            // Statement journals (every multi-row insert inside a transaction has one) in memory
            // instead of temporary files: they were a tenth of the ingestion's time.
            .pragma("temp_store", "memory")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable { engine: "sqlite", target: path.display().to_string(), cause: e.to_string() })?;
        Ok(Store::Sqlite(SqliteStore { pool, writers: Arc::new(Writers::new()) }))
    }

    async fn connect_postgres(url: &SecretString, max_connections: u32) -> Result<Store, StoreError> {
        let target = redact_url(url.expose_secret());
        let options = PgConnectOptions::from_str(url.expose_secret()).map_err(|e| StoreError::InvalidUrl(format!("{target}: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable { engine: "postgres", target, cause: e.to_string() })?;
        Ok(Store::Postgres(pool))
    }

    /// Waits for this process's turn to write something a request is waiting for (SQLite); see
    /// [`SqliteStore`].
    pub(crate) async fn write_turn(&self) -> WriteTurn<'_> {
        use std::sync::atomic::Ordering;
        let Store::Sqlite(sqlite) = self else { return None };
        let writers = &sqlite.writers;
        writers.urgent.fetch_add(1, Ordering::AcqRel);
        let turn = writers.turn.lock().await;
        writers.last_urgent_ms.store(writers.now_ms(), Ordering::Release);
        if writers.urgent.fetch_sub(1, Ordering::AcqRel) == 1 {
            writers.calm.notify_waiters();
        }
        Some(turn)
    }

    /// Waits for a turn to write in the background (the minute pass): after the acknowledgements
    /// waiting now, or [`BACKGROUND_DEFER`] at most.
    pub(crate) async fn background_write_turn(&self) -> WriteTurn<'_> {
        use std::sync::atomic::Ordering;
        let Store::Sqlite(sqlite) = self else { return None };
        let writers = &sqlite.writers;
        let deadline = tokio::time::Instant::now() + BACKGROUND_DEFER;
        while writers.urgent.load(Ordering::Acquire) > 0 {
            let calm = writers.calm.notified();
            if writers.urgent.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, calm).await.is_err() {
                break;
            }
        }
        Some(writers.turn.lock().await)
    }

    /// Whether acknowledging writes took a turn within the last second (SQLite): background work
    /// should then write in small pieces, and in big efficient ones otherwise. Always false on
    /// PostgreSQL, whose writers do not wait for one another.
    pub fn acknowledging(&self) -> bool {
        use std::sync::atomic::Ordering;
        let Store::Sqlite(sqlite) = self else { return false };
        let writers = &sqlite.writers;
        writers.urgent.load(Ordering::Acquire) > 0 || writers.since_urgent_ms() < QUIET_AFTER_MS
    }

    pub fn engine(&self) -> Engine {
        match self {
            Store::Sqlite(_) => Engine::Sqlite,
            Store::Postgres(_) => Engine::Postgres,
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Runs SQL text as is. For migrations and test fixtures (tampering with the audit log to
    /// prove verification catches it); application code uses the typed methods.
    pub async fn execute_script(&self, sql: &str) -> Result<u64, StoreError> {
        on_pool!(self, pool => Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await?.rows_affected()))
    }

    /// Runs a query returning one integer (`SELECT COUNT(*) AS n ...`), for tests and checks.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64, StoreError> {
        use sqlx::Row;
        on_pool!(self, pool => Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await?.try_get::<i64, _>(0)?))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A database URL fit for logs: scheme, host and database, never the password.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let without_query = host_part.split('?').next().unwrap_or(host_part);
            format!("{scheme}://{without_query}")
        }
        None => "<unparsable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacted_urls_never_show_credentials() {
        assert_eq!(redact_url("postgres://user:s3cret@db.example:5432/passme?sslmode=require"), "postgres://db.example:5432/passme");
        assert_eq!(redact_url("postgres://db/passme"), "postgres://db/passme");
        assert!(!redact_url("postgres://a:p@ss@host/db").contains("p@ss"));
    }
}
