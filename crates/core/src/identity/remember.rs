//! "Remember me": a split token in the `__Host-remember` cookie — a public selector and a secret
//! validator stored only as SHA-256 — rotated at every use.
//!
//! A validator replaced less than a minute ago still works once more (two tabs resuming at the
//! same moment; the browser already holds the new cookie), and only once: every further use inside
//! that minute is refused quietly. Any other stale or wrong validator for a known selector means
//! the cookie was copied: the account's every series and every session end (the thief's, minted
//! from the copy, among them) and the owner is told.

use base64::Engine as _;
use passme_store::AccountId;
use passme_store::{RememberRow, Store};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{new_token, token_hash, well_formed};
use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

pub const COOKIE: &str = "__Host-remember";
pub const LIFETIME_MS: i64 = 30 * 86_400_000;
pub const GRACE_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Sign the account in (marked remembered); set the new cookie value when there is one.
    Resumed { account_id: AccountId, new_cookie: Option<String> },
    /// The previous validator inside its grace window, whose one use is already spent: no
    /// sign-in, and the cookie stays as it is (the browser may hold the new one by now).
    Refused,
    /// A copied cookie was replayed: every series and session of the account ended; tell the
    /// owner.
    Stolen { account_id: AccountId },
    /// Malformed, unknown or expired: ignore it (and clear it).
    Invalid,
}

#[derive(Debug, Clone)]
pub struct Remember {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

fn parse(value: &str) -> Option<(&str, &str)> {
    let (selector, validator) = value.split_once('.')?;
    let selector_ok = selector.len() == 22 && selector.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (selector_ok && well_formed(validator)).then_some((selector, validator))
}

impl Remember {
    pub fn new(store: Store, clock: SharedClock) -> Remember {
        let audit = AuditLog::new(store.clone(), clock.clone());
        Remember { store, clock, audit }
    }

    /// Starts a series; returns the cookie value.
    pub async fn start(&self, account_id: &AccountId) -> Result<SecretString, CoreError> {
        let selector = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let validator = new_token();
        let now = self.clock.now_ms();
        let row = RememberRow {
            selector: selector.clone(),
            account_id: account_id.clone(),
            validator_hash: token_hash(&validator),
            prev_validator_hash: None,
            prev_valid_until: None,
            expires_at: now + LIFETIME_MS,
        };
        self.store.insert_remember(&row, now).await?;
        Ok(SecretString::from(format!("{selector}.{validator}")))
    }

    pub async fn resume(&self, cookie: &SecretString) -> Result<Resume, CoreError> {
        let Some((selector, validator)) = parse(cookie.expose_secret()) else { return Ok(Resume::Invalid) };
        let Some(row) = self.store.remember(selector).await? else { return Ok(Resume::Invalid) };
        let now = self.clock.now_ms();
        if now >= row.expires_at {
            self.store.delete_remember(selector).await?;
            return Ok(Resume::Invalid);
        }
        let presented = token_hash(validator);
        if presented == row.validator_hash {
            let next = new_token();
            if self.store.rotate_remember(selector, &row.validator_hash, &token_hash(&next), now + GRACE_MS, now).await? {
                return Ok(Resume::Resumed { account_id: row.account_id, new_cookie: Some(format!("{selector}.{next}")) });
            }
            // Another request rotated it a moment ago: this one is the grace use, if still unspent.
            return self.grace(selector, &presented, row.account_id, now).await;
        }
        let in_grace =
            row.prev_validator_hash.as_deref() == Some(presented.as_str()) && row.prev_valid_until.is_some_and(|until| now <= until);
        if in_grace {
            return self.grace(selector, &presented, row.account_id, now).await;
        }
        self.stolen(row.account_id, now).await
    }

    /// The one use of a just-replaced validator: a sign-in without a new cookie, or a refusal once
    /// it is spent.
    async fn grace(&self, selector: &str, presented: &str, account_id: AccountId, now: i64) -> Result<Resume, CoreError> {
        Ok(if self.store.use_remember_grace(selector, presented, now).await? {
            Resume::Resumed { account_id, new_cookie: None }
        } else {
            Resume::Refused
        })
    }

    /// A copied cookie: ends every series and every session of the account, whoever holds them.
    async fn stolen(&self, account_id: AccountId, now: i64) -> Result<Resume, CoreError> {
        let series = self.store.delete_remember_of(&account_id).await?;
        let sessions = self.store.revoke_sessions_of(&account_id, None, now).await?;
        let subject = format!("account:{account_id}");
        self.audit
            .record(AuditEvent {
                actor: "system",
                action: "remember.theft_detected",
                subject: &subject,
                details: json!({ "series_revoked": series, "sessions_ended": sessions }),
            })
            .await?;
        Ok(Resume::Stolen { account_id })
    }

    /// Ends the series of this cookie (sign-out).
    pub async fn end(&self, cookie: &SecretString) -> Result<(), CoreError> {
        if let Some((selector, _)) = parse(cookie.expose_secret()) {
            self.store.delete_remember(selector).await?;
        }
        Ok(())
    }
}
