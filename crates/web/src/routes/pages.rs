//! Server-rendered pages: landing, privacy policy, cookie settings, error pages, and the chrome
//! every page shares. They work without JavaScript and without cookies; the consent banner is a
//! plain form. Every word comes from the message catalogue in the visitor's language.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use passme_core::consent::{ConsentAction, ConsentState};
use passme_core::promotions::{self, Campaign, Promotion};
use passme_messages::{Lang, Texts};
use passme_policy::CookieCategory;
use passme_policy::render::{self, Format, Options};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::{cookies, csrf};

/// What every page shares: the catalogue, the header's links, the banner, the visitor's display
/// preferences and a confirmation of what the visitor just did (`?done=`).
pub struct Chrome {
    pub t: Texts,
    pub lang: &'static str,
    /// Empty on the front page, whose title is the service's name alone.
    pub title: String,
    pub other_lang: &'static str,
    pub other_lang_href: String,
    /// The consent banner, while the visitor has not answered under this policy version.
    pub banner: Option<ConsentForm>,
    pub theme: &'static str,
    pub text: &'static str,
    pub signed_in: bool,
    /// The staff page this visitor may open, for the header.
    pub staff_home: Option<&'static str>,
    /// The confirmation of the action that led here.
    pub done: Option<&'static str>,
}

/// The consent form: on the banner and on the cookie settings page. Nothing is pre-ticked.
pub struct ConsentForm {
    pub csrf: String,
    pub next: String,
    pub outdated: bool,
    /// On the banner: refuse and accept first, the categories folded away, so that both answers
    /// are on a phone's first screen.
    pub compact: bool,
    pub necessary_label: &'static str,
    pub necessary_text: String,
    pub categories: Vec<CategoryBox>,
}

pub struct CategoryBox {
    pub id: &'static str,
    pub label: &'static str,
    pub description: String,
    pub checked: bool,
}

impl ConsentForm {
    pub fn new(state: &AppState, ctx: &PageContext, outdated: bool) -> ConsentForm {
        let lang = ctx.lang;
        let policy = &state.policy;
        let describe = |c: CookieCategory| policy.cookie_category(c).map_or_else(String::new, |d| d.description.get(lang).to_string());
        let current = ctx.consent.choices();
        let categories = [CookieCategory::Preferences, CookieCategory::Statistics, CookieCategory::Marketing]
            .into_iter()
            .map(|c| CategoryBox { id: c.id(), label: c.label(lang), description: describe(c), checked: current.allows(c) })
            .collect();
        ConsentForm {
            csrf: ctx.csrf_token(state),
            next: ctx.here.clone(),
            outdated,
            compact: false,
            necessary_label: CookieCategory::Necessary.label(lang),
            necessary_text: describe(CookieCategory::Necessary),
            categories,
        }
    }
}

impl Chrome {
    /// A page's chrome, with the consent banner when the visitor still has to answer.
    pub fn new(state: &AppState, ctx: &PageContext, title: &str, with_banner: bool) -> Chrome {
        let banner = (with_banner && ctx.consent.needs_answer())
            .then(|| ConsentForm { compact: true, ..ConsentForm::new(state, ctx, matches!(ctx.consent, ConsentState::Outdated(_))) });
        let path = ctx.here.split('?').next().unwrap_or("/");
        let done =
            ctx.here.split_once('?').and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("done="))).and_then(|c| ctx.t.done(c));
        Chrome {
            banner,
            theme: ctx.prefs.theme.id(),
            text: ctx.prefs.text.id(),
            signed_in: ctx.session.is_some(),
            staff_home: ctx.staff_home,
            done,
            ..Chrome::plain(ctx.t, title, path)
        }
    }

    /// Without a banner or a visitor: error pages.
    pub fn plain(t: Texts, title: &str, path: &str) -> Chrome {
        let other = match t.lang() {
            Lang::Da => Lang::En,
            Lang::En => Lang::Da,
        };
        Chrome {
            t,
            lang: t.lang().code(),
            title: title.to_string(),
            other_lang: other.code(),
            other_lang_href: format!("{path}?lang={}", other.code()),
            banner: None,
            theme: "light",
            text: "normal",
            signed_in: false,
            staff_home: None,
            done: None,
        }
    }

    pub fn has_form(&self) -> bool {
        self.banner.is_some()
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    promises: Option<String>,
}

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    chrome: Chrome,
    promo: Promotion,
}

#[derive(Template)]
#[template(path = "document.html")]
struct Document {
    chrome: Chrome,
    article: String,
    promise_toggle: Option<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "cookies.html")]
struct CookiesPage {
    chrome: Chrome,
    article: String,
    status: String,
    /// The browser asks not to be tracked (Do Not Track, Global Privacy Control).
    tracking_refused: bool,
    form: Option<ConsentForm>,
    history: Vec<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    code: &'static str,
    status: u16,
}

/// A rendered page; sets the visitor's CSRF cookie when the page shows a form and they have none.
pub fn page(ctx: &PageContext, state: &AppState, has_form: bool, template: &impl Template) -> Response {
    let mut response = html(template);
    if has_form
        && ctx.new_csrf
        && let Some(value) = cookies::set(&state.policy, csrf::COOKIE, &ctx.csrf_cookie)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LandingQuery {
    utm_campaign: Option<String>,
}

/// The landing page, with its promotion: tailored to the campaign that brought the visitor only
/// with marketing consent, which is also the only case the campaign cookie is set (or kept).
pub async fn landing(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: axum::http::HeaderMap,
    Query(query): Query<LandingQuery>,
) -> Response {
    let consent = ctx.consent.choices().allows(CookieCategory::Marketing);
    let stored = cookies::single(&headers, promotions::COOKIE);
    let arrived = query.utm_campaign.as_deref().and_then(Campaign::parse);
    let campaign = arrived.clone().or_else(|| stored.and_then(Campaign::parse));
    let promo = Promotion::choose(consent, campaign.as_ref());
    let chrome = Chrome::new(&state, &ctx, "", true);
    let has_form = chrome.has_form();
    let mut response = page(&ctx, &state, has_form, &Landing { chrome, promo });
    let set = match (consent, &arrived, stored) {
        (true, Some(campaign), _) if stored != Some(campaign.as_str()) => {
            cookies::set(&state.policy, promotions::COOKIE, campaign.as_str())
        }
        (false, _, Some(_)) => cookies::delete(promotions::COOKIE),
        _ => None,
    };
    if let Some(value) = set {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    response
}

pub async fn privacy(State(state): State<AppState>, Query(query): Query<PageQuery>, ctx: PageContext) -> Response {
    let (lang, t) = (ctx.lang, ctx.t);
    let show_promises = query.promises.as_deref() == Some("1");
    let doc = render::policy(&state.policy, lang);
    // Marked so that nobody reads a promise of a feature still to come as a fact.
    let pending: Vec<String> =
        if show_promises { passme_core::pending_promises(&state.policy).into_iter().map(|(p, _)| p.id).collect() } else { Vec::new() };
    let article = render::write(&doc, Format::Html, Options { show_promises, standalone: false, pending: &pending });
    let toggle = if show_promises {
        (format!("/privacy?lang={}", lang.code()), t.privacy_hide_promises())
    } else {
        (format!("/privacy?lang={}&promises=1", lang.code()), t.privacy_show_promises())
    };
    let chrome = Chrome::new(&state, &ctx, &doc.title, true);
    let has_form = chrome.has_form();
    page(&ctx, &state, has_form, &Document { chrome, article, promise_toggle: Some(toggle) })
}

pub async fn cookies(State(state): State<AppState>, ctx: PageContext, headers: axum::http::HeaderMap) -> Response {
    let (lang, t) = (ctx.lang, ctx.t);
    // The policy's own Cookies section, under a lead that says what this page is.
    let section = render::section(&render::policy(&state.policy, lang), "cookies");
    let mut nodes = vec![render::Node::Para(vec![render::Span::plain(t.consent_page_lead())])];
    nodes.extend(section.nodes);
    let title = t.consent_page_title();
    let article = render::write(&render::Doc { lang, title: title.into(), nodes }, Format::Html, Options::default());
    let allowed = |choices: passme_core::consent::Choices| {
        let names: Vec<&str> = [CookieCategory::Preferences, CookieCategory::Statistics, CookieCategory::Marketing]
            .into_iter()
            .filter(|k| choices.allows(*k))
            .map(|k| k.label(lang))
            .collect();
        if names.is_empty() { t.consent_necessary_only().to_string() } else { names.join(", ") }
    };
    let status = match &ctx.consent {
        ConsentState::Unanswered => t.consent_unanswered().to_string(),
        ConsentState::Outdated(_) => t.consent_outdated().to_string(),
        ConsentState::Current(c) => t.consent_chosen(allowed(c.choices), &c.id),
    };
    let history = match ctx.consent.previous() {
        Some(c) => state
            .consent
            .history(&c.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|record| {
                let action = match record.action {
                    ConsentAction::Given => t.consent_given(),
                    ConsentAction::Changed => t.consent_changed(),
                    ConsentAction::Withdrawn => t.consent_withdrawn(),
                };
                t.consent_record(when(record.at), action, allowed(record.choices), record.policy_version, record.network)
            })
            .collect(),
        None => Vec::new(),
    };
    let body = CookiesPage {
        chrome: Chrome::new(&state, &ctx, title, false),
        article,
        status,
        tracking_refused: crate::routes::tracking::refuses_tracking(&headers),
        form: Some(ConsentForm::new(&state, &ctx, false)),
        history,
    };
    page(&ctx, &state, true, &body)
}

/// A time as people read it: `2026-12-01 09:30 UTC`.
pub fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/style.css"),
    )
}

pub async fn favicon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=86400")], include_str!("../../static/favicon.svg"))
}

/// The page answering a failed browser request, in the visitor's language.
pub fn error_page(t: Texts, error: &WebError) -> Response {
    let heading = match error.status {
        StatusCode::NOT_FOUND => t.error_page_not_found(),
        s if s.is_server_error() => t.error_page_server(),
        _ => t.error_page_refused(),
    };
    let mut response = html(&ErrorPage {
        chrome: Chrome::plain(t, heading, "/"),
        heading,
        message: error.message(t),
        code: error.code,
        status: error.status.as_u16(),
    });
    *response.status_mut() = error.status;
    error.add_headers(&mut response);
    response
}
