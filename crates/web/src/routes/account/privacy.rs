//! The privacy centre: what we hold about the signed-in person and why (article 15), their data
//! as a downloadable archive (article 20), where to correct it, and erasure (article 17) with a
//! receipt that says what was removed, what a legal duty keeps and until when.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::identity::remember;
use passme_core::rights::access::Export;
use passme_core::rights::erasure::Receipt;
use passme_policy::{Erasure, Lang, Policy};
use secrecy::SecretString;
use serde::Deserialize;

use super::SESSION_COOKIE;
use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::error::WebError;
use crate::extract::{CsrfForm, SignedIn};
use crate::routes::pages::{Chrome, page, when};

pub struct FieldView {
    name: String,
    purposes: String,
    basis: String,
    kept: String,
    /// How many of the person's records hold this field.
    records: usize,
}

pub struct CategoryView {
    name: String,
    source: String,
    fields: Vec<FieldView>,
}

pub struct RecipientView {
    name: String,
    service: String,
    location: String,
    url: String,
}

#[derive(Template)]
#[template(path = "privacy_centre.html")]
struct PrivacyCentre {
    chrome: Chrome,
    csrf: String,
    categories: Vec<CategoryView>,
    recipients: Vec<RecipientView>,
    /// What an erasure keeps, and why: one line per legal-duty field.
    kept_on_erasure: Vec<String>,
    problem: Option<String>,
    kinds: Vec<(&'static str, &'static str)>,
    requests: Vec<RequestView>,
    done: Option<&'static str>,
    /// The purposes the person may object to: (id, text, objected).
    objectable: Vec<(String, String, bool)>,
    /// Every time staff opened the person's data: when, which role, why.
    staff_reads: Vec<crate::routes::people::StaffRead>,
    decisions: Vec<crate::routes::fraud::DecisionView>,
}

/// One of the person's own requests.
pub struct RequestView {
    id: String,
    kind: &'static str,
    received: String,
    status: String,
}

impl RequestView {
    fn of(r: &passme_store::PrivacyRequestRow, t: passme_messages::Texts) -> RequestView {
        let kind = crate::routes::requests::kind_label(t, &r.kind);
        let outcome = r.outcome.clone().unwrap_or_default();
        let at = r.completed_at.map(when).unwrap_or_default();
        let status = match r.status.as_str() {
            "done" => t.request_status_done(at, outcome),
            "refused" => t.request_status_refused(at, outcome),
            _ => t.request_status_open(when(r.due_at)),
        };
        RequestView { id: r.id.clone(), kind, received: when(r.received_at), status }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CentreQuery {
    done: Option<String>,
}

/// The centre with the person's requests.
async fn centre_of(
    state: &AppState,
    ctx: &PageContext,
    account_id: &passme_store::AccountId,
    problem: Option<String>,
    done: Option<&str>,
) -> Result<PrivacyCentre, WebError> {
    let export = Export::of(&state.store, account_id, state.clock.now_ms()).await?;
    let mut body = centre(state, ctx, &export, problem);
    body.requests = state.requests.of(account_id).await?.iter().map(|r| RequestView::of(r, ctx.t)).collect();
    body.done = match done {
        Some("request_sent") => Some(ctx.t.request_sent_signed_in()),
        Some("objection_stopped") => Some(ctx.t.rights_objection_stopped()),
        Some("objection_review") => Some(ctx.t.rights_objection_review()),
        Some("objection_withdrawn") => Some(ctx.t.rights_objection_withdrawn()),
        _ => None,
    };
    body.staff_reads = crate::routes::people::reads_of(state, ctx.t, account_id).await?;
    body.decisions = crate::routes::fraud::decisions_of(state, ctx.t, account_id).await?;
    let objected = state.objections.of(account_id).await?;
    body.objectable = passme_core::rights::objections::objectable(&state.policy)
        .into_iter()
        .map(|id| {
            let text =
                state.policy.purposes.iter().find(|p| p.id.get_ref() == &id).map_or(id.clone(), |p| p.text.get(ctx.lang).to_string());
            let on = objected.contains(&id);
            (id, text, on)
        })
        .collect();
    Ok(body)
}

/// The field names stored in `table`, in the person's language.
fn fields_in<'p>(policy: &'p Policy, table: &str) -> impl Iterator<Item = &'p passme_policy::Field> {
    let prefix = format!("{table}.");
    policy.fields().map(|(_, f)| f).filter(move |f| f.columns.iter().any(|c| c.get_ref().starts_with(&prefix)))
}

fn centre(state: &AppState, ctx: &PageContext, export: &Export, problem: Option<String>) -> PrivacyCentre {
    let (policy, lang, t) = (&state.policy, ctx.lang, ctx.t);
    let purpose = |id: &str| policy.purposes.iter().find(|p| p.id.get_ref() == id).map_or(id.to_string(), |p| p.text.get(lang).to_string());
    let records = |field: &passme_policy::Field| {
        let tables: Vec<&str> = field.columns.iter().filter_map(|c| c.get_ref().split('.').next()).collect();
        tables.iter().map(|table| export.tables.get(*table).map_or(0, Vec::len)).max().unwrap_or(0)
    };
    let categories = policy
        .categories
        .iter()
        .filter(|c| passme_core::is_implemented(c.capability))
        .map(|c| CategoryView {
            name: c.name.get(lang).to_string(),
            source: c.source.get(lang).to_string(),
            fields: c
                .fields
                .iter()
                .map(|f| FieldView {
                    name: f.name.get(lang).to_string(),
                    purposes: f.purposes.iter().map(|p| purpose(p.get_ref())).collect::<Vec<_>>().join("; "),
                    basis: f.legal_basis.iter().map(|b| b.label(lang)).collect::<Vec<_>>().join(", "),
                    kept: policy
                        .retention
                        .iter()
                        .find(|r| &r.field == f.id.get_ref())
                        .map_or_else(String::new, |r| format!("{} {}", r.period.describe(lang), r.trigger.label(lang))),
                    records: records(f),
                })
                .collect(),
        })
        .collect();
    let recipients = policy
        .processors
        .iter()
        .filter(|p| passme_core::is_implemented(p.capability))
        .map(|p| RecipientView {
            name: p.name.get(lang).to_string(),
            service: p.service.get(lang).to_string(),
            location: p.location.get(lang).to_string(),
            url: p.privacy_url.clone(),
        })
        .collect();
    PrivacyCentre {
        chrome: Chrome::new(state, ctx, t.rights_heading(), true),
        csrf: ctx.csrf_token(state),
        categories,
        recipients,
        kept_on_erasure: kept_on_erasure(policy, lang),
        problem,
        kinds: crate::routes::requests::kinds(t),
        requests: Vec::new(),
        done: None,
        objectable: Vec::new(),
        staff_reads: Vec::new(),
        decisions: Vec::new(),
    }
}

/// What a legal duty keeps after an erasure, from the deletion manifest.
fn kept_on_erasure(policy: &Policy, lang: Lang) -> Vec<String> {
    let mut lines = Vec::new();
    for table in policy.tables.iter().filter(|t| t.erasure == Some(Erasure::LegalDuty)) {
        for field in fields_in(policy, table.name.get_ref()) {
            if let Some(rule) = policy.retention.iter().find(|r| &r.field == field.id.get_ref()) {
                let line = format!(
                    "{}: {} {} – {}",
                    field.name.get(lang),
                    rule.period.describe(lang),
                    rule.trigger.label(lang),
                    rule.reason.get(lang)
                );
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

pub async fn privacy_centre(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    Query(query): Query<CentreQuery>,
) -> Result<Response, WebError> {
    let body = centre_of(&state, &ctx, &session.account_id, None, query.done.as_deref()).await?;
    Ok(page(&ctx, &state, true, &body))
}

/// The person's data as a tar archive: `data.json` and a CSV per table.
pub async fn export(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Response, WebError> {
    let now = state.clock.now_ms();
    let export = Export::of(&state.store, &session.account_id, now).await?;
    let subject = format!("account:{}", session.account_id);
    state
        .audit
        .record(passme_core::audit::AuditEvent {
            actor: &subject,
            action: "rights.exported",
            subject: &subject,
            details: serde_json::json!({}),
        })
        .await?;
    let day = passme_analytics::report::date_of_day(now.div_euclid(86_400_000));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"passme-export-{day}.tar\"")),
        ],
        export.archive(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct EraseInput {
    csrf: String,
    current: String,
}

crate::csrf_protected!(EraseInput);

/// Erases the account: the password again; subscriptions end at the provider first (a provider
/// that does not answer postpones the erasure, so nobody keeps paying for an erased account).
pub async fn erase(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<EraseInput>,
) -> Result<Response, WebError> {
    if let Err(e) = state.identity.accounts.reauthenticate(&session.account_id, SecretString::from(input.current)).await {
        let passme_core::CoreError::Input { code, hint } = e else { return Err(e.into()) };
        let message = WebError::bad_request(code).with_hint(hint).message(ctx.t);
        let body = centre_of(&state, &ctx, &session.account_id, Some(message), None).await?;
        let mut response = page(&ctx, &state, true, &body);
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    if let Some(billing) = &state.billing {
        billing.end_subscriptions_of(&session.account_id).await.map_err(super::super::billing::billing_error)?;
    }
    // Tokens at identity providers are revoked there before the erasure deletes them here.
    state.linking.unlink_all(&session.account_id).await.map_err(crate::routes::links::link_error)?;
    let receipt = state.erasures.request(&session.account_id, &state.jobs).await?;
    // Accepted (no legal hold): partners that received the person's hashed address are asked to
    // delete it, before the erasure job removes the record of who received what.
    state.messaging.forget_account(&session.account_id).await?;
    let mut response = Redirect::to(&format!("/erasure/{receipt}?lang={}", ctx.lang.code())).into_response();
    for value in [cookies::delete(SESSION_COOKIE), cookies::delete(remember::COOKIE)].into_iter().flatten() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

pub struct RemovedLine {
    what: String,
    rows: u64,
}

pub struct KeptLine {
    what: String,
    rows: i64,
    why: Vec<String>,
    held_until: Option<String>,
}

#[derive(Template)]
#[template(path = "erasure_receipt.html")]
struct ReceiptPage {
    chrome: Chrome,
    id: String,
    requested: String,
    completed: Option<String>,
    verified: Option<String>,
    removed: Vec<RemovedLine>,
    kept: Vec<KeptLine>,
    leftovers: bool,
}

/// A table's rows as people know them: the names of the fields stored there.
fn what(policy: &Policy, table: &str, lang: Lang) -> String {
    let names: Vec<&str> = fields_in(policy, table).map(|f| f.name.get(lang)).collect();
    if names.is_empty() { table.to_string() } else { names.join("; ") }
}

/// The receipt of an erasure, by its unguessable id: readable without an account (there is none
/// any more), and naming no one.
pub async fn receipt(State(state): State<AppState>, ctx: PageContext, Path(id): Path<String>) -> Result<Response, WebError> {
    let (policy, lang, t) = (&state.policy, ctx.lang, ctx.t);
    let Receipt { id, requested_at, completed_at, verified_at, removed, kept, leftovers } =
        state.erasures.receipt(&id).await?.ok_or_else(WebError::not_found)?;
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for (table, rows) in removed.into_iter().filter(|(_, n)| *n > 0) {
        *merged.entry(what(policy, &table, lang)).or_default() += rows;
    }
    let body = ReceiptPage {
        chrome: Chrome::new(&state, &ctx, t.rights_receipt_heading(), true),
        requested: when(requested_at),
        completed: completed_at.map(when),
        verified: verified_at.map(when),
        removed: merged.into_iter().map(|(what, rows)| RemovedLine { what, rows }).collect(),
        kept: kept
            .iter()
            .map(|k| KeptLine {
                what: what(policy, &k.table, lang),
                rows: k.rows,
                why: Receipt::describe_kept(policy, k, lang),
                held_until: k.held_until.map(when),
            })
            .collect(),
        leftovers: !leftovers.is_empty(),
        id,
    };
    Ok(page(&ctx, &state, false, &body))
}
