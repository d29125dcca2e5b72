//! Core errors: what a capability can refuse or fail with. Each variant has a stable code; the web
//! layer maps them to HTTP statuses in one place. Use `Store` for storage failures passed through,
//! `Invalid` for input a caller must fix, and a capability's own variant for its refusals.

use passme_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("audit details must not contain secrets (key {0:?})")]
    SecretInAuditDetails(String),
    #[error("the audit log is too busy to append; try again")]
    AuditContention,
    #[error("this needs a role you do not hold")]
    Forbidden,
    /// A dependency we rely on (the mail relay) failed: our outage, not the caller's mistake.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
}

impl CoreError {
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Store(e) => e.code(),
            CoreError::Invalid { code, .. } => code,
            CoreError::SecretInAuditDetails(_) => "audit_details_secret",
            CoreError::AuditContention => "audit_contention",
            CoreError::Forbidden => "forbidden",
            CoreError::Unavailable { code, .. } => code,
        }
    }
}
