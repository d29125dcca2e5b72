//! Passwords: a reset by mailed single-use link for whoever forgot theirs, and a change from the
//! account page (the current password first, then every other session and token ends).

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;

use super::{Field, FormPage, SESSION_COOKIE, TokenQuery, done, notice};
use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};

pub async fn reset_request_form(State(state): State<AppState>, ctx: PageContext) -> Response {
    let t = ctx.t;
    FormPage {
        intro: Some(t.account_reset_request_intro().into()),
        fields: vec![Field::email(t, "")],
        submit: t.account_send_link(),
        links: vec![(format!("/login?lang={}", ctx.lang.code()), t.account_back_to_sign_in())],
        ..FormPage::new(&state, &ctx, t.account_reset_request_heading(), "/reset-request")
    }
    .respond(&state, &ctx, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct ResetRequestInput {
    csrf: String,
    email: String,
}

crate::csrf_protected!(ResetRequestInput);

/// Queued, not sent here: the answer and its timing are the same for every address.
pub async fn reset_request(
    State(state): State<AppState>,
    ctx: PageContext,
    CsrfForm(input): CsrfForm<ResetRequestInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    state.identity.request_password_reset(&input.email, ctx.lang, ctx.client_ip).await?;
    crate::routes::support::notice_signal(&state, &input.email, passme_support::Signal::PasswordReset).await;
    Ok(notice(&state, &ctx, t.account_check_email(), t.account_reset_sent(), ("/login", t.account_to_sign_in())))
}

fn reset_page(state: &AppState, ctx: &PageContext, token: &str) -> FormPage {
    let t = ctx.t;
    FormPage {
        intro: Some(t.account_reset_intro().into()),
        hidden: vec![("token", token.to_string())],
        fields: vec![Field::password(t, true)],
        submit: t.account_save_password(),
        ..FormPage::new(state, ctx, t.account_reset_heading(), "/reset")
    }
}

pub async fn reset_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    reset_page(&state, &ctx, &query.token.unwrap_or_default()).respond(&state, &ctx, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct ResetInput {
    csrf: String,
    token: String,
    password: String,
}

crate::csrf_protected!(ResetInput);

pub async fn reset(State(state): State<AppState>, ctx: PageContext, CsrfForm(input): CsrfForm<ResetInput>) -> Result<Response, WebError> {
    let t = ctx.t;
    match state.identity.accounts.reset_password(&SecretString::from(input.token.clone()), SecretString::from(input.password)).await {
        Ok(true) => {
            let mut response =
                notice(&state, &ctx, t.account_password_changed(), t.account_password_reset_done(), ("/login", t.account_to_sign_in()));
            if let Some(value) = cookies::delete(SESSION_COOKIE) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(response)
        }
        Ok(false) => Err(WebError::bad_request("token_invalid")),
        Err(e) => reset_page(&state, &ctx, &input.token).refused(&state, &ctx, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangePasswordInput {
    csrf: String,
    current: String,
    password: String,
}

crate::csrf_protected!(ChangePasswordInput);

/// Changing the password asks for the current one (re-authentication, also for a remembered
/// sign-in) and ends every other session; this one continues. The owner is told by mail.
pub async fn change_password(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<ChangePasswordInput>,
) -> Result<Response, WebError> {
    let changed = state
        .identity
        .change_password(
            &session.account_id,
            SecretString::from(input.current),
            SecretString::from(input.password),
            Some(&session.id),
            ctx.lang,
        )
        .await;
    match changed {
        Ok(_) => Ok(done("password_changed")),
        Err(e) => super::page::refused(&state, &ctx, &session, "password", e).await,
    }
}
