//! The audit log: an append-only record of security- and privacy-relevant actions in which each
//! entry commits to the previous entry's hash. Changing, removing or reordering any entry breaks
//! the chain, and [`AuditLog::verify`] says where. Removing entries from the end cannot be seen
//! from the chain alone: compare with a head recorded elsewhere (`passme audit verify --head`).

use passme_store::{AuditFilter, AuditRow, Chain, Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::CoreError;
use crate::clock::SharedClock;
use crate::error::Internal;

/// `prev_hash` of the first entry ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Detail keys that suggest a secret; such details are refused rather than logged.
const SECRET_KEYS: &[&str] =
    &["password", "passwd", "secret", "token", "key", "cookie", "card", "cvc", "cvv", "pan", "authorization", "otp"];

#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// Who acted: `user:<id>`, `staff:<id>`, `system`, `operator`.
    pub actor: &'a str,
    /// What happened, e.g. `policy.loaded`, `session.revoked`.
    pub action: &'a str,
    /// Whom or what it concerned, e.g. `user:<id>`.
    pub subject: &'a str,
    /// A JSON object with context; never secrets.
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub first_seq: Option<i64>,
    pub head: Option<(i64, String)>,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A hash-chained log: the audit log, or the consent ledger (same shape, own table, own hash
/// domain so that an entry of one can never verify as an entry of the other).
#[derive(Debug, Clone)]
pub struct ChainLog {
    store: Store,
    clock: SharedClock,
    chain: Chain,
}

/// The audit log is the chain most code writes to.
pub type AuditLog = ChainLog;

fn domain(chain: Chain) -> &'static [u8] {
    match chain {
        Chain::Audit => b"passme-audit-v1",
        Chain::Consent => b"passme-consent-v1",
    }
}

/// SHA-256 over every field, each length-prefixed so that no two different entries encode alike.
#[expect(clippy::too_many_arguments, reason = "one argument per hashed column keeps the encoding visible")]
pub fn entry_hash(chain: Chain, seq: i64, at: i64, actor: &str, action: &str, subject: &str, details: &str, prev_hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain(chain));
    hasher.update(seq.to_be_bytes());
    hasher.update(at.to_be_bytes());
    for field in [actor, action, subject, details, prev_hash] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn check_no_secrets(value: &Value) -> Result<(), CoreError> {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| lower.split(['_', '-', '.']).any(|part| part == *s)) {
                    return Err(Internal::SecretInAuditDetails(key.clone()).into());
                }
                check_no_secrets(inner)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_no_secrets),
        _ => Ok(()),
    }
}

impl ChainLog {
    /// The audit log.
    pub fn new(store: Store, clock: SharedClock) -> ChainLog {
        ChainLog { store, clock, chain: Chain::Audit }
    }

    /// The consent ledger.
    pub fn consent(store: Store, clock: SharedClock) -> ChainLog {
        ChainLog { store, clock, chain: Chain::Consent }
    }

    pub fn chain(&self) -> Chain {
        self.chain
    }

    /// Entries about one subject, oldest first.
    pub async fn entries_for(&self, subject: &str) -> Result<Vec<AuditRow>, CoreError> {
        Ok(self.store.chain_entries_for(self.chain, subject).await?)
    }

    /// Appends an entry and returns it. Concurrent writers race for the next sequence number;
    /// the loser recomputes against the new head.
    pub async fn record(&self, event: AuditEvent<'_>) -> Result<AuditRow, CoreError> {
        if !event.details.is_object() {
            return Err(CoreError::broken("audit details", "must be a JSON object"));
        }
        check_no_secrets(&event.details)?;
        let details = event.details.to_string();
        for _ in 0..50 {
            let head = self.store.chain_head(self.chain).await?;
            let (seq, prev_hash) = head.map_or((1, GENESIS.to_string()), |h| (h.seq + 1, h.hash));
            let at = self.clock.now_ms();
            let hash = entry_hash(self.chain, seq, at, event.actor, event.action, event.subject, &details, &prev_hash);
            let row = AuditRow {
                seq,
                at,
                actor: event.actor.into(),
                action: event.action.into(),
                subject: event.subject.into(),
                details: details.clone(),
                prev_hash,
                hash,
            };
            match self.store.chain_insert(self.chain, &row).await {
                Ok(()) => return Ok(row),
                Err(StoreError::Conflict) => tokio::task::yield_now().await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Internal::AuditContention.into())
    }

    /// Walks the whole chain from the anchor (or the genesis) and reports every break. With
    /// `expected_head`, also reports when that entry is missing or differs (entries removed from
    /// the end).
    /// The newest entries older than `before_seq` matching `filter`, at most `limit`, for a
    /// member of staff; the reading is itself recorded, under `reader`.
    pub async fn search_as(&self, reader: &str, filter: &AuditFilter, before_seq: i64, limit: i64) -> Result<Vec<AuditRow>, CoreError> {
        let rows = self.store.chain_search(self.chain, filter, before_seq, limit).await?;
        self.record(AuditEvent {
            actor: reader,
            action: "audit.read",
            subject: "audit_log",
            details: json!({ "actor": filter.actor, "action": filter.action_prefix, "from": filter.from_ms, "to": filter.to_ms, "entries": rows.len() }),
        })
        .await?;
        Ok(rows)
    }

    pub async fn verify(&self, expected_head: Option<(i64, &str)>) -> Result<VerifyReport, CoreError> {
        let anchor = self.store.chain_anchor(self.chain).await?;
        let (mut expected_seq, mut expected_prev) = anchor.map_or((1, GENESIS.to_string()), |a| (a.seq + 1, a.hash));
        let mut report = VerifyReport { entries: 0, first_seq: None, head: None, problems: Vec::new() };
        let mut after = expected_seq - 1;
        let mut seen_expected_head = false;
        loop {
            let page = self.store.chain_entries_after(self.chain, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for row in &page {
                report.entries += 1;
                report.first_seq.get_or_insert(row.seq);
                if row.seq != expected_seq {
                    report.problems.push(format!("entries {expected_seq}..{} are missing", row.seq - 1));
                }
                if row.prev_hash != expected_prev {
                    report.problems.push(format!("entry {} does not follow the entry before it (chain broken)", row.seq));
                }
                let recomputed =
                    entry_hash(self.chain, row.seq, row.at, &row.actor, &row.action, &row.subject, &row.details, &row.prev_hash);
                if recomputed != row.hash {
                    report.problems.push(format!("entry {} was altered (its hash does not match its content)", row.seq));
                }
                if let Some((seq, hash)) = expected_head
                    && row.seq == seq
                {
                    seen_expected_head = true;
                    if row.hash != hash {
                        report.problems.push(format!("entry {seq} differs from the recorded head"));
                    }
                }
                expected_seq = row.seq + 1;
                expected_prev = row.hash.clone();
                report.head = Some((row.seq, row.hash.clone()));
            }
        }
        if let Some((seq, _)) = expected_head
            && !seen_expected_head
        {
            report.problems.push(format!("the recorded head, entry {seq}, is missing: entries were removed from the end"));
        }
        Ok(report)
    }

    /// Removes entries older than the retention period; the anchor keeps the chain verifiable.
    pub async fn prune_before(&self, before_ms: i64) -> Result<u64, CoreError> {
        Ok(self.store.chain_prune_before(self.chain, before_ms).await?)
    }
}
