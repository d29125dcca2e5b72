//! Account mail sent from the job queue, not from the request. A job names what to send and to
//! whom (an address key, an account), never a secret: the worker mints a mailed link's token only
//! when it sends, so no usable token ever waits in the job table.
//!
//! A password reset request is the first such mail: the request only counts it against the mail
//! limits and queues it, the same work whether or not the address has an account, so neither the
//! answer nor its timing tells whether it has one. The worker looks the address up.

use std::net::IpAddr;
use std::sync::Arc;

use passme_policy::Lang;
use passme_store::Job;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::accounts::Accounts;
use super::email;
use super::mail_limits::MailLimits;
use crate::CoreError;
use crate::jobs::{EnqueueOptions, HandlerFuture, JobQueue};
use crate::mail::{Mailer, Template};

pub const JOB_KIND: &str = "account.mail";

/// One account mail to send, as its job stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mail", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountMail {
    /// Someone asked for a new password for this address: a one-hour link if it has an active
    /// account, nothing otherwise.
    PasswordReset { email_key: String, lang: Lang },
}

/// Sends queued account mail.
#[derive(Debug, Clone)]
pub struct AccountMailer {
    accounts: Accounts,
    mailer: Arc<Mailer>,
    /// Where people reach the service, for the links in the mails.
    base_url: String,
}

impl AccountMailer {
    pub fn new(accounts: Accounts, mailer: Arc<Mailer>, base_url: impl Into<String>) -> AccountMailer {
        AccountMailer { accounts, mailer, base_url: base_url.into() }
    }

    pub async fn deliver(&self, mail: &AccountMail) -> Result<(), CoreError> {
        match mail {
            AccountMail::PasswordReset { email_key, lang } => {
                let Some((address, token)) = self.accounts.request_reset(email_key).await? else { return Ok(()) };
                let link = format!("{}/reset?token={}&lang={}", self.base_url, token.expose_secret(), lang.code());
                self.mailer.send(&address, *lang, &Template::PasswordReset { link }).await
            }
        }
    }

    /// The job handler.
    pub fn handler(self) -> impl Fn(Job) -> HandlerFuture + Send + Sync + 'static {
        move |job| {
            let sender = self.clone();
            Box::pin(async move {
                let mail: AccountMail = serde_json::from_str(&job.payload).map_err(|e| format!("not an account mail: {e}"))?;
                sender.deliver(&mail).await.map_err(|e| e.to_string())
            })
        }
    }
}

/// Takes a password reset request: counts it against the mail limits and, within them, queues
/// the mail. Known and unknown addresses take the same path.
pub async fn request_password_reset(limits: &MailLimits, queue: &JobQueue, address: &str, lang: Lang, ip: IpAddr) -> Result<(), CoreError> {
    let email_key = email::key(address);
    if limits.allow(&email_key, ip).await? {
        let mail = AccountMail::PasswordReset { email_key, lang };
        let payload = serde_json::to_value(&mail).map_err(|e| CoreError::Invalid { code: "mail_invalid", message: e.to_string() })?;
        queue.enqueue(JOB_KIND, &payload, EnqueueOptions::default()).await?;
    }
    Ok(())
}
