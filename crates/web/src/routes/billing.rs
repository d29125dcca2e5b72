//! Billing: the subscription page (plain forms, no JavaScript), checkout and portal redirects to
//! the provider's hosted pages, the provider's webhook, and the product's entitlements API.
//! Nothing here grants access: the checkout return URL only says "waiting for the provider".

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use passme_billing::{BillingError, ProviderError, Status, Summary, WebhookError};
use passme_core::identity::api_tokens::SCOPE_ME_READ;
use passme_policy::Lang;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::context::PageContext;
use crate::csrf;
use crate::error::ApiError;
use crate::routes::account::{current_session, form_invalid};
use crate::routes::api::caller;
use crate::routes::pages::{Chrome, error_page, page};

pub struct CurrentLine {
    plan: String,
    status: String,
    renews_label: &'static str,
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
    heading: &'static str,
    notice: Option<&'static str>,
    payment_alert: Option<&'static str>,
    fix_payment: &'static str,
    enabled: bool,
    unavailable: &'static str,
    current: Option<CurrentLine>,
    current_heading: &'static str,
    plan_label: &'static str,
    status_label: &'static str,
    cancel: &'static str,
    resume: &'static str,
    has_customer: bool,
    portal_intro: &'static str,
    portal: &'static str,
    offer_plans: bool,
    plans_heading: &'static str,
    plans: Vec<PlanLine>,
    subscribe: &'static str,
    card_note: &'static str,
    invoices_heading: &'static str,
    invoices: Vec<InvoiceLine>,
    col_number: &'static str,
    col_date: &'static str,
    col_amount: &'static str,
    col_status: &'static str,
    csrf: String,
    back: &'static str,
}

fn day(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn interval_label(interval: &str, lang: Lang) -> &'static str {
    match interval {
        "day" => lang.pick("Betales dagligt", "Billed daily"),
        "week" => lang.pick("Betales ugentligt", "Billed weekly"),
        "year" => lang.pick("Betales årligt", "Billed yearly"),
        _ => lang.pick("Betales månedligt", "Billed monthly"),
    }
}

/// An amount in minor units as `15.00 EUR` (`15,00 EUR` in Danish).
fn money(minor: i64, currency: &str, lang: Lang) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, cents) = (minor.unsigned_abs() / 100, minor.unsigned_abs() % 100);
    let separator = lang.pick(",", ".");
    format!("{sign}{whole}{separator}{cents:02} {}", currency.to_ascii_uppercase())
}

fn invoice_status(status: &str, payment_failed: bool, lang: Lang) -> &'static str {
    match status {
        _ if payment_failed => lang.pick("Betaling mislykkedes", "Payment failed"),
        "paid" => lang.pick("Betalt", "Paid"),
        "open" => lang.pick("Åben", "Open"),
        "void" => lang.pick("Annulleret", "Void"),
        "uncollectible" => lang.pick("Uerholdelig", "Uncollectible"),
        _ => lang.pick("Kladde", "Draft"),
    }
}

#[derive(Debug, Deserialize)]
pub struct BillingQuery {
    checkout: Option<String>,
}

pub async fn billing_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    query: Result<Query<BillingQuery>, QueryRejection>,
) -> Response {
    let lang = ctx.lang;
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/billing").into_response();
    };
    let (summary, has_customer, plans) = match &state.billing {
        Some(billing) => {
            let summary = match billing.summary(&session.account_id).await {
                Ok(summary) => summary,
                Err(e) => return error_page(&state, lang, &billing_error(e, lang)),
            };
            let has_customer = state.store.billing_customer_of(&session.account_id).await.ok().flatten().is_some();
            let plans = billing
                .catalogue()
                .plans()
                .iter()
                .map(|p| PlanLine { id: p.id.clone(), name: p.name(lang).to_string(), interval: interval_label(&p.interval, lang) })
                .collect();
            (Some(summary), has_customer, plans)
        }
        None => (None, false, Vec::new()),
    };
    let notice = match query.as_ref().ok().and_then(|q| q.checkout.as_deref()) {
        Some("done") if !summary.as_ref().is_some_and(|s| s.access) => Some(lang.pick(
            "Tak! Vi venter på betalingsudbyderens bekræftelse. Dit abonnement starter, så snart den kommer – genindlæs siden om lidt.",
            "Thank you! We are waiting for the payment provider's confirmation. Your subscription starts as soon as it arrives – reload this page in a moment.",
        )),
        Some("cancelled") => Some(lang.pick("Betalingen blev afbrudt. Der er ikke trukket noget.", "The payment was cancelled. Nothing was charged.")),
        _ => None,
    };
    let payment_alert = summary.as_ref().filter(|s| s.payment_problem).map(|_| {
        lang.pick(
            "Din seneste betaling mislykkedes. Opdater dit betalingskort hos betalingsudbyderen for at beholde adgangen.",
            "Your latest payment failed. Update your payment card at the payment provider to keep your access.",
        )
    });
    let current = summary.as_ref().and_then(|s| current_line(s, lang));
    let offer_plans = summary.as_ref().is_some_and(|s| !s.access) && !plans.is_empty();
    let invoices = summary
        .as_ref()
        .map(|s| {
            s.invoices
                .iter()
                .map(|i| InvoiceLine {
                    number: i.number.clone().unwrap_or_else(|| "–".into()),
                    date: day(i.issued_at.div_euclid(1000)),
                    amount: money(i.amount, &i.currency, lang),
                    status: invoice_status(&i.status, i.payment_failed, lang),
                })
                .collect()
        })
        .unwrap_or_default();
    let body = BillingPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Abonnement", "Subscription"), "/billing", true),
        heading: lang.pick("Abonnement", "Subscription"),
        notice,
        payment_alert,
        fix_payment: lang.pick("Opdater betalingskort", "Update payment card"),
        enabled: state.billing.is_some(),
        unavailable: lang.pick(
            "Abonnementer kan ikke tegnes her lige nu: der er ingen betalingsudbyder sat op.",
            "Subscriptions cannot be taken out here right now: no payment provider is set up.",
        ),
        current,
        current_heading: lang.pick("Dit abonnement", "Your subscription"),
        plan_label: lang.pick("Plan", "Plan"),
        status_label: lang.pick("Status", "Status"),
        cancel: lang.pick("Opsig ved periodens udløb", "Cancel at the end of the period"),
        resume: lang.pick("Fortryd opsigelsen", "Keep my subscription"),
        has_customer,
        portal_intro: lang.pick(
            "Skift plan, betalingskort og se dine fakturaer hos vores betalingsudbyder, Stripe.",
            "Change plan or payment card and see your invoices at our payment provider, Stripe.",
        ),
        portal: lang.pick("Administrer betaling og fakturaer", "Manage billing and invoices"),
        offer_plans,
        plans_heading: lang.pick("Vælg en plan", "Choose a plan"),
        plans,
        subscribe: lang.pick("Tegn abonnement", "Subscribe"),
        card_note: lang.pick(
            "Du betaler på betalingsudbyderens egen side; dine kortoplysninger når aldrig frem til os.",
            "You pay on the payment provider's own page; your card details never reach us.",
        ),
        invoices_heading: lang.pick("Fakturaer", "Invoices"),
        invoices,
        col_number: lang.pick("Nummer", "Number"),
        col_date: lang.pick("Dato", "Date"),
        col_amount: lang.pick("Beløb", "Amount"),
        col_status: lang.pick("Status", "Status"),
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        back: lang.pick("Tilbage til din konto", "Back to your account"),
    };
    page(&ctx, &state, true, &body)
}

fn current_line(summary: &Summary, lang: Lang) -> Option<CurrentLine> {
    let subscription = summary.subscription.as_ref()?;
    let status = summary.status.clone().unwrap_or(Status::Unknown(String::new()));
    let plan = summary.plan.as_ref().map_or_else(|| subscription.price_id.clone(), |p| p.name(lang).to_string());
    let renews_label = if subscription.cancel_at_period_end { lang.pick("Slutter", "Ends") } else { lang.pick("Fornyes", "Renews") };
    Some(CurrentLine {
        plan,
        status: status.label(lang).to_string(),
        renews_label,
        renews: subscription.current_period_end.filter(|_| !status.is_terminal()).map(day),
        access: summary.access,
        cancelling: subscription.cancel_at_period_end,
    })
}

/// How a billing failure reads to the user.
fn billing_error(e: BillingError, lang: Lang) -> ApiError {
    let code = e.code();
    match e {
        BillingError::UnknownPlan(_) => ApiError::bad_request(code, lang.pick("Den plan findes ikke.", "There is no such plan.")),
        BillingError::NotConfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            lang.pick("Abonnementer kan ikke tegnes her lige nu.", "Subscriptions cannot be taken out here right now."),
        ),
        BillingError::NoSubscription => {
            ApiError::new(StatusCode::CONFLICT, code, lang.pick("Du har intet abonnement at ændre.", "You have no subscription to change."))
        }
        BillingError::AlreadySubscribed => ApiError::new(
            StatusCode::CONFLICT,
            code,
            lang.pick(
                "Du har allerede et aktivt abonnement; skift plan under “Administrer betaling”.",
                "You already have an active subscription; change plan under “Manage billing”.",
            ),
        ),
        BillingError::Provider(ProviderError::Unavailable(ref cause)) => {
            tracing::warn!(error = %cause, "payment provider unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                lang.pick(
                    "Betalingsudbyderen svarer ikke lige nu. Prøv igen om lidt.",
                    "The payment provider is not answering right now. Please try again shortly.",
                ),
            )
        }
        BillingError::Provider(ref cause) => {
            tracing::error!(error = %cause, code, "payment provider request failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                code,
                lang.pick("Betalingsudbyderen afviste anmodningen.", "The payment provider refused the request."),
            )
        }
        BillingError::Config { .. } | BillingError::Core(_) => {
            tracing::error!(error = %e, code, "billing failed");
            ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR)
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

#[derive(Debug, Clone, Copy)]
enum Action {
    Checkout,
    Portal,
    Cancel,
}

/// Checks the form (CSRF, signed in, billing on), does `action`, and sends the browser on: to
/// the provider's hosted page, or back to the billing page.
async fn act(
    state: &AppState,
    lang: Lang,
    headers: &HeaderMap,
    form: Result<Form<BillingForm>, FormRejection>,
    action: Action,
) -> Response {
    let Ok(Form(input)) = form else { return form_invalid(state, lang) };
    let explanation = lang.pick(
        "Abonnementer kræver log-in og dermed én nødvendig cookie; din browser afviser cookies.",
        "Subscriptions need you signed in, which takes one necessary cookie; your browser refuses cookies.",
    );
    if let Some(refused) = super::csrf_refusal(state, lang, headers, &input.csrf, ("cookies_required", explanation)) {
        return refused;
    }
    let Some(session) = current_session(state, headers).await else {
        return Redirect::to("/login?next=/billing").into_response();
    };
    let Some(billing) = state.billing.as_deref() else {
        return error_page(state, lang, &billing_error(BillingError::NotConfigured, lang));
    };
    let account = &session.account_id;
    let next = match action {
        Action::Checkout => billing.start_checkout(account, input.plan.as_deref().unwrap_or_default(), lang).await,
        Action::Portal => billing.open_portal(account).await,
        Action::Cancel => billing.set_cancel_at_period_end(account, input.resume.is_none()).await.map(|()| "/billing".to_string()),
    };
    match next {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => error_page(state, lang, &billing_error(e, lang)),
    }
}

/// Starts a checkout for the signed-in account and sends the browser to the provider's page.
pub async fn checkout(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<BillingForm>, FormRejection>,
) -> Response {
    act(&state, ctx.lang, &headers, form, Action::Checkout).await
}

/// Sends the browser to the provider's billing portal.
pub async fn portal(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<BillingForm>, FormRejection>,
) -> Response {
    act(&state, ctx.lang, &headers, form, Action::Portal).await
}

/// Cancels at the end of the period, or (with `resume`) takes that back.
pub async fn cancel(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<BillingForm>, FormRejection>,
) -> Response {
    act(&state, ctx.lang, &headers, form, Action::Cancel).await
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
        return ApiError::new(StatusCode::NOT_FOUND, "billing_not_configured", "No payment provider is configured.").into_response();
    };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    match billing.receive(signature, &body).await {
        Ok(received) => {
            state.metrics.billing_events(if received.duplicate { "duplicate" } else { "accepted" });
            Json(WebhookAnswer { received: true, duplicate: received.duplicate }).into_response()
        }
        Err(WebhookError::Store(e)) => ApiError::from(e).into_response(),
        Err(e) => {
            state.metrics.billing_events("refused");
            tracing::info!(code = e.code(), "webhook delivery refused");
            ApiError::bad_request(e.code(), e.to_string()).into_response()
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
pub async fn entitlements(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let account_id = match caller(&state, &headers, SCOPE_ME_READ).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let Some(billing) = &state.billing else {
        return Json(Entitlements {
            access: false,
            plan: None,
            status: None,
            entitlements: Vec::new(),
            current_period_end: None,
            cancel_at_period_end: false,
            payment_problem: false,
        })
        .into_response();
    };
    match billing.summary(&account_id).await {
        Ok(summary) => Json(Entitlements {
            access: summary.access,
            plan: summary.plan.map(|p| p.id),
            status: summary.subscription.as_ref().map(|s| s.status.clone()),
            entitlements: summary.entitlements,
            current_period_end: summary.subscription.as_ref().and_then(|s| s.current_period_end),
            cancel_at_period_end: summary.subscription.as_ref().is_some_and(|s| s.cancel_at_period_end),
            payment_problem: summary.payment_problem,
        })
        .into_response(),
        Err(e) => billing_error(e, Lang::En).into_response(),
    }
}
