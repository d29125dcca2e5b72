//! Archives of personal data and the per-person keys that encrypt them.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

/// An archive file as it is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The file's name in the archive folder.
    pub file: String,
    pub persons: i64,
    pub bytes: i64,
    pub cleaned_at: Option<i64>,
}

row_mapper!(archive_of -> ArchiveRow, |row| {
    Ok(ArchiveRow {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        file: row.try_get("file")?,
        persons: row.try_get("persons")?,
        bytes: row.try_get("bytes")?,
        cleaned_at: row.try_get("cleaned_at")?,
    })
});

const ARCHIVE_COLUMNS: &str = "id, created_at, expires_at, file, persons, bytes, cleaned_at";

impl Store {
    /// The person's wrapped data key, if they have one.
    pub async fn person_key(&self, account_id: &AccountId) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT wrapped_key FROM person_keys WHERE account_id = $1").bind(account_id).fetch_optional(pool).await?;
            Ok(row.map(|r| r.try_get("wrapped_key")).transpose()?)
        })
    }

    /// Stores a key unless the person has one; returns the one that is kept (the first writer's
    /// when two processes race).
    pub async fn put_person_key(&self, account_id: &AccountId, wrapped_key: &str, now: i64) -> Result<String, StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO person_keys (account_id, wrapped_key, created_at) VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING")
                .bind(account_id)
                .bind(wrapped_key)
                .bind(now)
                .execute(pool)
                .await?;
        });
        self.person_key(account_id).await?.ok_or_else(|| StoreError::Invalid("the person's key vanished while it was stored".into()))
    }

    /// Account ids after `after`, in order, at most `limit`: archives walk every account a page
    /// at a time.
    pub async fn account_ids_after(&self, after: &str, limit: i64) -> Result<Vec<AccountId>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id FROM accounts WHERE id > $1 ORDER BY id LIMIT $2").bind(after).bind(limit).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get::<AccountId, _>("id").map_err(StoreError::from)).collect()
        })
    }

    pub async fn insert_archive(&self, archive: &ArchiveRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO archives (id, created_at, expires_at, file, persons, bytes, cleaned_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&archive.id)
                .bind(archive.created_at)
                .bind(archive.expires_at)
                .bind(&archive.file)
                .bind(archive.persons)
                .bind(archive.bytes)
                .bind(archive.cleaned_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn archive(&self, id: &str) -> Result<Option<ArchiveRow>, StoreError> {
        let sql = format!("SELECT {ARCHIVE_COLUMNS} FROM archives WHERE id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(archive_of).transpose()
        })
    }

    /// Every archive not yet cleaned, oldest first.
    pub async fn archives(&self) -> Result<Vec<ArchiveRow>, StoreError> {
        let sql = format!("SELECT {ARCHIVE_COLUMNS} FROM archives WHERE cleaned_at IS NULL ORDER BY created_at, id");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(archive_of).collect()
        })
    }

    /// Marks an archive cleaned; false when another process did first.
    pub async fn mark_archive_cleaned(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE archives SET cleaned_at = $1 WHERE id = $2 AND cleaned_at IS NULL").bind(now).bind(id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
