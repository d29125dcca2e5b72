//! Signing in and out. One answer for an unknown address and a wrong password; throttling comes
//! before the password is even checked (see `Identity::sign_in`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::identity::service::SignIn;
use passme_policy::CookieCategory;
use secrecy::SecretString;
use serde::Deserialize;

use super::{CsrfOnly, Field, FormPage, RememberChoice, TokenQuery, notice, sign_in, sign_out};
use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::CsrfForm;
use crate::redirect;
use crate::routes::fraud::SignInScreen;

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(state: &AppState, ctx: &PageContext, email: &str, next: &str) -> FormPage {
    let t = ctx.t;
    let remember =
        if ctx.consent.choices().allows(CookieCategory::Preferences) { RememberChoice::Offered } else { RememberChoice::NeedsConsent };
    FormPage {
        hidden: vec![("next", next.to_string())],
        fields: vec![Field::email(t, email), Field::password(t, false)],
        remember: Some(remember),
        alternatives: state.linking.providers().map(|p| (format!("/login/{}", p.id()), t.account_sign_in_with(&p.config.name))).collect(),
        alternatives_heading: Some(t.account_sign_in_with_heading()),
        links: vec![
            (format!("/signup?lang={}", ctx.lang.code()), t.account_new_here()),
            (format!("/reset-request?lang={}", ctx.lang.code()), t.account_forgot_password()),
        ],
        ..FormPage::new(state, ctx, t.account_login_heading(), "/login")
    }
}

/// The sign-in form; a visitor who is signed in already goes on to where they were headed.
pub async fn login_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<NextQuery>) -> Response {
    let next = redirect::local_path(query.next.as_deref());
    if ctx.session.is_some() {
        return Redirect::to(destination(&next)).into_response();
    }
    login_page(&state, &ctx, "", &next).respond(&state, &ctx, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct LoginInput {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
    remember: Option<String>,
}

crate::csrf_protected!(LoginInput);

pub async fn login(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    CsrfForm(input): CsrfForm<LoginInput>,
) -> Result<Response, WebError> {
    let next = redirect::local_path(input.next.as_deref());
    let remember = input.remember.as_deref() == Some("on");
    let outcome = state.identity.sign_in(&input.email, SecretString::from(input.password), ctx.lang, ctx.client_ip).await?;
    let error = match outcome {
        SignIn::SignedIn(account) => match crate::routes::fraud::screen_signin(&state, &ctx, &headers, &account).await {
            Ok(SignInScreen::Allowed) => return sign_in(&state, &ctx, &headers, &account.id, destination(&next), remember).await,
            Ok(SignInScreen::Challenged) => {
                let t = ctx.t;
                return Ok(notice(&state, &ctx, t.fraud_challenge_heading(), t.fraud_challenge_text(), ("/login", t.account_to_sign_in())));
            }
            Err(blocked) => blocked,
        },
        refused => {
            match refused {
                SignIn::Failed => crate::routes::fraud::note_failed_signin(&state, &ctx, &headers, &input.email).await,
                SignIn::Throttled { .. } => {
                    crate::routes::support::notice_signal(&state, &input.email, passme_support::Signal::Lockout).await;
                }
                _ => {}
            }
            refusal(refused)
        }
    };
    let mut form = login_page(&state, &ctx, &input.email, &next);
    form.error = Some(error.message(ctx.t));
    let mut response = form.respond(&state, &ctx, error.status);
    error.add_headers(&mut response);
    Ok(response)
}

/// The link of a challenged sign-in opens a page with a button: mail scanners that follow links
/// must not use up the token.
pub async fn confirm_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let t = ctx.t;
    FormPage {
        intro: Some(t.fraud_confirm_intro().into()),
        hidden: vec![("token", query.token.unwrap_or_default())],
        submit: t.account_confirm(),
        ..FormPage::new(&state, &ctx, t.fraud_confirm_heading(), "/login/confirm")
    }
    .respond(&state, &ctx, StatusCode::OK)
}

/// Finishes a challenged sign-in from the mailed link, once.
pub async fn confirm(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    CsrfForm(input): CsrfForm<super::signup::VerifyInput>,
) -> Result<Response, WebError> {
    match state.identity.accounts.confirm_sign_in(&SecretString::from(input.token)).await? {
        Some(account) => sign_in(&state, &ctx, &headers, &account.id, "/account", false).await,
        None => Err(WebError::bad_request("token_invalid")),
    }
}

/// Where a sign-in leads: where the visitor was headed, else their account.
fn destination(next: &str) -> &str {
    if next == "/" { "/account" } else { next }
}

/// Why a sign-in did not happen, as the page and the API answer it.
pub fn refusal(outcome: SignIn) -> WebError {
    match outcome {
        SignIn::Throttled { retry_after_secs } => {
            WebError::new(StatusCode::TOO_MANY_REQUESTS, "login_throttled").retry_after(retry_after_secs)
        }
        SignIn::Unverified => WebError::new(StatusCode::FORBIDDEN, "email_unverified"),
        SignIn::Failed | SignIn::SignedIn(_) => WebError::new(StatusCode::UNAUTHORIZED, "invalid_credentials"),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, CsrfForm(_): CsrfForm<CsrfOnly>) -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().extend(sign_out(&state, &headers).await.into_iter().map(|v| (header::SET_COOKIE, v)));
    response
}
