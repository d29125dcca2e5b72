//! Changing the e-mail address: the password again, then a link to the new address; the address
//! changes only when that link is used, and the old address is told.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;

use super::signup::VerifyInput;
use super::{FormPage, TokenQuery, notice};
use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};

#[derive(Debug, Deserialize)]
pub struct EmailChangeInput {
    csrf: String,
    email: String,
    current: String,
}

crate::csrf_protected!(EmailChangeInput);

pub async fn request_email_change(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<EmailChangeInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    let requested = state
        .identity
        .request_email_change(&session.account_id, SecretString::from(input.current), &input.email, ctx.lang, ctx.client_ip)
        .await;
    match requested {
        Ok(()) => Ok(notice(
            &state,
            &ctx,
            t.account_check_new_email(),
            t.account_check_new_email_text(),
            ("/account", t.account_back_to_account()),
        )),
        Err(e) => super::page::refused(&state, &ctx, &session, "email", e).await,
    }
}

/// The link opens a page with a button: mail scanners that follow links must not use it up.
pub async fn email_confirm_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let t = ctx.t;
    FormPage {
        hidden: vec![("token", query.token.unwrap_or_default())],
        submit: t.account_confirm(),
        ..FormPage::new(&state, &ctx, t.account_confirm_new_email_heading(), "/email-confirm")
    }
    .respond(&state, &ctx, StatusCode::OK)
}

pub async fn email_confirm(
    State(state): State<AppState>,
    ctx: PageContext,
    CsrfForm(input): CsrfForm<VerifyInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    if state.identity.confirm_email_change(&SecretString::from(input.token), ctx.lang).await? {
        Ok(notice(&state, &ctx, t.account_email_changed(), t.account_email_changed_text(), ("/account", t.account_back_to_account())))
    } else {
        Err(WebError::bad_request("email_token_invalid"))
    }
}
