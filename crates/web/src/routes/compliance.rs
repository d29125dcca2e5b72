//! Terms enforcement and the register of authority requests. Admins suspend or close an account
//! under a clause with a reason (the person is mailed it with a link to appeal) and decide
//! appeals; the privacy officer and admins keep the register of what authorities asked, on which
//! legal basis, and what was disclosed. The appeal page works without signing in: a suspended
//! person cannot sign in.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::compliance::{CLAUSES, TermsAction};
use passme_core::identity::staff::Role;
use passme_store::{AuthorityRequestRow, TermsActionRow};
use secrecy::SecretString;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, Roles, Staff};
use crate::routes::account::{TokenQuery, notice};
use crate::routes::pages::{Chrome, page, when};

/// Who opens the compliance page: admins act on accounts; the privacy officer keeps the register.
pub struct ComplianceStaff;

impl Roles for ComplianceStaff {
    const ALLOWED: &'static [Role] = &[Role::Admin, Role::PrivacyOfficer];
}

/// Who may suspend or close an account and decide appeals.
pub struct Admins;

impl Roles for Admins {
    const ALLOWED: &'static [Role] = &[Role::Admin];
}

struct ActionView {
    row: TermsActionRow,
    clause: &'static str,
    decided: String,
    open_appeal: bool,
}

struct RequestView {
    row: AuthorityRequestRow,
    received: String,
}

#[derive(Template)]
#[template(path = "staff_compliance.html")]
struct CompliancePage {
    chrome: Chrome,
    csrf: String,
    admin: bool,
    error: Option<String>,
    clauses: Vec<(&'static str, &'static str)>,
    actions: Vec<ActionView>,
    requests: Vec<RequestView>,
}

async fn compliance_page(state: &AppState, ctx: &PageContext, roles: &[Role], error: Option<WebError>) -> Result<Response, WebError> {
    let t = ctx.t;
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let body = CompliancePage {
        chrome: Chrome::new(state, ctx, t.compliance_heading(), false),
        csrf: ctx.csrf_token(state),
        admin: roles.contains(&Role::Admin),
        error: error.map(|e| e.message(t)),
        clauses: CLAUSES.iter().map(|c| (*c, t.terms_clause(c).unwrap_or(c))).collect(),
        actions: state
            .store
            .terms_actions(100)
            .await?
            .into_iter()
            .map(|row| ActionView {
                clause: t.terms_clause(&row.clause).unwrap_or("?"),
                decided: when(row.decided_at),
                open_appeal: row.appealed_at.is_some() && row.outcome.is_none(),
                row,
            })
            .collect(),
        requests: state
            .store
            .authority_requests(100)
            .await?
            .into_iter()
            .map(|row| RequestView { received: when(row.received_at), row })
            .collect(),
    };
    let mut response = page(ctx, state, true, &body);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn staff_page(State(state): State<AppState>, ctx: PageContext, staff: Staff<ComplianceStaff>) -> Result<Response, WebError> {
    compliance_page(&state, &ctx, &staff.roles, None).await
}

fn back() -> Response {
    Redirect::to("/staff/compliance").into_response()
}

#[derive(Debug, Deserialize)]
pub struct EnforceInput {
    csrf: String,
    email: String,
    action: String,
    clause: String,
    reason: String,
}

crate::csrf_protected!(EnforceInput);

pub async fn enforce(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Admins>,
    CsrfForm(input): CsrfForm<EnforceInput>,
) -> Result<Response, WebError> {
    let Some(action) = TermsAction::parse(&input.action) else {
        return compliance_page(&state, &ctx, &staff.roles, Some(WebError::bad_request("terms_action_unknown"))).await;
    };
    let key = passme_core::identity::email::key(&input.email);
    let Some(account) = state.store.account_by_email_key(&key).await? else {
        return compliance_page(&state, &ctx, &staff.roles, Some(WebError::new(StatusCode::NOT_FOUND, "person_unknown"))).await;
    };
    if account.id == staff.session.account_id {
        return compliance_page(&state, &ctx, &staff.roles, Some(WebError::bad_request("terms_self"))).await;
    }
    let lang = state
        .store
        .account_prefs(&account.id)
        .await?
        .1
        .as_deref()
        .and_then(passme_messages::Lang::parse)
        .unwrap_or(passme_messages::Lang::Da);
    let by = format!("account:{}", staff.session.account_id);
    if let Err(e) = state.compliance.enforce(&account.id, action, &input.clause, &input.reason, &by, lang).await {
        return compliance_page(&state, &ctx, &staff.roles, Some(e.into())).await;
    }
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct ResolveInput {
    csrf: String,
    action: String,
    outcome: String,
    note: String,
}

crate::csrf_protected!(ResolveInput);

pub async fn resolve(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Admins>,
    CsrfForm(input): CsrfForm<ResolveInput>,
) -> Result<Response, WebError> {
    let by = format!("account:{}", staff.session.account_id);
    if let Err(e) = state.compliance.resolve(&input.action, &input.outcome, &input.note, &by).await {
        return compliance_page(&state, &ctx, &staff.roles, Some(e.into())).await;
    }
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct RegisterInput {
    csrf: String,
    authority: String,
    reference: String,
    legal_basis: String,
    asked: String,
    #[serde(default)]
    email: String,
}

crate::csrf_protected!(RegisterInput);

pub async fn register(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<ComplianceStaff>,
    CsrfForm(input): CsrfForm<RegisterInput>,
) -> Result<Response, WebError> {
    let account = match input.email.trim() {
        "" => None,
        email => match state.store.account_by_email_key(&passme_core::identity::email::key(email)).await? {
            Some(account) => Some(account.id),
            None => return compliance_page(&state, &ctx, &staff.roles, Some(WebError::new(StatusCode::NOT_FOUND, "person_unknown"))).await,
        },
    };
    let by = format!("account:{}", staff.session.account_id);
    if let Err(e) =
        state.compliance.register_request(&input.authority, &input.reference, &input.legal_basis, &input.asked, account, &by).await
    {
        return compliance_page(&state, &ctx, &staff.roles, Some(e.into())).await;
    }
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct CompleteInput {
    csrf: String,
    id: String,
    status: String,
    disclosed: String,
}

crate::csrf_protected!(CompleteInput);

pub async fn complete(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<ComplianceStaff>,
    CsrfForm(input): CsrfForm<CompleteInput>,
) -> Result<Response, WebError> {
    let answered = match input.status.as_str() {
        "answered" => true,
        "refused" => false,
        _ => return compliance_page(&state, &ctx, &staff.roles, Some(WebError::bad_request("authority_request_incomplete"))).await,
    };
    let by = format!("account:{}", staff.session.account_id);
    if let Err(e) = state.compliance.complete_request(&input.id, answered, &input.disclosed, &by).await {
        return compliance_page(&state, &ctx, &staff.roles, Some(e.into())).await;
    }
    Ok(back())
}

#[derive(Template)]
#[template(path = "appeal.html")]
struct AppealPage {
    chrome: Chrome,
    csrf: String,
    token: String,
    action: Option<(&'static str, &'static str, String, String)>,
}

/// The mailed link opens the decision and a form; it is used up only when the appeal is sent.
pub async fn appeal_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Result<Response, WebError> {
    let t = ctx.t;
    let token = query.token.unwrap_or_default();
    let action = state.compliance.action_of_link(&SecretString::from(token.clone())).await?.map(|a| {
        let what = if a.action == "close" { t.compliance_closed() } else { t.compliance_suspended() };
        (what, t.terms_clause(&a.clause).unwrap_or("?"), a.reason, when(a.decided_at))
    });
    let status = if action.is_some() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let body =
        AppealPage { chrome: Chrome::new(&state, &ctx, t.compliance_appeal_heading(), false), csrf: ctx.csrf_token(&state), token, action };
    let mut response = page(&ctx, &state, true, &body);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct AppealInput {
    csrf: String,
    token: String,
    text: String,
}

crate::csrf_protected!(AppealInput);

pub async fn appeal(State(state): State<AppState>, ctx: PageContext, CsrfForm(input): CsrfForm<AppealInput>) -> Result<Response, WebError> {
    let t = ctx.t;
    state.compliance.appeal(&SecretString::from(input.token), &input.text).await?;
    Ok(notice(&state, &ctx, t.compliance_appeal_heading(), t.compliance_appeal_sent(), ("/", t.site_front_page())))
}
