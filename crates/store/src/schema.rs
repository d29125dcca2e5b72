//! Reading the live schema, for the check that every column is classified in the policy.

use sqlx::Row;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<String>,
}

impl Store {
    /// Every table and its columns, sorted by table name, columns in declaration order.
    pub async fn schema(&self) -> Result<Vec<TableSchema>, StoreError> {
        let pairs: Vec<(String, String)> = match self {
            Store::Sqlite(sqlite) => {
                let pool = &sqlite.pool;
                let rows = sqlx::query(
                    "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
                )
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| Ok((r.try_get("table_name")?, r.try_get("column_name")?))).collect::<Result<_, sqlx::Error>>()?
            }
            Store::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
                     WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
                )
                .fetch_all(pool)
                .await?;
                rows.iter().map(|r| Ok((r.try_get("table_name")?, r.try_get("column_name")?))).collect::<Result<_, sqlx::Error>>()?
            }
        };
        let mut tables: Vec<TableSchema> = Vec::new();
        for (table, column) in pairs {
            match tables.last_mut() {
                Some(t) if t.name == table => t.columns.push(column),
                _ => tables.push(TableSchema { name: table, columns: vec![column] }),
            }
        }
        Ok(tables)
    }

    /// Every value of one column as text (NULLs left out), for checks that scan everything
    /// stored (no card number anywhere). `table` and `column` must come from [`Store::schema`].
    pub async fn column_text(&self, table: &str, column: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT CAST(\"{column}\" AS TEXT) AS v FROM \"{table}\" WHERE \"{column}\" IS NOT NULL");
        crate::on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get::<String, _>("v").map_err(StoreError::from)).collect()
        })
    }
}
