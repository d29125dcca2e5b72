//! The register of data-subject requests that come by the contact form or e-mail, or from the
//! privacy centre. A request counts only once the person is known to be who they say: signed in,
//! or through a confirmation link mailed to the account's address (a forged or expired link
//! verifies nothing). It is due one month after it was received; the privacy officer may extend
//! that once, by two months, with a reason (article 12(3)), and closes it with its outcome.
//! Every step is audited; the officer's queue shows what is due first.

use passme_policy::Period;
use passme_store::{AccountId, PrivacyRequestRow, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::identity::{email, new_token, token_hash, well_formed};
use crate::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};

/// What a person may ask for.
pub const KINDS: &[&str] = &["access", "export", "rectify", "erase", "object", "other"];
/// How long a mailed confirmation link works.
pub const CONFIRM_TTL_MS: i64 = 24 * 3_600_000;
/// The longest message kept with a request.
const MESSAGE_MAX: usize = 4_000;

/// `at` plus whole calendar months (UTC).
fn months_after(at: i64, months: u32) -> i64 {
    let period = Period { months, ..Period::default() };
    let span = jiff::Span::new().months(i64::from(period.months));
    jiff::Timestamp::from_millisecond(at)
        .ok()
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .and_then(|z| z.checked_add(span).ok())
        .map_or(i64::MAX, |z| z.timestamp().as_millisecond())
}

/// The mail that confirms a request made by form or e-mail; its token is minted when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub request: String,
    pub lang: passme_messages::Lang,
}

impl JobPayload for ConfirmRequest {
    const KIND: &'static str = "rights.confirm_request";
}

#[derive(Debug, Clone)]
pub struct Requests {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

impl Requests {
    pub fn new(store: Store, clock: SharedClock) -> Requests {
        let audit = AuditLog::new(store.clone(), clock.clone());
        Requests { store, clock, audit }
    }

    fn validate(kind: &str, message: &str) -> Result<(String, String), CoreError> {
        if !KINDS.contains(&kind) {
            return Err(CoreError::input("request_kind_unknown"));
        }
        let message = crate::text::plain(message);
        if message.chars().count() > MESSAGE_MAX {
            return Err(CoreError::input("request_message_too_long"));
        }
        Ok((kind.to_string(), message))
    }

    async fn insert(
        &self,
        account_id: &AccountId,
        kind: String,
        message: String,
        channel: &str,
        verified: bool,
    ) -> Result<PrivacyRequestRow, CoreError> {
        let now = self.clock.now_ms();
        let row = PrivacyRequestRow {
            id: format!("req_{}", hex::encode(rand::random::<[u8; 12]>())),
            account_id: account_id.clone(),
            kind,
            channel: channel.to_string(),
            message,
            status: if verified { "open" } else { "unverified" }.to_string(),
            received_at: now,
            verified_at: verified.then_some(now),
            due_at: months_after(now, 1),
            extended_reason: None,
            completed_at: None,
            outcome: None,
        };
        self.store.insert_privacy_request(&row).await?;
        let actor = format!("account:{account_id}");
        self.audit
            .record(AuditEvent {
                actor: &actor,
                action: "request.received",
                subject: &row.id,
                details: json!({ "kind": row.kind, "channel": channel, "verified": verified }),
            })
            .await?;
        Ok(row)
    }

    /// A request from the privacy centre: the session proves who asks.
    pub async fn submit_signed_in(&self, account_id: &AccountId, kind: &str, message: &str) -> Result<PrivacyRequestRow, CoreError> {
        let (kind, message) = Self::validate(kind, message)?;
        self.insert(account_id, kind, message, "account", true).await
    }

    /// A request by the contact form or e-mail, in the name of an address: registered and
    /// confirmed by a link to that address when it has an account; nothing otherwise. The caller
    /// answers alike either way, so the form tells nobody who has an account.
    pub async fn submit_by_email(
        &self,
        address: &str,
        kind: &str,
        message: &str,
        channel: &str,
        lang: passme_messages::Lang,
        queue: &JobQueue,
    ) -> Result<(), CoreError> {
        let (kind, message) = Self::validate(kind, message)?;
        let Some(account) = self.store.account_by_email_key(&email::key(address)).await? else { return Ok(()) };
        let row = self.insert(&account.id, kind, message, channel, false).await?;
        queue.push(&ConfirmRequest { request: row.id, lang }, EnqueueOptions::default()).await?;
        Ok(())
    }

    /// For the mail: the account's address and a fresh link token, while the request waits.
    pub async fn confirmation(&self, request: &str) -> Result<Option<(String, SecretString)>, CoreError> {
        let Some(row) = self.store.privacy_request(request).await? else { return Ok(None) };
        let Some(account) = self.store.account(&row.account_id).await? else { return Ok(None) };
        let token = new_token();
        if !self.store.arm_privacy_request(request, &token_hash(&token), self.clock.now_ms() + CONFIRM_TTL_MS).await? {
            return Ok(None);
        }
        Ok(Some((account.email, SecretString::from(token))))
    }

    /// Confirms the request behind a mailed link; `None` for a forged, used or expired one.
    pub async fn confirm(&self, token: &SecretString) -> Result<Option<PrivacyRequestRow>, CoreError> {
        if !well_formed(token.expose_secret()) {
            return Ok(None);
        }
        let Some(id) = self.store.verify_privacy_request(&token_hash(token.expose_secret()), self.clock.now_ms()).await? else {
            return Ok(None);
        };
        let row = self.store.privacy_request(&id).await?.ok_or(CoreError::NotFound { code: "request_unknown" })?;
        let actor = format!("account:{}", row.account_id);
        self.audit.record(AuditEvent { actor: &actor, action: "request.verified", subject: &id, details: json!({}) }).await?;
        Ok(Some(row))
    }

    /// Extends an open request's deadline once, by two months, for a stated reason.
    pub async fn extend(&self, id: &str, reason: &str, officer: &str) -> Result<i64, CoreError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::input("request_reason_missing"));
        }
        let row = self.store.privacy_request(id).await?.ok_or(CoreError::NotFound { code: "request_unknown" })?;
        let due = months_after(row.due_at, 2);
        if !self.store.extend_privacy_request(id, due, reason).await? {
            return Err(CoreError::Conflict { code: "request_not_extendable" });
        }
        self.audit
            .record(AuditEvent { actor: officer, action: "request.extended", subject: id, details: json!({ "due_at": due }) })
            .await?;
        Ok(due)
    }

    /// Closes an open request as done or refused, with what was done or why not.
    pub async fn close(&self, id: &str, done: bool, outcome: &str, officer: &str) -> Result<(), CoreError> {
        let outcome = outcome.trim();
        if outcome.is_empty() {
            return Err(CoreError::input("request_outcome_missing"));
        }
        let status = if done { "done" } else { "refused" };
        if !self.store.close_privacy_request(id, status, outcome, self.clock.now_ms()).await? {
            return Err(match self.store.privacy_request(id).await? {
                None => CoreError::NotFound { code: "request_unknown" },
                Some(_) => CoreError::Conflict { code: "request_not_open" },
            });
        }
        self.audit
            .record(AuditEvent { actor: officer, action: "request.closed", subject: id, details: json!({ "status": status }) })
            .await?;
        Ok(())
    }

    /// The open requests, the soonest due first.
    pub async fn queue(&self) -> Result<Vec<PrivacyRequestRow>, CoreError> {
        Ok(self.store.privacy_requests_with_status("open", 500).await?)
    }

    /// A person's own requests (verified ones), newest first.
    pub async fn of(&self, account_id: &AccountId) -> Result<Vec<PrivacyRequestRow>, CoreError> {
        Ok(self.store.privacy_requests_of(account_id).await?)
    }
}

/// Sends the confirmation mails.
#[derive(Debug, Clone)]
pub struct RequestMailer {
    pub requests: Requests,
    pub mailer: std::sync::Arc<crate::mail::Mailer>,
    pub base_url: String,
}

impl RequestMailer {
    pub fn register(self, handlers: &mut Handlers) {
        handlers.on(move |mail: ConfirmRequest| {
            let sender = self.clone();
            async move {
                let Some((address, token)) = sender.requests.confirmation(&mail.request).await? else { return Ok(()) };
                let link = format!("{}/privacy-request/confirm?token={}&lang={}", sender.base_url, token.expose_secret(), mail.lang.code());
                sender
                    .mailer
                    .send(&address, mail.lang, &crate::mail::Template::ConfirmPrivacyRequest { link })
                    .await
                    .map_err(JobError::from)
            }
        });
    }
}
