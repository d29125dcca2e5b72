//! Fraud scanning at the edges: the screens sign-up, sign-in, checkout and linking pass through,
//! the analysts' page (review queue with labels, rules with versions and precision, allow and
//! deny lists), and the person's side: the decisions about them, why, and an appeal.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::audit::AuditEvent;
use passme_fraud::{Decision, Event, EventKind, ListKind, Outcome, Reason, RuleDraft};
use passme_store::{AccountId, AccountRow, FraudDecisionRow, FraudListRow, FraudRuleRow};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{Analysts, CsrfForm, SignedIn, Staff};
use crate::routes::pages::{Chrome, page, when};

/// A coarse device signature: the browser's user agent and languages. Weak evidence on its own,
/// which is why the default rules only send shared devices to review.
pub fn device_of(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let langs = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    (!ua.is_empty()).then(|| format!("{ua}\n{langs}"))
}

/// Tracking's id for this browser, as its ingestion would compute it: the visitor cookie when
/// statistics cookies are allowed, else the day's cookieless id of address and user agent.
async fn visitor_of(state: &AppState, ctx: &PageContext, headers: &HeaderMap) -> Option<i64> {
    let visitors = &state.analytics.visitors;
    let cookie = crate::cookies::single(headers, crate::routes::tracking::VISITOR_COOKIE).filter(|v| {
        ctx.consent.choices().allows(passme_policy::CookieCategory::Statistics)
            && passme_analytics::visitor::VisitorIds::valid_cookie_value(v)
    });
    match cookie {
        Some(value) => Some(visitors.from_cookie(value)),
        None => {
            let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            visitors.daily(state.clock.now_ms(), ctx.client_ip, ua, "passme").await.ok()
        }
    }
}

/// The refusal of a blocked event, naming the decision so the person can cite it.
fn refusal(code: &'static str, decision: &Decision) -> WebError {
    let error = WebError::new(StatusCode::FORBIDDEN, code);
    match &decision.id {
        Some(id) => error.with_detail(id.clone()),
        None => error,
    }
}

/// Screens a sign-up before the account is made; a blocked one is refused. Only a sign-up that
/// could succeed is screened: a retry after a weak password is the same person, not a second
/// sign-up (the account rules refuse the bad input with their own message).
pub async fn screen_signup(state: &AppState, ctx: &PageContext, headers: &HeaderMap, email: &str, password: &str) -> Result<(), WebError> {
    let valid = passme_core::identity::email::validate(email)
        .is_ok_and(|address| passme_core::identity::password::check_new(password, &[&address, "passme"]).is_ok());
    if !valid {
        return Ok(());
    }
    let device = device_of(headers);
    let visitor = visitor_of(state, ctx, headers).await;
    let event = Event {
        kind: EventKind::Signup,
        success: true,
        ip: Some(ctx.client_ip),
        account: None,
        account_created_at: None,
        email: Some(email),
        device: device.as_deref(),
        card: None,
        visitor,
    };
    let decision = state.fraud.assess(&event).await?;
    if decision.blocked() { Err(refusal("signup_refused", &decision)) } else { Ok(()) }
}

/// How a sign-in with the right password goes on.
pub enum SignInScreen {
    Allowed,
    /// A link to finish it went to the account's address.
    Challenged,
}

/// Screens a sign-in with the right password: blocked, challenged by mail, or allowed.
pub async fn screen_signin(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    account: &AccountRow,
) -> Result<SignInScreen, WebError> {
    let device = device_of(headers);
    let visitor = visitor_of(state, ctx, headers).await;
    let event = Event {
        kind: EventKind::Signin,
        success: true,
        ip: Some(ctx.client_ip),
        account: Some(&account.id),
        account_created_at: Some(account.created_at),
        email: Some(&account.email),
        device: device.as_deref(),
        card: None,
        visitor,
    };
    let decision = state.fraud.assess(&event).await?;
    match decision.outcome {
        Outcome::Block => Err(refusal("signin_blocked", &decision)),
        Outcome::Challenge => {
            passme_core::identity::account_mail::AccountMail::ConfirmSignIn { account_id: account.id.clone(), lang: ctx.lang }
                .enqueue(&state.jobs)
                .await?;
            Ok(SignInScreen::Challenged)
        }
        Outcome::Allow | Outcome::Review => Ok(SignInScreen::Allowed),
    }
}

/// Counts a failed sign-in towards the network's velocity (no decision: nobody got in).
pub async fn note_failed_signin(state: &AppState, ctx: &PageContext, headers: &HeaderMap, email: &str) {
    let device = device_of(headers);
    let visitor = visitor_of(state, ctx, headers).await;
    let event = Event {
        kind: EventKind::Signin,
        success: false,
        ip: Some(ctx.client_ip),
        account: None,
        account_created_at: None,
        email: Some(email),
        device: device.as_deref(),
        card: None,
        visitor,
    };
    if let Err(e) = state.fraud.record(&event).await {
        tracing::warn!(error = %e, "a failed sign-in was not counted for fraud scanning");
    }
}

/// Screens a checkout or a link for a signed-in account; a blocked one is refused.
pub async fn screen_account_event(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    kind: EventKind,
    account_id: &AccountId,
) -> Result<(), WebError> {
    let Some(account) = state.store.account(account_id).await? else { return Err(WebError::forbidden()) };
    let device = device_of(headers);
    let visitor = visitor_of(state, ctx, headers).await;
    let event = Event {
        kind,
        success: true,
        ip: Some(ctx.client_ip),
        account: Some(account_id),
        account_created_at: Some(account.created_at),
        email: Some(&account.email),
        device: device.as_deref(),
        card: None,
        visitor,
    };
    let decision = state.fraud.assess(&event).await?;
    let code = if kind == EventKind::Checkout { "checkout_refused" } else { "link_refused" };
    if decision.blocked() { Err(refusal(code, &decision)) } else { Ok(()) }
}

/// Scans a card payment the provider reported (the job `billing.card_payment`): the card is looked
/// up at the provider now, so no card data waits in the queue. Not a card: nothing to scan.
pub async fn card_payment(
    billing: &passme_billing::Billing,
    fraud: &passme_fraud::Fraud,
    store: &passme_store::Store,
    payment: &passme_billing::CardPayment,
) -> Result<(), passme_core::jobs::JobError> {
    use passme_core::jobs::JobError;
    let Some(card) = billing.card_fingerprint(&payment.payment_intent).await.map_err(JobError::failed)? else { return Ok(()) };
    let created = store.account(&payment.account).await.map_err(|e| JobError::from(passme_core::CoreError::from(e)))?.map(|a| a.created_at);
    let event = Event {
        kind: EventKind::Payment,
        success: payment.succeeded,
        ip: None,
        account: Some(&payment.account),
        account_created_at: created,
        email: None,
        device: None,
        card: Some(&card),
        visitor: None,
    };
    fraud.assess(&event).await.map(|_| ()).map_err(JobError::from)
}

fn outcome_name(t: passme_messages::Texts, outcome: &str) -> &'static str {
    t.fraud_outcome(outcome).unwrap_or("?")
}

/// One decision, as an analyst or the person reads it.
pub struct DecisionView {
    pub id: String,
    pub at: String,
    pub kind: String,
    pub account: String,
    pub outcome: &'static str,
    /// Why: each rule or list entry, with the outcome it asked for.
    pub reasons: Vec<String>,
    /// The signal values the fired rules read.
    pub inputs: Vec<(String, String)>,
    pub appeal: Option<String>,
    pub appealable: bool,
    pub label: Option<&'static str>,
}

/// One decision for its reader. The person reads each rule's purpose in their language (for the
/// rules PassMe ships); staff read the rule's stored name.
fn view(t: passme_messages::Texts, d: &FraudDecisionRow, for_person: bool) -> DecisionView {
    let reasons: Vec<Reason> = serde_json::from_str(&d.fired).unwrap_or_default();
    let inputs: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&d.inputs).unwrap_or_default();
    DecisionView {
        id: d.id.clone(),
        at: when(d.at),
        kind: d.kind.clone(),
        account: d.account_id.as_ref().map(ToString::to_string).unwrap_or_else(|| "–".into()),
        outcome: outcome_name(t, &d.outcome),
        reasons: reasons
            .iter()
            .map(|r| match r.version {
                Some(v) => {
                    let name = if for_person { t.fraud_rule(&r.id).unwrap_or(&r.name) } else { &r.name };
                    format!("{} (v{v}): {name} → {}", r.id, outcome_name(t, r.outcome.id()))
                }
                None => format!("{}: {} → {}", t.fraud_list_entry(), r.name, outcome_name(t, r.outcome.id())),
            })
            .collect(),
        inputs: inputs.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        appeal: d.appeal.clone(),
        appealable: d.appealed_at.is_none() && d.outcome != "allow",
        label: d.label.as_deref().map(|l| if l == "confirmed" { t.fraud_label_confirmed() } else { t.fraud_label_false_positive() }),
    }
}

/// The decisions about a person, for their privacy page.
pub async fn decisions_of(state: &AppState, t: passme_messages::Texts, account_id: &AccountId) -> Result<Vec<DecisionView>, WebError> {
    Ok(state.store.fraud_decisions_of(account_id).await?.iter().map(|d| view(t, d, true)).collect())
}

struct RuleView {
    row: FraudRuleRow,
    outcome: &'static str,
    precision: String,
}

#[derive(Template)]
#[template(path = "staff_fraud.html")]
struct FraudPage {
    chrome: Chrome,
    csrf: String,
    problem: Option<String>,
    queue: Vec<DecisionView>,
    rules: Vec<RuleView>,
    lists: Vec<FraudListRow>,
    signals: &'static [(&'static str, passme_fraud::rules::Type, &'static str)],
    outcomes: Vec<(&'static str, &'static str)>,
    kinds: [&'static str; 4],
}

async fn fraud_page(
    state: &AppState,
    ctx: &PageContext,
    staff_id: &AccountId,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let t = ctx.t;
    let queue = state.store.fraud_review_queue(100).await?;
    // The queue names accounts: reading it is a staff read of personal data.
    state
        .audit
        .record(AuditEvent {
            actor: &format!("account:{staff_id}"),
            action: "staff.fraud_queue_read",
            subject: "fraud:review_queue",
            details: json!({ "decisions": queue.iter().map(|d| d.id.as_str()).collect::<Vec<_>>() }),
        })
        .await?;
    let precision = state.fraud.precision().await?;
    let rules = state
        .store
        .fraud_rules()
        .await?
        .into_iter()
        .map(|row| {
            let p = precision.get(&row.id).cloned().unwrap_or_default();
            let precision = match p.ratio() {
                Some(r) => t.fraud_precision(format!("{:.0}", r * 100.0), p.confirmed, p.false_positive),
                None => t.fraud_precision_none().to_string(),
            };
            RuleView { outcome: outcome_name(t, &row.outcome), row, precision }
        })
        .collect();
    let body = FraudPage {
        chrome: Chrome::new(state, ctx, t.fraud_heading(), false),
        csrf: ctx.csrf_token(state),
        problem,
        queue: queue.iter().map(|d| view(t, d, false)).collect(),
        rules,
        lists: state.fraud.lists.entries().await?,
        signals: passme_fraud::signals::SIGNALS,
        outcomes: Outcome::ALL.iter().map(|o| (o.id(), outcome_name(t, o.id()))).collect(),
        kinds: ["email", "network", "device", "card"],
    };
    let mut response = page(ctx, state, true, &body);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn staff_page(State(state): State<AppState>, ctx: PageContext, staff: Staff<Analysts>) -> Result<Response, WebError> {
    fraud_page(&state, &ctx, &staff.session.account_id, None, StatusCode::OK).await
}

/// A refused form: the page again with the reason on top.
async fn refused(state: &AppState, ctx: &PageContext, staff: &Staff<Analysts>, error: WebError) -> Result<Response, WebError> {
    let status = error.status;
    fraud_page(state, ctx, &staff.session.account_id, Some(error.message(ctx.t)), status).await
}

fn back() -> Response {
    Redirect::to("/staff/fraud").into_response()
}

#[derive(Debug, Deserialize)]
pub struct ReviewInput {
    csrf: String,
    decision: String,
    label: String,
    #[serde(default)]
    note: String,
}

crate::csrf_protected!(ReviewInput);

pub async fn review(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Analysts>,
    CsrfForm(input): CsrfForm<ReviewInput>,
) -> Result<Response, WebError> {
    let by = format!("account:{}", staff.session.account_id);
    let decision = state.store.fraud_decision(&input.decision).await?;
    match state.fraud.review(&input.decision, &input.label, &by, &input.note).await {
        Ok(true) => {}
        Ok(false) => return refused(&state, &ctx, &staff, WebError::new(StatusCode::CONFLICT, "decision_not_open")).await,
        Err(e) => return refused(&state, &ctx, &staff, e.into()).await,
    }
    let subject = decision.and_then(|d| d.account_id).map_or_else(|| "fraud:review_queue".to_string(), |a| format!("account:{a}"));
    state
        .audit
        .record(AuditEvent {
            actor: &by,
            action: "staff.fraud_review",
            subject: &subject,
            details: json!({ "decision": input.decision, "label": input.label }),
        })
        .await?;
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct RuleInput {
    csrf: String,
    id: String,
    name: String,
    expression: String,
    outcome: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    expected_version: i64,
}

crate::csrf_protected!(RuleInput);

/// Saves a new rule or the next version of one; a bad expression is refused with the checker's
/// code and where it went wrong.
pub async fn save_rule(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Analysts>,
    CsrfForm(input): CsrfForm<RuleInput>,
) -> Result<Response, WebError> {
    let Some(outcome) = Outcome::parse(&input.outcome) else {
        return refused(&state, &ctx, &staff, WebError::bad_request("rule_outcome_invalid")).await;
    };
    if let Err(e) = passme_fraud::Expr::compile(&input.expression, &passme_fraud::signals::catalogue()) {
        return refused(&state, &ctx, &staff, WebError::bad_request(e.code).with_detail(e.message)).await;
    }
    let draft = RuleDraft {
        id: input.id.trim().to_string(),
        name: input.name,
        expression: input.expression,
        outcome,
        enabled: input.enabled.as_deref() == Some("on"),
        expected_version: input.expected_version,
    };
    let by = format!("account:{}", staff.session.account_id);
    let version = match state.fraud.save_rule(&draft, &by).await {
        Ok(version) => version,
        Err(e) => return refused(&state, &ctx, &staff, e.into()).await,
    };
    state
        .audit
        .record(AuditEvent {
            actor: &by,
            action: "fraud.rule_saved",
            subject: &format!("fraud_rule:{}", draft.id),
            details: json!({ "version": version, "outcome": outcome.id(), "enabled": draft.enabled }),
        })
        .await?;
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct ListInput {
    csrf: String,
    list: String,
    kind: String,
    value: String,
    reason: String,
    #[serde(default)]
    days: String,
}

crate::csrf_protected!(ListInput);

pub async fn add_to_list(
    State(state): State<AppState>,
    ctx: PageContext,
    staff: Staff<Analysts>,
    CsrfForm(input): CsrfForm<ListInput>,
) -> Result<Response, WebError> {
    let list = match input.list.as_str() {
        "allow" => Outcome::Allow,
        "deny" => Outcome::Block,
        _ => return refused(&state, &ctx, &staff, WebError::bad_request("list_invalid")).await,
    };
    let Some(kind) = ListKind::parse(&input.kind) else {
        return refused(&state, &ctx, &staff, WebError::bad_request("list_value_invalid")).await;
    };
    let days = match input.days.trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => return refused(&state, &ctx, &staff, WebError::bad_request("list_expiry_invalid")).await,
        },
    };
    let by = format!("account:{}", staff.session.account_id);
    let id = match state.fraud.lists.add(list, kind, &input.value, &input.reason, &by, days).await {
        Ok(id) => id,
        Err(e) => return refused(&state, &ctx, &staff, e.into()).await,
    };
    state
        .audit
        .record(AuditEvent {
            actor: &by,
            action: "fraud.list_added",
            subject: &format!("fraud_list:{id}"),
            details: json!({ "list": input.list, "kind": kind.id(), "days": days }),
        })
        .await?;
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct RemoveInput {
    csrf: String,
    id: String,
}

crate::csrf_protected!(RemoveInput);

pub async fn remove_from_list(
    State(state): State<AppState>,
    staff: Staff<Analysts>,
    CsrfForm(input): CsrfForm<RemoveInput>,
) -> Result<Response, WebError> {
    if state.fraud.lists.remove(&input.id).await? {
        state
            .audit
            .record(AuditEvent {
                actor: &format!("account:{}", staff.session.account_id),
                action: "fraud.list_removed",
                subject: &format!("fraud_list:{}", input.id),
                details: json!({}),
            })
            .await?;
    }
    Ok(back())
}

#[derive(Debug, Deserialize)]
pub struct AppealInput {
    csrf: String,
    decision: String,
    text: String,
}

crate::csrf_protected!(AppealInput);

/// The person disputes a decision about them, from their privacy page.
pub async fn appeal(
    State(state): State<AppState>,
    signed_in: SignedIn,
    CsrfForm(input): CsrfForm<AppealInput>,
) -> Result<Response, WebError> {
    let account_id = signed_in.account_id();
    if !state.fraud.appeal(&input.decision, account_id, &input.text).await? {
        return Err(WebError::new(StatusCode::CONFLICT, "appeal_not_possible"));
    }
    let subject = format!("account:{account_id}");
    state
        .audit
        .record(AuditEvent { actor: &subject, action: "fraud.appealed", subject: &subject, details: json!({ "decision": input.decision }) })
        .await?;
    Ok(Redirect::to("/account/privacy#decisions").into_response())
}
