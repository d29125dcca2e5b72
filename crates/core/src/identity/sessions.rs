//! Server-side sessions. The browser holds a random 256-bit token; the database holds only its
//! SHA-256, so a database copy signs no one in. A new token at every sign-in (no fixation), an
//! idle timeout and an absolute lifetime, and revocation of one or all.

use passme_store::AccountId;
use std::net::IpAddr;

use passme_store::{SessionRow, Store};
use secrecy::{ExposeSecret, SecretString};

use crate::CoreError;
use crate::clock::SharedClock;
use crate::net::truncate_ip;

pub const IDLE_TIMEOUT_MS: i64 = 60 * 60 * 1000;
pub const ABSOLUTE_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;
/// `last_seen_at` is written at most this often, to keep reads cheap.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
const USER_AGENT_MAX: usize = 256;

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The stored id (hash of the token): safe to show and to use in revocation URLs.
    pub id: String,
    pub account_id: AccountId,
    pub created_at: i64,
    /// Started from a "remember me" cookie, not a password.
    pub remembered: bool,
}

#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    clock: SharedClock,
}

/// The stored id of a session token.
pub use super::token_hash as session_id;
use super::{new_token, well_formed};

impl Sessions {
    pub fn new(store: Store, clock: SharedClock) -> Sessions {
        Sessions { store, clock }
    }

    /// Starts a session after a password sign-in and returns its token (for the cookie).
    pub async fn issue(&self, account_id: &AccountId, user_agent: &str, ip: IpAddr) -> Result<(SecretString, ActiveSession), CoreError> {
        self.issue_with(account_id, user_agent, ip, false).await
    }

    /// Starts a session; `remembered` marks one started from a "remember me" cookie.
    pub async fn issue_with(
        &self,
        account_id: &AccountId,
        user_agent: &str,
        ip: IpAddr,
        remembered: bool,
    ) -> Result<(SecretString, ActiveSession), CoreError> {
        let token = new_token();
        let now = self.clock.now_ms();
        let row = SessionRow {
            id: session_id(&token),
            account_id: account_id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + ABSOLUTE_LIFETIME_MS,
            user_agent: user_agent.chars().filter(|c| !c.is_control()).take(USER_AGENT_MAX).collect(),
            ip_prefix: truncate_ip(ip),
            revoked_at: None,
            remembered,
        };
        self.store.insert_session(&row).await?;
        Ok((SecretString::from(token), ActiveSession { id: row.id, account_id: row.account_id, created_at: now, remembered }))
    }

    /// The live session a token belongs to, or `None` (malformed, unknown, revoked, idle too long,
    /// or past its absolute lifetime).
    pub async fn resolve(&self, token: &SecretString) -> Result<Option<ActiveSession>, CoreError> {
        let token = token.expose_secret();
        if !well_formed(token) {
            return Ok(None);
        }
        let Some(row) = self.store.session(&session_id(token)).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if row.revoked_at.is_some() || now >= row.expires_at || now - row.last_seen_at > IDLE_TIMEOUT_MS {
            return Ok(None);
        }
        if now - row.last_seen_at >= TOUCH_EVERY_MS {
            self.store.touch_session(&row.id, now).await?;
        }
        Ok(Some(ActiveSession { id: row.id, account_id: row.account_id, created_at: row.created_at, remembered: row.remembered }))
    }

    /// Ends the session of this token (sign-out).
    pub async fn end(&self, token: &SecretString) -> Result<bool, CoreError> {
        let Some(session) = self.resolve(token).await? else { return Ok(false) };
        Ok(self.store.revoke_session(&session.account_id, &session.id, self.clock.now_ms()).await?)
    }

    /// Ends one of an account's sessions by its id; false when the id is not that account's.
    pub async fn revoke(&self, account_id: &AccountId, session_id: &str) -> Result<bool, CoreError> {
        Ok(self.store.revoke_session(account_id, session_id, self.clock.now_ms()).await?)
    }

    /// Ends every session of an account except `keep`.
    pub async fn revoke_all(&self, account_id: &AccountId, keep: Option<&str>) -> Result<u64, CoreError> {
        Ok(self.store.revoke_sessions_of(account_id, keep, self.clock.now_ms()).await?)
    }

    pub async fn list(&self, account_id: &AccountId) -> Result<Vec<SessionRow>, CoreError> {
        let now = self.clock.now_ms();
        let rows = self.store.sessions_of(account_id, now).await?;
        Ok(rows.into_iter().filter(|r| now - r.last_seen_at <= IDLE_TIMEOUT_MS).collect())
    }
}
