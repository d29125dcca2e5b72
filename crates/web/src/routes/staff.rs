//! Staff pages. Each states the roles that may use it; everyone else is refused (least privilege).

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::audit::AuditLog;
use passme_core::identity::staff::{Role, Staff};

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::ApiError;
use crate::routes::account::current_session;
use crate::routes::pages::{Chrome, error_page, page};

#[derive(Template)]
#[template(path = "notice.html")]
struct AuditStatus {
    chrome: Chrome,
    heading: &'static str,
    message: &'static str,
    link: (String, &'static str),
}

/// The audit log's integrity, for admins and the privacy officer. Shows no personal data.
pub async fn audit(State(state): State<AppState>, ctx: PageContext, headers: HeaderMap) -> Response {
    let lang = ctx.lang;
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/staff/audit").into_response();
    };
    if let Err(e) =
        Staff::new(state.store.clone(), state.clock.clone()).require(&session.account_id, &[Role::Admin, Role::PrivacyOfficer]).await
    {
        return error_page(&state, lang, &ApiError::from(e));
    }
    let report = match AuditLog::new(state.store.clone(), state.clock.clone()).verify(None).await {
        Ok(report) => report,
        Err(e) => return error_page(&state, lang, &ApiError::from(e)),
    };
    let message = if report.is_intact() {
        lang.pick("Revisionsloggens kæde er intakt.", "The audit log's chain is intact.")
    } else {
        lang.pick(
            "Revisionsloggen er ændret! Kør `passme audit verify` for detaljer.",
            "The audit log has been tampered with! Run `passme audit verify` for details.",
        )
    };
    let body = AuditStatus {
        chrome: Chrome::new(&state, &ctx, lang.pick("Revisionslog", "Audit log"), "/staff/audit", true),
        heading: lang.pick("Revisionslog", "Audit log"),
        message,
        link: ("/account".into(), lang.pick("Til din konto", "To your account")),
    };
    page(&ctx, &state, false, &body)
}
