//! One set of migrations for both engines, embedded in the binary. Each applied migration is
//! recorded with a checksum, so a migration edited after it ran is refused rather than silently
//! diverging between installations.

use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::{Store, StoreError};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "platform", sql: include_str!("../migrations/0001_platform.sql") },
    Migration { version: 2, name: "accounts", sql: include_str!("../migrations/0002_accounts.sql") },
    Migration { version: 3, name: "consent", sql: include_str!("../migrations/0003_consent.sql") },
    Migration { version: 4, name: "account_tokens", sql: include_str!("../migrations/0004_account_tokens.sql") },
    Migration { version: 5, name: "throttle", sql: include_str!("../migrations/0005_throttle.sql") },
    Migration { version: 6, name: "remember", sql: include_str!("../migrations/0006_remember.sql") },
    Migration { version: 7, name: "preferences", sql: include_str!("../migrations/0007_preferences.sql") },
    Migration { version: 8, name: "staff_and_tokens", sql: include_str!("../migrations/0008_staff_and_tokens.sql") },
    Migration { version: 9, name: "email_change", sql: include_str!("../migrations/0009_email_change.sql") },
    Migration { version: 10, name: "account_closure", sql: include_str!("../migrations/0010_account_closure.sql") },
    Migration { version: 11, name: "analytics", sql: include_str!("../migrations/0011_analytics.sql") },
    Migration { version: 12, name: "analytics_inbox", sql: include_str!("../migrations/0012_analytics_inbox.sql") },
    Migration { version: 13, name: "billing", sql: include_str!("../migrations/0013_billing.sql") },
    Migration { version: 14, name: "hardening", sql: include_str!("../migrations/0014_hardening.sql") },
    Migration { version: 15, name: "rights", sql: include_str!("../migrations/0015_rights.sql") },
    Migration { version: 16, name: "retention_runs", sql: include_str!("../migrations/0016_retention_runs.sql") },
    Migration { version: 17, name: "archives", sql: include_str!("../migrations/0017_archives.sql") },
    Migration { version: 18, name: "privacy_requests", sql: include_str!("../migrations/0018_privacy_requests.sql") },
    Migration { version: 19, name: "objections", sql: include_str!("../migrations/0019_objections.sql") },
    Migration { version: 20, name: "linking", sql: include_str!("../migrations/0020_linking.sql") },
    Migration { version: 21, name: "messaging", sql: include_str!("../migrations/0021_messaging.sql") },
    Migration { version: 22, name: "fraud", sql: include_str!("../migrations/0022_fraud.sql") },
    Migration { version: 23, name: "support", sql: include_str!("../migrations/0023_support.sql") },
    Migration { version: 24, name: "compliance", sql: include_str!("../migrations/0024_compliance.sql") },
    Migration { version: 25, name: "fleet", sql: include_str!("../migrations/0025_fleet.sql") },
];

/// Serialises concurrent `migrate` calls from several PostgreSQL processes.
const PG_MIGRATION_LOCK: i64 = 0x7061_7373_6d65;

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The body is the same for both engines; it is expanded once per connection type.
macro_rules! migrate_on {
    ($conn:expr) => {{
        let conn = $conn;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .execute(&mut *conn)
            .await?;
        let rows = sqlx::query("SELECT version, checksum FROM schema_migrations ORDER BY version").fetch_all(&mut *conn).await?;
        let mut applied_before = Vec::new();
        for row in rows {
            applied_before.push((row.try_get::<i64, _>("version")?, row.try_get::<String, _>("checksum")?));
        }
        if let Some((newest, _)) = applied_before.iter().find(|(v, _)| !MIGRATIONS.iter().any(|m| m.version == *v)) {
            return Err(StoreError::Migration { version: *newest, name: "?", cause: "the database has a migration this binary does not know; run a newer passme".into() });
        }
        let mut applied_now = Vec::new();
        for m in MIGRATIONS {
            let sum = checksum(m.sql);
            if let Some((_, recorded)) = applied_before.iter().find(|(v, _)| *v == m.version) {
                if *recorded != sum {
                    return Err(StoreError::Migration { version: m.version, name: m.name, cause: "was changed after it was applied (checksum differs)".into() });
                }
                continue;
            }
            let fail = |e: sqlx::Error| StoreError::Migration { version: m.version, name: m.name, cause: e.to_string() };
            let mut tx = conn.begin().await.map_err(fail)?;
            sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
                .bind(m.version)
                .bind(m.name)
                .bind(&sum)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            applied_now.push(m.version);
        }
        Ok::<Vec<i64>, StoreError>(applied_now)
    }};
}

impl Store {
    /// Applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Sqlite(sqlite) => {
                let pool = &sqlite.pool;
                let mut conn = pool.acquire().await?;
                migrate_on!(&mut *conn)
            }
            Store::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *conn).await?;
                let result: Result<Vec<i64>, StoreError> = async { migrate_on!(&mut *conn) }.await;
                sqlx::query("SELECT pg_advisory_unlock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *conn).await?;
                result
            }
        }
    }

    /// The checksum over every migration this binary carries; test harnesses key migrated
    /// template databases on it.
    pub fn migrations_fingerprint() -> String {
        let all: String = MIGRATIONS.iter().map(|m| checksum(m.sql)).collect();
        checksum(&all)[..16].to_string()
    }
}
