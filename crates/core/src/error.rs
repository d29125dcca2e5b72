//! Core errors: what a capability can refuse or fail with. Each has a stable code; the web layer
//! maps them to HTTP in one place and takes the words people read from the message catalogue by
//! that code, so nothing here is user-facing text.
//!
//! When to use which: `Input` for something the caller sent and can fix (a weak password, a bad
//! address), with an optional `hint` code that says how; `NotFound` for something that is not
//! there (or not the caller's); `Conflict` for a request that collides with what exists (a taken
//! address); `Forbidden` for a missing role; `Unavailable` when something we depend on is down
//! (the database, the mail relay); `Internal` for everything that is our bug or breakage, which
//! is logged with its cause and shown to nobody.

use passme_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("refused input: {code}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Input { code: &'static str, hint: Option<&'static str> },
    #[error("not found: {code}")]
    NotFound { code: &'static str },
    #[error("conflict: {code}")]
    Conflict { code: &'static str },
    #[error("this needs a role you do not hold")]
    Forbidden,
    #[error("unavailable: {code}")]
    Unavailable { code: &'static str },
    #[error(transparent)]
    Internal(#[from] Internal),
}

/// Failures inside: never the caller's fault, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Store(StoreError),
    #[error("audit details must not contain secrets (key {0:?})")]
    SecretInAuditDetails(String),
    #[error("the audit log is too busy to append; try again")]
    AuditContention,
    /// Something that cannot go wrong did: hashing, serialising, a declaration the code cannot
    /// execute. The text is for the log.
    #[error("{what}: {cause}")]
    Broken { what: &'static str, cause: String },
}

impl CoreError {
    pub fn input(code: &'static str) -> CoreError {
        CoreError::Input { code, hint: None }
    }

    pub fn broken(what: &'static str, cause: impl std::fmt::Display) -> CoreError {
        CoreError::Internal(Internal::Broken { what, cause: cause.to_string() })
    }

    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Input { code, .. }
            | CoreError::NotFound { code }
            | CoreError::Conflict { code }
            | CoreError::Unavailable { code } => code,
            CoreError::Forbidden => "forbidden",
            CoreError::Internal(Internal::Store(e)) => e.code(),
            CoreError::Internal(Internal::SecretInAuditDetails(_)) => "audit_details_secret",
            CoreError::Internal(Internal::AuditContention) => "audit_contention",
            CoreError::Internal(Internal::Broken { .. }) => "internal_error",
        }
    }
}

/// A database that does not answer is an outage (503, try again), not a bug; the rest of the
/// storage failures are internal.
impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> CoreError {
        if e.is_outage() {
            tracing::warn!(error = %e, "the database did not answer");
            CoreError::Unavailable { code: "database_unavailable" }
        } else {
            CoreError::Internal(Internal::Store(e))
        }
    }
}
