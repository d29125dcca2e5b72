//! Account mail, sent from the job queue and never from a request: a request that causes a mail
//! queues it (a new account's verification in the same transaction as the account) and answers
//! at once, whether or not the mail relay is up, and a worker sends it with retries. A job names
//! what to send and to whom (an account, an address key), never a secret: the worker mints a
//! mailed link's token only when it sends, so no usable token ever waits in the job table.

use passme_store::AccountId;
use std::sync::Arc;

use passme_messages::Lang;
use passme_store::Store;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::accounts::{Accounts, SIGN_IN, SIGN_IN_TTL_MS, VERIFY, VERIFY_TTL_MS};
use crate::CoreError;
use crate::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};
use crate::mail::{Mailer, Template};

/// One account mail to send, as its job stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mail", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountMail {
    /// Confirms a new account's address with a 24-hour link.
    VerifyAddress { account_id: AccountId, lang: Lang },
    /// Someone signed up with an address that has an account: tell its owner, or, while the
    /// address is unconfirmed, send a new confirmation link (so nobody is stranded unverified).
    AlreadyRegistered { email_key: String, lang: Lang },
    /// Someone asked for a new password for this address: a one-hour link if it has an active
    /// account, nothing otherwise.
    PasswordReset { email_key: String, lang: Lang },
    /// Confirms a new address (an e-mail change) with a 24-hour link sent to it.
    ConfirmNewAddress { account_id: AccountId, new_address: String, lang: Lang },
    /// Tells the old address that the account moved to a new one.
    AddressChanged { old_address: String, new_address: String, lang: Lang },
    /// Fraud scanning challenged a sign-in: a 15-minute link that completes it.
    ConfirmSignIn { account_id: AccountId, lang: Lang },
    /// Tells the owner that the password was changed.
    PasswordChanged { account_id: AccountId, lang: Lang },
    /// A copied "remember me" cookie was replayed: every session ended. In the account's own
    /// language, when it chose one.
    RememberTheft { account_id: AccountId },
}

/// Attempts at one account mail before it is dead-lettered.
pub const MAIL_ATTEMPTS: i64 = 16;

impl JobPayload for AccountMail {
    const KIND: &'static str = "account.mail";
}

impl AccountMail {
    /// The template's name in the message log.
    pub fn template(&self) -> &'static str {
        match self {
            AccountMail::VerifyAddress { .. } => "verify_address",
            AccountMail::AlreadyRegistered { .. } => "already_registered",
            AccountMail::PasswordReset { .. } => "password_reset",
            AccountMail::ConfirmNewAddress { .. } => "confirm_new_address",
            AccountMail::AddressChanged { .. } => "address_changed",
            AccountMail::PasswordChanged { .. } => "password_changed",
            AccountMail::ConfirmSignIn { .. } => "confirm_sign_in",
            AccountMail::RememberTheft { .. } => "remember_theft",
        }
    }

    /// Whom the mail is about, when the job names the account.
    fn account(&self) -> Option<&AccountId> {
        match self {
            AccountMail::VerifyAddress { account_id, .. }
            | AccountMail::ConfirmNewAddress { account_id, .. }
            | AccountMail::PasswordChanged { account_id, .. }
            | AccountMail::ConfirmSignIn { account_id, .. }
            | AccountMail::RememberTheft { account_id } => Some(account_id),
            _ => None,
        }
    }

    /// Queues the mail; delivered at least once by the worker.
    pub async fn enqueue(&self, queue: &JobQueue) -> Result<(), CoreError> {
        queue.push(self, Self::options()).await?;
        Ok(())
    }

    /// Account mail goes out with the other messages (a hung relay holds up no other work) and
    /// is retried through a relay outage of hours: 16 attempts, backing off to an hour, span
    /// about five. Each attempt mints its link afresh, so a late mail's link still works.
    pub fn options() -> EnqueueOptions {
        EnqueueOptions { queue: Some(crate::jobs::MESSAGES_QUEUE.into()), max_attempts: Some(MAIL_ATTEMPTS), ..EnqueueOptions::default() }
    }
}

/// Sends queued account mail.
#[derive(Debug, Clone)]
pub struct AccountMailer {
    store: Store,
    accounts: Accounts,
    mailer: Arc<Mailer>,
    /// Where people reach the service, for the links in the mails.
    base_url: String,
}

impl AccountMailer {
    pub fn new(accounts: Accounts, store: Store, mailer: Arc<Mailer>, base_url: impl Into<String>) -> AccountMailer {
        AccountMailer { store, accounts, mailer, base_url: base_url.into() }
    }

    fn link(&self, path: &str, token: Option<&str>, lang: Lang) -> String {
        match token {
            Some(token) => format!("{}{path}?token={token}&lang={}", self.base_url, lang.code()),
            None => format!("{}{path}?lang={}", self.base_url, lang.code()),
        }
    }

    pub async fn deliver(&self, mail: &AccountMail) -> Result<(), CoreError> {
        match mail {
            AccountMail::VerifyAddress { account_id, lang } => match self.store.account(account_id).await? {
                Some(account) if account.email_verified_at.is_none() => self.send_verification(&account, *lang).await,
                _ => Ok(()),
            },
            AccountMail::AlreadyRegistered { email_key, lang } => match self.store.account_by_email_key(email_key).await? {
                Some(account) if account.email_verified_at.is_none() => self.send_verification(&account, *lang).await,
                Some(account) => {
                    let login_link = self.link("/login", None, *lang);
                    self.mailer.send(&account.email, *lang, &Template::AlreadyRegistered { login_link }).await
                }
                None => Ok(()),
            },
            AccountMail::PasswordReset { email_key, lang } => {
                let Some((address, token)) = self.accounts.request_reset(email_key).await? else { return Ok(()) };
                let link = self.link("/reset", Some(token.expose_secret()), *lang);
                self.mailer.send(&address, *lang, &Template::PasswordReset { link }).await
            }
            AccountMail::ConfirmNewAddress { account_id, new_address, lang } => {
                let token = self.accounts.issue_email_change_token(account_id, new_address).await?;
                let link = self.link("/email-confirm", Some(token.expose_secret()), *lang);
                self.mailer.send(new_address, *lang, &Template::ConfirmNewAddress { link }).await
            }
            AccountMail::AddressChanged { old_address, new_address, lang } => {
                self.mailer.send(old_address, *lang, &Template::AddressChanged { new_address: new_address.clone() }).await
            }
            AccountMail::PasswordChanged { account_id, lang } => {
                let Some(account) = self.store.account(account_id).await? else { return Ok(()) };
                let reset_link = self.link("/reset-request", None, *lang);
                self.mailer.send(&account.email, *lang, &Template::PasswordChanged { reset_link }).await
            }
            AccountMail::ConfirmSignIn { account_id, lang } => {
                let Some(account) = self.store.account(account_id).await? else { return Ok(()) };
                let token = self.accounts.issue_token(account_id, SIGN_IN, SIGN_IN_TTL_MS).await?;
                let link = self.link("/login/confirm", Some(token.expose_secret()), *lang);
                self.mailer.send(&account.email, *lang, &Template::ConfirmSignIn { link }).await
            }
            AccountMail::RememberTheft { account_id } => {
                let Some(account) = self.store.account(account_id).await? else { return Ok(()) };
                let lang = self.accounts.language_of(account_id).await?.unwrap_or(Lang::Da);
                let reset_link = self.link("/reset-request", None, lang);
                self.mailer.send(&account.email, lang, &Template::RememberTheft { reset_link }).await
            }
        }
    }

    async fn send_verification(&self, account: &passme_store::AccountRow, lang: Lang) -> Result<(), CoreError> {
        let token = self.accounts.issue_token(&account.id, VERIFY, VERIFY_TTL_MS).await?;
        let link = self.link("/verify", Some(token.expose_secret()), lang);
        self.mailer.send(&account.email, lang, &Template::VerifyAddress { link }).await
    }

    /// Handles the account mail jobs. Each sent mail gets a line in the message log, like every
    /// other message (template, channel, status; never the text or its link).
    pub fn register(self, handlers: &mut Handlers) {
        handlers.register(AccountMail::KIND, move |job: passme_store::Job| {
            let sender = self.clone();
            async move {
                let mail: AccountMail = serde_json::from_str(&job.payload).map_err(|e| JobError::Payload(e.to_string()))?;
                sender.deliver(&mail).await.map_err(JobError::from)?;
                let line = passme_store::NewMessage {
                    id: crate::mail::message_id(&job.id),
                    account_id: mail.account().cloned(),
                    campaign_id: None,
                    channel: "email".into(),
                    template: mail.template().into(),
                };
                let now = sender.accounts.now_ms();
                sender.store.log_message(&line, "sent", None, now).await.map_err(|e| JobError::from(CoreError::from(e)))?;
                Ok(())
            }
        });
    }
}
