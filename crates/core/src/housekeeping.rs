//! Housekeeping: applies the retention rules, reading each period from the policy declarations,
//! never from a constant. Every field's rule is carried out by an [`Executor`] registered in
//! [`EXECUTORS`] with the trigger and the action it implements; a rule of an implemented
//! capability without a matching executor stops [`Housekeeping::new`] (and a test), so nothing
//! is silently kept. Scheduled hourly through the job queue with a deterministic id per hour, so
//! any number of processes enqueue it and it runs once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use passme_policy::{Action, AnonymiseMethod, Policy, RetentionRule, Trigger};
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

/// What an executor returns: how many records it removed or anonymised.
pub type Removal<'a> = Pin<Box<dyn Future<Output = Result<u64, CoreError>> + Send + 'a>>;

/// Carries out one field's rule for everything older than the cutoff (unix ms).
pub struct Executor {
    pub field: &'static str,
    pub trigger: Trigger,
    pub action: Action,
    run: for<'a> fn(&'a Housekeeping, i64) -> Removal<'a>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Executor({} {:?} {:?})", self.field, self.trigger, self.action)
    }
}

const fn executor(
    field: &'static str,
    trigger: Trigger,
    action: Action,
    run: for<'a> fn(&'a Housekeeping, i64) -> Removal<'a>,
) -> Executor {
    Executor { field, trigger, action, run }
}

/// Every executor, in the order a run applies them: what hangs off an account before the account
/// row itself, which holds the address and takes whatever is left with it.
pub const EXECUTORS: &[Executor] = &[
    executor("operations.job_payload", Trigger::JobFinished, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_finished_jobs(cutoff).await?) })
    }),
    executor("compliance.audit_log", Trigger::Collected, DELETE, |h, cutoff| Box::pin(h.audit.prune_before(cutoff))),
    executor("consent.ledger", Trigger::Collected, DELETE, |h, cutoff| Box::pin(h.consent.prune_before(cutoff))),
    executor("account.tokens", Trigger::Collected, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_account_tokens(cutoff).await?) })
    }),
    executor("fraud.signals", Trigger::Collected, DELETE, |h, cutoff| Box::pin(async move { Ok(h.store.purge_throttle(cutoff).await?) })),
    executor("account.sessions", Trigger::SessionEnded, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_ended_sessions(cutoff).await?) })
    }),
    executor("account.remember_me", Trigger::LastActivity, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_idle_remember(cutoff).await?) })
    }),
    executor("account.password_hash", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.erase_closed_password_hashes(cutoff).await?) })
    }),
    executor("account.profile", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.erase_closed_prefs(cutoff).await?) })
    }),
    executor("account.staff_roles", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_closed_roles(cutoff).await?) })
    }),
    executor("account.api_tokens", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_closed_api_tokens(cutoff).await?) })
    }),
    executor("payment.customer_ref", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_closed_billing_customers(cutoff).await?) })
    }),
    executor("account.email", Trigger::AccountClosed, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_closed_accounts(cutoff).await?) })
    }),
    // The truncated prefix is stored beside the full address from the start, so truncation
    // removes the full one.
    executor("tracking.ip_address", Trigger::Collected, TRUNCATE_IP, |h, cutoff| {
        Box::pin(async move { Ok(h.store.truncate_event_ips(cutoff).await?) })
    }),
    // Aggregate: the daily rollups keep the counts; the rows go.
    executor("tracking.network", Trigger::Collected, AGGREGATE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_tracking_before(cutoff).await?) })
    }),
    executor("tracking.client", Trigger::Collected, AGGREGATE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_tracking_before(cutoff).await?) })
    }),
    executor("tracking.pages", Trigger::Collected, AGGREGATE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_tracking_before(cutoff).await?) })
    }),
    executor("tracking.visitor_id", Trigger::Collected, AGGREGATE, |h, cutoff| {
        Box::pin(async move {
            Ok(h.store.purge_tracking_before(cutoff).await? + h.store.erase_sketches_before(cutoff.div_euclid(DAY_MS)).await?)
        })
    }),
    executor("payment.subscription", Trigger::SubscriptionEnded, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_ended_subscriptions(cutoff).await?) })
    }),
    executor("payment.invoices", Trigger::FinancialYearEnd, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_invoices_issued_before(cutoff).await?) })
    }),
    executor("payment.provider_events", Trigger::Collected, DELETE, |h, cutoff| {
        Box::pin(async move { Ok(h.store.purge_billing_events(cutoff).await?) })
    }),
];

/// The executor registered for `field`.
pub fn executor_of(field: &str) -> Option<&'static Executor> {
    EXECUTORS.iter().find(|e| e.field == field)
}

/// A retention rule that cannot be carried out as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexecutable {
    pub rule: String,
    pub problem: String,
}

/// The rules of `policy` that `EXECUTORS` cannot carry out as declared: a rule of a capability
/// that `is_implemented` with no executor for its field, or one whose executor implements another
/// trigger or action. Rules of capabilities still to come are left out (they are listed as
/// pending by `passme policy promises`).
pub fn unexecutable(policy: &Policy, is_implemented: &dyn Fn(passme_policy::Capability) -> bool) -> Vec<Unexecutable> {
    let mut problems = Vec::new();
    for rule in &policy.retention {
        let problem = match executor_of(&rule.field) {
            None if is_implemented(rule.capability) => format!("no executor for {} ({})", rule.field, rule.capability.id()),
            None => continue,
            Some(e) if e.trigger != rule.trigger || e.action != rule.action => format!(
                "{} is declared {:?} {:?}, but its executor implements {:?} {:?}",
                rule.field, rule.trigger, rule.action, e.trigger, e.action
            ),
            Some(_) => continue,
        };
        problems.push(Unexecutable { rule: rule.id.clone(), problem });
    }
    problems
}

#[derive(Debug, Clone)]
pub struct Housekeeping {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    consent: ChainLog,
    /// The rules to run, each with its executor, in the registry's order.
    rules: Vec<(RetentionRule, &'static Executor)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    pub rule: String,
    pub removed: u64,
}

impl Housekeeping {
    /// Pairs the policy's rules with their executors; refuses a policy with a rule that cannot be
    /// carried out as declared (see [`unexecutable`]).
    pub fn new(store: Store, clock: SharedClock, policy: &Policy) -> Result<Housekeeping, CoreError> {
        if let Some(first) = unexecutable(policy, &crate::is_implemented).into_iter().next() {
            return Err(CoreError::broken("retention rule without an executor", format!("rule {}: {}", first.rule, first.problem)));
        }
        let mut rules: Vec<(RetentionRule, &'static Executor)> =
            policy.retention.iter().filter_map(|r| executor_of(&r.field).map(|e| (r.clone(), e))).collect();
        rules.sort_by_key(|(_, e)| EXECUTORS.iter().position(|x| x.field == e.field));
        let audit = AuditLog::new(store.clone(), clock.clone());
        let consent = ChainLog::consent(store.clone(), clock.clone());
        Ok(Housekeeping { store, clock, audit, consent, rules })
    }

    /// Applies every rule once and records the run in the audit log.
    pub async fn run(&self) -> Result<Vec<RuleOutcome>, CoreError> {
        let now = self.clock.now_ms();
        let mut outcomes = Vec::new();
        for (rule, executor) in &self.rules {
            let cutoff = match rule.trigger {
                // The period counts from the end of the financial year the record belongs to.
                Trigger::FinancialYearEnd => financial_year_start(period_before(now, &rule.period)),
                _ => period_before(now, &rule.period),
            };
            let removed = (executor.run)(self, cutoff).await?;
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
            let outcomes = hk.run().await?;
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
