//! Personal access tokens: made on the account page, shown once, revocable.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use passme_core::identity::api_tokens::{SCOPE_ANALYTICS_READ, SCOPE_ME_READ};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::done;
use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Analysts, CsrfForm, Roles, SignedIn};
use crate::routes::pages::{Chrome, page};

#[derive(Template)]
#[template(path = "token_created.html")]
struct TokenCreated {
    chrome: Chrome,
    token: String,
    analyst: bool,
}

#[derive(Debug, Deserialize)]
pub struct TokenInput {
    csrf: String,
    name: Option<String>,
    token: Option<String>,
}

crate::csrf_protected!(TokenInput);

pub async fn create_token(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<TokenInput>,
) -> Result<Response, WebError> {
    // Analysts' tokens may also read the analytics reports; nobody else's can.
    let roles = state.identity.staff.roles(&session.account_id).await?;
    let analyst = roles.iter().any(|r| Analysts::ALLOWED.contains(r));
    let scopes: &[&str] = if analyst { &[SCOPE_ME_READ, SCOPE_ANALYTICS_READ] } else { &[SCOPE_ME_READ] };
    let token = match state.identity.api_tokens.create(&session.account_id, input.name.as_deref().unwrap_or_default(), scopes).await {
        Ok(token) => token,
        Err(e) => return super::page::refused(&state, &ctx, &session, "token", e).await,
    };
    let body = TokenCreated {
        chrome: Chrome::new(&state, &ctx, ctx.t.account_new_token(), false),
        token: token.expose_secret().to_string(),
        analyst,
    };
    Ok(page(&ctx, &state, false, &body))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<TokenInput>,
) -> Result<Response, WebError> {
    if state.identity.api_tokens.revoke(&session.account_id, input.token.as_deref().unwrap_or_default()).await? {
        Ok(done("token_revoked"))
    } else {
        Err(WebError::not_found())
    }
}
