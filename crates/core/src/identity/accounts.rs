//! Accounts: sign-up, authentication, password change, disabling. Answers never reveal whether an
//! e-mail has an account: a known and an unknown address cost the same Argon2id work and produce
//! outcomes the web layer renders identically.

use passme_messages::Lang;
use passme_store::AccountId;
use passme_store::{AccountRow, AccountStatus, Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{email, password};
use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

/// Mailed link purposes and how long each works.
pub const VERIFY: &str = "verify";
pub const VERIFY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
pub const RESET: &str = "reset";
pub const EMAIL_CHANGE: &str = "email_change";
pub const RESET_TTL_MS: i64 = 60 * 60 * 1000;
/// A sign-in that fraud scanning challenged, confirmed from the mailbox.
pub const SIGN_IN: &str = "sign_in";
pub const SIGN_IN_TTL_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUp {
    Created {
        account_id: AccountId,
    },
    /// The address already has an account. Render exactly like `Created` (and tell the owner by
    /// mail), so sign-up cannot be used to find out who has an account.
    AlreadyRegistered,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

fn new_account_id() -> AccountId {
    AccountId::new(format!("acc_{}", hex::encode(rand::random::<[u8; 16]>())))
}

impl Accounts {
    pub fn new(store: Store, clock: SharedClock) -> Accounts {
        let audit = AuditLog::new(store.clone(), clock.clone());
        Accounts { store, clock, audit }
    }

    /// The time on the accounts' clock (a test's clock in tests).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub async fn sign_up(&self, address: &str, new_password: SecretString) -> Result<SignUp, CoreError> {
        self.sign_up_then(address, new_password, |_| Ok(None)).await
    }

    /// Sign-up, storing the job `then` makes for the new account (its verification mail) in the
    /// same transaction as the account: no crash in between can leave an account whose mail
    /// was never queued.
    pub async fn sign_up_then(
        &self,
        address: &str,
        new_password: SecretString,
        then: impl FnOnce(&AccountId) -> Result<Option<passme_store::NewJob>, CoreError>,
    ) -> Result<SignUp, CoreError> {
        let address = email::validate(address)?;
        let key = email::key(&address);
        password::check_new(new_password.expose_secret(), &[&address, &key, "passme"])?;
        // Hash before looking: a taken address costs the same time as a free one.
        let hash = password::hash(new_password).await?;
        let now = self.clock.now_ms();
        let account = AccountRow {
            id: new_account_id(),
            email: address,
            email_key: key,
            email_verified_at: None,
            password_hash: hash,
            status: AccountStatus::Active,
            created_at: now,
        };
        let job = then(&account.id)?;
        match self.store.insert_account(&account, job.as_ref()).await {
            Ok(()) => {
                let subject = format!("account:{}", account.id);
                self.audit.record(AuditEvent { actor: &subject, action: "account.created", subject: &subject, details: json!({}) }).await?;
                Ok(SignUp::Created { account_id: account.id })
            }
            Err(StoreError::Conflict) => Ok(SignUp::AlreadyRegistered),
            Err(e) => Err(e.into()),
        }
    }

    /// The active account with this address and password, or `None` for any other case (unknown
    /// address, wrong password, disabled account) after the same amount of work.
    pub async fn authenticate(&self, address: &str, attempt: SecretString) -> Result<Option<AccountRow>, CoreError> {
        if attempt.expose_secret().chars().count() > password::MAX_CHARS {
            // Longer than any accepted password: it cannot match, and hashing 1 MB is a gift to
            // an attacker. Still spend the usual work so the answer takes the usual time.
            password::verify_dummy(SecretString::from(String::new())).await;
            return Ok(None);
        }
        let Some(account) = self.store.account_by_email_key(&email::key(address)).await? else {
            password::verify_dummy(attempt).await;
            return Ok(None);
        };
        let matches = password::verify(attempt, account.password_hash.clone()).await;
        Ok((matches && account.status == AccountStatus::Active).then_some(account))
    }

    /// The account, after checking its current password: the re-authentication every
    /// sensitive change asks for, also from a remembered sign-in.
    pub async fn reauthenticate(&self, account_id: &AccountId, current: SecretString) -> Result<AccountRow, CoreError> {
        let account = self.store.account(account_id).await?.ok_or(CoreError::NotFound { code: "account_unknown" })?;
        if !password::verify(current, account.password_hash.clone()).await {
            return Err(CoreError::input("password_incorrect"));
        }
        Ok(account)
    }

    /// A single-use token for a mailed link; only its hash is stored.
    pub async fn issue_token(&self, account_id: &AccountId, purpose: &str, ttl_ms: i64) -> Result<SecretString, CoreError> {
        let token = super::new_token();
        let now = self.clock.now_ms();
        self.store.insert_account_token(&super::token_hash(&token), account_id, purpose, None, now, now + ttl_ms).await?;
        Ok(SecretString::from(token))
    }

    /// Confirms the address behind a verification link; the link then never works again.
    pub async fn verify_address(&self, token: &SecretString) -> Result<Option<AccountRow>, CoreError> {
        if !super::well_formed(token.expose_secret()) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let Some((account_id, _)) = self.store.use_account_token(&super::token_hash(token.expose_secret()), VERIFY, now).await? else {
            return Ok(None);
        };
        self.store.set_email_verified(&account_id, now).await?;
        let subject = format!("account:{account_id}");
        self.audit.record(AuditEvent { actor: &subject, action: "account.email_verified", subject: &subject, details: json!({}) }).await?;
        Ok(self.store.account(&account_id).await?.filter(|a| a.status == AccountStatus::Active))
    }

    /// Completes a challenged sign-in: the account behind the link, while it is active; the
    /// link never works again.
    pub async fn confirm_sign_in(&self, token: &SecretString) -> Result<Option<AccountRow>, CoreError> {
        if !super::well_formed(token.expose_secret()) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let Some((account_id, _)) = self.store.use_account_token(&super::token_hash(token.expose_secret()), SIGN_IN, now).await? else {
            return Ok(None);
        };
        Ok(self.store.account(&account_id).await?.filter(|a| a.status == AccountStatus::Active))
    }

    /// For a reset request: the account's address and a fresh one-hour reset token, or `None`
    /// for an unknown or disabled address (the caller answers alike either way).
    pub async fn request_reset(&self, address: &str) -> Result<Option<(String, SecretString)>, CoreError> {
        let Some(account) = self.store.account_by_email_key(&email::key(address)).await? else {
            return Ok(None);
        };
        if account.status != AccountStatus::Active {
            return Ok(None);
        }
        let token = self.issue_token(&account.id, RESET, RESET_TTL_MS).await?;
        Ok(Some((account.email, token)))
    }

    /// Sets a new password from a reset link. The link works once; every session of the account
    /// ends, since whoever held them may be the reason for the reset.
    pub async fn reset_password(&self, token: &SecretString, new_password: SecretString) -> Result<bool, CoreError> {
        if !super::well_formed(token.expose_secret()) {
            return Ok(false);
        }
        // Check the new password before using up the link, so a weak choice can be corrected.
        password::check_new(new_password.expose_secret(), &["passme"])?;
        let now = self.clock.now_ms();
        let Some((account_id, _)) = self.store.use_account_token(&super::token_hash(token.expose_secret()), RESET, now).await? else {
            return Ok(false);
        };
        self.replace_password(&account_id, new_password, None, "account.password_reset").await?;
        // The link reached the mailbox: the address is proven, as a verification link would.
        self.store.set_email_verified(&account_id, now).await?;
        Ok(true)
    }

    /// Stores a new password and ends what the old one opened: every session but `keep`, every
    /// remember-me series and every personal access token (a token made by whoever knew the old
    /// password must not outlive it). Audited under `action`. Returns how many sessions ended.
    async fn replace_password(
        &self,
        account_id: &AccountId,
        new_password: SecretString,
        keep: Option<&str>,
        action: &str,
    ) -> Result<u64, CoreError> {
        let hash = password::hash(new_password).await?;
        let now = self.clock.now_ms();
        self.store.set_password_hash(account_id, &hash, now).await?;
        let ended = self.store.revoke_sessions_of(account_id, keep, now).await?;
        self.store.delete_remember_of(account_id).await?;
        let tokens = self.store.revoke_api_tokens_of(account_id, now).await?;
        let subject = format!("account:{account_id}");
        self.audit
            .record(AuditEvent {
                actor: &subject,
                action,
                subject: &subject,
                details: json!({ "sessions_ended": ended, "tokens_revoked": tokens }),
            })
            .await?;
        Ok(ended)
    }

    /// Starts an e-mail change after checking the password (re-authentication, also for a
    /// remembered sign-in). Returns the new address as it will be stored; the address changes
    /// only when the link mailed to it is used (see [`Accounts::issue_email_change_token`]).
    pub async fn request_email_change(
        &self,
        account_id: &AccountId,
        current: SecretString,
        new_address: &str,
    ) -> Result<String, CoreError> {
        let new_address = email::validate(new_address)?;
        self.reauthenticate(account_id, current).await?;
        Ok(new_address)
    }

    /// The token of the link that moves an account to `new_address`; only its hash is stored.
    pub async fn issue_email_change_token(&self, account_id: &AccountId, new_address: &str) -> Result<SecretString, CoreError> {
        let token = super::new_token();
        let now = self.clock.now_ms();
        self.store
            .insert_account_token(&super::token_hash(&token), account_id, EMAIL_CHANGE, Some(new_address), now, now + VERIFY_TTL_MS)
            .await?;
        Ok(SecretString::from(token))
    }

    /// The language an account chose for the service, if it chose one.
    pub async fn language_of(&self, account_id: &AccountId) -> Result<Option<Lang>, CoreError> {
        let (_, lang, _) = self.store.account_prefs(account_id).await?;
        Ok(lang.as_deref().and_then(Lang::parse))
    }

    /// Completes an e-mail change from its link: returns (old address, new address), or `None`
    /// when the link is used, expired or the address was taken meanwhile.
    pub async fn confirm_email_change(&self, token: &SecretString) -> Result<Option<(String, String)>, CoreError> {
        if !super::well_formed(token.expose_secret()) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let Some((account_id, Some(new_address))) =
            self.store.use_account_token(&super::token_hash(token.expose_secret()), EMAIL_CHANGE, now).await?
        else {
            return Ok(None);
        };
        let Some(account) = self.store.account(&account_id).await? else { return Ok(None) };
        match self.store.set_account_email(&account_id, &new_address, &email::key(&new_address), now).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let subject = format!("account:{account_id}");
        self.audit.record(AuditEvent { actor: &subject, action: "account.email_changed", subject: &subject, details: json!({}) }).await?;
        Ok(Some((account.email, new_address)))
    }

    /// Changes the password after checking the current one; every other session of the account
    /// ends. Returns how many sessions were ended.
    pub async fn change_password(
        &self,
        account_id: &AccountId,
        current: SecretString,
        new_password: SecretString,
        keep_session: Option<&str>,
    ) -> Result<u64, CoreError> {
        let account = self.reauthenticate(account_id, current).await?;
        password::check_new(new_password.expose_secret(), &[&account.email, "passme"])?;
        self.replace_password(account_id, new_password, keep_session, "account.password_changed").await
    }

    /// Closes an account at its owner's request, after checking the password: every session,
    /// remember-me series and access token ends now; the declared retention rules then erase the
    /// password hash after a day and the rest after the 30-day grace period.
    pub async fn close(&self, account_id: &AccountId, current: SecretString) -> Result<(), CoreError> {
        self.reauthenticate(account_id, current).await?;
        let now = self.clock.now_ms();
        self.store.close_account(account_id, now).await?;
        self.store.revoke_sessions_of(account_id, None, now).await?;
        self.store.delete_remember_of(account_id).await?;
        self.store.revoke_api_tokens_of(account_id, now).await?;
        let subject = format!("account:{account_id}");
        self.audit.record(AuditEvent { actor: &subject, action: "account.closed", subject: &subject, details: json!({}) }).await?;
        Ok(())
    }

    /// Disables an account and ends all its sessions.
    pub async fn disable(&self, account_id: &AccountId, actor: &str) -> Result<u64, CoreError> {
        let now = self.clock.now_ms();
        if !self.store.set_account_status(account_id, AccountStatus::Disabled, now).await? {
            return Err(CoreError::NotFound { code: "account_unknown" });
        }
        let ended = self.store.revoke_sessions_of(account_id, None, now).await?;
        self.store.delete_remember_of(account_id).await?;
        self.audit
            .record(AuditEvent {
                actor,
                action: "account.disabled",
                subject: &format!("account:{account_id}"),
                details: json!({ "sessions_ended": ended }),
            })
            .await?;
        Ok(ended)
    }
}
