//! Server-rendered pages: landing, privacy policy, cookie settings, error pages. They work
//! without JavaScript and without cookies; the consent banner is a plain form.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use passme_core::consent::{ConsentLedger, ConsentState};
use passme_policy::render::{self, Format, Options};
use passme_policy::{CookieCategory, Lang};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::ApiError;
use crate::{cookies, csrf};

/// Texts and links every page shares.
pub struct Chrome {
    pub lang: &'static str,
    pub title: String,
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub privacy: &'static str,
    pub cookies: &'static str,
    pub account: &'static str,
    pub other_lang: &'static str,
    pub other_lang_label: &'static str,
    pub other_lang_href: String,
    /// The consent banner, while the visitor has not answered under this policy version.
    pub banner: Option<ConsentForm>,
    pub theme: &'static str,
    pub text: &'static str,
    pub preferences: &'static str,
}

/// The consent form: on the banner and on the cookie settings page. Nothing is pre-ticked.
pub struct ConsentForm {
    pub csrf: String,
    pub next: String,
    pub title: &'static str,
    pub text: &'static str,
    pub more: &'static str,
    pub choose_label: &'static str,
    pub necessary_label: &'static str,
    pub necessary_text: String,
    pub categories: Vec<CategoryBox>,
    pub accept: &'static str,
    pub reject: &'static str,
    pub save: &'static str,
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
            csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
            next: ctx.here.clone(),
            title: lang.pick("Vi bruger cookies, hvis du vil", "We use cookies if you want us to"),
            text: if outdated {
                lang.pick(
                    "Vores privatlivspolitik er ændret, så vi spørger igen. Indtil du svarer, bruger vi kun nødvendige cookies.",
                    "Our privacy policy has changed, so we ask again. Until you answer, we use only necessary cookies.",
                )
            } else {
                lang.pick("Nødvendige cookies får tjenesten til at virke. Resten bruger vi kun med dit samtykke – at sige nej er lige så let som at sige ja, og alle sider virker uanset hvad.", "Necessary cookies make the service work. We use the rest only with your consent – saying no is as easy as saying yes, and every page works either way.")
            },
            more: lang.pick("Læs om hver cookie", "Read about each cookie"),
            choose_label: lang.pick("Vælg kategorier", "Choose categories"),
            necessary_label: CookieCategory::Necessary.label(lang),
            necessary_text: describe(CookieCategory::Necessary),
            categories,
            accept: lang.pick("Accepter alle", "Accept all"),
            reject: lang.pick("Afvis alle", "Reject all"),
            save: lang.pick("Gem mine valg", "Save my choices"),
        }
    }
}

impl Chrome {
    /// A page's chrome, with the consent banner when the visitor still has to answer.
    pub fn new(state: &AppState, ctx: &PageContext, title: &str, path: &str, with_banner: bool) -> Chrome {
        let banner = (with_banner && ctx.consent.needs_answer())
            .then(|| ConsentForm::new(state, ctx, matches!(ctx.consent, ConsentState::Outdated(_))));
        Chrome { banner, theme: ctx.prefs.theme.id(), text: ctx.prefs.text.id(), ..Chrome::plain(ctx.lang, title, path) }
    }

    /// Without a banner: error pages and pages that are themselves the consent form.
    pub fn plain(lang: Lang, title: &str, path: &str) -> Chrome {
        let other = match lang {
            Lang::Da => Lang::En,
            Lang::En => Lang::Da,
        };
        Chrome {
            lang: lang.code(),
            title: title.to_string(),
            skip: lang.pick("Gå til indhold", "Skip to content"),
            nav_label: lang.pick("Hovedmenu", "Main menu"),
            privacy: lang.pick("Privatlivspolitik", "Privacy policy"),
            cookies: lang.pick("Cookie-indstillinger", "Cookie settings"),
            account: lang.pick("Konto", "Account"),
            other_lang: other.code(),
            other_lang_label: lang.pick("English", "Dansk"),
            other_lang_href: format!("{path}?lang={}", other.code()),
            banner: None,
            theme: "light",
            text: "normal",
            preferences: lang.pick("Visning", "Display"),
        }
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
    lead: &'static str,
    privacy_hint: &'static str,
    cookies_hint: &'static str,
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
    choice_heading: &'static str,
    status: String,
    form: Option<ConsentForm>,
    history_heading: &'static str,
    history: Vec<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    code_label: &'static str,
    code: &'static str,
    status: u16,
    back: &'static str,
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

pub async fn landing(State(state): State<AppState>, ctx: PageContext) -> Response {
    let lang = ctx.lang;
    let chrome = Chrome::new(&state, &ctx, "PassMe AI", "/", true);
    let has_form = chrome.banner.is_some();
    let body = Landing {
        chrome,
        lead: lang.pick(
            "PassMe AI er en AI-abonnementstjeneste. Her kan du læse præcis, hvilke oplysninger vi behandler, hvorfor og hvor længe – og vælge dine cookies.",
            "PassMe AI is an AI subscription service. Here you can read exactly which information we process, why and for how long – and choose your cookies.",
        ),
        privacy_hint: lang.pick("hvad vi gør med dine oplysninger", "what we do with your information"),
        cookies_hint: lang.pick("hvilke cookies vi bruger, og dit valg", "which cookies we use, and your choice"),
    };
    page(&ctx, &state, has_form, &body)
}

pub async fn privacy(State(state): State<AppState>, Query(query): Query<PageQuery>, ctx: PageContext) -> Response {
    let lang = ctx.lang;
    let show_promises = query.promises.as_deref() == Some("1");
    let doc = render::policy(&state.policy, lang);
    let article = render::write(&doc, Format::Html, Options { show_promises, standalone: false });
    let toggle = if show_promises {
        (format!("/privacy?lang={}", lang.code()), lang.pick("Skjul løfte-id'er", "Hide promise ids"))
    } else {
        (
            format!("/privacy?lang={}&promises=1", lang.code()),
            lang.pick(
                "Vis hvilket løfte (og hvilke tests) der står bag hver sætning",
                "Show which promise (and which tests) stand behind each sentence",
            ),
        )
    };
    let chrome = Chrome::new(&state, &ctx, &doc.title, "/privacy", true);
    let has_form = chrome.banner.is_some();
    page(&ctx, &state, has_form, &Document { chrome, article, promise_toggle: Some(toggle) })
}

pub async fn cookies(State(state): State<AppState>, ctx: PageContext) -> Response {
    let lang = ctx.lang;
    // The policy's own Cookies section, under a lead that says what this page is.
    let section = render::section(&render::policy(&state.policy, lang), "cookies");
    let lead = lang.pick(
        "Her er alle de cookies, tjenesten kan bruge, og hvad der sker, hvis du fravælger dem.",
        "Here is every cookie the service may use, and what happens if you refuse it.",
    );
    let mut nodes = vec![render::Node::Para(vec![render::Span::plain(lead)])];
    nodes.extend(section.nodes);
    let title = lang.pick("Cookie-indstillinger", "Cookie settings");
    let article = render::write(&render::Doc { lang, title: title.into(), nodes }, Format::Html, Options::default());
    let status = match &ctx.consent {
        ConsentState::Unanswered => lang
            .pick(
                "Du har ikke valgt endnu, så vi bruger kun nødvendige cookies.",
                "You have not chosen yet, so we use only necessary cookies.",
            )
            .to_string(),
        ConsentState::Outdated(_) => lang
            .pick(
                "Politikken er ændret siden dit valg; vælg igen. Indtil da bruger vi kun nødvendige cookies.",
                "The policy changed since your choice; please choose again. Until then we use only necessary cookies.",
            )
            .to_string(),
        ConsentState::Current(c) => {
            let allowed: Vec<&str> = [CookieCategory::Preferences, CookieCategory::Statistics, CookieCategory::Marketing]
                .into_iter()
                .filter(|k| c.choices.allows(*k))
                .map(|k| k.label(lang))
                .collect();
            let list = if allowed.is_empty() { lang.pick("kun nødvendige", "necessary only").to_string() } else { allowed.join(", ") };
            format!("{} {list}. {} {}", lang.pick("Dit valg:", "Your choice:"), lang.pick("Samtykke-id:", "Consent id:"), c.id)
        }
    };
    let history = match ctx.consent.previous() {
        Some(c) => ConsentLedger::new(state.store.clone(), state.clock.clone())
            .history(&c.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|row| {
                let when = jiff::Timestamp::from_millisecond(row.at)
                    .map_or_else(|_| row.at.to_string(), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
                format!("{when}: {} {}", row.action.trim_start_matches("consent."), row.details)
            })
            .collect(),
        None => Vec::new(),
    };
    let body = CookiesPage {
        chrome: Chrome::new(&state, &ctx, title, "/cookies", false),
        article,
        choice_heading: lang.pick("Dit valg", "Your choice"),
        status,
        form: Some(ConsentForm::new(&state, &ctx, false)),
        history_heading: lang.pick("Dine registrerede valg (vores bevis)", "Your recorded choices (our proof)"),
        history,
    };
    page(&ctx, &state, true, &body)
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/style.css"),
    )
}

/// The page answering a failed browser request.
pub fn error_page(_state: &AppState, lang: Lang, error: &ApiError) -> Response {
    let heading = match error.status {
        StatusCode::NOT_FOUND => lang.pick("Siden findes ikke", "Page not found"),
        s if s.is_server_error() => lang.pick("Noget gik galt hos os", "Something went wrong on our side"),
        _ => lang.pick("Anmodningen kunne ikke behandles", "The request could not be handled"),
    };
    let mut response = html(&ErrorPage {
        chrome: Chrome::plain(lang, heading, "/"),
        heading,
        message: error.message.clone(),
        code_label: lang.pick("Fejlkode", "Error code"),
        code: error.code,
        status: error.status.as_u16(),
        back: lang.pick("Til forsiden", "Go to the front page"),
    });
    *response.status_mut() = error.status;
    response
}
