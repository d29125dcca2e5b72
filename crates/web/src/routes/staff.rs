//! Staff pages. Each states the roles that may use it; everyone else is refused (least privilege).
//! Reading the audit log is itself written to it.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use passme_analytics::report::day_of_date;
use passme_analytics::visits::DAY_MS;
use passme_core::audit::AuditEvent;
use passme_core::housekeeping::RunReport;
use passme_core::rights::holds::HoldScope;
use passme_store::AuditFilter;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Auditors, CsrfForm, PrivacyOfficers, Staff};
use crate::routes::pages::{Chrome, page, when};

/// Entries per page of the audit log.
const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Older than this sequence number (the next page).
    before: Option<i64>,
}

struct Entry {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    subject: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    intact: bool,
    query: AuditQuery,
    entries: Vec<Entry>,
    /// The link to the next (older) page, when there is one.
    older: Option<String>,
}

/// The audit log for admins and the privacy officer: the chain's integrity, then the entries,
/// newest first, filtered by actor, action (prefix) and dates, a page at a time.
pub async fn audit(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Auditors>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let day = |text: &str| {
        if text.is_empty() { Ok(None) } else { day_of_date(text).map(Some).ok_or_else(|| WebError::bad_request("date_invalid")) }
    };
    let filter = AuditFilter {
        actor: query.actor.trim().to_string(),
        action_prefix: query.action.trim().to_string(),
        from_ms: day(&query.from)?.map_or(0, |d| d * DAY_MS),
        to_ms: day(&query.to)?.map_or(i64::MAX, |d| (d + 1) * DAY_MS),
    };
    let intact = state.audit.verify(None).await?.is_intact();
    let reader = format!("account:{}", staff.session.account_id);
    let rows = state.audit.search_as(&reader, &filter, query.before.unwrap_or(i64::MAX), PAGE + 1).await?;
    let older = (rows.len() as i64 > PAGE).then(|| {
        let last = rows[PAGE as usize - 1].seq;
        let params = [
            ("actor", query.actor.as_str()),
            ("action", &query.action),
            ("from", &query.from),
            ("to", &query.to),
            ("lang", ctx.lang.code()),
        ];
        let mut url = url::form_urlencoded::Serializer::new(String::from("/staff/audit?"));
        url.extend_pairs(params.iter().filter(|(_, v)| !v.is_empty())).append_pair("before", &last.to_string());
        url.finish()
    });
    let entries = rows
        .into_iter()
        .take(PAGE as usize)
        .map(|r| Entry { seq: r.seq, at: when(r.at), actor: r.actor, action: r.action, subject: r.subject })
        .collect();
    let body = AuditPage { chrome: Chrome::new(&state, &ctx, ctx.t.audit_heading(), false), intact, query, entries, older };
    Ok(page(&ctx, &state, false, &body))
}

/// A legal hold as the privacy officer's page lists it.
struct HoldLine {
    id: String,
    scope: String,
    reason: String,
    until: String,
    placed: String,
}

/// One rule of a retention run.
struct RuleLine {
    rule: String,
    cutoff: String,
    examined: i64,
    changed: u64,
    skipped: String,
}

struct RunLine {
    id: String,
    started: String,
    source: String,
    state: String,
    /// The rules that found something, or were skipped.
    rules: Vec<RuleLine>,
    /// How many found nothing due.
    quiet: usize,
}

/// An open privacy request in the officer's queue.
struct QueueLine {
    id: String,
    account: String,
    kind: &'static str,
    message: String,
    received: String,
    due: String,
    overdue: bool,
    extended: Option<String>,
}

#[derive(Template)]
#[template(path = "staff_privacy.html")]
struct PrivacyOfficerPage {
    chrome: Chrome,
    csrf: String,
    requests: Vec<QueueLine>,
    holds: Vec<HoldLine>,
    categories: Vec<(String, String)>,
    runs: Vec<RunLine>,
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// Retention runs shown on the page.
const RUNS: i64 = 3;

/// The privacy officer's page: the legal holds in force, a form to place one, and the reports
/// of the latest retention runs. Listing the holds names people, so the reading is audited.
pub async fn privacy_officer(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<PrivacyOfficers>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let in_force = state.holds.in_force().await?;
    let queue = state.requests.queue().await?;
    let reader = format!("account:{}", staff.session.account_id);
    state
        .audit
        .record(AuditEvent {
            actor: &reader,
            action: "hold.listed",
            subject: "legal_holds",
            details: json!({ "holds": in_force.len(), "requests": queue.len() }),
        })
        .await?;
    let now = state.clock.now_ms();
    let requests = queue
        .into_iter()
        .map(|r| QueueLine {
            kind: crate::routes::requests::kind_label(ctx.t, &r.kind),
            account: r.account_id.to_string(),
            message: r.message,
            received: when(r.received_at),
            due: when(r.due_at),
            overdue: r.due_at < now,
            extended: r.extended_reason.map(|reason| ctx.t.request_extended(reason)),
            id: r.id,
        })
        .collect();
    let holds = in_force
        .into_iter()
        .map(|h| HoldLine {
            scope: match (&h.account_id, &h.category) {
                (Some(account), _) => ctx.t.officer_scope_person(account.as_str()),
                (None, Some(category)) => ctx.t.officer_scope_category(category),
                (None, None) => String::new(),
            },
            id: h.id,
            reason: h.reason,
            until: when(h.until_at),
            placed: format!("{} · {}", when(h.placed_at), h.placed_by),
        })
        .collect();
    let categories = state.policy.categories.iter().map(|c| (c.id.get_ref().clone(), c.name.get(ctx.lang).to_string())).collect();
    let runs = state
        .store
        .retention_runs(RUNS)
        .await?
        .iter()
        .map(RunReport::of)
        .map(|run| {
            let quiet = run.rules.iter().filter(|r| r.examined == 0 && r.skipped.is_none()).count();
            RunLine {
                quiet,
                state: match run.finished_at {
                    Some(_) if run.dry_run => ctx.t.officer_run_dry().to_string(),
                    Some(at) => ctx.t.officer_run_finished(when(at)),
                    None => ctx.t.officer_run_unfinished().to_string(),
                },
                id: run.id,
                started: when(run.started_at),
                source: run.source,
                rules: run
                    .rules
                    .into_iter()
                    .filter(|r| r.examined > 0 || r.skipped.is_some())
                    .map(|r| RuleLine {
                        rule: r.rule,
                        cutoff: when(r.cutoff),
                        examined: r.examined,
                        changed: r.changed,
                        skipped: r.skipped.unwrap_or_default(),
                    })
                    .collect(),
            }
        })
        .collect();
    let done = query.done.as_deref().and_then(|code| match code {
        "hold_placed" => Some(ctx.t.officer_hold_placed().to_string()),
        "hold_lifted" => Some(ctx.t.officer_hold_lifted().to_string()),
        "request_extended" => Some(ctx.t.request_extended_done().to_string()),
        "request_closed" => Some(ctx.t.request_closed_done().to_string()),
        _ => None,
    });
    let body = PrivacyOfficerPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.officer_heading(), false),
        csrf: ctx.csrf_token(&state),
        requests,
        holds,
        categories,
        runs,
        done,
    };
    Ok(page(&ctx, &state, true, &body))
}

#[derive(Debug, Deserialize)]
pub struct HoldInput {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    id: String,
}

crate::csrf_protected!(HoldInput);

/// Places a hold on the person with an address, or on a data category, until the end of a day.
pub async fn place_hold(
    State(state): State<AppState>,
    staff: Staff<PrivacyOfficers>,
    CsrfForm(input): CsrfForm<HoldInput>,
) -> Result<Response, WebError> {
    let day = day_of_date(input.until.trim()).ok_or_else(|| WebError::bad_request("date_invalid"))?;
    let scope = match (input.email.trim(), input.category.trim()) {
        ("", "") => return Err(WebError::bad_request("hold_scope_missing")),
        ("", category) => HoldScope::Category(category.to_string()),
        (email, _) => {
            let key = passme_core::identity::email::key(email);
            let account = state.store.account_by_email_key(&key).await?.ok_or_else(|| WebError::bad_request("hold_person_unknown"))?;
            HoldScope::Person(account.id)
        }
    };
    let officer = format!("account:{}", staff.session.account_id);
    state.holds.place(&state.policy, scope, &input.reason, (day + 1) * DAY_MS - 1, &officer).await?;
    Ok(Redirect::to("/staff/privacy?done=hold_placed").into_response())
}

pub async fn lift_hold(
    State(state): State<AppState>,
    staff: Staff<PrivacyOfficers>,
    CsrfForm(input): CsrfForm<HoldInput>,
) -> Result<Response, WebError> {
    state.holds.lift(&input.id, &format!("account:{}", staff.session.account_id)).await?;
    Ok(Redirect::to("/staff/privacy?done=hold_lifted").into_response())
}

/// One part of the staff console: its page, and the roles that open it.
pub struct Section {
    pub path: &'static str,
    pub id: &'static str,
    roles: &'static [passme_core::identity::staff::Role],
}

/// Every part of the console, each with the roles its page lets in (the pages check again).
pub fn console_sections(roles: &[passme_core::identity::staff::Role]) -> Vec<&'static Section> {
    use crate::extract::{Analysts, Auditors, PrivacyOfficers, Roles};
    const SECTIONS: &[Section] = &[
        Section { path: "/staff/support", id: "support", roles: crate::routes::support::Agents::ALLOWED },
        Section { path: "/staff/people", id: "people", roles: crate::routes::people::PersonReaders::ALLOWED },
        Section { path: "/staff/analytics", id: "analytics", roles: Analysts::ALLOWED },
        Section { path: "/staff/fraud", id: "fraud", roles: Analysts::ALLOWED },
        Section { path: "/staff/privacy", id: "privacy", roles: PrivacyOfficers::ALLOWED },
        Section { path: "/staff/compliance", id: "compliance", roles: crate::routes::compliance::ComplianceStaff::ALLOWED },
        Section { path: "/staff/messages", id: "messages", roles: crate::routes::messages::Communicators::ALLOWED },
        Section { path: "/staff/audit", id: "audit", roles: Auditors::ALLOWED },
    ];
    SECTIONS.iter().filter(|s| s.roles.iter().any(|r| roles.contains(r))).collect()
}

/// Whoever holds any staff role: the console itself lets them in, and lists only their parts.
pub struct AnyStaff;

impl crate::extract::Roles for AnyStaff {
    const ALLOWED: &'static [passme_core::identity::staff::Role] = &passme_core::identity::staff::Role::ALL;
}

#[derive(Template)]
#[template(path = "staff_console.html")]
struct ConsolePage {
    chrome: Chrome,
    sections: Vec<(&'static str, &'static str, &'static str)>,
}

/// The staff console: one page for all four roles, each seeing only its parts.
pub async fn console(State(state): State<AppState>, ctx: PageContext, staff: Staff<AnyStaff>) -> Response {
    let t = ctx.t;
    let sections = console_sections(&staff.roles)
        .into_iter()
        .map(|s| (s.path, t.console_name(s.id).unwrap_or(s.id), t.console_about(s.id).unwrap_or("")))
        .collect();
    let body = ConsolePage { chrome: Chrome::new(&state, &ctx, t.site_staff(), false), sections };
    page(&ctx, &state, false, &body)
}
