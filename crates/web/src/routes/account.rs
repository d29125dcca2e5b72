//! Sign-up with address verification, log-in, log-out and the account page with its sessions.
//! Plain forms (no JavaScript), each protected against CSRF. Answers never reveal whether an
//! address has an account: sign-up always says "check your e-mail", log-in always says "wrong
//! e-mail or password".

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::identity::account_mail;
use passme_core::identity::accounts::{Accounts, SignUp, VERIFY, VERIFY_TTL_MS};
use passme_core::identity::api_tokens::{ApiTokens, SCOPE_ANALYTICS_READ, SCOPE_ME_READ};
use passme_core::identity::email;
use passme_core::identity::mail_limits::MailLimits;
use passme_core::identity::remember::{self, Remember};
use passme_core::identity::sessions::{ActiveSession, Sessions};
use passme_core::identity::staff::Staff;
use passme_core::identity::throttle::{LoginThrottle, Verdict};
use passme_core::mail::Template as Mail;
use passme_policy::{CookieCategory, Lang};
use passme_store::AccountRow;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::csrf;
use crate::error::ApiError;
use crate::routes::pages::{Chrome, error_page, page};
use crate::{cookies, redirect};

pub const SESSION_COOKIE: &str = "__Host-session";

/// The signed-in session of a request, if any.
pub async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<ActiveSession> {
    let token = cookies::single(headers, SESSION_COOKIE)?;
    Sessions::new(state.store.clone(), state.clock.clone()).resolve(&SecretString::from(token.to_string())).await.ok().flatten()
}

pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    chrome: Chrome,
    heading: &'static str,
    intro: Option<&'static str>,
    error: Option<String>,
    action: &'static str,
    csrf: String,
    hidden: Vec<(&'static str, String)>,
    fields: Vec<Field>,
    /// "Remember me": the checkbox label, or why it is not offered.
    remember: Option<RememberChoice>,
    submit: &'static str,
    links: Vec<(String, &'static str)>,
}

pub enum RememberChoice {
    Offered(&'static str),
    NeedsConsent(&'static str),
}

#[derive(Template)]
#[template(path = "notice.html")]
struct Notice {
    chrome: Chrome,
    heading: &'static str,
    message: &'static str,
    link: (String, &'static str),
}

pub struct SessionLine {
    id: String,
    started: String,
    seen: String,
    browser: String,
    network: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    heading: &'static str,
    email_line: String,
    sessions_heading: &'static str,
    col_started: &'static str,
    col_seen: &'static str,
    col_browser: &'static str,
    col_network: &'static str,
    col_action: &'static str,
    sessions: Vec<SessionLine>,
    this_device: &'static str,
    revoke: &'static str,
    revoke_others: &'static str,
    logout: &'static str,
    csrf: String,
    privacy_link: &'static str,
    cookies_link: &'static str,
    billing_heading: &'static str,
    billing_link: &'static str,
    /// A failed payment: shown here too, where the user looks first.
    payment_alert: Option<&'static str>,
    change_heading: &'static str,
    current_label: &'static str,
    new_label: &'static str,
    change_submit: &'static str,
    linked_heading: &'static str,
    linked_text: &'static str,
    close_heading: &'static str,
    close_intro: &'static str,
    close_submit: &'static str,
    email_heading: &'static str,
    new_email_label: &'static str,
    email_submit: &'static str,
    tokens_heading: &'static str,
    tokens_intro: &'static str,
    tokens: Vec<TokenLine>,
    col_name: &'static str,
    col_used: &'static str,
    token_name_label: &'static str,
    token_create: &'static str,
}

pub struct TokenLine {
    id: String,
    name: String,
    created: String,
    used: String,
}

#[derive(Template)]
#[template(path = "token_created.html")]
struct TokenCreated {
    chrome: Chrome,
    heading: &'static str,
    message: &'static str,
    token: String,
    back: &'static str,
}

fn email_field(lang: Lang, value: &str) -> Field {
    Field { name: "email", label: lang.pick("E-mailadresse", "E-mail address"), kind: "email", autocomplete: "email", value: value.into() }
}

fn password_field(lang: Lang, new: bool) -> Field {
    Field {
        name: "password",
        label: if new {
            lang.pick(
                "Adgangskode (mindst 8 tegn; et par tilfældige ord er stærkt)",
                "Password (at least 8 characters; a few random words are strong)",
            )
        } else {
            lang.pick("Adgangskode", "Password")
        },
        kind: "password",
        autocomplete: if new { "new-password" } else { "current-password" },
        value: String::new(),
    }
}

/// Checks CSRF for a form post; refusing cookies is explained, not looped.
fn check_csrf(state: &AppState, lang: Lang, headers: &HeaderMap, token: &str) -> Option<Response> {
    let explanation = lang.pick(
        "Log-in kræver én nødvendig cookie (__Host-session), og din browser afviser cookies. Tillad cookies for dette websted for at logge ind; alle offentlige sider virker uden.",
        "Signing in needs one necessary cookie (__Host-session), and your browser refuses cookies. Allow cookies for this site to sign in; every public page works without.",
    );
    super::csrf_refusal(state, lang, headers, token, ("cookies_required", explanation))
}

pub(crate) fn form_invalid(state: &AppState, lang: Lang) -> Response {
    error_page(
        state,
        lang,
        &ApiError::new(StatusCode::BAD_REQUEST, "form_invalid", lang.pick("Formularen var ufuldstændig.", "The form was incomplete.")),
    )
}

// ---- sign-up and verification ----

fn signup_page(state: &AppState, ctx: &PageContext, email: &str, error: Option<String>) -> FormPage {
    let lang = ctx.lang;
    FormPage {
        chrome: Chrome::new(state, ctx, lang.pick("Opret konto", "Create an account"), "/signup", true),
        heading: lang.pick("Opret konto", "Create an account"),
        intro: Some(
            lang.pick(
                "Vi sender et link til din e-mail, som bekræfter adressen.",
                "We send a link to your e-mail that confirms the address.",
            ),
        ),
        error,
        action: "/signup",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![],
        fields: vec![email_field(lang, email), password_field(lang, true)],
        remember: None,
        submit: lang.pick("Opret konto", "Create account"),
        links: vec![("/login".into(), lang.pick("Har du en konto? Log ind", "Have an account? Sign in"))],
    }
}

pub async fn signup_form(State(state): State<AppState>, ctx: PageContext) -> Response {
    page(&ctx, &state, true, &signup_page(&state, &ctx, "", None))
}

#[derive(Debug, Deserialize)]
pub struct SignupInput {
    csrf: String,
    email: String,
    password: String,
}

pub async fn signup(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<SignupInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    match register(&state, lang, &input.email, SecretString::from(input.password), ctx.client_ip).await {
        Ok(()) => {}
        Err(e) if is_input_problem(&e) => {
            let mut response = page(&ctx, &state, true, &signup_page(&state, &ctx, &input.email, Some(e.to_string())));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
        Err(e) => return error_page(&state, lang, &ApiError::from(e)),
    }
    let notice = Notice {
        chrome: Chrome::plain(lang, lang.pick("Tjek din e-mail", "Check your e-mail"), "/signup"),
        heading: lang.pick("Tjek din e-mail", "Check your e-mail"),
        message: lang.pick(
            "Vi har sendt en e-mail til adressen. Åbn linket i den for at fortsætte. Kommer den ikke, så tjek spam-mappen.",
            "We have sent an e-mail to the address. Open the link in it to continue. If it does not arrive, check your spam folder.",
        ),
        link: ("/login".into(), lang.pick("Til log-in", "Go to sign-in")),
    };
    page(&ctx, &state, false, &notice)
}

/// The account-mail limits, counted in the shared database.
fn mail_limits(state: &AppState) -> MailLimits {
    MailLimits::new(state.store.clone(), state.clock.clone(), state.secrets.master_key())
}

/// A problem with what the visitor typed (shown next to the form), as opposed to a failure.
pub fn is_input_problem(e: &passme_core::CoreError) -> bool {
    matches!(e.code(), "password_weak" | "password_too_short" | "password_too_long" | "email_invalid")
}

/// Sign-up as the form and the JSON API share it: create the account and mail the verification
/// link — or, for an address that has an account, tell its owner instead. The caller answers
/// alike in both cases.
pub async fn register(
    state: &AppState,
    lang: Lang,
    address: &str,
    password: SecretString,
    ip: std::net::IpAddr,
) -> Result<(), passme_core::CoreError> {
    let to = email::validate(address)?;
    // Over the mail limits nothing happens, and the answer is the same: a flood of sign-ups
    // neither fills a mailbox nor tells which addresses have accounts.
    if !mail_limits(state).allow(&email::key(&to), ip).await? {
        return Ok(());
    }
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    let mail = match accounts.sign_up(&to, password).await? {
        SignUp::Created { account_id } => {
            let token = accounts.issue_token(&account_id, VERIFY, VERIFY_TTL_MS).await?;
            Mail::VerifyAddress { link: format!("{}/verify?token={}&lang={}", state.base_url, token.expose_secret(), lang.code()) }
        }
        SignUp::AlreadyRegistered => Mail::AlreadyRegistered { login_link: format!("{}/login?lang={}", state.base_url, lang.code()) },
    };
    state.mailer.send(&to, lang, &mail).await
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The link in the mail opens a page with a button: mail scanners that follow links must not use
/// up the token.
pub async fn verify_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let lang = ctx.lang;
    let body = FormPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Bekræft din adresse", "Confirm your address"), "/verify", true),
        heading: lang.pick("Bekræft din adresse", "Confirm your address"),
        intro: Some(lang.pick("Tryk for at bekræfte din e-mailadresse og logge ind.", "Press to confirm your e-mail address and sign in.")),
        error: None,
        action: "/verify",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![("token", query.token.unwrap_or_default())],
        fields: vec![],
        remember: None,
        submit: lang.pick("Bekræft", "Confirm"),
        links: vec![],
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct VerifyInput {
    csrf: String,
    token: String,
}

pub async fn verify(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<VerifyInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    match accounts.verify_address(&SecretString::from(input.token)).await {
        Ok(Some(account)) => sign_in(&state, &ctx, &headers, &account.id, "/account", false).await,
        Ok(None) => error_page(
            &state,
            lang,
            &ApiError::new(
                StatusCode::BAD_REQUEST,
                "token_invalid",
                lang.pick("Linket er brugt, udløbet eller ugyldigt.", "The link is used, expired or invalid."),
            ),
        ),
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

// ---- log-in and log-out ----

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(state: &AppState, ctx: &PageContext, email: &str, next: &str, error: Option<String>) -> FormPage {
    let lang = ctx.lang;
    FormPage {
        chrome: Chrome::new(state, ctx, lang.pick("Log ind", "Sign in"), "/login", true),
        heading: lang.pick("Log ind", "Sign in"),
        intro: None,
        error,
        action: "/login",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![("next", next.to_string())],
        fields: vec![email_field(lang, email), password_field(lang, false)],
        remember: Some(if ctx.consent.choices().allows(CookieCategory::Preferences) {
            RememberChoice::Offered(lang.pick("Husk mig på denne enhed i 30 dage", "Remember me on this device for 30 days"))
        } else {
            RememberChoice::NeedsConsent(lang.pick(
                "\"Husk mig\" kræver samtykke til præference-cookies (se cookie-indstillingerne).",
                "\"Remember me\" needs consent to preference cookies (see the cookie settings).",
            ))
        }),
        submit: lang.pick("Log ind", "Sign in"),
        links: vec![
            ("/signup".into(), lang.pick("Ny her? Opret en konto", "New here? Create an account")),
            ("/reset-request".into(), lang.pick("Glemt adgangskoden?", "Forgot your password?")),
        ],
    }
}

pub async fn login_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<NextQuery>) -> Response {
    let next = redirect::local_path(query.next.as_deref());
    page(&ctx, &state, true, &login_page(&state, &ctx, "", &next, None))
}

#[derive(Debug, Deserialize)]
pub struct LoginInput {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
    remember: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<LoginInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let next = redirect::local_path(input.next.as_deref());
    let remember = input.remember.as_deref() == Some("on");
    match attempt_login(&state, &ctx, &input.email, SecretString::from(input.password)).await {
        Ok(LoginOutcome::SignedIn(account)) => sign_in(&state, &ctx, &headers, &account.id, &next, remember).await,
        Ok(LoginOutcome::Throttled { retry_after_secs }) => {
            let message = lang.pick("For mange forsøg. Vent lidt, og prøv igen.", "Too many attempts. Wait a little and try again.");
            let mut response = error_page(&state, lang, &ApiError::new(StatusCode::TOO_MANY_REQUESTS, "login_throttled", message));
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Ok(LoginOutcome::Unverified) => {
            let message = lang.pick(
                "Bekræft først din e-mailadresse med linket, vi sendte dig.",
                "First confirm your e-mail address with the link we sent you.",
            );
            let mut response = page(&ctx, &state, true, &login_page(&state, &ctx, &input.email, &next, Some(message.into())));
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
        Ok(LoginOutcome::Failed) => {
            let message = lang.pick("Forkert e-mail eller adgangskode.", "Wrong e-mail or password.");
            let mut response = page(&ctx, &state, true, &login_page(&state, &ctx, &input.email, &next, Some(message.into())));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

/// Starts a fresh session (never reusing a token the browser brought: no fixation) and a fresh
/// CSRF cookie, then sends the visitor on.
async fn sign_in(state: &AppState, ctx: &PageContext, headers: &HeaderMap, account_id: &str, next: &str, remember: bool) -> Response {
    let mut response = Redirect::to(next).into_response();
    match session_cookies(state, ctx, headers, account_id, remember).await {
        Ok(values) => response.headers_mut().extend(values.into_iter().map(|v| (header::SET_COOKIE, v))),
        Err(e) => return error_page(state, ctx.lang, &ApiError::from(e)),
    }
    response
}

/// What a sign-in attempt came to.
pub enum LoginOutcome {
    SignedIn(AccountRow),
    /// Right password, but the address is not confirmed yet.
    Unverified,
    /// Unknown address, wrong password or disabled account: one answer for all.
    Failed,
    Throttled {
        retry_after_secs: i64,
    },
}

/// The sign-in decision the form and the JSON API share: the throttle first, then the password,
/// then the attempt is counted (a success clears this address-and-network counter).
pub async fn attempt_login(
    state: &AppState,
    ctx: &PageContext,
    address: &str,
    password: SecretString,
) -> Result<LoginOutcome, passme_core::CoreError> {
    let throttle = LoginThrottle::new(state.store.clone(), state.clock.clone(), state.secrets.master_key());
    let email_key = email::key(address);
    if let Verdict::Throttled { retry_after_secs } = throttle.check(&email_key, ctx.client_ip).await? {
        return Ok(LoginOutcome::Throttled { retry_after_secs });
    }
    let account = Accounts::new(state.store.clone(), state.clock.clone()).authenticate(address, password).await?;
    Ok(match account {
        Some(account) if account.email_verified_at.is_some() => {
            throttle.succeeded(&email_key, ctx.client_ip).await?;
            LoginOutcome::SignedIn(account)
        }
        Some(_) => {
            throttle.failed(&email_key, ctx.client_ip).await?;
            LoginOutcome::Unverified
        }
        None => {
            throttle.failed(&email_key, ctx.client_ip).await?;
            LoginOutcome::Failed
        }
    })
}

/// Starts a fresh session (never reusing a token the browser brought: no fixation), a fresh CSRF
/// cookie and — only when asked and with preference consent — a remember-me series. Returns the
/// cookies to set.
pub async fn session_cookies(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    account_id: &str,
    remember: bool,
) -> Result<Vec<header::HeaderValue>, passme_core::CoreError> {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (token, _) = Sessions::new(state.store.clone(), state.clock.clone()).issue(account_id, user_agent, ctx.client_ip).await?;
    let mut values: Vec<header::HeaderValue> = [
        cookies::set(&state.policy, SESSION_COOKIE, token.expose_secret()),
        cookies::set(&state.policy, csrf::COOKIE, &csrf::new_cookie_value()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if remember && ctx.consent.choices().allows(CookieCategory::Preferences) {
        let series = Remember::new(state.store.clone(), state.clock.clone()).start(account_id).await?;
        values.extend(cookies::set(&state.policy, remember::COOKIE, series.expose_secret()));
    }
    Ok(values)
}

/// Ends this browser's session and remember-me series; returns the cookie deletions to send.
/// A failure to end them server-side is logged, never passed over: the cookies go either way.
pub async fn sign_out(state: &AppState, headers: &HeaderMap) -> Vec<header::HeaderValue> {
    if let Some(token) = cookies::single(headers, SESSION_COOKIE)
        && let Err(e) = Sessions::new(state.store.clone(), state.clock.clone()).end(&SecretString::from(token.to_string())).await
    {
        tracing::error!(error = %e, code = e.code(), "sign-out could not end the session");
    }
    if let Some(value) = cookies::single(headers, remember::COOKIE)
        && let Err(e) = Remember::new(state.store.clone(), state.clock.clone()).end(&SecretString::from(value.to_string())).await
    {
        tracing::error!(error = %e, code = e.code(), "sign-out could not end the remember-me series");
    }
    [cookies::delete(SESSION_COOKIE), cookies::delete(remember::COOKIE)].into_iter().flatten().collect()
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().extend(sign_out(&state, &headers).await.into_iter().map(|v| (header::SET_COOKIE, v)));
    response
}

// ---- the account page ----

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

/// The failed-payment notice, when billing is on and the account's latest payment failed.
async fn payment_alert(state: &AppState, account_id: &str, lang: Lang) -> Option<&'static str> {
    let summary = state.billing.as_ref()?.summary(account_id).await.ok()?;
    summary.payment_problem.then(|| {
        lang.pick(
            "Din seneste betaling mislykkedes. Se dit abonnement for at opdatere betalingskortet.",
            "Your latest payment failed. See your subscription to update your payment card.",
        )
    })
}

pub async fn account(State(state): State<AppState>, ctx: PageContext, headers: HeaderMap) -> Response {
    let lang = ctx.lang;
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let Ok(Some(account)) = state.store.account(&session.account_id).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let rows = Sessions::new(state.store.clone(), state.clock.clone()).list(&account.id).await.unwrap_or_default();
    let sessions = rows
        .into_iter()
        .map(|r| SessionLine {
            current: r.id == session.id,
            id: r.id,
            started: when(r.created_at),
            seen: when(r.last_seen_at),
            browser: r.user_agent,
            network: r.ip_prefix,
        })
        .collect();
    let body = AccountPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Din konto", "Your account"), "/account", true),
        heading: lang.pick("Din konto", "Your account"),
        email_line: format!("{} {}", lang.pick("Logget ind som", "Signed in as"), account.email),
        sessions_heading: lang.pick("Dine sessioner", "Your sessions"),
        col_started: lang.pick("Startet", "Started"),
        col_seen: lang.pick("Sidst set", "Last seen"),
        col_browser: lang.pick("Browser", "Browser"),
        col_network: lang.pick("Netværk", "Network"),
        col_action: lang.pick("Handling", "Action"),
        sessions,
        this_device: lang.pick("Denne enhed", "This device"),
        revoke: lang.pick("Afbryd", "End"),
        revoke_others: lang.pick("Log ud alle andre steder", "Sign out everywhere else"),
        logout: lang.pick("Log ud", "Sign out"),
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        privacy_link: lang.pick("Privatlivspolitik", "Privacy policy"),
        cookies_link: lang.pick("Cookie-indstillinger", "Cookie settings"),
        billing_heading: lang.pick("Abonnement", "Subscription"),
        billing_link: lang.pick("Se og administrer dit abonnement", "See and manage your subscription"),
        payment_alert: payment_alert(&state, &account.id, lang).await,
        change_heading: lang.pick("Skift adgangskode", "Change password"),
        current_label: lang.pick("Nuværende adgangskode", "Current password"),
        new_label: lang.pick("Ny adgangskode", "New password"),
        change_submit: lang.pick("Skift adgangskode", "Change password"),
        linked_heading: lang.pick("Tilknyttede konti", "Linked accounts"),
        linked_text: lang.pick(
            "Du har ingen tilknyttede konti. Tilknytning af konti hos andre udbydere (OpenID Connect) kommer her.",
            "You have no linked accounts. Linking accounts at other providers (OpenID Connect) will come here.",
        ),
        close_heading: lang.pick("Luk konto", "Close account"),
        close_intro: lang.pick(
            "Alle sessioner og nøgler afsluttes med det samme. Adgangskoden slettes efter en dag, resten efter 30 dage, som privatlivspolitikken beskriver.",
            "Every session and token ends at once. The password is deleted after a day and the rest after 30 days, as the privacy policy describes.",
        ),
        close_submit: lang.pick("Luk min konto", "Close my account"),
        email_heading: lang.pick("Skift e-mailadresse", "Change e-mail address"),
        new_email_label: lang.pick("Ny e-mailadresse", "New e-mail address"),
        email_submit: lang.pick("Send bekræftelse til den nye adresse", "Send a confirmation to the new address"),
        tokens_heading: lang.pick("API-nøgler", "API tokens"),
        tokens_intro: lang.pick(
            "Personlige adgangsnøgler lader et program læse, hvem du er (GET /api/v1/me). De vises kun én gang og kan tilbagekaldes her. Når du skifter eller nulstiller din adgangskode, tilbagekaldes de alle.",
            "Personal access tokens let a program read who you are (GET /api/v1/me). They are shown once and can be revoked here. Changing or resetting your password revokes them all.",
        ),
        tokens: ApiTokens::new(state.store.clone(), state.clock.clone())
            .list(&account.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|t| TokenLine {
                id: t.id,
                name: t.name,
                created: when(t.created_at),
                used: t.last_used_at.map_or_else(|| "–".into(), when),
            })
            .collect(),
        col_name: lang.pick("Navn", "Name"),
        col_used: lang.pick("Sidst brugt", "Last used"),
        token_name_label: lang.pick("Navn på ny nøgle", "Name of a new token"),
        token_create: lang.pick("Opret nøgle", "Create token"),
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct RevokeInput {
    csrf: String,
    session: Option<String>,
}

async fn revoke_sessions(
    state: AppState,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<RevokeInput>, FormRejection>,
    all_others: bool,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let sessions = Sessions::new(state.store.clone(), state.clock.clone());
    let result = if all_others {
        sessions.revoke_all(&session.account_id, Some(&session.id)).await.map(|_| true)
    } else {
        // Only the signed-in account's own sessions: another account's id is refused (IDOR).
        sessions.revoke(&session.account_id, input.session.as_deref().unwrap_or_default()).await
    };
    match result {
        Ok(true) => Redirect::to("/account").into_response(),
        Ok(false) => error_page(&state, lang, &ApiError::not_found()),
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

pub async fn revoke_one(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<RevokeInput>, FormRejection>,
) -> Response {
    revoke_sessions(state, ctx, headers, form, false).await
}

pub async fn revoke_others(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<RevokeInput>, FormRejection>,
) -> Response {
    revoke_sessions(state, ctx, headers, form, true).await
}

// ---- password reset and change ----

fn notice(state: &AppState, ctx: &PageContext, heading: &'static str, message: &'static str, link: (&str, &'static str)) -> Response {
    let body = Notice { chrome: Chrome::plain(ctx.lang, heading, "/"), heading, message, link: (link.0.to_string(), link.1) };
    page(ctx, state, false, &body)
}

pub async fn reset_request_form(State(state): State<AppState>, ctx: PageContext) -> Response {
    let lang = ctx.lang;
    let body = FormPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Glemt adgangskode", "Forgotten password"), "/reset-request", true),
        heading: lang.pick("Glemt adgangskode", "Forgotten password"),
        intro: Some(lang.pick(
            "Skriv din e-mailadresse, så sender vi et link, der virker én gang i en time.",
            "Enter your e-mail address and we send a link that works once, for one hour.",
        )),
        error: None,
        action: "/reset-request",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![],
        fields: vec![email_field(lang, "")],
        remember: None,
        submit: lang.pick("Send link", "Send link"),
        links: vec![("/login".into(), lang.pick("Tilbage til log-in", "Back to sign-in"))],
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct ResetRequestInput {
    csrf: String,
    email: String,
}

pub async fn reset_request(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<ResetRequestInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    // Queued, not sent here: the answer and its timing are the same for every address.
    if let Err(e) = account_mail::request_password_reset(&mail_limits(&state), &state.jobs, &input.email, lang, ctx.client_ip).await {
        return error_page(&state, lang, &ApiError::from(e));
    }
    notice(
        &state,
        &ctx,
        lang.pick("Tjek din e-mail", "Check your e-mail"),
        lang.pick(
            "Har adressen en konto, sender vi et link til at vælge en ny adgangskode. Vi sender højst nogle få i timen til samme adresse.",
            "If the address has an account, we are sending a link to choose a new password. We send at most a few an hour to one address.",
        ),
        ("/login", lang.pick("Til log-in", "Go to sign-in")),
    )
}

fn reset_page(state: &AppState, ctx: &PageContext, token: &str, error: Option<String>) -> FormPage {
    let lang = ctx.lang;
    FormPage {
        chrome: Chrome::new(state, ctx, lang.pick("Ny adgangskode", "New password"), "/reset", true),
        heading: lang.pick("Vælg en ny adgangskode", "Choose a new password"),
        intro: Some(lang.pick(
            "Alle dine sessioner og API-nøgler afsluttes, når adgangskoden er skiftet.",
            "All your sessions and API tokens end when the password is changed.",
        )),
        error,
        action: "/reset",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![("token", token.to_string())],
        fields: vec![password_field(lang, true)],
        remember: None,
        submit: lang.pick("Gem ny adgangskode", "Save new password"),
        links: vec![],
    }
}

pub async fn reset_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    page(&ctx, &state, true, &reset_page(&state, &ctx, &token, None))
}

#[derive(Debug, Deserialize)]
pub struct ResetInput {
    csrf: String,
    token: String,
    password: String,
}

pub async fn reset(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<ResetInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    match accounts.reset_password(&SecretString::from(input.token.clone()), SecretString::from(input.password)).await {
        Ok(true) => {
            let mut response = notice(
                &state,
                &ctx,
                lang.pick("Adgangskoden er skiftet", "Your password is changed"),
                lang.pick(
                    "Log ind med din nye adgangskode. Alle tidligere sessioner er afsluttet.",
                    "Sign in with your new password. Every earlier session has ended.",
                ),
                ("/login", lang.pick("Til log-in", "Go to sign-in")),
            );
            if let Some(value) = cookies::delete(SESSION_COOKIE) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(false) => error_page(
            &state,
            lang,
            &ApiError::new(
                StatusCode::BAD_REQUEST,
                "token_invalid",
                lang.pick("Linket er brugt, udløbet eller ugyldigt.", "The link is used, expired or invalid."),
            ),
        ),
        Err(e) if e.code().starts_with("password_") => {
            let mut response = page(&ctx, &state, true, &reset_page(&state, &ctx, &input.token, Some(e.to_string())));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangePasswordInput {
    csrf: String,
    current: String,
    password: String,
}

/// Changing the password asks for the current one (re-authentication) and ends every other
/// session; this one continues.
pub async fn change_password(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<ChangePasswordInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    match accounts
        .change_password(&session.account_id, SecretString::from(input.current), SecretString::from(input.password), Some(&session.id))
        .await
    {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) if e.code() == "password_incorrect" || e.code().starts_with("password_") => {
            error_page(&state, lang, &ApiError::new(StatusCode::BAD_REQUEST, "password_change_refused", e.to_string()))
        }
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

// ---- personal access tokens ----

#[derive(Debug, Deserialize)]
pub struct TokenInput {
    csrf: String,
    name: Option<String>,
    token: Option<String>,
}

pub async fn create_token(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<TokenInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let tokens = ApiTokens::new(state.store.clone(), state.clock.clone());
    // Analysts' tokens may also read the analytics reports; nobody else's can.
    let analyst =
        Staff::new(state.store.clone(), state.clock.clone()).require(&session.account_id, crate::routes::analytics::ROLES).await.is_ok();
    let scopes: &[&str] = if analyst { &[SCOPE_ME_READ, SCOPE_ANALYTICS_READ] } else { &[SCOPE_ME_READ] };
    match tokens.create(&session.account_id, input.name.as_deref().unwrap_or_default(), scopes).await {
        Ok(token) => {
            let body = TokenCreated {
                chrome: Chrome::plain(lang, lang.pick("Ny API-nøgle", "New API token"), "/account"),
                heading: lang.pick("Ny API-nøgle", "New API token"),
                message: match (lang, analyst) {
                    (Lang::Da, false) => "Kopiér nøglen nu – den vises ikke igen. Den kan læse GET /api/v1/me.",
                    (Lang::En, false) => "Copy the token now – it is not shown again. It can read GET /api/v1/me.",
                    (Lang::Da, true) => {
                        "Kopiér nøglen nu – den vises ikke igen. Den kan læse GET /api/v1/me og statistikken (GET /api/v1/analytics/report)."
                    }
                    (Lang::En, true) => {
                        "Copy the token now – it is not shown again. It can read GET /api/v1/me and the analytics (GET /api/v1/analytics/report)."
                    }
                },
                token: token.expose_secret().to_string(),
                back: lang.pick("Tilbage til din konto", "Back to your account"),
            };
            page(&ctx, &state, false, &body)
        }
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<TokenInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    match ApiTokens::new(state.store.clone(), state.clock.clone())
        .revoke(&session.account_id, input.token.as_deref().unwrap_or_default())
        .await
    {
        Ok(true) => Redirect::to("/account").into_response(),
        Ok(false) => error_page(&state, lang, &ApiError::not_found()),
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

// ---- e-mail change ----

#[derive(Debug, Deserialize)]
pub struct EmailChangeInput {
    csrf: String,
    email: String,
    current: String,
}

/// Asks for the password (re-authentication) and mails a confirmation link to the new address.
pub async fn request_email_change(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<EmailChangeInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    let token = match accounts.request_email_change(&session.account_id, SecretString::from(input.current), &input.email).await {
        Ok(token) => token,
        Err(e) if e.code() == "password_incorrect" || e.code() == "email_invalid" => {
            return error_page(&state, lang, &ApiError::new(StatusCode::BAD_REQUEST, "email_change_refused", e.to_string()));
        }
        Err(e) => return error_page(&state, lang, &ApiError::from(e)),
    };
    let link = format!("{}/email-confirm?token={}&lang={}", state.base_url, token.expose_secret(), lang.code());
    match mail_limits(&state).allow(&email::key(&input.email), ctx.client_ip).await {
        Ok(true) => {
            if let Err(e) = state.mailer.send(input.email.trim(), lang, &Mail::ConfirmNewAddress { link }).await {
                return error_page(&state, lang, &ApiError::from(e));
            }
        }
        Ok(false) => {}
        Err(e) => return error_page(&state, lang, &ApiError::from(e)),
    }
    notice(
        &state,
        &ctx,
        lang.pick("Tjek din nye e-mail", "Check your new e-mail"),
        lang.pick(
            "Vi har sendt et link til den nye adresse. Adressen skifter, når du åbner det.",
            "We have sent a link to the new address. The address changes when you open it.",
        ),
        ("/account", lang.pick("Til din konto", "To your account")),
    )
}

pub async fn email_confirm_form(State(state): State<AppState>, ctx: PageContext, Query(query): Query<TokenQuery>) -> Response {
    let lang = ctx.lang;
    let body = FormPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Bekræft ny adresse", "Confirm new address"), "/email-confirm", true),
        heading: lang.pick("Bekræft ny e-mailadresse", "Confirm your new e-mail address"),
        intro: None,
        error: None,
        action: "/email-confirm",
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        hidden: vec![("token", query.token.unwrap_or_default())],
        fields: vec![],
        remember: None,
        submit: lang.pick("Bekræft", "Confirm"),
        links: vec![],
    };
    page(&ctx, &state, true, &body)
}

pub async fn email_confirm(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<VerifyInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let accounts = Accounts::new(state.store.clone(), state.clock.clone());
    match accounts.confirm_email_change(&SecretString::from(input.token)).await {
        Ok(Some((old, new))) => {
            let mailer = state.mailer.clone();
            tokio::spawn(async move {
                let _ = mailer.send(&old, lang, &Mail::AddressChanged { new_address: new }).await;
            });
            notice(
                &state,
                &ctx,
                lang.pick("E-mailadressen er skiftet", "The e-mail address is changed"),
                lang.pick(
                    "Din konto bruger nu den nye adresse. Vi har skrevet til den gamle adresse om ændringen.",
                    "Your account now uses the new address. We have told the old address about the change.",
                ),
                ("/account", lang.pick("Til din konto", "To your account")),
            )
        }
        Ok(None) => error_page(
            &state,
            lang,
            &ApiError::new(
                StatusCode::BAD_REQUEST,
                "token_invalid",
                lang.pick(
                    "Linket er brugt, udløbet eller ugyldigt, eller adressen er taget.",
                    "The link is used, expired or invalid, or the address is taken.",
                ),
            ),
        ),
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}

// ---- closing the account ----

#[derive(Debug, Deserialize)]
pub struct CloseInput {
    csrf: String,
    current: String,
}

pub async fn close(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<CloseInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else { return form_invalid(&state, lang) };
    if let Some(refused) = check_csrf(&state, lang, &headers, &input.csrf) {
        return refused;
    }
    let Some(session) = current_session(&state, &headers).await else {
        return Redirect::to("/login?next=/account").into_response();
    };
    match Accounts::new(state.store.clone(), state.clock.clone()).close(&session.account_id, SecretString::from(input.current)).await {
        Ok(()) => {
            if state.billing.is_some() {
                // Paying for a closed account makes no sense: its subscriptions end at the provider.
                if let Err(e) = passme_billing::Billing::schedule_account_closed(&state.jobs, &session.account_id).await {
                    tracing::error!(error = %e, code = e.code(), "could not queue ending the closed account's subscriptions");
                }
            }
            let mut response = notice(
                &state,
                &ctx,
                lang.pick("Kontoen er lukket", "The account is closed"),
                lang.pick(
                    "Du er logget ud overalt. Adgangskoden slettes efter en dag og resten efter 30 dage.",
                    "You are signed out everywhere. The password is deleted after a day and the rest after 30 days.",
                ),
                ("/", lang.pick("Til forsiden", "Go to the front page")),
            );
            for value in [cookies::delete(SESSION_COOKIE), cookies::delete(remember::COOKIE)].into_iter().flatten() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) if e.code() == "password_incorrect" => {
            error_page(&state, lang, &ApiError::new(StatusCode::BAD_REQUEST, "close_refused", e.to_string()))
        }
        Err(e) => error_page(&state, lang, &ApiError::from(e)),
    }
}
