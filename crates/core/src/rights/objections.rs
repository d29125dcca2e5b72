//! Objections (GDPR article 21): a person objects to a purpose we pursue on legitimate interest.
//! An objection to the service statistics (`develop`) takes effect at once: page views sent while
//! the person is signed in are not recorded. For the other purposes (security, fraud prevention,
//! operation), we must weigh the objection against compelling grounds, so it is recorded and
//! registered as a request for the privacy officer, who answers within the month.

use passme_policy::{LegalBasis, Policy};
use passme_store::{AccountId, Store};
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::rights::requests::Requests;

/// The purposes whose processing stops as soon as the person objects.
pub const STOPPED_AT_ONCE: &[&str] = &["develop"];

/// What an objection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objected {
    /// The processing stopped.
    Stopped,
    /// Registered for the privacy officer to weigh; the request's id.
    ForReview(String),
}

/// The purposes a person may object to: those a field of a built capability pursues on
/// legitimate interest.
pub fn objectable(policy: &Policy) -> Vec<String> {
    let mut purposes: Vec<String> = policy
        .categories
        .iter()
        .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
        .filter(|(c, f)| crate::is_implemented(policy.field_capability(c, f)) && f.legal_basis.contains(&LegalBasis::LegitimateInterest))
        .flat_map(|(_, f)| f.purposes.iter().map(|p| p.get_ref().clone()))
        .collect();
    purposes.sort();
    purposes.dedup();
    purposes
}

#[derive(Debug, Clone)]
pub struct Objections {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
    requests: Requests,
}

impl Objections {
    pub fn new(store: Store, clock: SharedClock) -> Objections {
        let audit = AuditLog::new(store.clone(), clock.clone());
        let requests = Requests::new(store.clone(), clock.clone());
        Objections { store, clock, audit, requests }
    }

    pub async fn object(&self, policy: &Policy, account_id: &AccountId, purpose: &str) -> Result<Objected, CoreError> {
        if !objectable(policy).iter().any(|p| p == purpose) {
            return Err(CoreError::input("objection_purpose_unknown"));
        }
        let new = self.store.put_objection(account_id, purpose, self.clock.now_ms()).await?;
        let actor = format!("account:{account_id}");
        if new {
            self.audit
                .record(AuditEvent { actor: &actor, action: "objection.made", subject: &actor, details: json!({ "purpose": purpose }) })
                .await?;
        }
        if STOPPED_AT_ONCE.contains(&purpose) {
            return Ok(Objected::Stopped);
        }
        let request = self.requests.submit_signed_in(account_id, "object", &format!("purpose: {purpose}")).await?;
        Ok(Objected::ForReview(request.id))
    }

    pub async fn withdraw(&self, account_id: &AccountId, purpose: &str) -> Result<(), CoreError> {
        if self.store.delete_objection(account_id, purpose).await? {
            let actor = format!("account:{account_id}");
            self.audit
                .record(AuditEvent {
                    actor: &actor,
                    action: "objection.withdrawn",
                    subject: &actor,
                    details: json!({ "purpose": purpose }),
                })
                .await?;
        }
        Ok(())
    }

    pub async fn of(&self, account_id: &AccountId) -> Result<Vec<String>, CoreError> {
        Ok(self.store.objections_of(account_id).await?)
    }

    /// Whether the person objects to `purpose`.
    pub async fn objects(&self, account_id: &AccountId, purpose: &str) -> Result<bool, CoreError> {
        Ok(self.of(account_id).await?.iter().any(|p| p == purpose))
    }
}
