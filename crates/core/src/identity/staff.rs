//! Staff roles. A user may hold several; every staff route states which roles may use it, and
//! everyone else gets "forbidden" (least privilege). Grants and removals are audited.

use passme_store::AccountId;
use passme_store::Store;
use serde_json::json;

use crate::CoreError;
use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Support,
    Analyst,
    PrivacyOfficer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Support, Role::Analyst, Role::PrivacyOfficer];

    pub fn id(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Support => "support",
            Role::Analyst => "analyst",
            Role::PrivacyOfficer => "privacy_officer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.id() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Staff {
    store: Store,
    clock: SharedClock,
    audit: AuditLog,
}

impl Staff {
    pub fn new(store: Store, clock: SharedClock) -> Staff {
        let audit = AuditLog::new(store.clone(), clock.clone());
        Staff { store, clock, audit }
    }

    pub async fn grant(&self, account_id: &AccountId, role: Role, by: &str) -> Result<bool, CoreError> {
        let new = self.store.grant_role(account_id, role.id(), by, self.clock.now_ms()).await?;
        if new {
            self.audit
                .record(AuditEvent {
                    actor: by,
                    action: "staff.role_granted",
                    subject: &format!("account:{account_id}"),
                    details: json!({ "role": role.id() }),
                })
                .await?;
        }
        Ok(new)
    }

    pub async fn remove(&self, account_id: &AccountId, role: Role, by: &str) -> Result<bool, CoreError> {
        let removed = self.store.revoke_role(account_id, role.id()).await?;
        if removed {
            self.audit
                .record(AuditEvent {
                    actor: by,
                    action: "staff.role_removed",
                    subject: &format!("account:{account_id}"),
                    details: json!({ "role": role.id() }),
                })
                .await?;
        }
        Ok(removed)
    }

    pub async fn roles(&self, account_id: &AccountId) -> Result<Vec<Role>, CoreError> {
        Ok(self.store.roles_of(account_id).await?.iter().filter_map(|r| Role::parse(r)).collect())
    }

    /// Passes when the account holds at least one of `allowed`.
    pub async fn require(&self, account_id: &AccountId, allowed: &[Role]) -> Result<Vec<Role>, CoreError> {
        let held = self.roles(account_id).await?;
        if held.iter().any(|r| allowed.contains(r)) { Ok(held) } else { Err(CoreError::Forbidden) }
    }
}
