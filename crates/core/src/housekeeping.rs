//! Housekeeping: applies the retention rules that have an executor here (finished jobs, old audit
//! entries, old consent records), reading each period from the policy declarations, never from a
//! constant. The general retention engine (anonymisation, archives, legal holds) is its own issue.
//! Scheduled hourly through the job queue with a deterministic id per hour, so any number of
//! processes enqueue it and it runs once.

use std::sync::Arc;

use passme_policy::{Action, AnonymiseMethod, Capability, Policy, RetentionRule, Trigger};
use passme_store::Store;
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog, ChainLog};
use crate::clock::{SharedClock, financial_year_start, period_before};
use crate::jobs::{EnqueueOptions, JobQueue};

pub const JOB_KIND: &str = "platform.housekeeping";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

const DELETE: Action = Action::Delete;
const TRUNCATE_IP: Action = Action::Anonymise { method: AnonymiseMethod::TruncateIp };
const AGGREGATE: Action = Action::Anonymise { method: AnonymiseMethod::Aggregate };

/// The fields whose rules are executed here, with the trigger and action each executor
/// implements. A rule for one of these fields declared otherwise is refused by
/// [`Housekeeping::new`], as is a platform rule with no executor.
pub const EXECUTED_FIELDS: &[(&str, Trigger, Action)] = &[
    ("operations.job_payload", Trigger::JobFinished, DELETE),
    ("compliance.audit_log", Trigger::Collected, DELETE),
    ("consent.ledger", Trigger::Collected, DELETE),
    ("account.tokens", Trigger::Collected, DELETE),
    ("account.sessions", Trigger::SessionEnded, DELETE),
    ("account.remember_me", Trigger::LastActivity, DELETE),
    ("fraud.signals", Trigger::Collected, DELETE),
    ("account.password_hash", Trigger::AccountClosed, DELETE),
    ("account.profile", Trigger::AccountClosed, DELETE),
    ("account.staff_roles", Trigger::AccountClosed, DELETE),
    ("account.api_tokens", Trigger::AccountClosed, DELETE),
    ("account.email", Trigger::AccountClosed, DELETE),
    ("tracking.ip_address", Trigger::Collected, TRUNCATE_IP),
    ("tracking.network", Trigger::Collected, AGGREGATE),
    ("tracking.client", Trigger::Collected, AGGREGATE),
    ("tracking.pages", Trigger::Collected, AGGREGATE),
    ("tracking.visitor_id", Trigger::Collected, AGGREGATE),
    ("payment.customer_ref", Trigger::AccountClosed, DELETE),
    ("payment.subscription", Trigger::SubscriptionEnded, DELETE),
    ("payment.invoices", Trigger::FinancialYearEnd, DELETE),
    ("payment.provider_events", Trigger::Collected, DELETE),
];

#[derive(Debug, Clone)]
pub struct Housekeeping {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    consent: ChainLog,
    rules: Vec<RetentionRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    pub rule: String,
    pub removed: u64,
}

impl Housekeeping {
    /// Takes the platform's rules from the policy and checks that each has an executor that
    /// implements exactly its trigger and a delete action.
    pub fn new(store: Store, clock: SharedClock, policy: &Policy) -> Result<Housekeeping, CoreError> {
        let rules: Vec<RetentionRule> = policy
            .retention
            .iter()
            .filter(|r| r.capability == Capability::Platform || EXECUTED_FIELDS.iter().any(|(f, _, _)| *f == r.field))
            .cloned()
            .collect();
        for rule in &rules {
            let executable = EXECUTED_FIELDS
                .iter()
                .any(|(field, trigger, action)| *field == rule.field && *trigger == rule.trigger && *action == rule.action);
            if !executable {
                return Err(CoreError::broken(
                    "retention rule without an executor",
                    format!("retention rule {} ({} {:?} {:?}) has no platform executor", rule.id, rule.field, rule.trigger, rule.action),
                ));
            }
        }
        let audit = AuditLog::new(store.clone(), clock.clone());
        let consent = ChainLog::consent(store.clone(), clock.clone());
        Ok(Housekeeping { store, clock, audit, consent, rules })
    }

    /// Applies every platform rule once and records the run in the audit log.
    pub async fn run(&self) -> Result<Vec<RuleOutcome>, CoreError> {
        let now = self.clock.now_ms();
        let mut outcomes = Vec::new();
        for rule in &self.rules {
            let cutoff = match rule.trigger {
                // The period counts from the end of the financial year the record belongs to.
                Trigger::FinancialYearEnd => financial_year_start(period_before(now, &rule.period)),
                _ => period_before(now, &rule.period),
            };
            let removed = match rule.field.as_str() {
                "operations.job_payload" => self.store.purge_finished_jobs(cutoff).await?,
                "compliance.audit_log" => self.audit.prune_before(cutoff).await?,
                "consent.ledger" => self.consent.prune_before(cutoff).await?,
                "account.tokens" => self.store.purge_account_tokens(cutoff).await?,
                "fraud.signals" => self.store.purge_throttle(cutoff).await?,
                "account.sessions" => self.store.purge_ended_sessions(cutoff).await?,
                "account.remember_me" => self.store.purge_idle_remember(cutoff).await?,
                "account.password_hash" => self.store.erase_closed_password_hashes(cutoff).await?,
                "account.profile" => self.store.erase_closed_prefs(cutoff).await?,
                "account.staff_roles" => self.store.purge_closed_roles(cutoff).await?,
                "account.api_tokens" => self.store.purge_closed_api_tokens(cutoff).await?,
                // The account row itself, last: it holds the address, and its deletion takes
                // whatever still hangs off it.
                "account.email" => self.store.purge_closed_accounts(cutoff).await?,
                // The truncated prefix is stored beside the full address from the start, so
                // truncation removes the full one.
                "tracking.ip_address" => self.store.truncate_event_ips(cutoff).await?,
                // Aggregate: the daily rollups keep the counts; the rows go.
                "tracking.network" | "tracking.client" | "tracking.pages" => self.store.purge_tracking_before(cutoff).await?,
                "payment.customer_ref" => self.store.purge_closed_billing_customers(cutoff).await?,
                "payment.subscription" => self.store.purge_ended_subscriptions(cutoff).await?,
                "payment.invoices" => self.store.purge_invoices_issued_before(cutoff).await?,
                "payment.provider_events" => self.store.purge_billing_events(cutoff).await?,
                "tracking.visitor_id" => {
                    self.store.purge_tracking_before(cutoff).await? + self.store.erase_sketches_before(cutoff.div_euclid(DAY_MS)).await?
                }
                _ => 0,
            };
            outcomes.push(RuleOutcome { rule: rule.id.clone(), removed });
        }
        let details = json!({ "rules": outcomes.iter().map(|o| json!({ "rule": o.rule, "removed": o.removed })).collect::<Vec<_>>() });
        self.audit.record(AuditEvent { actor: "system", action: "retention.platform_run", subject: "platform", details }).await?;
        Ok(outcomes)
    }

    /// Enqueues this hour's run; a no-op when another process already did.
    pub async fn schedule(queue: &JobQueue, now_ms: i64) -> Result<bool, CoreError> {
        let id = format!("housekeeping:{}", now_ms / HOUR_MS);
        let (_, new) = queue.enqueue(JOB_KIND, &json!({}), EnqueueOptions { id: Some(id), ..Default::default() }).await?;
        Ok(new)
    }
}

/// Wraps a shared housekeeping instance as a job handler.
pub fn handler(housekeeping: Arc<Housekeeping>) -> impl Fn(passme_store::Job) -> crate::jobs::HandlerFuture + Send + Sync + 'static {
    move |_job| {
        let hk = housekeeping.clone();
        Box::pin(async move {
            let outcomes = hk.run().await.map_err(|e| e.to_string())?;
            // What changed is worth a line each; an hourly list of rules that found nothing is not.
            for o in &outcomes {
                if o.removed > 0 {
                    tracing::info!(rule = %o.rule, removed = o.removed, "retention rule applied");
                } else {
                    tracing::debug!(rule = %o.rule, "retention rule applied, nothing due");
                }
            }
            let removed: u64 = outcomes.iter().map(|o| o.removed).sum();
            tracing::info!(rules = outcomes.len(), removed, "housekeeping done");
            Ok(())
        })
    }
}
