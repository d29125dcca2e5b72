//! Compliance (the policy's "compliance" capability): actions under the terms of service and the
//! register of requests from authorities, both kept 5 years after they are complete
//! (`compliance.legal_requests`).
//!
//! An action suspends or closes an account for a named clause, with a reason the person reads;
//! it is audited, the person is told by mail with a link to appeal (30 days, no sign-in needed,
//! since a suspended person cannot sign in), and an admin decides the appeal: upheld, or
//! reversed, which reopens the account.

use passme_messages::Lang;
use passme_store::{AccountId, AccountStatus, AuthorityRequestRow, Store, TermsActionRow};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::jobs::{EnqueueOptions, JobPayload, JobQueue};

/// The clauses an action may rest on: the terms of use, app-store rules and the law.
pub const CLAUSES: &[&str] = &["abuse", "fraud", "app_store", "law"];
pub const APPEAL_PURPOSE: &str = "terms_appeal";
pub const APPEAL_TTL_MS: i64 = 30 * 86_400_000;
const REASON_MIN: usize = 10;
const TEXT_MAX: usize = 2_000;

/// What an action does to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermsAction {
    /// Signing in stops until the suspension is lifted (on appeal).
    Suspend,
    /// The account closes; the declared retention erases it after the grace period.
    Close,
}

impl TermsAction {
    pub fn id(self) -> &'static str {
        match self {
            TermsAction::Suspend => "suspend",
            TermsAction::Close => "close",
        }
    }

    pub fn parse(s: &str) -> Option<TermsAction> {
        [TermsAction::Suspend, TermsAction::Close].into_iter().find(|a| a.id() == s)
    }
}

/// The mail that tells the person, with the link to appeal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsNotice {
    pub action: String,
    pub lang: Lang,
}

impl JobPayload for TermsNotice {
    const KIND: &'static str = "compliance.terms_notice";
}

fn text(value: &str, min: usize, code: &'static str) -> Result<String, CoreError> {
    let value = crate::text::plain(value);
    if value.chars().count() < min || value.chars().count() > TEXT_MAX {
        return Err(CoreError::input(code));
    }
    Ok(value)
}

#[derive(Debug, Clone)]
pub struct Compliance {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    jobs: JobQueue,
}

impl Compliance {
    pub fn new(store: Store, clock: SharedClock, jobs: JobQueue) -> Compliance {
        Compliance { audit: AuditLog::new(store.clone(), clock.clone()), store, clock, jobs }
    }

    /// Suspends or closes an account under a clause, with the reason the person will read.
    pub async fn enforce(
        &self,
        account_id: &AccountId,
        action: TermsAction,
        clause: &str,
        reason: &str,
        by: &str,
        lang: Lang,
    ) -> Result<TermsActionRow, CoreError> {
        if !CLAUSES.contains(&clause) {
            return Err(CoreError::input("terms_clause_unknown"));
        }
        let reason = text(reason, REASON_MIN, "reason_required")?;
        let now = self.clock.now_ms();
        let row = TermsActionRow {
            id: crate::crypto::random_id::<8>("tos_"),
            account_id: account_id.clone(),
            action: action.id().into(),
            clause: clause.into(),
            reason,
            decided_by: by.into(),
            decided_at: now,
            appeal: None,
            appealed_at: None,
            outcome: None,
            outcome_note: None,
            resolved_by: None,
            completed_at: None,
        };
        self.store.insert_terms_action(&row).await?;
        match action {
            TermsAction::Suspend => {
                self.store.set_account_status(account_id, AccountStatus::Disabled, now).await?;
            }
            TermsAction::Close => {
                self.store.close_account(account_id, now).await?;
            }
        }
        self.store.revoke_sessions_of(account_id, None, now).await?;
        self.store.delete_remember_of(account_id).await?;
        self.store.revoke_api_tokens_of(account_id, now).await?;
        self.audit
            .record(AuditEvent {
                actor: by,
                action: "compliance.terms_action",
                subject: &format!("account:{account_id}"),
                details: json!({ "action": row.id, "kind": action.id(), "clause": clause }),
            })
            .await?;
        self.jobs.push(&TermsNotice { action: row.id.clone(), lang }, EnqueueOptions::default()).await?;
        Ok(row)
    }

    /// A fresh appeal link for the mail: the account's address and the token.
    pub async fn appeal_link(&self, action_id: &str) -> Result<Option<(TermsActionRow, String, SecretString)>, CoreError> {
        let Some(action) = self.store.terms_action(action_id).await? else { return Ok(None) };
        let Some(account) = self.store.account(&action.account_id).await? else { return Ok(None) };
        let token = crate::identity::new_token();
        let now = self.clock.now_ms();
        self.store
            .insert_account_token(&crate::identity::token_hash(&token), &action.account_id, APPEAL_PURPOSE, None, now, now + APPEAL_TTL_MS)
            .await?;
        Ok(Some((action, account.email, SecretString::from(token))))
    }

    /// The action an appeal link is for, without using the link up (the page shows it).
    pub async fn action_of_link(&self, token: &SecretString) -> Result<Option<TermsActionRow>, CoreError> {
        let id = crate::identity::token_hash(token.expose_secret());
        let Some(account_id) = self.store.account_token_holder(&id, APPEAL_PURPOSE, self.clock.now_ms()).await? else { return Ok(None) };
        Ok(self.store.appealable_terms_action(&account_id).await?)
    }

    /// The person's appeal, through the mailed link (used up by it), once per action.
    pub async fn appeal(&self, token: &SecretString, words: &str) -> Result<TermsActionRow, CoreError> {
        let words = text(words, REASON_MIN, "appeal_length")?;
        let now = self.clock.now_ms();
        let id = crate::identity::token_hash(token.expose_secret());
        let Some((account_id, _)) = self.store.use_account_token(&id, APPEAL_PURPOSE, now).await? else {
            return Err(CoreError::input("token_invalid"));
        };
        let Some(action_id) = self.store.appealable_terms_action(&account_id).await?.map(|a| a.id) else {
            return Err(CoreError::Conflict { code: "appeal_not_possible" });
        };
        if !self.store.appeal_terms_action(&action_id, &words, now).await? {
            return Err(CoreError::Conflict { code: "appeal_not_possible" });
        }
        let subject = format!("account:{account_id}");
        self.audit
            .record(AuditEvent {
                actor: &subject,
                action: "compliance.terms_appealed",
                subject: &subject,
                details: json!({ "action": action_id }),
            })
            .await?;
        self.store.terms_action(&action_id).await?.ok_or(CoreError::NotFound { code: "not_found" })
    }

    /// Sends the notice of an action (the job's work): in the person's language, with the reason
    /// and a fresh appeal link.
    pub async fn send_notice(&self, notice: &TermsNotice, mailer: &crate::mail::Mailer, base_url: &str) -> Result<(), CoreError> {
        let Some((action, address, token)) = self.appeal_link(&notice.action).await? else { return Ok(()) };
        let t = passme_messages::Texts(notice.lang);
        let clause = t.terms_clause(&action.clause).unwrap_or(&action.clause).to_string();
        let link = format!("{base_url}/appeal?token={}&lang={}", token.expose_secret(), notice.lang.code());
        let template = crate::mail::Template::TermsAction { closed: action.action == "close", clause, reason: action.reason, link };
        mailer.send(&address, notice.lang, &template).await
    }

    /// Registers the notice job.
    pub fn register(&self, handlers: &mut crate::jobs::Handlers, mailer: std::sync::Arc<crate::mail::Mailer>, base_url: String) {
        let compliance = self.clone();
        handlers.on(move |notice: TermsNotice| {
            let (compliance, mailer, base_url) = (compliance.clone(), mailer.clone(), base_url.clone());
            async move { compliance.send_notice(&notice, &mailer, &base_url).await.map_err(crate::jobs::JobError::from) }
        });
    }

    /// Decides an appeal: `upheld`, or `reversed`, which reopens the account.
    pub async fn resolve(&self, action_id: &str, outcome: &str, note: &str, by: &str) -> Result<(), CoreError> {
        if !matches!(outcome, "upheld" | "reversed") {
            return Err(CoreError::input("appeal_outcome_invalid"));
        }
        let note = text(note, REASON_MIN, "reason_required")?;
        let now = self.clock.now_ms();
        let Some(action) = self.store.terms_action(action_id).await? else { return Err(CoreError::NotFound { code: "not_found" }) };
        if !self.store.resolve_terms_appeal(action_id, outcome, &note, by, now).await? {
            return Err(CoreError::Conflict { code: "appeal_not_open" });
        }
        if outcome == "reversed" {
            self.store.set_account_status(&action.account_id, AccountStatus::Active, now).await?;
        }
        self.audit
            .record(AuditEvent {
                actor: by,
                action: "compliance.terms_appeal_decided",
                subject: &format!("account:{}", action.account_id),
                details: json!({ "action": action_id, "outcome": outcome }),
            })
            .await?;
        Ok(())
    }

    /// Registers a request from an authority: who asked, their reference, the legal basis they
    /// gave and what they asked for; optionally whom it is about.
    pub async fn register_request(
        &self,
        authority: &str,
        reference: &str,
        legal_basis: &str,
        asked: &str,
        account_id: Option<AccountId>,
        by: &str,
    ) -> Result<AuthorityRequestRow, CoreError> {
        let row = AuthorityRequestRow {
            id: crate::crypto::random_id::<8>("auth_"),
            received_at: self.clock.now_ms(),
            authority: text(authority, 2, "authority_request_incomplete")?,
            reference: text(reference, 1, "authority_request_incomplete")?,
            legal_basis: text(legal_basis, 3, "authority_request_incomplete")?,
            asked: text(asked, 3, "authority_request_incomplete")?,
            account_id,
            disclosed: None,
            status: "open".into(),
            registered_by: by.into(),
            completed_at: None,
        };
        self.store.insert_authority_request(&row).await?;
        self.audit
            .record(AuditEvent {
                actor: by,
                action: "compliance.authority_request",
                subject: &row.account_id.as_ref().map_or_else(|| format!("authority_request:{}", row.id), |a| format!("account:{a}")),
                details: json!({ "request": row.id, "authority": row.authority }),
            })
            .await?;
        Ok(row)
    }

    /// Completes a request: what was disclosed, or why it was refused.
    pub async fn complete_request(&self, id: &str, answered: bool, disclosed: &str, by: &str) -> Result<(), CoreError> {
        let disclosed = text(disclosed, 3, "authority_request_incomplete")?;
        let status = if answered { "answered" } else { "refused" };
        if !self.store.complete_authority_request(id, status, &disclosed, self.clock.now_ms()).await? {
            return Err(CoreError::Conflict { code: "authority_request_closed" });
        }
        self.audit
            .record(AuditEvent {
                actor: by,
                action: "compliance.authority_answered",
                subject: &format!("authority_request:{id}"),
                details: json!({ "status": status }),
            })
            .await?;
        Ok(())
    }
}
