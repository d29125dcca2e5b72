//! Staff roles (table `account_roles`).

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool};

impl Store {
    /// Grants a role; granting one already held changes nothing. Returns whether it was new.
    pub async fn grant_role(&self, account_id: &AccountId, role: &str, by: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO account_roles (account_id, role, granted_at, granted_by) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, role) DO NOTHING")
                .bind(account_id)
                .bind(role)
                .bind(now)
                .bind(by)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn revoke_role(&self, account_id: &AccountId, role: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM account_roles WHERE account_id = $1 AND role = $2").bind(account_id).bind(role).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn roles_of(&self, account_id: &AccountId) -> Result<Vec<String>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role").bind(account_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(row.try_get("role")?);
            }
            Ok(out)
        })
    }
}
