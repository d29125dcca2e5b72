//! Server-rendered pages: landing, privacy policy, cookie overview, error pages. They work
//! without JavaScript and without cookies.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use passme_policy::Lang;
use passme_policy::render::{self, Format, Options};
use serde::Deserialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::lang::choose;

/// Texts and links every page shares.
pub struct Chrome {
    pub lang: &'static str,
    pub title: String,
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub privacy: &'static str,
    pub cookies: &'static str,
    pub other_lang: &'static str,
    pub other_lang_label: &'static str,
    pub other_lang_href: String,
}

impl Chrome {
    fn new(lang: Lang, title: &str, path: &str) -> Chrome {
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
            other_lang: other.code(),
            other_lang_label: lang.pick("English", "Dansk"),
            other_lang_href: format!("{path}?lang={}", other.code()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
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

fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub async fn landing(Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = choose(query.lang.as_deref(), &headers);
    html(&Landing {
        chrome: Chrome::new(lang, "PassMe AI", "/"),
        lead: lang.pick("PassMe AI er en AI-abonnementstjeneste. Her kan du læse præcis, hvilke oplysninger vi behandler, hvorfor og hvor længe – og vælge dine cookies.",
            "PassMe AI is an AI subscription service. Here you can read exactly which information we process, why and for how long – and choose your cookies.",
        ),
        privacy_hint: lang.pick("hvad vi gør med dine oplysninger", "what we do with your information"),
        cookies_hint: lang.pick("hvilke cookies vi bruger, og dit valg", "which cookies we use, and your choice"),
    })
}

pub async fn privacy(State(state): State<AppState>, Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = choose(query.lang.as_deref(), &headers);
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
    html(&Document { chrome: Chrome::new(lang, &doc.title, "/privacy"), article, promise_toggle: Some(toggle) })
}

pub async fn cookies(State(state): State<AppState>, Query(query): Query<PageQuery>, headers: HeaderMap) -> Response {
    let lang = choose(query.lang.as_deref(), &headers);
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
    html(&Document { chrome: Chrome::new(lang, title, "/cookies"), article, promise_toggle: None })
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
        chrome: Chrome::new(lang, heading, "/"),
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
