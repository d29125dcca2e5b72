//! The identity use cases that the pages and the JSON API share: sign-up, sign-in, password reset
//! and change, e-mail change, closing an account and resuming a remembered sign-in. Each decides
//! what happens, in the order that keeps the promises (throttles first, answers that reveal
//! nothing), and queues the mail it causes; the web layer only parses and renders.

use passme_store::AccountId;
use std::net::IpAddr;

use passme_messages::Lang;
use passme_store::{AccountRow, AccountStatus, Store};
use secrecy::SecretString;

use super::account_mail::AccountMail;
use super::accounts::{Accounts, SignUp};
use super::api_tokens::ApiTokens;
use super::email;
use super::mail_limits::MailLimits;
use super::remember::{Remember, Resume};
use super::sessions::Sessions;
use super::staff::Staff;
use super::throttle::{LoginThrottle, Verdict};
use crate::CoreError;
use crate::clock::SharedClock;
use crate::jobs::JobQueue;

/// Every identity service, built once for the process.
#[derive(Debug, Clone)]
pub struct Identity {
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub remember: Remember,
    pub api_tokens: ApiTokens,
    pub staff: Staff,
    throttle: LoginThrottle,
    mail_limits: MailLimits,
    jobs: JobQueue,
    store: Store,
}

/// What a sign-in attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    SignedIn(AccountRow),
    /// Right password, but the address is not confirmed yet (a new link is on its way).
    Unverified,
    /// Unknown address, wrong password or disabled account: one answer for all.
    Failed,
    Throttled {
        retry_after_secs: i64,
    },
}

impl Identity {
    pub fn new(store: Store, clock: SharedClock, master_key: &[u8; 32], jobs: JobQueue) -> Identity {
        Identity {
            accounts: Accounts::new(store.clone(), clock.clone()),
            sessions: Sessions::new(store.clone(), clock.clone()),
            remember: Remember::new(store.clone(), clock.clone()),
            api_tokens: ApiTokens::new(store.clone(), clock.clone()),
            staff: Staff::new(store.clone(), clock.clone()),
            throttle: LoginThrottle::new(store.clone(), clock.clone(), master_key),
            mail_limits: MailLimits::new(store.clone(), clock, master_key),
            jobs,
            store,
        }
    }

    /// Whether another mail to `address` from `ip` is within the mail limits (and counts it):
    /// for other capabilities that mail a link to an address someone typed.
    pub async fn mail_allowed(&self, address: &str, ip: IpAddr) -> Result<bool, CoreError> {
        self.mail_limits.allow(&email::key(address), ip).await
    }

    /// Sign-up: creates the account and queues the confirmation mail, or, for an address that has
    /// an account, queues a note to its owner (a new confirmation link while it is unconfirmed).
    /// The caller answers alike in every case, and over the mail limits nothing happens at all:
    /// a flood of sign-ups neither fills a mailbox nor tells who has an account.
    pub async fn sign_up(&self, address: &str, password: SecretString, lang: Lang, ip: IpAddr) -> Result<(), CoreError> {
        let address = email::validate(address)?;
        let email_key = email::key(&address);
        if !self.mail_limits.allow(&email_key, ip).await? {
            return Ok(());
        }
        let verification = |account_id: &AccountId| {
            self.jobs.prepare(&AccountMail::VerifyAddress { account_id: account_id.clone(), lang }, AccountMail::options()).map(Some)
        };
        match self.accounts.sign_up_then(&address, password, verification).await? {
            SignUp::Created { .. } => Ok(()),
            SignUp::AlreadyRegistered => AccountMail::AlreadyRegistered { email_key, lang }.enqueue(&self.jobs).await,
        }
    }

    /// Sign-in: the throttle first, then the password, then the attempt is counted (a success
    /// clears this address-and-network counter). An unconfirmed address gets a new link, within
    /// the mail limits.
    pub async fn sign_in(&self, address: &str, password: SecretString, lang: Lang, ip: IpAddr) -> Result<SignIn, CoreError> {
        let email_key = email::key(address);
        if let Verdict::Throttled { retry_after_secs } = self.throttle.check(&email_key, ip).await? {
            return Ok(SignIn::Throttled { retry_after_secs });
        }
        Ok(match self.accounts.authenticate(address, password).await? {
            Some(account) if account.email_verified_at.is_some() => {
                self.throttle.succeeded(&email_key, ip).await?;
                SignIn::SignedIn(account)
            }
            Some(account) => {
                self.throttle.failed(&email_key, ip).await?;
                if self.mail_limits.allow(&email_key, ip).await? {
                    AccountMail::VerifyAddress { account_id: account.id, lang }.enqueue(&self.jobs).await?;
                }
                SignIn::Unverified
            }
            None => {
                self.throttle.failed(&email_key, ip).await?;
                SignIn::Failed
            }
        })
    }

    /// A password reset request: counted against the mail limits and queued. Known and unknown
    /// addresses take the same path (the worker looks the address up), so neither the answer nor
    /// its timing tells whether the address has an account.
    pub async fn request_password_reset(&self, address: &str, lang: Lang, ip: IpAddr) -> Result<(), CoreError> {
        let email_key = email::key(address);
        if self.mail_limits.allow(&email_key, ip).await? {
            AccountMail::PasswordReset { email_key, lang }.enqueue(&self.jobs).await?;
        }
        Ok(())
    }

    /// Changes the password after checking the current one; every other session and every token
    /// ends, and the owner is told by mail. Returns how many sessions ended.
    pub async fn change_password(
        &self,
        account_id: &AccountId,
        current: SecretString,
        new_password: SecretString,
        keep_session: Option<&str>,
        lang: Lang,
    ) -> Result<u64, CoreError> {
        let ended = self.accounts.change_password(account_id, current, new_password, keep_session).await?;
        AccountMail::PasswordChanged { account_id: account_id.clone(), lang }.enqueue(&self.jobs).await?;
        Ok(ended)
    }

    /// Starts an e-mail change: the password again, then a confirmation link to the new address
    /// (within the mail limits, silently beyond them).
    pub async fn request_email_change(
        &self,
        account_id: &AccountId,
        current: SecretString,
        new_address: &str,
        lang: Lang,
        ip: IpAddr,
    ) -> Result<(), CoreError> {
        let new_address = self.accounts.request_email_change(account_id, current, new_address).await?;
        if self.mail_limits.allow(&email::key(&new_address), ip).await? {
            AccountMail::ConfirmNewAddress { account_id: account_id.clone(), new_address, lang }.enqueue(&self.jobs).await?;
        }
        Ok(())
    }

    /// Completes an e-mail change from its link and tells the old address. `false` when the link
    /// is used, expired or the address was taken meanwhile.
    pub async fn confirm_email_change(&self, token: &SecretString, lang: Lang) -> Result<bool, CoreError> {
        let Some((old_address, new_address)) = self.accounts.confirm_email_change(token).await? else { return Ok(false) };
        AccountMail::AddressChanged { old_address, new_address, lang }.enqueue(&self.jobs).await?;
        Ok(true)
    }

    /// Resumes a remembered sign-in; a replayed copy ends everything and the owner is told.
    pub async fn resume(&self, cookie: &SecretString) -> Result<Resume, CoreError> {
        let resume = self.remember.resume(cookie).await?;
        if let Resume::Stolen { account_id } = &resume {
            AccountMail::RememberTheft { account_id: account_id.clone() }.enqueue(&self.jobs).await?;
        }
        Ok(resume)
    }

    /// The active account of an id.
    pub async fn active_account(&self, account_id: &AccountId) -> Result<Option<AccountRow>, CoreError> {
        Ok(self.store.account(account_id).await?.filter(|a| a.status == AccountStatus::Active))
    }
}
