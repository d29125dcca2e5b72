//! Ending sessions from the account page: one, or every one but this.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::done;
use crate::app::AppState;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};

#[derive(Debug, Deserialize)]
pub struct RevokeInput {
    csrf: String,
    session: Option<String>,
}

crate::csrf_protected!(RevokeInput);

/// Ends one of the signed-in account's own sessions; another account's session id is "not found"
/// (no IDOR).
pub async fn revoke_one(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<RevokeInput>,
) -> Result<Response, WebError> {
    if state.identity.sessions.revoke(&session.account_id, input.session.as_deref().unwrap_or_default()).await? {
        Ok(done("session_ended"))
    } else {
        Err(WebError::not_found())
    }
}

pub async fn revoke_others(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(_): CsrfForm<RevokeInput>,
) -> Result<Response, WebError> {
    state.identity.sessions.revoke_all(&session.account_id, Some(&session.id)).await?;
    Ok(done("sessions_ended"))
}
