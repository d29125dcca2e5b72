//! Fraud scanning (the policy's "fraud" capability): every sign-up, sign-in, checkout and link is
//! an [`Event`]; its identifiers are stored only as keyed hashes (`fraud.signals`, 90 days); the
//! allow and deny lists are checked first; then every enabled rule — an expression in the small
//! language of [`rules`], stored with versions — runs over the signals. The strictest outcome of
//! the rules that fired is the decision, stored with the rules and the signal values they read
//! (`fraud.decisions`, a year), so an analyst and the person can see why.
//!
//! Nothing is kept in one process: counts come from the shared event table, rules and lists are
//! read per decision (compiled rules are cached by id and version, which never change).

pub mod lists;
pub mod rules;
pub mod signals;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use passme_analytics::asn::AsnTable;
use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_store::{AccountId, FraudDecisionRow, FraudEventRow, FraudRuleRow, Store};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use lists::{ListKind, Lists};
pub use rules::{Expr, RuleError};
pub use signals::{DisposableDomains, Event, EventKind, canonical_email};

/// What happens to an event, from the mildest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Prove it is you: a sign-in is confirmed from the mailbox. A sign-up always confirms its
    /// address, which is its challenge; elsewhere a challenge is reviewed.
    Challenge,
    /// Goes ahead, and an analyst looks at it.
    Review,
    Block,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Allow, Outcome::Challenge, Outcome::Review, Outcome::Block];

    pub fn id(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Challenge => "challenge",
            Outcome::Review => "review",
            Outcome::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.id() == s)
    }
}

/// Why a decision came out as it did: a rule (with its version) or a list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// `rule` or `list`.
    pub source: String,
    /// The rule's id, or the list entry's.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The rule's name, or the entry's reason.
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `None` when nothing fired: a plain allow is not stored (its event is).
    pub id: Option<String>,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
}

impl Decision {
    pub fn blocked(&self) -> bool {
        self.outcome == Outcome::Block
    }
}

/// A rule to save: a new one (`expected_version` 0) or the next version of one.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleDraft {
    pub id: String,
    pub name: String,
    pub expression: String,
    pub outcome: Outcome,
    pub enabled: bool,
    #[serde(default)]
    pub expected_version: i64,
}

/// How often a rule's fired decisions were confirmed by analysts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Precision {
    pub confirmed: u64,
    pub false_positive: u64,
}

impl Precision {
    pub fn ratio(&self) -> Option<f64> {
        let all = self.confirmed + self.false_positive;
        (all > 0).then(|| self.confirmed as f64 / all as f64)
    }
}

/// The labels an analyst gives a reviewed decision.
pub const LABELS: [&str; 2] = ["confirmed", "false_positive"];

/// Compiled rules by id and version (a version's expression never changes, so the cache is
/// never stale).
type CompiledRules = HashMap<(String, i64), Arc<Expr>>;

#[derive(Clone)]
pub struct Fraud {
    store: Store,
    clock: SharedClock,
    event_key: [u8; 32],
    pub lists: Lists,
    asn: Option<Arc<AsnTable>>,
    disposable: Arc<DisposableDomains>,
    compiled: Arc<Mutex<CompiledRules>>,
}

impl std::fmt::Debug for Fraud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fraud").field("disposable_domains", &self.disposable.len()).finish_non_exhaustive()
    }
}

impl Fraud {
    pub fn new(
        store: Store,
        clock: SharedClock,
        master_key: &[u8; 32],
        asn: Option<Arc<AsnTable>>,
        disposable: Arc<DisposableDomains>,
    ) -> Fraud {
        Fraud {
            lists: Lists::new(store.clone(), clock.clone(), master_key),
            event_key: passme_core::crypto::derive_key(master_key, b"passme/fraud/events/v1"),
            store,
            clock,
            asn,
            disposable,
            compiled: Arc::default(),
        }
    }

    fn keyed(&self, part: &str, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.event_key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(part.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn event_row(&self, event: &Event<'_>, asn: Option<u32>, now: i64) -> FraudEventRow {
        FraudEventRow {
            id: passme_core::crypto::random_id::<12>("fev_"),
            at: now,
            kind: event.kind.id().into(),
            success: event.success,
            account_id: event.account.cloned(),
            // No network for what the provider reports: nothing is counted under an empty one.
            network: event.ip.map(|ip| self.keyed("network", &passme_core::net::truncate_ip(ip))).unwrap_or_default(),
            asn: asn.map(i64::from),
            device: event.device.map(|d| self.keyed("device", d)),
            card: event.card.map(|c| self.keyed("card", c)),
            email: event.email.map(|e| self.keyed("email", &canonical_email(e))),
        }
    }

    /// Stores an event that needs no decision: a failed sign-in, a declined payment.
    pub async fn record(&self, event: &Event<'_>) -> Result<(), CoreError> {
        let now = self.clock.now_ms();
        let isp = signals::isp(self.asn.as_deref(), event.ip);
        self.store.record_fraud(&self.event_row(event, isp.as_ref().map(|(asn, _)| *asn), now), None).await?;
        Ok(())
    }

    /// Decides an event and stores it, with the decision when anything fired.
    pub async fn assess(&self, event: &Event<'_>) -> Result<Decision, CoreError> {
        let now = self.clock.now_ms();
        let isp = signals::isp(self.asn.as_deref(), event.ip);
        let row = self.event_row(event, isp.as_ref().map(|(asn, _)| *asn), now);
        let listed = self.lists.matches(event).await?;
        let (outcome, reasons, inputs) = match listed.iter().find(|r| r.outcome == Outcome::Allow).or_else(|| listed.first()) {
            Some(entry) => (entry.outcome, vec![entry.clone()], BTreeMap::new()),
            None => {
                let address = event.ip.map(|ip| ip.to_string());
                let counts = self.store.fraud_counts(&row, address.as_deref(), event.visitor).await?;
                let disposable = event.email.is_some_and(|e| self.disposable.contains(e));
                let values = signals::values(event, &counts, isp.as_ref().map(|(asn, name)| (*asn, name.as_str())), disposable, now);
                self.run_rules(&values).await?
            }
        };
        let id = (!reasons.is_empty()).then(|| passme_core::crypto::random_id::<10>("frd_"));
        let decision = id.as_ref().map(|id| FraudDecisionRow {
            id: id.clone(),
            at: now,
            kind: event.kind.id().into(),
            account_id: event.account.cloned(),
            outcome: outcome.id().into(),
            fired: serde_json::to_string(&reasons).unwrap_or_default(),
            inputs: serde_json::Value::Object(inputs.into_iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()).to_string(),
            review: if outcome == Outcome::Review
                || (outcome == Outcome::Challenge && event.kind != EventKind::Signin)
                || (outcome != Outcome::Allow && event.kind == EventKind::Payment)
            {
                "open".into()
            } else {
                "none".into()
            },
            appeal: None,
            appealed_at: None,
            label: None,
            reviewed_by: None,
            reviewed_at: None,
            review_note: None,
        });
        self.store.record_fraud(&row, decision.as_ref()).await?;
        if outcome != Outcome::Allow {
            tracing::info!(kind = event.kind.id(), outcome = outcome.id(), decision = id.as_deref().unwrap_or(""), "fraud decision");
        }
        Ok(Decision { id, outcome, reasons })
    }

    /// Runs every enabled rule; the strictest outcome of those that fired wins.
    async fn run_rules(
        &self,
        values: &BTreeMap<&'static str, rules::Value>,
    ) -> Result<(Outcome, Vec<Reason>, BTreeMap<&'static str, rules::Value>), CoreError> {
        let mut outcome = Outcome::Allow;
        let mut reasons = Vec::new();
        let mut inputs = BTreeMap::new();
        for rule in self.store.fraud_rules().await?.into_iter().filter(|r| r.enabled) {
            let Some(expr) = self.compiled(&rule) else { continue };
            if expr.fires(values) {
                let fired = Outcome::parse(&rule.outcome).unwrap_or(Outcome::Review);
                outcome = outcome.max(fired);
                for signal in expr.signals() {
                    if let Some((name, value)) = values.get_key_value(signal.as_str()) {
                        inputs.insert(*name, value.clone());
                    }
                }
                reasons.push(Reason { source: "rule".into(), id: rule.id, version: Some(rule.version), name: rule.name, outcome: fired });
            }
        }
        Ok((outcome, reasons, inputs))
    }

    /// A stored rule, compiled once per version. A rule that no longer compiles (a signal was
    /// retired) does not run, and says so in the log.
    fn compiled(&self, rule: &FraudRuleRow) -> Option<Arc<Expr>> {
        let key = (rule.id.clone(), rule.version);
        let mut cache = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(expr) = cache.get(&key) {
            return Some(expr.clone());
        }
        match Expr::compile(&rule.expression, &signals::catalogue()) {
            Ok(expr) => {
                let expr = Arc::new(expr);
                cache.insert(key, expr.clone());
                Some(expr)
            }
            Err(e) => {
                tracing::error!(rule = %rule.id, version = rule.version, error = %e, "a stored fraud rule does not compile; it is skipped");
                None
            }
        }
    }

    /// Checks and stores a rule's next version. Refused with the checker's code when the
    /// expression is bad, and with `rule_changed` when someone saved a newer version meanwhile.
    pub async fn save_rule(&self, draft: &RuleDraft, by: &str) -> Result<i64, CoreError> {
        check_rule_id(&draft.id)?;
        let name = draft.name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(CoreError::input("rule_name_invalid"));
        }
        Expr::compile(&draft.expression, &signals::catalogue()).map_err(|e| CoreError::input(e.code))?;
        let row = FraudRuleRow {
            id: draft.id.clone(),
            version: draft.expected_version + 1,
            name: name.to_string(),
            expression: draft.expression.trim().to_string(),
            outcome: draft.outcome.id().into(),
            enabled: draft.enabled,
            created_by: by.to_string(),
            created_at: self.clock.now_ms(),
        };
        if !self.store.save_fraud_rule(&row, draft.expected_version).await? {
            return Err(CoreError::Conflict { code: "rule_changed" });
        }
        Ok(row.version)
    }

    /// The precision of each rule over the labelled decisions it fired in, by rule id.
    pub async fn precision(&self) -> Result<BTreeMap<String, Precision>, CoreError> {
        let mut by_rule: BTreeMap<String, Precision> = BTreeMap::new();
        for (fired, label) in self.store.fraud_labels().await? {
            let reasons: Vec<Reason> = serde_json::from_str(&fired).unwrap_or_default();
            for reason in reasons.iter().filter(|r| r.source == "rule") {
                let entry = by_rule.entry(reason.id.clone()).or_default();
                if label == "confirmed" {
                    entry.confirmed += 1;
                } else {
                    entry.false_positive += 1;
                }
            }
        }
        Ok(by_rule)
    }

    /// An analyst's verdict on an open decision. `false` when it was not open.
    pub async fn review(&self, decision_id: &str, label: &str, by: &str, note: &str) -> Result<bool, CoreError> {
        if !LABELS.contains(&label) {
            return Err(CoreError::input("label_invalid"));
        }
        if note.chars().count() > 1000 {
            return Err(CoreError::input("note_too_long"));
        }
        Ok(self.store.review_fraud_decision(decision_id, label, by, note.trim(), self.clock.now_ms()).await?)
    }

    /// The person disputes a decision about them: it goes to the review queue with their words.
    pub async fn appeal(&self, decision_id: &str, account_id: &AccountId, text: &str) -> Result<bool, CoreError> {
        let text = text.trim();
        if text.chars().count() < 10 || text.chars().count() > 2000 {
            return Err(CoreError::input("appeal_length"));
        }
        Ok(self.store.appeal_fraud_decision(decision_id, account_id, text, self.clock.now_ms()).await?)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn check_rule_id(id: &str) -> Result<(), CoreError> {
    let ok = (3..=60).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(()) } else { Err(CoreError::input("rule_id_invalid")) }
}
