//! Linked third-party accounts: the vault's keys, the links, their sealed tokens, flows in
//! progress, partner profile data, suggestions and the consents they rest on.

use sqlx::Row;

use crate::{AccountId, Store, StoreError, on_pool, row_mapper};

/// A vault data key, sealed by the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKeyRow {
    pub id: String,
    pub seq: i64,
    pub wrapped: String,
    pub created_at: i64,
}

/// A link between an account and an identity at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub id: String,
    pub account_id: AccountId,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub linked_at: i64,
    pub last_used_at: Option<i64>,
    pub needs_consent_at: Option<i64>,
    pub unlinked_at: Option<i64>,
}

/// A link's tokens, each a vault blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub link_id: String,
    pub account_id: AccountId,
    pub provider: String,
    pub key_id: String,
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub access_expires_at: Option<i64>,
    pub updated_at: i64,
}

/// A sign-in or link in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub state_hash: String,
    pub browser_hash: String,
    pub provider: String,
    pub intent: String,
    pub account_id: Option<AccountId>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Profile fields a provider sent, as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerProfileRow {
    pub link_id: String,
    pub provider: String,
    pub claims: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestionRow {
    pub item: String,
    pub reason: String,
    pub created_at: i64,
    pub dismissed_at: Option<i64>,
}

const LINK_COLUMNS: &str =
    "id, account_id, provider, issuer, subject, email, email_verified, linked_at, last_used_at, needs_consent_at, unlinked_at";
const TOKEN_COLUMNS: &str = "link_id, account_id, provider, key_id, id_token, access_token, refresh_token, access_expires_at, updated_at";

row_mapper!(link_of -> LinkRow, |row| {
    Ok(LinkRow {
        id: row.try_get("id")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?),
        provider: row.try_get("provider")?,
        issuer: row.try_get("issuer")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        linked_at: row.try_get("linked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        needs_consent_at: row.try_get("needs_consent_at")?,
        unlinked_at: row.try_get("unlinked_at")?,
    })
});

row_mapper!(token_of -> TokenRow, |row| {
    Ok(TokenRow {
        link_id: row.try_get("link_id")?,
        account_id: AccountId::new(row.try_get::<String, _>("account_id")?),
        provider: row.try_get("provider")?,
        key_id: row.try_get("key_id")?,
        id_token: row.try_get("id_token")?,
        access_token: row.try_get("access_token")?,
        refresh_token: row.try_get("refresh_token")?,
        access_expires_at: row.try_get("access_expires_at")?,
        updated_at: row.try_get("updated_at")?,
    })
});

impl Store {
    /// Every vault key, oldest first.
    pub async fn vault_keys(&self) -> Result<Vec<VaultKeyRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT id, seq, wrapped, created_at FROM vault_keys ORDER BY seq").fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok(VaultKeyRow { id: r.try_get("id")?, seq: r.try_get("seq")?, wrapped: r.try_get("wrapped")?, created_at: r.try_get("created_at")? }))
                .collect()
        })
    }

    /// Adds a key; false when a key with that id or sequence number exists (another process
    /// added it first).
    pub async fn insert_vault_key(&self, key: &VaultKeyRow) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("INSERT INTO vault_keys (id, seq, wrapped, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(&key.id)
                .bind(key.seq)
                .bind(&key.wrapped)
                .bind(key.created_at)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// How many token rows each key seals.
    pub async fn token_rows_by_key(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT key_id, COUNT(*) AS n FROM linked_tokens GROUP BY key_id ORDER BY key_id").fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get("key_id")?, r.try_get("n")?))).collect()
        })
    }

    /// Token rows sealed under any key but `key_id`, in link order after `after`.
    pub async fn token_rows_not_under(&self, key_id: &str, after: &str, limit: i64) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM linked_tokens WHERE key_id <> $1 AND link_id > $2 ORDER BY link_id LIMIT $3");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(key_id).bind(after).bind(limit).fetch_all(pool).await?;
            rows.iter().map(token_of).collect()
        })
    }

    /// Replaces each row's blobs unless it changed since it was read (a refresh wrote new
    /// tokens), all in one transaction: a crash leaves the whole batch under its old key. Returns
    /// how many rows were replaced; the others were rewritten meanwhile.
    pub async fn rewrap_token_rows(&self, rows: &[(TokenRow, TokenRow)]) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut replaced = 0;
            for (before, after) in rows {
                replaced += sqlx::query(
                    "UPDATE linked_tokens SET key_id = $1, id_token = $2, access_token = $3, refresh_token = $4
                     WHERE link_id = $5 AND key_id = $6 AND updated_at = $7",
                )
                .bind(&after.key_id)
                .bind(&after.id_token)
                .bind(&after.access_token)
                .bind(&after.refresh_token)
                .bind(&before.link_id)
                .bind(&before.key_id)
                .bind(before.updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(replaced)
        })
    }

    pub async fn link_by_subject(&self, issuer: &str, subject: &str) -> Result<Option<LinkRow>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM linked_accounts WHERE issuer = $1 AND subject = $2");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(issuer).bind(subject).fetch_optional(pool).await?;
            row.as_ref().map(link_of).transpose()
        })
    }

    pub async fn link(&self, id: &str) -> Result<Option<LinkRow>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM linked_accounts WHERE id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(link_of).transpose()
        })
    }

    /// The account's current links (not the unlinked ones in their grace period), oldest first.
    pub async fn links_of(&self, account_id: &AccountId) -> Result<Vec<LinkRow>, StoreError> {
        let sql =
            format!("SELECT {LINK_COLUMNS} FROM linked_accounts WHERE account_id = $1 AND unlinked_at IS NULL ORDER BY linked_at, id");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id).fetch_all(pool).await?;
            rows.iter().map(link_of).collect()
        })
    }

    /// Adds a link; false when the (issuer, subject) is linked already (to anyone).
    pub async fn insert_link(&self, link: &LinkRow) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "INSERT INTO linked_accounts (id, account_id, provider, issuer, subject, email, email_verified, linked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&link.id)
            .bind(&link.account_id)
            .bind(&link.provider)
            .bind(&link.issuer)
            .bind(&link.subject)
            .bind(&link.email)
            .bind(i64::from(link.email_verified))
            .bind(link.linked_at)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Links the same account to an identity it unlinked during the grace period.
    pub async fn revive_link(
        &self,
        id: &str,
        account_id: &AccountId,
        email: Option<&str>,
        email_verified: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE linked_accounts SET unlinked_at = NULL, needs_consent_at = NULL, linked_at = $1, email = $2, email_verified = $3
                 WHERE id = $4 AND account_id = $5",
            )
            .bind(now)
            .bind(email)
            .bind(i64::from(email_verified))
            .bind(id)
            .bind(account_id)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Records a use of the link (a sign-in, a fresh token) and what the provider now says of the
    /// address; clears a pending re-consent.
    pub async fn touch_link(&self, id: &str, email: Option<&str>, email_verified: bool, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE linked_accounts SET last_used_at = $1, email = $2, email_verified = $3, needs_consent_at = NULL WHERE id = $4")
                .bind(now)
                .bind(email)
                .bind(i64::from(email_verified))
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The provider refused the link's refresh token: the person must consent again.
    pub async fn mark_link_needs_consent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE linked_accounts SET needs_consent_at = $1 WHERE id = $2 AND needs_consent_at IS NULL").bind(now).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Unlinks: the identity row stays for the grace period; tokens and partner data go at once.
    pub async fn unlink(&self, id: &str, account_id: &AccountId, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let r = sqlx::query("UPDATE linked_accounts SET unlinked_at = $1 WHERE id = $2 AND account_id = $3 AND unlinked_at IS NULL")
                .bind(now)
                .bind(id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM linked_tokens WHERE link_id = $1 AND account_id = $2").bind(id).bind(account_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM partner_profiles WHERE link_id = $1 AND account_id = $2").bind(id).bind(account_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn tokens(&self, link_id: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM linked_tokens WHERE link_id = $1");
        on_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(link_id).fetch_optional(pool).await?;
            row.as_ref().map(token_of).transpose()
        })
    }

    /// Stores a link's tokens, replacing what it had, and releases a refresh lease.
    pub async fn put_tokens(&self, row: &TokenRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO linked_tokens (link_id, account_id, provider, key_id, id_token, access_token, refresh_token, access_expires_at, refresh_lease_until, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)
                 ON CONFLICT (link_id) DO UPDATE SET account_id = excluded.account_id, provider = excluded.provider, key_id = excluded.key_id, id_token = excluded.id_token,
                   access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                   access_expires_at = excluded.access_expires_at, refresh_lease_until = NULL, updated_at = excluded.updated_at",
            )
            .bind(&row.link_id)
            .bind(&row.account_id)
            .bind(&row.provider)
            .bind(&row.key_id)
            .bind(&row.id_token)
            .bind(&row.access_token)
            .bind(&row.refresh_token)
            .bind(row.access_expires_at)
            .bind(row.updated_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Takes the link's refresh lease until `until`, only if the row is still the version the
    /// caller read (`updated_at`): false while another refresh holds it, or when another refresh
    /// already replaced the tokens (the caller reads them again instead of spending a refresh
    /// token that is no longer valid).
    pub async fn take_refresh_lease(&self, link_id: &str, read_version: i64, now: i64, until: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query(
                "UPDATE linked_tokens SET refresh_lease_until = $1
                 WHERE link_id = $2 AND updated_at = $3 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $4)",
            )
            .bind(until)
            .bind(link_id)
            .bind(read_version)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn release_refresh_lease(&self, link_id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE linked_tokens SET refresh_lease_until = NULL WHERE link_id = $1").bind(link_id).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn delete_tokens(&self, link_id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM linked_tokens WHERE link_id = $1").bind(link_id).execute(pool).await?;
            Ok(())
        })
    }

    pub async fn insert_flow(&self, flow: &FlowRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO link_flows (state_hash, browser_hash, provider, intent, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&flow.state_hash)
            .bind(&flow.browser_hash)
            .bind(&flow.provider)
            .bind(&flow.intent)
            .bind(&flow.account_id)
            .bind(flow.created_at)
            .bind(flow.expires_at)
            .execute(pool)
            .await?;
            // Abandoned flows go with the next one started (and with retention, in any case).
            sqlx::query("DELETE FROM link_flows WHERE created_at < $1").bind(flow.created_at - (flow.expires_at - flow.created_at)).execute(pool).await?;
            Ok(())
        })
    }

    /// Takes a flow by its state's hash: it is gone afterwards, whatever the outcome.
    pub async fn take_flow(&self, state_hash: &str) -> Result<Option<FlowRow>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "DELETE FROM link_flows WHERE state_hash = $1 RETURNING state_hash, browser_hash, provider, intent, account_id, created_at, expires_at",
            )
            .bind(state_hash)
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(FlowRow {
                state_hash: r.try_get("state_hash")?,
                browser_hash: r.try_get("browser_hash")?,
                provider: r.try_get("provider")?,
                intent: r.try_get("intent")?,
                account_id: r.try_get::<Option<String>, _>("account_id")?.map(AccountId::new),
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            }))
        })
    }

    pub async fn put_partner_profile(
        &self,
        link_id: &str,
        account_id: &AccountId,
        provider: &str,
        claims: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_profiles (link_id, account_id, provider, claims, received_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (link_id) DO UPDATE SET claims = excluded.claims, received_at = excluded.received_at",
            )
            .bind(link_id)
            .bind(account_id)
            .bind(provider)
            .bind(claims)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn partner_profiles_of(&self, account_id: &AccountId) -> Result<Vec<PartnerProfileRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT link_id, provider, claims, received_at FROM partner_profiles WHERE account_id = $1 ORDER BY provider, link_id")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(PartnerProfileRow {
                        link_id: r.try_get("link_id")?,
                        provider: r.try_get("provider")?,
                        claims: r.try_get("claims")?,
                        received_at: r.try_get("received_at")?,
                    })
                })
                .collect()
        })
    }

    /// Replaces the account's open suggestions with `items` (item, reason); dismissed ones stay
    /// dismissed and are not suggested again.
    pub async fn replace_suggestions(&self, account_id: &AccountId, items: &[(String, String)], now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM suggestions WHERE account_id = $1 AND dismissed_at IS NULL").bind(account_id).execute(&mut *tx).await?;
            for (item, reason) in items {
                sqlx::query("INSERT INTO suggestions (account_id, item, reason, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(account_id)
                    .bind(item)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn suggestions_of(&self, account_id: &AccountId) -> Result<Vec<SuggestionRow>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT item, reason, created_at, dismissed_at FROM suggestions WHERE account_id = $1 ORDER BY created_at, item")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| Ok(SuggestionRow { item: r.try_get("item")?, reason: r.try_get("reason")?, created_at: r.try_get("created_at")?, dismissed_at: r.try_get("dismissed_at")? }))
                .collect()
        })
    }

    pub async fn dismiss_suggestion(&self, account_id: &AccountId, item: &str, now: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("UPDATE suggestions SET dismissed_at = $1 WHERE account_id = $2 AND item = $3 AND dismissed_at IS NULL")
                .bind(now)
                .bind(account_id)
                .bind(item)
                .execute(pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Deletes everything kept under personalisation consent: partner profiles and what was
    /// inferred. Returns how many rows went.
    pub async fn delete_personalisation_data(&self, account_id: &AccountId) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let a = sqlx::query("DELETE FROM partner_profiles WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?.rows_affected();
            let b = sqlx::query("DELETE FROM suggestions WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(a + b)
        })
    }

    /// Deletes the inferred suggestions only (the person's "delete what was inferred").
    pub async fn delete_suggestions(&self, account_id: &AccountId) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM suggestions WHERE account_id = $1").bind(account_id).execute(pool).await?.rows_affected())
        })
    }

    pub async fn account_consent(&self, account_id: &AccountId, purpose: &str) -> Result<Option<i64>, StoreError> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT given_at FROM account_consents WHERE account_id = $1 AND purpose = $2")
                .bind(account_id)
                .bind(purpose)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| r.try_get("given_at")).transpose()?)
        })
    }

    pub async fn give_account_consent(&self, account_id: &AccountId, purpose: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO account_consents (account_id, purpose, given_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(account_id)
                .bind(purpose)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Withdraws a consent; false when none was given.
    pub async fn withdraw_account_consent(&self, account_id: &AccountId, purpose: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let r = sqlx::query("DELETE FROM account_consents WHERE account_id = $1 AND purpose = $2").bind(account_id).bind(purpose).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Every account that gives consent to `purpose`.
    pub async fn accounts_with_consent(&self, purpose: &str) -> Result<Vec<AccountId>, StoreError> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT account_id FROM account_consents WHERE purpose = $1 ORDER BY account_id").bind(purpose).fetch_all(pool).await?;
            rows.iter().map(|r| Ok(AccountId::new(r.try_get::<String, _>("account_id")?))).collect()
        })
    }
}
