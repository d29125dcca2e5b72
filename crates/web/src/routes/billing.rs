//! Billing: the subscription page (plain forms, no JavaScript), checkout and portal redirects to
//! the provider's hosted pages, the provider's webhook, and the product's entitlements API.
//! Nothing here grants access: the checkout return URL only says "waiting for the provider".

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use passme_billing::{BillingError, ProviderError, Status, Summary, WebhookError};
use passme_messages::{Lang, Texts};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Caller, CsrfForm, MeRead, SignedIn};
use crate::routes::pages::{Chrome, page};

pub struct CurrentLine {
    plan: String,
    status: &'static str,
    ends: bool,
    renews: Option<String>,
    access: bool,
    cancelling: bool,
}

pub struct PlanLine {
    id: String,
    name: String,
    interval: &'static str,
}

pub struct InvoiceLine {
    number: String,
    date: String,
    amount: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    chrome: Chrome,
    notice: Option<&'static str>,
    payment_problem: bool,
    enabled: bool,
    current: Option<CurrentLine>,
    has_customer: bool,
    offer_plans: bool,
    plans: Vec<PlanLine>,
    invoices: Vec<InvoiceLine>,
    csrf: String,
}

fn day(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn interval_label(interval: &str, t: Texts) -> &'static str {
    match interval {
        "day" => t.billing_daily(),
        "week" => t.billing_weekly(),
        "year" => t.billing_yearly(),
        _ => t.billing_monthly(),
    }
}

/// An amount in minor units as `15.00 EUR` (`15,00 EUR` in Danish).
fn money(minor: i64, currency: &str, lang: Lang) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, cents) = (minor.unsigned_abs() / 100, minor.unsigned_abs() % 100);
    let separator = match lang {
        Lang::Da => ",",
        Lang::En => ".",
    };
    format!("{sign}{whole}{separator}{cents:02} {}", currency.to_ascii_uppercase())
}

fn invoice_status(status: &str, payment_failed: bool, t: Texts) -> &'static str {
    match status {
        _ if payment_failed => t.billing_invoice_failed(),
        "paid" => t.billing_invoice_paid(),
        "open" => t.billing_invoice_open(),
        "void" => t.billing_invoice_void(),
        "uncollectible" => t.billing_invoice_uncollectible(),
        _ => t.billing_invoice_draft(),
    }
}

/// A subscription status as people read it.
fn status_label(status: &Status, t: Texts) -> &'static str {
    match status {
        Status::Incomplete => t.billing_status_incomplete(),
        Status::IncompleteExpired => t.billing_status_incomplete_expired(),
        Status::Trialing => t.billing_status_trialing(),
        Status::Active => t.billing_status_active(),
        Status::PastDue => t.billing_status_past_due(),
        Status::Canceled => t.billing_status_canceled(),
        Status::Unpaid => t.billing_status_unpaid(),
        Status::Paused => t.billing_status_paused(),
        Status::Unknown(_) => t.billing_status_unknown(),
    }
}

#[derive(Debug, Deserialize)]
pub struct BillingQuery {
    checkout: Option<String>,
}

pub async fn billing_page(
    State(state): State<AppState>,
    ctx: PageContext,
    SignedIn(session): SignedIn,
    query: Result<Query<BillingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let (lang, t) = (ctx.lang, ctx.t);
    let (summary, has_customer, plans) = match &state.billing {
        Some(billing) => {
            let summary = billing.summary(&session.account_id).await.map_err(billing_error)?;
            let has_customer = state.store.billing_customer_of(&session.account_id).await?.is_some();
            let plans = billing
                .catalogue()
                .plans()
                .iter()
                .map(|p| PlanLine { id: p.id.clone(), name: p.name(lang).to_string(), interval: interval_label(&p.interval, t) })
                .collect();
            (Some(summary), has_customer, plans)
        }
        None => (None, false, Vec::new()),
    };
    let notice = match query.as_ref().ok().and_then(|q| q.checkout.as_deref()) {
        Some("done") if !summary.as_ref().is_some_and(|s| s.access) => Some(t.billing_waiting()),
        Some("cancelled") => Some(t.billing_checkout_cancelled()),
        _ => None,
    };
    let invoices = summary
        .as_ref()
        .map(|s| {
            s.invoices
                .iter()
                .map(|i| InvoiceLine {
                    number: i.number.clone().unwrap_or_else(|| "–".into()),
                    date: day(i.issued_at.div_euclid(1000)),
                    amount: money(i.amount, &i.currency, lang),
                    status: invoice_status(&i.status, i.payment_failed, t),
                })
                .collect()
        })
        .unwrap_or_default();
    let body = BillingPage {
        chrome: Chrome::new(&state, &ctx, t.billing_heading(), true),
        notice,
        payment_problem: summary.as_ref().is_some_and(|s| s.payment_problem),
        enabled: state.billing.is_some(),
        current: summary.as_ref().and_then(|s| current_line(s, lang, t)),
        has_customer,
        offer_plans: summary.as_ref().is_some_and(|s| !s.access) && !plans.is_empty(),
        plans,
        invoices,
        csrf: ctx.csrf_token(&state),
    };
    Ok(page(&ctx, &state, true, &body))
}

fn current_line(summary: &Summary, lang: Lang, t: Texts) -> Option<CurrentLine> {
    let subscription = summary.subscription.as_ref()?;
    let status = summary.status.clone().unwrap_or(Status::Unknown(String::new()));
    let plan = summary.plan.as_ref().map_or_else(|| subscription.price_id.clone(), |p| p.name(lang).to_string());
    Some(CurrentLine {
        plan,
        status: status_label(&status, t),
        ends: subscription.cancel_at_period_end,
        renews: subscription.current_period_end.filter(|_| !status.is_terminal()).map(day),
        access: summary.access,
        cancelling: subscription.cancel_at_period_end,
    })
}

/// A billing failure as the visitor's error: the code says what happened, the catalogue how to
/// put it.
pub(crate) fn billing_error(e: BillingError) -> WebError {
    let code = e.code();
    match e {
        BillingError::UnknownPlan(_) => WebError::bad_request(code),
        BillingError::NotConfigured => WebError::new(StatusCode::SERVICE_UNAVAILABLE, code),
        BillingError::NoSubscription | BillingError::AlreadySubscribed => WebError::new(StatusCode::CONFLICT, code),
        BillingError::Provider(ProviderError::Unavailable(ref cause)) => {
            tracing::warn!(error = %cause, "payment provider unavailable");
            WebError::new(StatusCode::SERVICE_UNAVAILABLE, code)
        }
        BillingError::Provider(ref cause) => {
            tracing::error!(error = %cause, code, "payment provider request failed");
            WebError::new(StatusCode::BAD_GATEWAY, code)
        }
        BillingError::Core(core) => core.into(),
        BillingError::Config { .. } => {
            tracing::error!(error = %e, code, "billing failed");
            WebError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The billing page's forms: subscribe (`plan`), manage, cancel (or, with `resume`, take that back).
#[derive(Debug, Deserialize)]
pub struct BillingForm {
    csrf: String,
    plan: Option<String>,
    resume: Option<String>,
}

crate::csrf_protected!(BillingForm);

fn billing(state: &AppState) -> Result<&passme_billing::Billing, WebError> {
    state.billing.as_deref().ok_or_else(|| billing_error(BillingError::NotConfigured))
}

/// Starts a checkout for the signed-in account and sends the browser to the provider's page.
pub async fn checkout(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: axum::http::HeaderMap,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<BillingForm>,
) -> Result<Redirect, WebError> {
    let billing = billing(&state)?;
    crate::routes::fraud::screen_account_event(&state, &ctx, &headers, passme_fraud::EventKind::Checkout, &session.account_id).await?;
    let url =
        billing.start_checkout(&session.account_id, input.plan.as_deref().unwrap_or_default(), ctx.lang).await.map_err(billing_error)?;
    Ok(Redirect::to(&url))
}

/// Sends the browser to the provider's billing portal.
pub async fn portal(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(_): CsrfForm<BillingForm>,
) -> Result<Redirect, WebError> {
    let url = billing(&state)?.open_portal(&session.account_id).await.map_err(billing_error)?;
    Ok(Redirect::to(&url))
}

/// Cancels at the end of the period, or (with `resume`) takes that back.
pub async fn cancel(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<BillingForm>,
) -> Result<Redirect, WebError> {
    billing(&state)?.set_cancel_at_period_end(&session.account_id, input.resume.is_none()).await.map_err(billing_error)?;
    Ok(Redirect::to("/billing"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// True when this event id had been received before; nothing was done again.
    pub duplicate: bool,
}

/// The provider's events. The raw body is verified against `Stripe-Signature` before it is
/// parsed; the event is stored once and applied by a job, so the answer comes fast.
pub async fn stripe_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(billing) = &state.billing else {
        return WebError::new(StatusCode::NOT_FOUND, "billing_not_configured").into_response();
    };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    match billing.receive(signature, &body).await {
        Ok(received) => {
            state.metrics.billing_events(if received.duplicate { "duplicate" } else { "accepted" });
            Json(WebhookAnswer { received: true, duplicate: received.duplicate }).into_response()
        }
        Err(WebhookError::Store(e)) => WebError::from(e).into_response(),
        Err(e) => {
            state.metrics.billing_events("refused");
            tracing::info!(code = e.code(), "webhook delivery refused");
            WebError::bad_request(e.code()).with_detail(e.to_string()).into_response()
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Entitlements {
    /// Whether the account may use the paid product now.
    pub access: bool,
    /// Our plan id, when the subscription's price is in the catalogue.
    pub plan: Option<String>,
    /// The provider's status: incomplete, incomplete_expired, trialing, active, past_due,
    /// canceled, unpaid or paused; null without a subscription.
    pub status: Option<String>,
    /// What the plan entitles to; empty without access.
    pub entitlements: Vec<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// A payment failed or is due.
    pub payment_problem: bool,
}

/// What the caller's subscription entitles it to, for the product to ask.
#[utoipa::path(get, path = "/api/v1/entitlements", tag = "billing", security(("bearer" = []), ("session" = [])), responses(
    (status = 200, description = "The caller's entitlements", body = Entitlements),
    (status = 401, description = "No valid token or session", body = crate::error::ErrorBody),
    (status = 403, description = "The token lacks the me:read scope", body = crate::error::ErrorBody),
))]
pub async fn entitlements(State(state): State<AppState>, caller: Caller<MeRead>) -> Result<Json<Entitlements>, WebError> {
    let Some(billing) = &state.billing else {
        return Ok(Json(Entitlements {
            access: false,
            plan: None,
            status: None,
            entitlements: Vec::new(),
            current_period_end: None,
            cancel_at_period_end: false,
            payment_problem: false,
        }));
    };
    let summary = billing.summary(&caller.account_id).await.map_err(billing_error)?;
    Ok(Json(Entitlements {
        access: summary.access,
        plan: summary.plan.map(|p| p.id),
        status: summary.subscription.as_ref().map(|s| s.status.clone()),
        entitlements: summary.entitlements,
        current_period_end: summary.subscription.as_ref().and_then(|s| s.current_period_end),
        cancel_at_period_end: summary.subscription.as_ref().is_some_and(|s| s.cancel_at_period_end),
        payment_problem: summary.payment_problem,
    }))
}
