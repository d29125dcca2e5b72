//! Opening a person's data as staff. It takes a reason, every opening is written to the audit log
//! with it, and each role sees only its part: support the account and its messages, the privacy
//! officer also the privacy requests, admins also billing and linked accounts. The person sees
//! each opening (when, which role, why) on their privacy page.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use passme_core::audit::AuditEvent;
use passme_core::identity::staff::Role;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, Roles, Staff};
use crate::routes::messages::{channel_name, log_line, state_name, topic_name};
use crate::routes::pages::{Chrome, page, when};
use crate::routes::requests::kind_label;

fn account_status(t: passme_messages::Texts, status: passme_store::AccountStatus) -> &'static str {
    match status {
        passme_store::AccountStatus::Active => t.people_status_active(),
        passme_store::AccountStatus::Disabled => t.people_status_disabled(),
        passme_store::AccountStatus::Closed => t.people_status_closed(),
    }
}

fn request_status(t: passme_messages::Texts, status: &str) -> &'static str {
    match status {
        "done" => t.people_request_done(),
        "refused" => t.people_request_refused(),
        _ => t.people_request_open(),
    }
}

/// The audit action of a staff member opening a person's data.
pub const PERSON_READ: &str = "staff.person_read";
const REASON_MIN: usize = 10;
const REASON_MAX: usize = 500;

/// Who may open a person's data at all (analysts see aggregates only).
pub struct PersonReaders;

impl Roles for PersonReaders {
    const ALLOWED: &'static [Role] = &[Role::Support, Role::PrivacyOfficer, Role::Admin];
}

/// The parts of a person's data, and who may see each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Account,
    Messages,
    Requests,
    Billing,
    Links,
}

impl Part {
    fn id(self) -> &'static str {
        match self {
            Part::Account => "account",
            Part::Messages => "messages",
            Part::Requests => "privacy_requests",
            Part::Billing => "billing",
            Part::Links => "linked_accounts",
        }
    }

    fn allowed(self, roles: &[Role]) -> bool {
        let any = |allowed: &[Role]| roles.iter().any(|r| allowed.contains(r));
        match self {
            Part::Account => any(&[Role::Support, Role::PrivacyOfficer, Role::Admin]),
            Part::Messages => any(&[Role::Support, Role::Admin]),
            Part::Requests => any(&[Role::PrivacyOfficer, Role::Admin]),
            Part::Billing | Part::Links => any(&[Role::Admin]),
        }
    }
}

const PARTS: [Part; 5] = [Part::Account, Part::Messages, Part::Requests, Part::Billing, Part::Links];

struct Section {
    id: &'static str,
    heading: &'static str,
    lines: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "staff_people.html")]
struct PeoplePage {
    chrome: Chrome,
    csrf: String,
    email: String,
    reason: String,
    problem: Option<String>,
    /// The person opened: their sections.
    sections: Vec<Section>,
}

fn form_page(
    state: &AppState,
    ctx: &PageContext,
    email: String,
    reason: String,
    problem: Option<String>,
    sections: Vec<Section>,
) -> Response {
    let body = PeoplePage {
        chrome: Chrome::new(state, ctx, ctx.t.people_heading(), false),
        csrf: ctx.csrf_token(state),
        email,
        reason,
        problem,
        sections,
    };
    page(ctx, state, true, &body)
}

pub async fn form(State(state): State<AppState>, ctx: PageContext, _staff: Staff<PersonReaders>) -> Response {
    form_page(&state, &ctx, String::new(), String::new(), None, Vec::new())
}

#[derive(Debug, Deserialize)]
pub struct OpenInput {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: String,
    /// A case assigned to the viewer about this person stands in for the reason.
    #[serde(default)]
    ticket: String,
}

crate::csrf_protected!(OpenInput);

fn refused(state: &AppState, ctx: &PageContext, input: OpenInput, status: StatusCode, code: &'static str) -> Response {
    let message = WebError::new(status, code).message(ctx.t);
    let mut response = form_page(state, ctx, input.email, input.reason, Some(message), Vec::new());
    *response.status_mut() = status;
    response
}

/// Opens a person's data: with a reason, audited, in the parts the viewer's roles allow.
pub async fn open(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<PersonReaders>,
    CsrfForm(input): CsrfForm<OpenInput>,
) -> Result<Response, WebError> {
    let mut reason: String = input.reason.trim().chars().filter(|c| !c.is_control()).collect();
    let key = passme_core::identity::email::key(&input.email);
    let account = state.store.account_by_email_key(&key).await?;
    if reason.is_empty() && !input.ticket.is_empty() {
        let case = state.store.ticket(&input.ticket).await?;
        let assigned = case.is_some_and(|c| {
            c.assignee.as_deref() == Some(staff.session.account_id.as_str())
                && c.account_id.is_some()
                && c.account_id == account.as_ref().map(|a| a.id.clone())
        });
        if assigned {
            reason = format!("Case {}", input.ticket);
        }
    }
    if reason.chars().count() < REASON_MIN || reason.chars().count() > REASON_MAX {
        return Ok(refused(&state, &ctx, input, StatusCode::BAD_REQUEST, "reason_required"));
    }
    let Some(account) = account else {
        return Ok(refused(&state, &ctx, input, StatusCode::NOT_FOUND, "person_unknown"));
    };
    let parts: Vec<Part> = PARTS.into_iter().filter(|p| p.allowed(&staff.roles)).collect();
    let roles: Vec<&str> = staff.roles.iter().map(|r| r.id()).collect();
    state
        .audit
        .record(AuditEvent {
            actor: &format!("account:{}", staff.session.account_id),
            action: PERSON_READ,
            subject: &format!("account:{}", account.id),
            details: json!({ "reason": reason, "roles": roles, "parts": parts.iter().map(|p| p.id()).collect::<Vec<_>>() }),
        })
        .await?;
    let t = ctx.t;
    let mut sections = Vec::new();
    for part in parts {
        let (heading, lines): (&'static str, Vec<(String, String)>) = match part {
            Part::Account => {
                let sessions = state.store.sessions_of(&account.id, state.clock.now_ms()).await?;
                let (_, lang, _) = state.store.account_prefs(&account.id).await?;
                (
                    t.people_part_account(),
                    vec![
                        (t.people_email().into(), account.email.clone()),
                        (t.people_status().into(), account_status(t, account.status).into()),
                        (t.people_created().into(), when(account.created_at)),
                        (t.people_verified().into(), account.email_verified_at.map_or_else(|| "–".into(), when)),
                        (
                            t.people_language().into(),
                            lang.as_deref()
                                .and_then(passme_messages::Lang::parse)
                                .map_or("–", |l| if l == passme_messages::Lang::Da { "Dansk" } else { "English" })
                                .into(),
                        ),
                        (t.people_sessions().into(), sessions.len().to_string()),
                    ],
                )
            }
            Part::Messages => {
                let choices = state.messaging.prefs.choices(&account.id).await?;
                let mut lines: Vec<(String, String)> = choices
                    .iter()
                    .map(|c| (format!("{} · {}", topic_name(t, c.topic), channel_name(t, c.channel)), state_name(t, c).to_string()))
                    .collect();
                lines.extend(state.store.messages_of(&account.id, 10).await?.iter().map(|m| log_line(t, m)));
                (t.people_part_messages(), lines)
            }
            Part::Requests => (
                t.people_part_requests(),
                state
                    .store
                    .privacy_requests_of(&account.id)
                    .await?
                    .into_iter()
                    .map(|r| (when(r.received_at), format!("{} · {}", kind_label(t, &r.kind), request_status(t, &r.status))))
                    .collect(),
            ),
            Part::Billing => (
                t.people_part_billing(),
                state
                    .store
                    .billing_subscriptions_of(&account.id)
                    .await?
                    .into_iter()
                    .map(|s| {
                        (s.price_id, format!("{} · {}", s.status, s.current_period_end.map_or_else(|| "–".into(), |e| when(e * 1000))))
                    })
                    .collect(),
            ),
            Part::Links => (
                t.people_part_links(),
                state.store.links_of(&account.id).await?.into_iter().map(|l| (l.provider, when(l.linked_at))).collect(),
            ),
        };
        sections.push(Section { id: part.id(), heading, lines });
    }
    Ok(form_page(&state, &ctx, input.email, String::new(), None, sections))
}

/// One opening of the person's data by staff, as the person sees it.
pub struct StaffRead {
    pub at: String,
    pub roles: String,
    pub reason: String,
}

/// Every opening of the person's data by staff, newest first.
pub async fn reads_of(
    state: &AppState,
    t: passme_messages::Texts,
    account_id: &passme_store::AccountId,
) -> Result<Vec<StaffRead>, WebError> {
    let entries = state.audit.entries_for(&format!("account:{account_id}")).await?;
    let mut reads: Vec<StaffRead> = entries
        .into_iter()
        .filter(|e| e.action == PERSON_READ)
        .map(|e| {
            let details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
            let roles = details["roles"]
                .as_array()
                .map(|r| r.iter().filter_map(|v| v.as_str()).map(|id| t.role(id).unwrap_or(id)).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            StaffRead { at: when(e.at), roles, reason: details["reason"].as_str().unwrap_or_default().to_string() }
        })
        .collect();
    reads.reverse();
    Ok(reads)
}
