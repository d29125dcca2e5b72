//! Erasure (GDPR article 17): everything about a person goes at once, except what a legal duty
//! keeps, and the person is told exactly what was kept, why and until when.
//!
//! The deletion manifest in the policy's tables says how a person's rows leave each personal
//! table. Every `with_account` table has an [`Eraser`] registered here (a test fails when one is
//! missing); `expires` tables are not linked to the account and follow their retention rules;
//! `legal_duty` tables keep their rows until their rules end them. After the erasers, a search of
//! every column of every personal table for the person's identifiers must find nothing outside
//! the legal duties. The receipt records counts and table names only, under a random id.
//!
//! An erasure runs as a job, so an acknowledged request survives a crash: every step is
//! idempotent, and a second pass after an interrupted one finishes the work and the receipt.

use std::collections::BTreeMap;

use passme_policy::{Erasure, Lang, Policy};
use passme_store::{AccountId, ErasureReceiptRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::holds::LegalHolds;
use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::jobs::{EnqueueOptions, Handlers, JobError, JobPayload, JobQueue};

/// What identifies the person in the stored rows: searched for by the verifier, and used by the
/// erasers that cannot go by the account id alone.
#[derive(Debug, Clone, Default)]
pub struct Identifiers {
    pub account_id: String,
    pub email: String,
    pub email_key: String,
    /// The payment provider's ids of the person's customer records and subscriptions.
    pub provider_ids: Vec<String>,
}

impl Identifiers {
    pub fn needles(&self) -> Vec<&str> {
        let mut needles = vec![self.account_id.as_str(), self.email.as_str(), self.email_key.as_str()];
        needles.extend(self.provider_ids.iter().map(String::as_str));
        needles.retain(|n| !n.is_empty());
        needles.sort_unstable();
        needles.dedup();
        needles
    }
}

/// Removes a person's rows from one `with_account` table.
pub struct Eraser {
    pub table: &'static str,
    how: How,
}

enum How {
    /// Rows whose column holds the account id.
    ByAccount(&'static str),
    /// Rows whose columns mention any identifier (job payloads name an account, an address key
    /// or an address).
    Mentioning(&'static [&'static str]),
}

/// The erasers, in the order they run: the account row last, so an interrupted erasure can always
/// find the person again.
pub const ERASERS: &[Eraser] = &[
    Eraser { table: "sessions", how: How::ByAccount("account_id") },
    Eraser { table: "remember_series", how: How::ByAccount("account_id") },
    Eraser { table: "account_tokens", how: How::ByAccount("account_id") },
    Eraser { table: "account_roles", how: How::ByAccount("account_id") },
    Eraser { table: "api_tokens", how: How::ByAccount("account_id") },
    Eraser { table: "billing_subscriptions", how: How::ByAccount("account_id") },
    Eraser { table: "billing_customers", how: How::ByAccount("account_id") },
    Eraser { table: "objections", how: How::ByAccount("account_id") },
    // The web layer revokes linked tokens at the providers before it asks for the erasure.
    Eraser { table: "linked_tokens", how: How::ByAccount("account_id") },
    Eraser { table: "linked_accounts", how: How::ByAccount("account_id") },
    Eraser { table: "link_flows", how: How::ByAccount("account_id") },
    Eraser { table: "partner_profiles", how: How::ByAccount("account_id") },
    Eraser { table: "suggestions", how: How::ByAccount("account_id") },
    Eraser { table: "account_consents", how: How::ByAccount("account_id") },
    // The web layer asks partners to delete the person before the erasure removes them here.
    Eraser { table: "partner_audience", how: How::ByAccount("account_id") },
    Eraser { table: "push_subscriptions", how: How::ByAccount("account_id") },
    Eraser { table: "message_prefs", how: How::ByAccount("account_id") },
    Eraser { table: "message_log", how: How::ByAccount("account_id") },
    Eraser { table: "fraud_events", how: How::ByAccount("account_id") },
    Eraser { table: "support_signals", how: How::ByAccount("account_id") },
    // Destroys the person's archive key: their records in every archive become unreadable.
    Eraser { table: "person_keys", how: How::ByAccount("account_id") },
    Eraser { table: "jobs", how: How::Mentioning(&["payload", "last_error"]) },
    Eraser { table: "accounts", how: How::ByAccount("id") },
];

/// The `with_account` tables of the manifest that no eraser handles, and erasers for tables the
/// manifest does not mark `with_account`.
pub fn manifest_gaps(policy: &Policy) -> Vec<String> {
    let mut gaps = Vec::new();
    for table in &policy.tables {
        let name = table.name.get_ref().as_str();
        let erased = ERASERS.iter().any(|e| e.table == name);
        match (table.erasure, erased) {
            (Some(Erasure::WithAccount), false) => gaps.push(format!("{name} is erased with the account, but no eraser removes its rows")),
            (Some(Erasure::WithAccount), true) | (_, false) => {}
            (_, true) => gaps.push(format!("an eraser removes rows of {name}, which the manifest does not mark with_account")),
        }
    }
    gaps
}

/// A legal duty's keeping of a person's rows, as the receipt states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub table: String,
    pub rows: i64,
    /// The retention rules that end the keeping (their ids), and why each keeps.
    pub rules: Vec<String>,
    /// When the rows are kept because of a legal hold on their category: when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<i64>,
}

/// What the person and the privacy officer see of an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: String,
    pub requested_at: i64,
    pub completed_at: Option<i64>,
    pub verified_at: Option<i64>,
    pub removed: BTreeMap<String, u64>,
    pub kept: Vec<Kept>,
    /// What the search found outside the legal duties: empty when the erasure is verified.
    pub leftovers: BTreeMap<String, i64>,
}

impl Receipt {
    fn of(row: ErasureReceiptRow) -> Receipt {
        Receipt {
            id: row.id,
            requested_at: row.requested_at,
            completed_at: row.completed_at,
            verified_at: row.verified_at,
            removed: serde_json::from_str(&row.removed).unwrap_or_default(),
            kept: serde_json::from_str(&row.kept).unwrap_or_default(),
            leftovers: serde_json::from_str(&row.leftovers).unwrap_or_default(),
        }
    }

    fn row(&self) -> ErasureReceiptRow {
        ErasureReceiptRow {
            id: self.id.clone(),
            requested_at: self.requested_at,
            completed_at: self.completed_at,
            verified_at: self.verified_at,
            removed: serde_json::to_string(&self.removed).unwrap_or_default(),
            kept: serde_json::to_string(&self.kept).unwrap_or_default(),
            leftovers: serde_json::to_string(&self.leftovers).unwrap_or_default(),
        }
    }

    /// How the keeping of a table is described to the person: each rule's period, trigger and
    /// reason, in their language.
    pub fn describe_kept(policy: &Policy, kept: &Kept, lang: Lang) -> Vec<String> {
        kept.rules
            .iter()
            .filter_map(|id| policy.retention_rule(id))
            .map(|r| format!("{} {} – {}", r.period.describe(lang), r.trigger.label(lang), r.reason.get(lang)))
            .collect()
    }
}

/// The erasure job: erase this account and complete this receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseAccount {
    pub account_id: AccountId,
    pub receipt: String,
}

impl JobPayload for EraseAccount {
    const KIND: &'static str = "rights.erase";
    const FORGET_WHEN_DONE: bool = true;
}

impl EraseAccount {
    /// The job's id: from the receipt, not the person, so the finished job names nobody.
    fn job_id(&self) -> String {
        format!("erase-{}", self.receipt)
    }
}

#[derive(Debug, Clone)]
pub struct Erasures {
    store: Store,
    clock: SharedClock,
    policy: std::sync::Arc<Policy>,
    holds: LegalHolds,
    audit: AuditLog,
}

impl Erasures {
    pub fn new(store: Store, clock: SharedClock, policy: std::sync::Arc<Policy>) -> Erasures {
        let holds = LegalHolds::new(store.clone(), clock.clone());
        let audit = AuditLog::new(store.clone(), clock.clone());
        Erasures { store, clock, policy, holds, audit }
    }

    /// Accepts an erasure request: refused while a legal hold is on the person; otherwise the
    /// account is closed and every session ended at once, a receipt is opened and the erasure
    /// queued. Returns the receipt's id.
    pub async fn request(&self, account_id: &AccountId, queue: &JobQueue) -> Result<String, CoreError> {
        if let Some(hold) = self.holds.on_person(account_id).await?.into_iter().max_by_key(|h| h.until_at) {
            tracing::info!(hold = %hold.id, "erasure refused: legal hold");
            return Err(CoreError::Conflict { code: "erasure_on_hold" });
        }
        let now = self.clock.now_ms();
        self.store.close_account(account_id, now).await?;
        self.store.revoke_sessions_of(account_id, None, now).await?;
        // A remembered browser must not sign in again while the erasure waits for its turn.
        let remembered = self.store.delete_remember_of(account_id).await?;
        let receipt = Receipt {
            id: format!("era_{}", hex::encode(rand::random::<[u8; 16]>())),
            requested_at: now,
            completed_at: None,
            verified_at: None,
            removed: BTreeMap::from([("remember_series".to_string(), remembered)]),
            kept: Vec::new(),
            leftovers: BTreeMap::new(),
        };
        self.store.insert_erasure_receipt(&receipt.row()).await?;
        let job = EraseAccount { account_id: account_id.clone(), receipt: receipt.id.clone() };
        queue.push(&job, EnqueueOptions { id: Some(job.job_id()), ..Default::default() }).await?;
        let subject = format!("account:{account_id}");
        self.audit
            .record(AuditEvent {
                actor: &subject,
                action: "rights.erasure_requested",
                subject: &subject,
                details: json!({ "receipt": receipt.id }),
            })
            .await?;
        Ok(receipt.id)
    }

    pub async fn receipt(&self, id: &str) -> Result<Option<Receipt>, CoreError> {
        Ok(self.store.erasure_receipt(id).await?.map(Receipt::of))
    }

    /// Erases the person and completes the receipt. Idempotent: a pass after an interrupted one
    /// adds what it removes to what the first removed.
    pub async fn run(&self, job: &EraseAccount) -> Result<Receipt, CoreError> {
        let mut receipt = self.receipt(&job.receipt).await?.ok_or(CoreError::NotFound { code: "receipt_unknown" })?;
        if receipt.verified_at.is_some() {
            return Ok(receipt);
        }
        let ids = self.identifiers(&job.account_id).await?;
        let holds = self.holds.category_holds().await?;
        let mut held_tables: BTreeMap<String, i64> = BTreeMap::new();
        for eraser in ERASERS {
            if let Some(until) = self.held_until(eraser.table, &holds) {
                tracing::info!(table = eraser.table, "erasure keeps a held category");
                held_tables.insert(eraser.table.to_string(), until);
                continue;
            }
            let removed = match eraser.how {
                // Held rows hang off the account row (their foreign keys cascade): the row stays,
                // with nothing but its id, until the hold ends and retention removes it.
                How::ByAccount("id") if !held_tables.is_empty() => {
                    self.store.blank_account(&job.account_id).await?;
                    held_tables.insert(eraser.table.to_string(), held_tables.values().copied().max().unwrap_or_default());
                    0
                }
                How::ByAccount(column) => self.store.delete_rows_where(eraser.table, column, &ids.account_id).await?,
                // Not this job's own row: the worker empties its payload when it is done.
                How::Mentioning(columns) => {
                    let mut n = 0;
                    for needle in ids.needles() {
                        n += self.store.delete_rows_mentioning(eraser.table, columns, needle, &job.job_id()).await?;
                    }
                    n
                }
            };
            *receipt.removed.entry(eraser.table.to_string()).or_default() += removed;
        }
        receipt.completed_at = Some(self.clock.now_ms());
        let (kept, leftovers) = self.search(&ids, &held_tables, &job.job_id()).await?;
        receipt.kept = kept;
        receipt.leftovers = leftovers;
        if receipt.leftovers.is_empty() {
            receipt.verified_at = Some(self.clock.now_ms());
        } else {
            tracing::error!(receipt = %receipt.id, leftovers = ?receipt.leftovers, "erasure left rows behind");
        }
        self.store.complete_erasure_receipt(&receipt.row()).await?;
        self.audit
            .record(AuditEvent {
                actor: "system",
                action: "rights.erasure_completed",
                subject: &receipt.id,
                details: json!({ "verified": receipt.verified_at.is_some(), "removed": receipt.removed }),
            })
            .await?;
        Ok(receipt)
    }

    /// What identifies the person, read before anything is removed. After the account row is
    /// gone (a pass after a completed one), only the account id is left to search for.
    async fn identifiers(&self, account_id: &AccountId) -> Result<Identifiers, CoreError> {
        let mut ids = Identifiers { account_id: account_id.to_string(), ..Identifiers::default() };
        if let Some(account) = self.store.account(account_id).await? {
            ids.email = account.email;
            ids.email_key = account.email_key;
        }
        ids.provider_ids.extend(self.store.billing_customer_of(account_id).await?);
        ids.provider_ids.extend(self.store.billing_subscriptions_of(account_id).await?.into_iter().map(|s| s.subscription_id));
        Ok(ids)
    }

    /// When the hold on a category of a table's rows ends, if one is held.
    fn held_until(&self, table: &str, holds: &[(String, i64)]) -> Option<i64> {
        self.policy
            .fields()
            .filter(|(_, f)| f.columns.iter().any(|c| c.get_ref().split('.').next() == Some(table)))
            .filter_map(|(c, _)| holds.iter().find(|(held, _)| held == c.id.get_ref()).map(|(_, until)| *until))
            .max()
    }

    /// Searches every column of every personal table for the person's identifiers: rows in a
    /// legal-duty or held table are kept (with the rules that end them), any other is a leftover.
    async fn search(
        &self,
        ids: &Identifiers,
        held: &BTreeMap<String, i64>,
        own_job: &str,
    ) -> Result<(Vec<Kept>, BTreeMap<String, i64>), CoreError> {
        let schema = self.store.schema().await?;
        let (mut kept, mut leftovers) = (Vec::new(), BTreeMap::new());
        for table in self.policy.tables.iter().filter(|t| t.personal) {
            let name = table.name.get_ref().as_str();
            let Some(columns) = schema.iter().find(|s| s.name == name).map(|s| s.columns.clone()) else { continue };
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            // Rows can mention the person under several identifiers: count each row once per
            // identifier and keep the largest, a lower bound that is exact when one id is used.
            let mut rows = 0;
            for needle in ids.needles() {
                let n = match name {
                    "jobs" => self.store.count_rows_mentioning_except(name, &columns, needle, own_job).await?,
                    _ => self.store.count_rows_mentioning(name, &columns, needle).await?,
                };
                rows = rows.max(n);
            }
            if rows == 0 {
                continue;
            }
            let held_until = held.get(name).copied();
            if table.erasure == Some(Erasure::LegalDuty) || held_until.is_some() {
                kept.push(Kept { table: name.to_string(), rows, rules: self.rules_of(name), held_until });
            } else {
                leftovers.insert(name.to_string(), rows);
            }
        }
        Ok((kept, leftovers))
    }

    /// The retention rules of the fields stored in `table`.
    fn rules_of(&self, table: &str) -> Vec<String> {
        let mut rules: Vec<String> = self
            .policy
            .fields()
            .filter(|(_, f)| f.columns.iter().any(|c| c.get_ref().split('.').next() == Some(table)))
            .filter_map(|(_, f)| self.policy.retention.iter().find(|r| &r.field == f.id.get_ref()).map(|r| r.id.clone()))
            .collect();
        rules.sort();
        rules.dedup();
        rules
    }

    /// Handles the erasure jobs.
    pub fn register(self, handlers: &mut Handlers) {
        handlers.on(move |job: EraseAccount| {
            let erasures = self.clone();
            async move { erasures.run(&job).await.map(|_| ()).map_err(JobError::from) }
        });
    }
}
