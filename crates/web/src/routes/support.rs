//! Customer support at the edge: the contact form (signed in or not; a privacy request goes to the
//! privacy-request register instead), the person's own cases, and the agents' queue and case
//! pages with assignment, canned replies, targets and closing. Reading a case is a staff read of
//! personal data: audited, and shown to the person like any other.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::audit::AuditEvent;
use passme_core::identity::staff::Role;
use passme_messages::Lang;
use passme_store::{CannedRow, TicketMessageRow, TicketRow};
use passme_support::{Author, NewCase};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, Roles, SignedIn, Staff};
use crate::routes::account::notice;
use crate::routes::pages::{Chrome, page, when};

/// Who works the support queue.
pub struct Agents;

impl Roles for Agents {
    const ALLOWED: &'static [Role] = &[Role::Support, Role::Admin];
}

/// Records a signal about the account behind an address, if there is one. The page answers alike
/// either way, and a failure here is logged, never shown: help is a bonus, not a condition.
pub async fn notice_signal(state: &AppState, address: &str, signal: passme_support::Signal) {
    let key = passme_core::identity::email::key(address);
    let result = match state.store.account_by_email_key(&key).await {
        Ok(Some(account)) => state.support.signal(&account.id, signal, json!({})).await.map(|_| ()),
        Ok(None) => Ok(()),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, signal = signal.id(), "a support signal was not recorded");
    }
}

fn state_name(t: passme_messages::Texts, state: &str) -> &'static str {
    match state {
        "new" => t.support_state_new(),
        "open" => t.support_state_open(),
        "pending" => t.support_state_pending(),
        _ => t.support_state_closed(),
    }
}

fn subject_of(t: passme_messages::Texts, ticket: &TicketRow) -> String {
    match &ticket.signal {
        Some(signal) => t.support_signal(signal).unwrap_or(signal).to_string(),
        None => ticket.subject.clone(),
    }
}

/// A case in a list.
pub struct CaseLine {
    pub id: String,
    pub subject: String,
    pub state: &'static str,
    pub opened: String,
    /// The target the case is held to now, and whether it is missed.
    pub due: String,
    pub overdue: bool,
    pub assignee: String,
    pub proactive: bool,
}

fn line(t: passme_messages::Texts, ticket: &TicketRow, now: i64) -> CaseLine {
    let due = if ticket.first_response_at.is_none() { ticket.first_response_due } else { ticket.resolution_due };
    CaseLine {
        id: ticket.id.clone(),
        subject: subject_of(t, ticket),
        state: state_name(t, &ticket.state),
        opened: when(ticket.created_at),
        due: if ticket.first_response_at.is_none() { t.support_due_answer(when(due)) } else { t.support_due_solve(when(due)) },
        overdue: ticket.state != "closed" && due < now,
        assignee: ticket.assignee.clone().unwrap_or_else(|| "–".into()),
        proactive: ticket.source == "proactive",
    }
}

/// A message on a case, as its reader sees it.
pub struct MessageView {
    pub who: &'static str,
    pub at: String,
    pub body: String,
}

fn messages(t: passme_messages::Texts, rows: Vec<TicketMessageRow>, staff_view: bool) -> Vec<MessageView> {
    rows.into_iter()
        // The system note with the signal is for the agent, not for the person.
        .filter(|m| staff_view || m.author != "system")
        .map(|m| MessageView {
            who: match m.author.as_str() {
                "person" => t.support_from_person(),
                "staff" => t.support_from_staff(),
                _ => t.support_from_system(),
            },
            at: when(m.at),
            body: m.body,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage {
    chrome: Chrome,
    csrf: String,
    email: String,
    signed_in: bool,
    subject: String,
    message: String,
    topic: String,
    error: Option<String>,
}

fn contact_page(state: &AppState, ctx: &PageContext, email: String, input: Option<&ContactInput>, error: Option<String>) -> ContactPage {
    ContactPage {
        chrome: Chrome::new(state, ctx, ctx.t.support_contact_heading(), true),
        csrf: ctx.csrf_token(state),
        email,
        signed_in: ctx.session.is_some(),
        subject: input.map(|i| i.subject.clone()).unwrap_or_default(),
        message: input.map(|i| i.message.clone()).unwrap_or_default(),
        topic: input.map(|i| i.topic.clone()).unwrap_or_else(|| "support".into()),
        error,
    }
}

async fn own_address(state: &AppState, ctx: &PageContext) -> Result<Option<String>, WebError> {
    match ctx.account_id() {
        Some(id) => Ok(state.store.account(id).await?.map(|a| a.email)),
        None => Ok(None),
    }
}

pub async fn contact_form(State(state): State<AppState>, ctx: PageContext) -> Result<Response, WebError> {
    let email = own_address(&state, &ctx).await?.unwrap_or_default();
    Ok(page(&ctx, &state, true, &contact_page(&state, &ctx, email, None, None)))
}

#[derive(Debug, Deserialize)]
pub struct ContactInput {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    message: String,
}

crate::csrf_protected!(ContactInput);

/// A message from the contact form: a support case, or (topic `privacy`) a privacy request in
/// the register, confirmed from the mailbox unless the person is signed in. Both count towards
/// the shared mail limits, so the form cannot flood a mailbox or the queue.
pub async fn contact(
    State(state): State<AppState>,
    ctx: PageContext,
    CsrfForm(input): CsrfForm<ContactInput>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    let signed_in_address = own_address(&state, &ctx).await?;
    let address = match &signed_in_address {
        Some(address) => address.clone(),
        None => match passme_core::identity::email::validate(&input.email) {
            Ok(address) => address,
            Err(e) => return Ok(refused(&state, &ctx, &input, WebError::from(e))),
        },
    };
    if !contact_allowed(&state, &ctx, &address).await? {
        return Ok(refused(&state, &ctx, &input, WebError::new(StatusCode::TOO_MANY_REQUESTS, "contact_too_many").retry_after(3600)));
    }
    if input.topic == "privacy" {
        let result = match ctx.account_id() {
            Some(id) => state.requests.submit_signed_in(id, "other", &input.message).await.map(|_| ()),
            None => state.requests.submit_by_email(&address, "other", &input.message, "contact_form", ctx.lang, &state.jobs).await,
        };
        if let Err(e) = result {
            return Ok(refused(&state, &ctx, &input, e.into()));
        }
        let text = if ctx.session.is_some() { t.request_sent_signed_in() } else { t.request_sent() };
        return Ok(notice(&state, &ctx, t.support_contact_heading(), text, ("/", t.site_front_page())));
    }
    let case = NewCase { account_id: ctx.account_id(), email: &address, lang: ctx.lang, subject: &input.subject, body: &input.message };
    match state.support.open(case).await {
        Ok(_) => Ok(notice(&state, &ctx, t.support_received_heading(), t.support_received_text(), ("/", t.site_front_page()))),
        Err(e) => Ok(refused(&state, &ctx, &input, e.into())),
    }
}

/// Cases a signed-in person may open in an hour.
const CASES_PER_HOUR: usize = 10;

/// Whether one more message may come from here. Signed in, the account is who writes: at most
/// [`CASES_PER_HOUR`] cases an hour, counted in the database. Otherwise the message mails an
/// address, so it counts towards the shared mail limits (per address, per network and both).
async fn contact_allowed(state: &AppState, ctx: &PageContext, address: &str) -> Result<bool, WebError> {
    match ctx.account_id() {
        Some(id) => {
            let since = state.clock.now_ms() - 3_600_000;
            Ok(state.store.tickets_of(id).await?.iter().filter(|t| t.source == "form" && t.created_at >= since).count() < CASES_PER_HOUR)
        }
        None => Ok(state.identity.mail_allowed(address, ctx.client_ip).await?),
    }
}

fn refused(state: &AppState, ctx: &PageContext, input: &ContactInput, error: WebError) -> Response {
    let body = contact_page(state, ctx, input.email.clone(), Some(input), Some(error.message(ctx.t)));
    let mut response = page(ctx, state, true, &body);
    *response.status_mut() = error.status;
    error.add_headers(&mut response);
    response
}

#[derive(Template)]
#[template(path = "support_cases.html")]
struct CasesPage {
    chrome: Chrome,
    csrf: String,
    cases: Vec<CaseLine>,
    case: Option<(CaseLine, Vec<MessageView>)>,
}

pub async fn my_cases(State(state): State<AppState>, ctx: PageContext, SignedIn(session): SignedIn) -> Result<Response, WebError> {
    let now = state.clock.now_ms();
    let cases = state.store.tickets_of(&session.account_id).await?.iter().map(|c| line(ctx.t, c, now)).collect();
    let body = CasesPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.support_cases_heading(), false),
        csrf: ctx.csrf_token(&state),
        cases,
        case: None,
    };
    Ok(page(&ctx, &state, true, &body))
}

pub async fn my_case(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let Some(ticket) = state.support.case_of(&id, &session.account_id).await? else { return Err(WebError::not_found()) };
    let now = state.clock.now_ms();
    let thread = messages(ctx.t, state.store.ticket_messages(&ticket.id).await?, false);
    let body = CasesPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.support_cases_heading(), false),
        csrf: ctx.csrf_token(&state),
        cases: Vec::new(),
        case: Some((line(ctx.t, &ticket, now), thread)),
    };
    Ok(page(&ctx, &state, true, &body))
}

#[derive(Debug, Deserialize)]
pub struct ReplyInput {
    csrf: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    canned: String,
}

crate::csrf_protected!(ReplyInput);

pub async fn my_reply(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    CsrfForm(input): CsrfForm<ReplyInput>,
) -> Result<Response, WebError> {
    let Some(ticket) = state.support.case_of(&id, &session.account_id).await? else { return Err(WebError::not_found()) };
    state.support.reply(&ticket, Author::Person, &input.message).await?;
    Ok(Redirect::to(&format!("/account/support/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "staff_support.html")]
struct StaffPage {
    chrome: Chrome,
    csrf: String,
    cases: Vec<CaseLine>,
    case: Option<StaffCase>,
    error: Option<String>,
}

struct StaffCase {
    line: CaseLine,
    email: String,
    lang: &'static str,
    mine: bool,
    has_account: bool,
    closed: bool,
    thread: Vec<MessageView>,
    canned: Vec<(String, String)>,
}

pub async fn queue(State(state): State<AppState>, ctx: PageContext, _staff: Staff<Agents>) -> Result<Response, WebError> {
    let now = state.clock.now_ms();
    let cases = state.store.open_tickets(200).await?.iter().map(|c| line(ctx.t, c, now)).collect();
    let body = StaffPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.support_queue_heading(), false),
        csrf: ctx.csrf_token(&state),
        cases,
        case: None,
        error: None,
    };
    Ok(page(&ctx, &state, true, &body))
}

fn canned_in(lang: Lang, canned: &CannedRow) -> (String, String) {
    match lang {
        Lang::Da => (canned.title_da.clone(), canned.body_da.clone()),
        Lang::En => (canned.title_en.clone(), canned.body_en.clone()),
    }
}

async fn staff_case(
    state: &AppState,
    ctx: &PageContext,
    staff: &Staff<Agents>,
    id: &str,
    error: Option<WebError>,
) -> Result<Response, WebError> {
    let Some(ticket) = state.store.ticket(id).await? else { return Err(WebError::not_found()) };
    let subject = ticket.account_id.as_ref().map_or_else(|| format!("ticket:{}", ticket.id), |a| format!("account:{a}"));
    let roles: Vec<&str> = staff.roles.iter().map(|r| r.id()).collect();
    state
        .audit
        .record(AuditEvent {
            actor: &format!("account:{}", staff.session.account_id),
            action: crate::routes::people::PERSON_READ,
            subject: &subject,
            details: json!({ "reason": format!("Case {}", ticket.id), "roles": roles, "parts": ["support_case"] }),
        })
        .await?;
    let lang = Lang::parse(&ticket.lang).unwrap_or(Lang::Da);
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let case = StaffCase {
        line: line(ctx.t, &ticket, state.clock.now_ms()),
        email: ticket.email.clone(),
        lang: if lang == Lang::Da { "Dansk" } else { "English" },
        mine: ticket.assignee.as_deref() == Some(staff.session.account_id.as_str()),
        has_account: ticket.account_id.is_some(),
        closed: ticket.state == "closed",
        thread: messages(ctx.t, state.store.ticket_messages(&ticket.id).await?, true),
        canned: state.store.canned_replies().await?.iter().map(|c| (c.id.clone(), canned_in(lang, c).0)).collect(),
    };
    let body = StaffPage {
        chrome: Chrome::new(state, ctx, ctx.t.support_queue_heading(), false),
        csrf: ctx.csrf_token(state),
        cases: Vec::new(),
        case: Some(case),
        error: error.map(|e| e.message(ctx.t)),
    };
    let mut response = page(ctx, state, true, &body);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn staff_view(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Agents>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    staff_case(&state, &ctx, &staff, &id, None).await
}

/// An agent's answer: their own words, or a canned reply in the case's language.
pub async fn staff_reply(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Agents>,
    Path(id): Path<String>,
    CsrfForm(input): CsrfForm<ReplyInput>,
) -> Result<Response, WebError> {
    let Some(ticket) = state.store.ticket(&id).await? else { return Err(WebError::not_found()) };
    let text = if input.message.trim().is_empty() && !input.canned.is_empty() {
        let lang = Lang::parse(&ticket.lang).unwrap_or(Lang::Da);
        match state.store.canned_replies().await?.iter().find(|c| c.id == input.canned) {
            Some(canned) => canned_in(lang, canned).1,
            None => return staff_case(&state, &ctx, &staff, &id, Some(WebError::bad_request("canned_unknown"))).await,
        }
    } else {
        input.message
    };
    if let Err(e) = state.support.reply(&ticket, Author::Staff(staff.session.account_id.clone()), &text).await {
        return staff_case(&state, &ctx, &staff, &id, Some(e.into())).await;
    }
    if ticket.assignee.is_none() {
        state.support.assign(&id, &staff.session.account_id).await?;
    }
    Ok(Redirect::to(&format!("/staff/support/{id}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CaseAction {
    csrf: String,
}

crate::csrf_protected!(CaseAction);

pub async fn assign(
    State(state): State<AppState>,
    staff: Staff<Agents>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<CaseAction>,
) -> Result<Response, WebError> {
    if !state.support.assign(&id, &staff.session.account_id).await? {
        return Err(WebError::new(StatusCode::CONFLICT, "case_closed"));
    }
    Ok(Redirect::to(&format!("/staff/support/{id}")).into_response())
}

pub async fn close(
    State(state): State<AppState>,
    _staff: Staff<Agents>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<CaseAction>,
) -> Result<Response, WebError> {
    if !state.support.close(&id).await? {
        return Err(WebError::new(StatusCode::CONFLICT, "case_closed"));
    }
    Ok(Redirect::to("/staff/support").into_response())
}

/// A case as the API shows it to its owner.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CaseBody {
    pub id: String,
    pub subject: String,
    /// `new`, `open`, `pending` (waiting for you) or `closed`.
    pub state: String,
    /// Milliseconds since 1970.
    pub created_at: i64,
    /// When the first answer is due (until it comes), then when the case is to be settled.
    pub due_at: i64,
    pub messages: Vec<CaseMessageBody>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CaseMessageBody {
    /// `person` or `staff`.
    pub from: String,
    pub at: i64,
    pub text: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCaseBody {
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseReplyBody {
    pub message: String,
}

async fn case_body(state: &AppState, ticket: &TicketRow) -> Result<CaseBody, WebError> {
    let messages = state.store.ticket_messages(&ticket.id).await?;
    Ok(CaseBody {
        id: ticket.id.clone(),
        subject: ticket.signal.clone().unwrap_or_else(|| ticket.subject.clone()),
        state: ticket.state.clone(),
        created_at: ticket.created_at,
        due_at: if ticket.first_response_at.is_none() { ticket.first_response_due } else { ticket.resolution_due },
        messages: messages
            .into_iter()
            .filter(|m| m.author != "system")
            .map(|m| CaseMessageBody { from: m.author, at: m.at, text: m.body })
            .collect(),
    })
}

/// The signed-in person's support cases, newest first.
#[utoipa::path(get, path = "/api/v1/support/cases", tag = "support", security(("session" = [])), responses(
    (status = 200, description = "Your cases, newest first, with their messages", body = [CaseBody]),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
))]
pub async fn api_cases(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<axum::Json<Vec<CaseBody>>, WebError> {
    let mut cases = Vec::new();
    for ticket in state.store.tickets_of(&session.account_id).await? {
        cases.push(case_body(&state, &ticket).await?);
    }
    Ok(axum::Json(cases))
}

/// Opens a case for the signed-in person (their account's address gets the answers).
#[utoipa::path(post, path = "/api/v1/support/cases", tag = "support", security(("session" = [])), request_body = NewCaseBody, responses(
    (status = 201, description = "The case", body = CaseBody),
    (status = 400, description = "Subject of 3–200 characters (`support_subject_length`), message of 10–5000 (`support_message_too_short`, `support_message_too_long`), or malformed JSON", body = crate::error::ErrorBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 429, description = "More than 10 cases in the last hour (`contact_too_many`)", body = crate::error::ErrorBody),
))]
pub async fn api_open(
    State(state): State<AppState>,
    _: crate::extract::SameOrigin,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    crate::middleware::JsonBody(body): crate::middleware::JsonBody<NewCaseBody>,
) -> Result<Response, WebError> {
    let Some(account) = state.store.account(&session.account_id).await? else { return Err(WebError::forbidden()) };
    if !contact_allowed(&state, &ctx, &account.email).await? {
        return Err(WebError::new(StatusCode::TOO_MANY_REQUESTS, "contact_too_many").retry_after(3600));
    }
    let case =
        NewCase { account_id: Some(&account.id), email: &account.email, lang: ctx.lang, subject: &body.subject, body: &body.message };
    let ticket = state.support.open(case).await?;
    Ok((StatusCode::CREATED, axum::Json(case_body(&state, &ticket).await?)).into_response())
}

/// Adds the person's message to their case (which opens it again).
#[utoipa::path(post, path = "/api/v1/support/cases/{id}/messages", tag = "support", security(("session" = [])), request_body = CaseReplyBody,
    params(("id" = String, Path, description = "The case")), responses(
    (status = 200, description = "The case as it is now", body = CaseBody),
    (status = 400, description = "Message of 10–5000 characters, or malformed JSON", body = crate::error::ErrorBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 403, description = "Cross-origin request", body = crate::error::ErrorBody),
    (status = 404, description = "No such case of yours", body = crate::error::ErrorBody),
))]
pub async fn api_reply(
    State(state): State<AppState>,
    _: crate::extract::SameOrigin,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    crate::middleware::JsonBody(body): crate::middleware::JsonBody<CaseReplyBody>,
) -> Result<axum::Json<CaseBody>, WebError> {
    let Some(ticket) = state.support.case_of(&id, &session.account_id).await? else { return Err(WebError::not_found()) };
    state.support.reply(&ticket, Author::Person, &body.message).await?;
    let ticket = state.store.ticket(&id).await?.ok_or_else(WebError::not_found)?;
    Ok(axum::Json(case_body(&state, &ticket).await?))
}
