//! Privacy requests: the public form for people who cannot or will not sign in (confirmed by a
//! link to the account's address), the request form of the privacy centre, and the privacy
//! officer's handling (extend once with a reason, close with an outcome).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::rights::requests::KINDS;
use passme_messages::Texts;
use secrecy::SecretString;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, PrivacyOfficers, SignedIn, Staff};
use crate::routes::account::{Notice, TokenQuery, notice};
use crate::routes::pages::{Chrome, page, when};

/// The label of a request kind; an unknown kind reads as "something else".
pub fn kind_label(t: Texts, kind: &str) -> &'static str {
    match kind {
        "access" => t.request_kind_access(),
        "export" => t.request_kind_export(),
        "rectify" => t.request_kind_rectify(),
        "erase" => t.request_kind_erase(),
        "object" => t.request_kind_object(),
        _ => t.request_kind_other(),
    }
}

/// The kinds a person may choose, with their labels.
pub fn kinds(t: Texts) -> Vec<(&'static str, &'static str)> {
    KINDS.iter().map(|k| (*k, kind_label(t, k))).collect()
}

#[derive(Template)]
#[template(path = "privacy_request.html")]
struct RequestPage {
    chrome: Chrome,
    csrf: String,
    kinds: Vec<(&'static str, &'static str)>,
    /// The link's token when the page confirms a request.
    token: Option<String>,
}

pub async fn form(State(state): State<AppState>, ctx: PageContext) -> Response {
    let body = RequestPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.request_heading(), true),
        csrf: ctx.csrf_token(&state),
        kinds: kinds(ctx.t),
        token: None,
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct RequestInput {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    message: String,
}

crate::csrf_protected!(RequestInput);

/// The same answer whether or not the address has an account, and over the mail limits nothing
/// is registered or sent.
pub async fn submit(
    State(state): State<AppState>,
    ctx: PageContext,
    CsrfForm(input): CsrfForm<RequestInput>,
) -> Result<Response, WebError> {
    let address = passme_core::identity::email::validate(&input.email)?;
    if state.identity.mail_allowed(&address, ctx.client_ip).await? {
        state.requests.submit_by_email(&address, input.kind.trim(), &input.message, "form", ctx.lang, &state.jobs).await?;
    } else if !KINDS.contains(&input.kind.trim()) {
        return Err(WebError::bad_request("request_kind_unknown"));
    }
    let t = ctx.t;
    Ok(notice(&state, &ctx, t.account_check_email(), t.request_sent(), ("/privacy", t.site_privacy())))
}

pub async fn confirm_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let body = RequestPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.request_confirm_heading(), true),
        csrf: ctx.csrf_token(&state),
        kinds: Vec::new(),
        token: Some(query.token.unwrap_or_default()),
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct ConfirmInput {
    csrf: String,
    #[serde(default)]
    token: String,
}

crate::csrf_protected!(ConfirmInput);

/// A link scanner's GET confirms nothing: the page asks, and this POST confirms.
pub async fn confirm(
    State(state): State<AppState>,
    ctx: PageContext,
    CsrfForm(input): CsrfForm<ConfirmInput>,
) -> Result<Response, WebError> {
    let Some(request) = state.requests.confirm(&SecretString::from(input.token)).await? else {
        return Err(WebError::bad_request("request_link_invalid"));
    };
    let t = ctx.t;
    let body = Notice {
        chrome: Chrome::new(&state, &ctx, t.request_confirmed_heading(), false),
        heading: t.request_confirmed_heading(),
        message: t.request_confirmed(&request.id, when(request.due_at)),
        link: ("/privacy".into(), t.site_privacy()),
    };
    Ok((StatusCode::OK, page(&ctx, &state, false, &body)).into_response())
}

/// A request from the privacy centre: the session proves who asks.
pub async fn submit_signed_in(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<RequestInput>,
) -> Result<Response, WebError> {
    state.requests.submit_signed_in(&session.account_id, input.kind.trim(), &input.message).await?;
    Ok(Redirect::to("/account/privacy?done=request_sent").into_response())
}

#[derive(Debug, Deserialize)]
pub struct HandleInput {
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    refused: Option<String>,
}

crate::csrf_protected!(HandleInput);

pub async fn extend(
    State(state): State<AppState>,
    staff: Staff<PrivacyOfficers>,
    CsrfForm(input): CsrfForm<HandleInput>,
) -> Result<Response, WebError> {
    state.requests.extend(&input.id, &input.text, &format!("account:{}", staff.session.account_id)).await?;
    Ok(Redirect::to("/staff/privacy?done=request_extended").into_response())
}

pub async fn close(
    State(state): State<AppState>,
    staff: Staff<PrivacyOfficers>,
    CsrfForm(input): CsrfForm<HandleInput>,
) -> Result<Response, WebError> {
    let done = input.refused.is_none();
    state.requests.close(&input.id, done, &input.text, &format!("account:{}", staff.session.account_id)).await?;
    Ok(Redirect::to("/staff/privacy?done=request_closed").into_response())
}

#[derive(Debug, Deserialize)]
pub struct ObjectInput {
    csrf: String,
    #[serde(default)]
    purpose: String,
    /// Present to withdraw the objection.
    #[serde(default)]
    withdraw: Option<String>,
}

crate::csrf_protected!(ObjectInput);

/// Objects to a purpose pursued on legitimate interest, or withdraws the objection.
pub async fn object(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<ObjectInput>,
) -> Result<Response, WebError> {
    use passme_core::rights::objections::Objected;
    let done = if input.withdraw.is_some() {
        state.objections.withdraw(&session.account_id, &input.purpose).await?;
        "objection_withdrawn"
    } else {
        match state.objections.object(&state.policy, &session.account_id, &input.purpose).await? {
            Objected::Stopped => "objection_stopped",
            Objected::ForReview(_) => "objection_review",
        }
    };
    Ok(Redirect::to(&format!("/account/privacy?done={done}")).into_response())
}
