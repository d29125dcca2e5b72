//! Legal holds: the privacy officer keeps a person's data, or a whole data category, past its
//! retention (and a person's erasure waits) for a stated reason until a date. Holds are audited,
//! end by themselves at their date and can be lifted early.

use passme_policy::Policy;
use passme_store::{AccountId, LegalHoldRow, Store};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

/// What a hold covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldScope {
    Person(AccountId),
    /// A declared data category (`payment`, `account`, …).
    Category(String),
}

#[derive(Debug, Clone)]
pub struct LegalHolds {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

impl LegalHolds {
    pub fn new(store: Store, clock: SharedClock) -> LegalHolds {
        let audit = AuditLog::new(store.clone(), clock.clone());
        LegalHolds { store, clock, audit }
    }

    /// Places a hold until `until_ms`; returns its id. A reason is required, a date in the past
    /// or an undeclared category is refused.
    pub async fn place(
        &self,
        policy: &Policy,
        scope: HoldScope,
        reason: &str,
        until_ms: i64,
        placed_by: &str,
    ) -> Result<String, CoreError> {
        let now = self.clock.now_ms();
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(CoreError::input("hold_reason_missing"));
        }
        if until_ms <= now {
            return Err(CoreError::input("hold_until_past"));
        }
        let (account_id, category) = match &scope {
            HoldScope::Person(id) => (Some(id.clone()), None),
            HoldScope::Category(c) if policy.categories.iter().any(|d| d.id.get_ref() == c) => (None, Some(c.clone())),
            HoldScope::Category(_) => return Err(CoreError::input("hold_category_unknown")),
        };
        let id = format!("hold_{}", hex::encode(rand::random::<[u8; 12]>()));
        let row = LegalHoldRow {
            id: id.clone(),
            account_id,
            category,
            reason: reason.to_string(),
            placed_by: placed_by.to_string(),
            placed_at: now,
            until_at: until_ms,
            lifted_at: None,
        };
        self.store.insert_legal_hold(&row).await?;
        let subject = subject_of(&row);
        self.audit
            .record(AuditEvent {
                actor: placed_by,
                action: "hold.placed",
                subject: &subject,
                details: json!({ "hold": id, "until": until_ms }),
            })
            .await?;
        Ok(id)
    }

    /// Lifts a hold in force; `NotFound` when there is none with that id.
    pub async fn lift(&self, id: &str, lifted_by: &str) -> Result<(), CoreError> {
        if !self.store.lift_legal_hold(id, self.clock.now_ms()).await? {
            return Err(CoreError::NotFound { code: "hold_unknown" });
        }
        self.audit.record(AuditEvent { actor: lifted_by, action: "hold.lifted", subject: id, details: json!({}) }).await?;
        Ok(())
    }

    /// The holds in force now.
    pub async fn in_force(&self) -> Result<Vec<LegalHoldRow>, CoreError> {
        Ok(self.store.legal_holds_in_force(self.clock.now_ms()).await?)
    }

    /// The holds in force on this person.
    pub async fn on_person(&self, account_id: &AccountId) -> Result<Vec<LegalHoldRow>, CoreError> {
        Ok(self.in_force().await?.into_iter().filter(|h| h.account_id.as_ref() == Some(account_id)).collect())
    }

    /// The categories held now, each with when its hold ends.
    pub async fn category_holds(&self) -> Result<Vec<(String, i64)>, CoreError> {
        Ok(self.in_force().await?.into_iter().filter_map(|h| h.category.map(|c| (c, h.until_at))).collect())
    }
}

fn subject_of(hold: &LegalHoldRow) -> String {
    match (&hold.account_id, &hold.category) {
        (Some(account), _) => format!("account:{account}"),
        (None, Some(category)) => format!("category:{category}"),
        (None, None) => hold.id.clone(),
    }
}
