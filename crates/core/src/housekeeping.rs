//! The retention engine: applies the policy's retention rules, each period read from the
//! declarations, never from a constant. Every field's rule is carried out by an [`Executor`]
//! registered in [`EXECUTORS`] with the trigger and the action it implements; a rule of an
//! implemented capability without a matching executor stops [`Housekeeping::new`] (and a test),
//! so nothing is silently kept.
//!
//! An executor is a list of steps (a table, the condition that selects what is due, and delete
//! or the `SET` that anonymises). A run counts what each rule would change, then applies it in
//! batches of [`BATCH`] rows, each committed on its own: memory stays flat whatever the table's
//! size, and a run killed anywhere leaves a consistent state that the next run finishes. Rows of
//! a person under a legal hold are left alone, and a rule whose category is held is skipped.
//! Every run writes a report (per rule: examined, changed, skipped and why) that the privacy
//! officer reads. Scheduled hourly through the job queue with a deterministic id per hour, so
//! any number of processes enqueue it and it runs once; `passme retention run` runs it by hand.

use std::sync::Arc;

use passme_policy::{Action, AnonymiseMethod, Policy, RetentionRule, Trigger};
use passme_store::{Chain, RetentionRunRow, RetentionStep, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog, ChainLog};
use crate::clock::{SharedClock, financial_year_start, period_before};
use crate::jobs::{EnqueueOptions, JobQueue};
use crate::rights::holds::LegalHolds;

pub const JOB_KIND: &str = "platform.housekeeping";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Rows per statement: small enough that a batch holds the database briefly, large enough that
/// the per-statement cost does not dominate.
pub const BATCH: i64 = 5_000;

const DELETE: Action = Action::Delete;
const TRUNCATE_IP: Action = Action::Anonymise { method: AnonymiseMethod::TruncateIp };
const AGGREGATE: Action = Action::Anonymise { method: AnonymiseMethod::Aggregate };
const GENERALISE_CLIENT: Action = Action::Anonymise { method: AnonymiseMethod::GeneraliseClient };
const REMOVE_TEXT: Action = Action::Anonymise { method: AnonymiseMethod::RemoveText };
const PSEUDONYMISE: Action = Action::Anonymise { method: AnonymiseMethod::Pseudonymise };
const COARSEN_TIME: Action = Action::Anonymise { method: AnonymiseMethod::CoarsenTime };
const DESTROY_KEY: Action = Action::Anonymise { method: AnonymiseMethod::DestroyKey };
/// Page views not yet coarsened to the hour, and those whose visitor id is still the real one
/// (real ids are never negative): each matches a partial index.
const PRECISE: &str = "ts < $1 AND ts % 3600000 <> 0";
const LINKED: &str = "ts < $1 AND visitor >= 0";
/// Page views whose client versions are still there: the condition matches the partial indexes
/// that keep a sweep to those rows.
const VERSIONED: &str = "ts < $1 AND (browser_version <> '' OR os_version <> '')";
/// Archiving: the archives' clean-up period is read from the declaration by
/// [`crate::rights::archive::Archives`]; the executor destroys the keys.
const ARCHIVE: Action = Action::Archive { cleanup: passme_policy::Period { years: 0, months: 0, days: 0, hours: 0, minutes: 0 } };

/// Whether an executor's action carries out the declared one.
fn implements(executor: Action, declared: Action) -> bool {
    match (executor, declared) {
        (Action::Archive { .. }, Action::Archive { .. }) => true,
        (a, b) => a == b,
    }
}

/// How an executor carries out its rule.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    /// Steps over plain tables; `cutoff` in milliseconds, or in UTC days for `days` steps.
    Steps { steps: &'static [RetentionStep], days: &'static [RetentionStep] },
    /// A hash-chained log: entries go from the oldest, and its anchor keeps it verifiable. The
    /// step counts what is due.
    Chain(Chain, RetentionStep),
}

/// Carries out one field's rule.
#[derive(Debug)]
pub struct Executor {
    pub field: &'static str,
    pub trigger: Trigger,
    pub action: Action,
    pub work: Work,
}

const fn delete(table: &'static str, condition: &'static str, account: Option<&'static str>) -> RetentionStep {
    RetentionStep { table, condition, change: None, account, order: None }
}

const fn change(table: &'static str, condition: &'static str, set: &'static str, account: Option<&'static str>) -> RetentionStep {
    RetentionStep { table, condition, change: Some(set), account, order: None }
}

const fn steps(field: &'static str, trigger: Trigger, action: Action, steps: &'static [RetentionStep]) -> Executor {
    Executor { field, trigger, action, work: Work::Steps { steps, days: &[] } }
}

/// Of closed accounts, closed before the cutoff.
const CLOSED: &str = "status = 'closed' AND closed_at < $1";
const OF_CLOSED: &str = "account_id IN (SELECT id FROM accounts WHERE status = 'closed' AND closed_at < $1)";
const ACCOUNT: Option<&str> = Some("account_id");

/// Page views and visits older than the cutoff: the daily rollups keep their counts.
const TRACKING: &[RetentionStep] = &[
    delete("analytics_inbox", "ts < $1", None).by("ts"),
    delete("analytics_events", "ts < $1", None).by("ts"),
    delete("analytics_sessions", "started_at < $1", None).by("started_at"),
];

/// Every executor, in the order a run applies them: what hangs off an account before the account
/// row itself, which holds the address and takes whatever is left with it.
pub const EXECUTORS: &[Executor] = &[
    steps(
        "operations.job_payload",
        Trigger::JobFinished,
        DELETE,
        &[delete("jobs", "status IN ('done', 'dead') AND finished_at < $1", None).by("finished_at")],
    ),
    Executor {
        field: "compliance.audit_log",
        trigger: Trigger::Collected,
        action: DELETE,
        work: Work::Chain(Chain::Audit, delete("audit_log", "at < $1", None)),
    },
    Executor {
        field: "consent.ledger",
        trigger: Trigger::Collected,
        action: DELETE,
        work: Work::Chain(Chain::Consent, delete("consent_ledger", "at < $1", None)),
    },
    steps("account.tokens", Trigger::Collected, DELETE, &[delete("account_tokens", "created_at < $1", ACCOUNT).by("created_at")]),
    steps(
        "fraud.signals",
        Trigger::Collected,
        DELETE,
        &[
            delete("throttle", "window_start < $1 AND blocked_until < $1", None).by("window_start"),
            delete("rate_buckets", "at < $1", None).by("at"),
            delete("fraud_events", "at < $1", ACCOUNT).by("at"),
        ],
    ),
    // Evidence of holds, actions under the terms and authority requests: 5 years after each is
    // over (a hold lifted or run out, an action's appeal decided, a request answered).
    steps(
        "compliance.legal_requests",
        Trigger::RequestCompleted,
        DELETE,
        &[
            delete("legal_holds", "COALESCE(lifted_at, until_at) < $1", ACCOUNT),
            delete("terms_actions", "completed_at < $1", ACCOUNT).by("completed_at"),
            delete("authority_requests", "completed_at < $1", ACCOUNT).by("completed_at"),
        ],
    ),
    // A case goes three years after it closed, its messages with it.
    steps(
        "support.tickets",
        Trigger::TicketClosed,
        DELETE,
        &[
            delete("support_messages", "ticket_id IN (SELECT id FROM support_tickets WHERE closed_at < $1)", ACCOUNT),
            delete("support_tickets", "closed_at < $1", ACCOUNT).by("closed_at"),
        ],
    ),
    steps("support.signals", Trigger::Collected, DELETE, &[delete("support_signals", "at < $1", ACCOUNT).by("at")]),
    steps("fraud.decisions", Trigger::Collected, DELETE, &[delete("fraud_decisions", "at < $1", ACCOUNT).by("at")]),
    // The list key's salt goes after the declared period, and with it every entry made under it
    // (their hashes could no longer be recognised anyway).
    steps(
        "fraud.deny_list",
        Trigger::Collected,
        DESTROY_KEY,
        &[delete("fraud_lists", "key_created_at < $1", None).by("key_created_at"), delete("fraud_list_keys", "created_at < $1", None)],
    ),
    steps(
        "account.sessions",
        Trigger::SessionEnded,
        DELETE,
        &[delete("sessions", "COALESCE(revoked_at, expires_at) < $1", ACCOUNT).by("COALESCE(revoked_at, expires_at)")],
    ),
    steps(
        "account.remember_me",
        Trigger::LastActivity,
        DELETE,
        &[delete("remember_series", "last_used_at < $1", ACCOUNT).by("last_used_at")],
    ),
    steps(
        "account.password_hash",
        Trigger::AccountClosed,
        DELETE,
        &[change("accounts", "status = 'closed' AND closed_at < $1 AND password_hash <> ''", "password_hash = ''", Some("id"))
            .by("closed_at")],
    ),
    steps(
        "account.profile",
        Trigger::AccountClosed,
        DELETE,
        &[change(
            "accounts",
            "status = 'closed' AND closed_at < $1 AND (pref_theme IS NOT NULL OR pref_lang IS NOT NULL OR pref_text IS NOT NULL)",
            "pref_theme = NULL, pref_lang = NULL, pref_text = NULL",
            Some("id"),
        )
        .by("closed_at")],
    ),
    steps("account.staff_roles", Trigger::AccountClosed, DELETE, &[delete("account_roles", OF_CLOSED, ACCOUNT)]),
    steps("account.api_tokens", Trigger::AccountClosed, DELETE, &[delete("api_tokens", OF_CLOSED, ACCOUNT)]),
    steps("payment.customer_ref", Trigger::AccountClosed, DELETE, &[delete("billing_customers", OF_CLOSED, ACCOUNT)]),
    // Closing an account isolates the person's archived records: their key goes an hour later
    // (erasure destroys it at once), and the archives' clean-up removes the files.
    steps("rights.objections", Trigger::AccountClosed, DELETE, &[delete("objections", OF_CLOSED, ACCOUNT)]),
    steps("partner.consent", Trigger::AccountClosed, DELETE, &[delete("account_consents", OF_CLOSED, ACCOUNT)]),
    steps("messaging.email_log", Trigger::Collected, DELETE, &[delete("message_log", "created_at < $1", ACCOUNT).by("created_at")]),
    // Choices of closed accounts go with the account (the web layer deletes them at closing);
    // a consent turned off is kept as proof for the limitation period. Service choices are not
    // consents: an "off" there stays while the account does.
    steps(
        "messaging.marketing_consent",
        Trigger::Unsubscribed,
        DELETE,
        &[
            delete("message_prefs", "state = 'off' AND topic <> 'service' AND changed_at < $1", ACCOUNT).by("changed_at"),
            delete("message_prefs", OF_CLOSED, ACCOUNT),
        ],
    ),
    steps("messaging.suppression", Trigger::Unsubscribed, DELETE, &[delete("suppressions", "created_at < $1", None).by("created_at")]),
    steps(
        "messaging.partner_audience",
        Trigger::Collected,
        DELETE,
        &[
            delete("partner_audience", "created_at < $1", ACCOUNT).by("created_at"),
            delete("partner_exports", "created_at < $1", None).by("created_at"),
        ],
    ),
    // Switching push off deletes the subscription at once; a closed account's go within the hour.
    steps("messaging.push_subscriptions", Trigger::Unsubscribed, DELETE, &[delete("push_subscriptions", OF_CLOSED, ACCOUNT)]),
    steps("messaging.outbox", Trigger::JobFinished, DELETE, &[delete("campaigns", "finished_at < $1", None).by("finished_at")]),
    steps("rights.backups", Trigger::AccountClosed, ARCHIVE, &[delete("person_keys", OF_CLOSED, ACCOUNT)]),
    steps("account.email", Trigger::AccountClosed, DELETE, &[delete("accounts", CLOSED, Some("id")).by("closed_at")]),
    // The truncated prefix is stored beside the full address from the start, so truncation
    // removes the full one.
    steps(
        "tracking.ip_address",
        Trigger::Collected,
        TRUNCATE_IP,
        &[
            change("analytics_inbox", "ts < $1 AND ip IS NOT NULL", "ip = NULL", None).by("ts"),
            change("analytics_events", "ts < $1 AND ip IS NOT NULL", "ip = NULL", None).by("ts"),
        ],
    ),
    // The family (Firefox, Linux) stays for the statistics' 13 months; the versions go.
    steps(
        "tracking.client_version",
        Trigger::Collected,
        GENERALISE_CLIENT,
        &[
            change("analytics_inbox", VERSIONED, "browser_version = '', os_version = ''", None).by("ts"),
            change("analytics_events", VERSIONED, "browser_version = '', os_version = ''", None).by("ts"),
        ],
    ),
    // Visits and rollups are computed within minutes; after 30 days single views no longer need
    // their exact time or their visitor, and `passme analytics rebuild` stops at that horizon.
    steps(
        "tracking.view_time",
        Trigger::Collected,
        COARSEN_TIME,
        &[change("analytics_events", PRECISE, "ts = ts - ts % 3600000, received_at = received_at - received_at % 3600000", None).by("ts")],
    ),
    steps(
        "tracking.view_visitor",
        Trigger::Collected,
        PSEUDONYMISE,
        &[change("analytics_events", LINKED, "visitor = {random_id}", None).by("ts")],
    ),
    steps("tracking.network", Trigger::Collected, AGGREGATE, TRACKING),
    steps("tracking.client", Trigger::Collected, AGGREGATE, TRACKING),
    steps("tracking.pages", Trigger::Collected, AGGREGATE, TRACKING),
    Executor {
        field: "tracking.visitor_id",
        trigger: Trigger::Collected,
        action: AGGREGATE,
        work: Work::Steps {
            steps: TRACKING,
            days: &[change("analytics_visitor_sketches", "day < $1 AND sketch IS NOT NULL", "sketch = NULL", None)],
        },
    },
    steps(
        "payment.subscription",
        Trigger::SubscriptionEnded,
        DELETE,
        &[delete("billing_subscriptions", "ended_at IS NOT NULL AND ended_at < $1", ACCOUNT)],
    ),
    steps("payment.invoices", Trigger::FinancialYearEnd, DELETE, &[delete("billing_invoices", "issued_at < $1", ACCOUNT).by("issued_at")]),
    steps(
        "rights.requests",
        Trigger::RequestCompleted,
        DELETE,
        &[delete(
            "privacy_requests",
            "(completed_at IS NOT NULL AND completed_at < $1) OR (status = 'unverified' AND received_at < $1)",
            ACCOUNT,
        )],
    ),
    steps(
        "rights.request_text",
        Trigger::RequestCompleted,
        REMOVE_TEXT,
        &[change("privacy_requests", "completed_at IS NOT NULL AND completed_at < $1 AND message <> ''", "message = ''", ACCOUNT)],
    ),
    // Unlinking deletes the tokens at once; this catches any a crash left behind.
    steps(
        "linked.tokens",
        Trigger::Unlinked,
        DELETE,
        &[delete(
            "linked_tokens",
            "link_id IN (SELECT id FROM linked_accounts WHERE unlinked_at IS NOT NULL AND unlinked_at < $1)",
            ACCOUNT,
        )],
    ),
    steps(
        "linked.identity",
        Trigger::Unlinked,
        DELETE,
        &[delete("linked_accounts", "unlinked_at IS NOT NULL AND unlinked_at < $1", ACCOUNT).by("unlinked_at")],
    ),
    steps("linked.flows", Trigger::Collected, DELETE, &[delete("link_flows", "created_at < $1", ACCOUNT).by("created_at")]),
    steps(
        "partner.public_profile",
        Trigger::Collected,
        DELETE,
        &[delete("partner_profiles", "received_at < $1", ACCOUNT).by("received_at")],
    ),
    steps("partner.suggestions", Trigger::Collected, DELETE, &[delete("suggestions", "created_at < $1", ACCOUNT).by("created_at")]),
    steps("payment.provider_events", Trigger::Collected, DELETE, &[delete("billing_events", "received_at < $1", None).by("received_at")]),
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
            Some(e) if e.trigger != rule.trigger || !implements(e.action, rule.action) => format!(
                "{} is declared {:?} {:?}, but its executor implements {:?} {:?}",
                rule.field, rule.trigger, rule.action, e.trigger, e.action
            ),
            Some(_) => continue,
        };
        problems.push(Unexecutable { rule: rule.id.clone(), problem });
    }
    problems
}

/// What a run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Count what is due without changing anything.
    pub dry_run: bool,
    /// Only the rules of this data category.
    pub category: Option<String>,
    /// `job` or `cli`, for the report.
    pub source: String,
}

/// One rule in a run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleReport {
    pub rule: String,
    pub field: String,
    pub category: String,
    pub cutoff: i64,
    /// Rows that were due when the rule started.
    pub examined: i64,
    /// Rows deleted or anonymised (0 in a dry run).
    pub changed: u64,
    /// Why the rule did nothing: a legal hold on its category, a table the database lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub id: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub dry_run: bool,
    pub source: String,
    pub rules: Vec<RuleReport>,
}

impl RunReport {
    pub fn of(row: &RetentionRunRow) -> RunReport {
        RunReport {
            id: row.id.clone(),
            started_at: row.started_at,
            finished_at: row.finished_at,
            dry_run: row.dry_run,
            source: row.source.clone(),
            rules: serde_json::from_str(&row.report).unwrap_or_default(),
        }
    }

    fn row(&self) -> RetentionRunRow {
        RetentionRunRow {
            id: self.id.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            dry_run: self.dry_run,
            source: self.source.clone(),
            report: serde_json::to_string(&self.rules).unwrap_or_default(),
        }
    }
}

/// Where a run is: the rule it works on, rows changed so far and rows due.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, i64) + Send + Sync);

/// What every rule of one run shares.
#[derive(Clone, Copy)]
struct Sweep<'a> {
    now: i64,
    dry_run: bool,
    /// The tables the database has.
    tables: &'a [String],
    progress: Progress<'a>,
}

#[derive(Debug, Clone)]
pub struct Housekeeping {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    consent: ChainLog,
    holds: LegalHolds,
    /// The rules to run, each with its executor and its field's category, in the registry's order.
    rules: Vec<(RetentionRule, &'static Executor, String)>,
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
        let category_of = |field: &str| policy.field(field).map(|(c, _)| c.id.get_ref().clone()).unwrap_or_default();
        let mut rules: Vec<(RetentionRule, &'static Executor, String)> =
            policy.retention.iter().filter_map(|r| executor_of(&r.field).map(|e| (r.clone(), e, category_of(&r.field)))).collect();
        rules.sort_by_key(|(_, e, _)| EXECUTORS.iter().position(|x| x.field == e.field));
        let audit = AuditLog::new(store.clone(), clock.clone());
        let consent = ChainLog::consent(store.clone(), clock.clone());
        let holds = LegalHolds::new(store.clone(), clock.clone());
        Ok(Housekeeping { store, clock, audit, consent, holds, rules })
    }

    /// Applies every rule once (the hourly job).
    pub async fn run(&self) -> Result<Vec<RuleOutcome>, CoreError> {
        let report = self.run_with(&RunOptions { source: "job".into(), ..RunOptions::default() }, &|_, _, _| {}).await?;
        Ok(report.rules.into_iter().map(|r| RuleOutcome { rule: r.rule, removed: r.changed }).collect())
    }

    /// Runs the rules as asked, reporting progress, and keeps the report.
    pub async fn run_with(&self, options: &RunOptions, progress: Progress<'_>) -> Result<RunReport, CoreError> {
        let now = self.clock.now_ms();
        let mut report = RunReport {
            id: format!("ret_{}", hex::encode(rand::random::<[u8; 12]>())),
            started_at: now,
            finished_at: None,
            dry_run: options.dry_run,
            source: options.source.clone(),
            rules: Vec::new(),
        };
        self.store.insert_retention_run(&report.row()).await?;
        let held = self.holds.category_holds().await?;
        let tables: Vec<String> = self.store.schema().await?.into_iter().map(|t| t.name).collect();
        for (rule, executor, category) in &self.rules {
            if options.category.as_ref().is_some_and(|c| c != category) {
                continue;
            }
            let cutoff = match rule.trigger {
                // The period counts from the end of the financial year the record belongs to.
                Trigger::FinancialYearEnd => financial_year_start(period_before(now, &rule.period)),
                _ => period_before(now, &rule.period),
            };
            let mut line = RuleReport {
                rule: rule.id.clone(),
                field: rule.field.clone(),
                category: category.clone(),
                cutoff,
                examined: 0,
                changed: 0,
                skipped: None,
            };
            if let Some((_, until)) = held.iter().find(|(c, _)| c == category) {
                line.skipped = Some(format!("legal hold on {category} until {until}"));
            } else {
                let sweep = Sweep { now, dry_run: options.dry_run, tables: &tables, progress };
                self.apply(executor, cutoff, &sweep, &mut line).await?;
            }
            report.rules.push(line);
            // Progress survives a crash: the report so far is in the database.
            self.store.update_retention_run(&report.id, &report.row().report, None).await?;
        }
        report.finished_at = Some(self.clock.now_ms());
        self.store.update_retention_run(&report.id, &report.row().report, report.finished_at).await?;
        if !options.dry_run {
            let details = json!({
                "run": report.id,
                "rules": report.rules.iter().map(|o| json!({ "rule": o.rule, "removed": o.changed })).collect::<Vec<_>>(),
            });
            self.audit.record(AuditEvent { actor: "system", action: "retention.platform_run", subject: "platform", details }).await?;
        }
        Ok(report)
    }

    async fn apply(&self, executor: &Executor, cutoff: i64, sweep: &Sweep<'_>, line: &mut RuleReport) -> Result<(), CoreError> {
        let Sweep { now, dry_run, tables, progress } = *sweep;
        match executor.work {
            Work::Chain(chain, due) => {
                line.examined = self.store.retention_count(&due, cutoff, now).await?;
                if !dry_run && line.examined > 0 {
                    let log = if chain == Chain::Audit { &self.audit } else { &self.consent };
                    line.changed = log.prune_before(cutoff).await?;
                }
                progress(&line.rule, line.changed, line.examined);
            }
            Work::Steps { steps, days } => {
                let day_cutoff = cutoff.div_euclid(DAY_MS);
                let all = steps.iter().map(|s| (s, cutoff)).chain(days.iter().map(|s| (s, day_cutoff)));
                let all: Vec<(&RetentionStep, i64)> = all.collect();
                for (step, _) in &all {
                    if !tables.iter().any(|t| t == step.table) {
                        line.skipped = Some(format!("table {} is not in the database", step.table));
                        tracing::error!(rule = %line.rule, table = step.table, "retention rule skipped: table missing");
                        return Ok(());
                    }
                }
                for (step, cutoff) in &all {
                    line.examined += self.store.retention_count(step, *cutoff, now).await?;
                }
                progress(&line.rule, 0, line.examined);
                if dry_run {
                    return Ok(());
                }
                for (step, cutoff) in &all {
                    loop {
                        let changed = self.store.retention_apply(step, *cutoff, now, BATCH).await?;
                        line.changed += changed;
                        // Progress is reported when it moves; a step with nothing due is silent.
                        if changed > 0 {
                            progress(&line.rule, line.changed, line.examined);
                        }
                        if changed < BATCH as u64 {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The latest runs' reports, newest first.
    pub async fn reports(&self, limit: i64) -> Result<Vec<RunReport>, CoreError> {
        Ok(self.store.retention_runs(limit).await?.iter().map(RunReport::of).collect())
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
