//! Closing the account: the password again; every session and token ends at once, and the
//! declared retention rules erase the rest.

use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use passme_core::identity::remember;
use secrecy::SecretString;
use serde::Deserialize;

use super::{SESSION_COOKIE, notice};
use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};

#[derive(Debug, Deserialize)]
pub struct CloseInput {
    csrf: String,
    current: String,
}

crate::csrf_protected!(CloseInput);

pub async fn close(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<CloseInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    if let Err(e) = state.identity.accounts.close(&session.account_id, SecretString::from(input.current)).await {
        return super::page::refused(&state, &ctx, &session, "close", e).await;
    }
    // A closed account signs in with nothing: its links are revoked at the providers and their
    // tokens deleted now, not after the grace period.
    if let Err(e) = state.linking.unlink_all(&session.account_id).await {
        tracing::error!(code = e.code(), "could not unlink the closed account's linked accounts");
    }
    // Push stops, the choices go, and partners that received the person are asked to delete them.
    if let Err(e) = state.messaging.forget_account(&session.account_id).await {
        tracing::error!(code = e.code(), "could not remove the closed account's messaging data");
    }
    if state.billing.is_some() {
        // Paying for a closed account makes no sense: its subscriptions end at the provider.
        if let Err(e) = passme_billing::Billing::schedule_account_closed(&state.jobs, &session.account_id).await {
            tracing::error!(error = %e, code = e.code(), "could not queue ending the closed account's subscriptions");
        }
    }
    let mut response = notice(&state, &ctx, t.account_closed(), t.account_closed_text(), ("/", t.site_front_page()));
    for value in [cookies::delete(SESSION_COOKIE), cookies::delete(remember::COOKIE)].into_iter().flatten() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}
