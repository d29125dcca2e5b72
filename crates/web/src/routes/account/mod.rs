//! The account's pages, one module per flow: sign-up and address confirmation, sign-in and
//! sign-out, the account page, its sessions, passwords (reset and change), personal access
//! tokens, e-mail change and closing the account. Plain forms without JavaScript, each protected
//! against CSRF ([`CsrfForm`](crate::extract::CsrfForm)). Answers never reveal whether an address
//! has an account. The decisions are in `passme_core::identity`; here are parsing and pages.

pub mod close;
pub mod email;
pub mod login;
pub mod page;
pub mod password;
pub mod privacy;
pub mod sessions;
pub mod signup;
pub mod tokens;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::CoreError;
use passme_core::identity::remember;
use passme_messages::Texts;
use passme_policy::CookieCategory;
use passme_store::AccountId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::csrf;
use crate::error::WebError;
use crate::routes::pages::{Chrome, page};
pub use crate::visitor::SESSION_COOKIE;

/// One input of a form, with its own error beside it.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub value: String,
    pub error: Option<String>,
}

impl Field {
    pub fn email(t: Texts, value: &str) -> Field {
        Field { name: "email", label: t.form_email(), kind: "email", autocomplete: "email", value: value.into(), error: None }
    }

    /// A password; `new` ones say what makes a good one and let password managers suggest one.
    pub fn password(t: Texts, new: bool) -> Field {
        Field {
            name: "password",
            label: if new { t.form_new_password() } else { t.form_password() },
            kind: "password",
            autocomplete: if new { "new-password" } else { "current-password" },
            value: String::new(),
            error: None,
        }
    }
}

pub enum RememberChoice {
    Offered,
    NeedsConsent,
}

/// A form page: sign-up, sign-in, reset, confirmations.
#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub chrome: Chrome,
    pub heading: &'static str,
    pub intro: Option<String>,
    /// A problem with the form as a whole (wrong e-mail or password); field problems stand by
    /// their field.
    pub error: Option<String>,
    pub action: &'static str,
    pub csrf: String,
    pub hidden: Vec<(&'static str, String)>,
    /// For password managers on forms without a visible address: the account it belongs to.
    pub username: Option<String>,
    pub fields: Vec<Field>,
    pub remember: Option<RememberChoice>,
    pub submit: &'static str,
    pub links: Vec<(String, &'static str)>,
    /// Other ways through: (form action, button label), each a separate CSRF-protected form
    /// ("Sign in with …").
    pub alternatives: Vec<(String, String)>,
    pub alternatives_heading: Option<&'static str>,
}

impl FormPage {
    pub fn new(state: &AppState, ctx: &PageContext, heading: &'static str, action: &'static str) -> FormPage {
        FormPage {
            chrome: Chrome::new(state, ctx, heading, true),
            heading,
            intro: None,
            error: None,
            action,
            csrf: ctx.csrf_token(state),
            hidden: Vec::new(),
            username: None,
            fields: Vec::new(),
            alternatives: Vec::new(),
            alternatives_heading: None,
            remember: None,
            submit: heading,
            links: Vec::new(),
        }
    }

    /// Puts an input problem next to its field (or above the form when it belongs to none), and
    /// answers 400. Anything else is a failure, answered as an error.
    pub fn refused(mut self, state: &AppState, ctx: &PageContext, error: CoreError) -> Result<Response, WebError> {
        let CoreError::Input { code, hint } = error else { return Err(error.into()) };
        let message = WebError::bad_request(code).with_hint(hint).message(ctx.t);
        let field = if code.starts_with("password") && code != "password_incorrect" {
            "password"
        } else if code.starts_with("email") {
            "email"
        } else {
            "current"
        };
        match self.fields.iter_mut().find(|f| f.name == field) {
            Some(f) => f.error = Some(message),
            None => self.error = Some(message),
        }
        Ok(self.respond(state, ctx, StatusCode::BAD_REQUEST))
    }

    pub fn respond(self, state: &AppState, ctx: &PageContext, status: StatusCode) -> Response {
        let mut response = page(ctx, state, true, &self);
        *response.status_mut() = status;
        response
    }
}

/// A page that says what happened and where to go next.
#[derive(Template)]
#[template(path = "notice.html")]
pub struct Notice {
    pub chrome: Chrome,
    pub heading: &'static str,
    pub message: String,
    pub link: (String, &'static str),
}

pub fn notice(state: &AppState, ctx: &PageContext, heading: &'static str, message: &'static str, link: (&str, &'static str)) -> Response {
    let body = Notice {
        chrome: Chrome::new(state, ctx, heading, false),
        heading,
        message: message.to_string(),
        link: (link.0.to_string(), link.1),
    };
    page(ctx, state, false, &body)
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

crate::csrf_protected!(CsrfOnly);

/// Signs the account in on this browser and sends it on: a fresh session (never the token the
/// browser brought: no fixation), ending the session this browser had before, a fresh CSRF
/// cookie, and, only when asked and with preference consent, a remember-me series.
pub async fn sign_in(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    account_id: &AccountId,
    next: &str,
    remember: bool,
) -> Result<Response, WebError> {
    let mut response = Redirect::to(next).into_response();
    response
        .headers_mut()
        .extend(session_cookies(state, ctx, headers, account_id, remember).await?.into_iter().map(|v| (header::SET_COOKIE, v)));
    Ok(response)
}

/// The cookies of a new sign-in (see [`sign_in`]).
pub async fn session_cookies(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    account_id: &AccountId,
    remember: bool,
) -> Result<Vec<HeaderValue>, WebError> {
    if let Some(old) = &ctx.session {
        state.identity.sessions.revoke(&old.account_id, &old.id).await?;
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (token, _) = state.identity.sessions.issue(account_id, user_agent, ctx.client_ip).await?;
    let mut values: Vec<HeaderValue> = [
        cookies::set(&state.policy, SESSION_COOKIE, token.expose_secret()),
        cookies::set(&state.policy, csrf::COOKIE, &csrf::new_cookie_value()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if remember && ctx.consent.choices().allows(CookieCategory::Preferences) {
        let series = state.identity.remember.start(account_id).await?;
        values.extend(cookies::set(&state.policy, remember::COOKIE, series.expose_secret()));
    }
    Ok(values)
}

/// Ends this browser's session and remember-me series; returns the cookie deletions to send.
/// A failure to end them server-side is logged, never passed over: the cookies go either way.
pub async fn sign_out(state: &AppState, headers: &HeaderMap) -> Vec<HeaderValue> {
    if let Some(token) = cookies::single(headers, SESSION_COOKIE)
        && let Err(e) = state.identity.sessions.end(&SecretString::from(token.to_string())).await
    {
        tracing::error!(error = %e, code = e.code(), "sign-out could not end the session");
    }
    if let Some(value) = cookies::single(headers, remember::COOKIE)
        && let Err(e) = state.identity.remember.end(&SecretString::from(value.to_string())).await
    {
        tracing::error!(error = %e, code = e.code(), "sign-out could not end the remember-me series");
    }
    [cookies::delete(SESSION_COOKIE), cookies::delete(remember::COOKIE)].into_iter().flatten().collect()
}

/// A redirect back to the account page, confirming what was done (`?done=`).
pub fn done(code: &str) -> Response {
    Redirect::to(&format!("/account?done={code}")).into_response()
}
