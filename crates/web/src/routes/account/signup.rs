//! Sign-up and the confirmation of the address by its mailed link. The answer to a sign-up is the
//! same whether or not the address had an account (its owner is told by mail instead).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;

use super::{Field, FormPage, TokenQuery, notice, sign_in};
use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::CsrfForm;

fn signup_page(state: &AppState, ctx: &PageContext, email: &str) -> FormPage {
    let t = ctx.t;
    FormPage {
        intro: Some(t.account_signup_intro().into()),
        fields: vec![Field::email(t, email), Field::password(t, true)],
        links: vec![(format!("/login?lang={}", ctx.lang.code()), t.account_have_account())],
        ..FormPage::new(state, ctx, t.account_signup_heading(), "/signup")
    }
}

pub async fn signup_form(State(state): State<AppState>, ctx: PageContext) -> Response {
    signup_page(&state, &ctx, "").respond(&state, &ctx, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct SignupInput {
    csrf: String,
    email: String,
    password: String,
}

crate::csrf_protected!(SignupInput);

pub async fn signup(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    CsrfForm(input): CsrfForm<SignupInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    if let Err(refused) = crate::routes::fraud::screen_signup(&state, &ctx, &headers, &input.email, &input.password).await {
        let mut form = signup_page(&state, &ctx, &input.email);
        form.error = Some(refused.message(t));
        return Ok(form.respond(&state, &ctx, refused.status));
    }
    if let Err(e) = state.identity.sign_up(&input.email, SecretString::from(input.password), ctx.lang, ctx.client_ip).await {
        return signup_page(&state, &ctx, &input.email).refused(&state, &ctx, e);
    }
    Ok(notice(&state, &ctx, t.account_check_email(), t.account_check_email_text(), ("/login", t.account_to_sign_in())))
}

/// The link in the mail opens a page with a button: mail scanners that follow links must not use
/// up the token.
pub async fn verify_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let t = ctx.t;
    FormPage {
        intro: Some(t.account_verify_intro().into()),
        hidden: vec![("token", query.token.unwrap_or_default())],
        submit: t.account_confirm(),
        ..FormPage::new(&state, &ctx, t.account_verify_heading(), "/verify")
    }
    .respond(&state, &ctx, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct VerifyInput {
    pub(super) csrf: String,
    pub(super) token: String,
}

crate::csrf_protected!(VerifyInput);

pub async fn verify(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    CsrfForm(input): CsrfForm<VerifyInput>,
) -> Result<Response, WebError> {
    match state.identity.accounts.verify_address(&SecretString::from(input.token)).await? {
        Some(account) => sign_in(&state, &ctx, &headers, &account.id, "/account", false).await,
        None => Err(WebError::bad_request("token_invalid")),
    }
}
