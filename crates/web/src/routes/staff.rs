//! Staff pages. Each states the roles that may use it; everyone else is refused (least privilege).
//! Reading the audit log is itself written to it.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use passme_analytics::report::day_of_date;
use passme_analytics::visits::DAY_MS;
use passme_store::AuditFilter;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Auditors, Staff};
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
