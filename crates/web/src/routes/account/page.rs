//! The account page: who is signed in, the subscription, the sessions (as "Chrome on Linux",
//! the network, the last use), the password and address forms, personal access tokens, and
//! closing the account.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use passme_analytics::useragent::UserAgents;
use passme_core::identity::sessions::ActiveSession;
use passme_core::personalise::Feature;
use passme_messages::Texts;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::SignedIn;
use crate::routes::pages::{Chrome, page, when};

pub struct SessionLine {
    id: String,
    device: String,
    network: String,
    seen: String,
    current: bool,
    remembered: bool,
}

pub struct TokenLine {
    id: String,
    name: String,
    created: String,
    used: String,
}

pub struct LinkLine {
    id: String,
    provider: String,
    provider_name: String,
    meta: String,
    needs_consent: bool,
    /// What the provider sent and is kept (with when), or `None` when nothing is kept.
    received: Option<(String, Vec<(String, String)>)>,
}

pub struct ProviderButton {
    id: String,
    label: String,
}

pub struct SuggestionLine {
    item: String,
    label: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    email: String,
    csrf: String,
    /// A failed payment: shown here too, where the user looks first.
    payment_problem: bool,
    sessions: Vec<SessionLine>,
    tokens: Vec<TokenLine>,
    links: Vec<LinkLine>,
    /// Providers that can still be linked.
    linkable: Vec<ProviderButton>,
    /// Since when personalisation is on, if it is.
    personalisation: Option<String>,
    suggestions: Vec<SuggestionLine>,
    /// A form of this page that was refused: its name (`password`, `email`, `token`, `close`)
    /// and why, shown in that form.
    problem: Option<(&'static str, String)>,
}

/// "Chrome on Linux", from a stored user agent.
fn device(t: Texts, user_agent: &str) -> String {
    let client = UserAgents::shared().parse(user_agent);
    match (client.browser.as_str(), client.os.as_str()) {
        ("" | "Other", "" | "Other") => t.account_unknown_device().to_string(),
        (browser, "" | "Other") => browser.to_string(),
        ("" | "Other", os) => os.to_string(),
        (browser, os) => t.account_browser_on(browser, os),
    }
}

pub async fn account(State(state): State<AppState>, ctx: PageContext, SignedIn(session): SignedIn) -> Result<Response, WebError> {
    render(&state, &ctx, &session, None).await
}

/// A form of the account page refused: the page again, with the reason in that form, as 400.
pub(super) async fn refused(
    state: &AppState,
    ctx: &PageContext,
    session: &ActiveSession,
    form: &'static str,
    error: passme_core::CoreError,
) -> Result<Response, WebError> {
    let passme_core::CoreError::Input { code, hint } = error else { return Err(error.into()) };
    let message = WebError::bad_request(code).with_hint(hint).message(ctx.t);
    let mut response = render(state, ctx, session, Some((form, message))).await?;
    *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    Ok(response)
}

async fn render(
    state: &AppState,
    ctx: &PageContext,
    session: &ActiveSession,
    problem: Option<(&'static str, String)>,
) -> Result<Response, WebError> {
    let t = ctx.t;
    let Some(account) = state.identity.active_account(&session.account_id).await? else { return Err(WebError::not_found()) };
    let sessions = state
        .identity
        .sessions
        .list(&account.id)
        .await?
        .into_iter()
        .map(|r| SessionLine {
            current: r.id == session.id,
            device: device(t, &r.user_agent),
            network: r.ip_prefix,
            seen: when(r.last_seen_at),
            remembered: r.remembered,
            id: r.id,
        })
        .collect();
    let tokens = state
        .identity
        .api_tokens
        .list(&account.id)
        .await?
        .into_iter()
        .map(|token| TokenLine {
            id: token.id,
            name: token.name,
            created: when(token.created_at),
            used: token.last_used_at.map_or_else(|| "–".into(), when),
        })
        .collect();
    let payment_problem = match &state.billing {
        Some(billing) => billing.summary(&account.id).await.is_ok_and(|s| s.payment_problem),
        None => false,
    };
    let (links, linkable) = linked_accounts(state, t, &account.id).await?;
    let personalisation = state.personalisation.consent(&account.id).await?.map(when);
    let suggestions = state
        .personalisation
        .suggestions(&account.id)
        .await?
        .into_iter()
        .map(|s| SuggestionLine { label: item_label(t, &s.item).to_string(), reason: reason(t, s.because.as_ref(), state), item: s.item })
        .collect();
    let body = AccountPage {
        chrome: Chrome::new(state, ctx, t.account_heading(), true),
        links,
        linkable,
        personalisation,
        suggestions,
        csrf: ctx.csrf_token(state),
        email: account.email,
        payment_problem,
        sessions,
        tokens,
        problem,
    };
    Ok(page(ctx, state, true, &body))
}

async fn linked_accounts(
    state: &AppState,
    t: Texts,
    account_id: &passme_store::AccountId,
) -> Result<(Vec<LinkLine>, Vec<ProviderButton>), WebError> {
    let views = state.linking.links(account_id).await.map_err(crate::routes::links::link_error)?;
    let linkable = state
        .linking
        .providers()
        .filter(|p| !views.iter().any(|v| v.link.provider == p.id()))
        .map(|p| ProviderButton { id: p.id().to_string(), label: t.account_link_with(&p.config.name) })
        .collect();
    let links = views
        .into_iter()
        .map(|v| LinkLine {
            meta: t.account_linked_meta(
                v.link.email.as_deref().unwrap_or("–"),
                when(v.link.linked_at),
                v.link.last_used_at.map_or_else(|| "–".into(), when),
            ),
            needs_consent: v.link.needs_consent_at.is_some(),
            received: v.profile.map(|(fields, at)| {
                let fields = fields.into_iter().map(|(field, value)| (capitalised(claim_label(state, t, &field)), value)).collect();
                (t.account_linked_received(&v.provider_name, when(at)), fields)
            }),
            id: v.link.id,
            provider: v.link.provider,
            provider_name: v.provider_name,
        })
        .collect();
    Ok((links, linkable))
}

/// What the policy calls a profile field in the page's language (the claim's own name for one it
/// does not declare).
fn claim_label<'a>(state: &'a AppState, t: Texts, claim: &'a str) -> &'a str {
    let processor = state.policy.processors.iter().find(|p| p.id.get_ref() == passme_linking::PROCESSOR);
    processor.and_then(|p| p.profile_field(claim)).map_or(claim, |name| name.get(t.lang()))
}

/// `text` with its first letter in upper case, for a label.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The catalogue's name of a suggested item (the item's own id for any other).
fn item_label(t: Texts, item: &str) -> &str {
    match item {
        "plan_pro" => t.account_item_plan_pro(),
        "plan_team" => t.account_item_plan_team(),
        "api_tokens" => t.account_item_api_tokens(),
        "theme_dark" => t.account_item_theme_dark(),
        "text_large" => t.account_item_text_large(),
        "lang_da" => t.account_item_lang_da(),
        other => other,
    }
}

/// The reason shown with a suggestion.
fn reason(t: Texts, because: Option<&Feature>, state: &AppState) -> String {
    match because {
        Some(Feature::Partner { provider, field, value }) => {
            t.account_because_partner(state.linking.provider_name(provider), claim_label(state, t, field), value)
        }
        Some(Feature::Uses { item }) => t.account_because_use(item_label(t, item)),
        None => String::new(),
    }
}
