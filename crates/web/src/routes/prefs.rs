//! The display preferences page: theme, language, text size. Saved on the account when signed in;
//! for signed-out visitors in the `__Host-prefs` cookie, and only with preference consent, which
//! the form itself can give (so the page is never a dead end).

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::consent::{self, Choices};
use passme_core::prefs::{self, Prefs, TextSize, Theme};
use passme_messages::Lang;
use passme_policy::CookieCategory;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::cookies;
use crate::error::WebError;
use crate::extract::CsrfForm;
use crate::routes::pages::{Chrome, page};

pub struct Group {
    legend: &'static str,
    name: &'static str,
    options: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "prefs.html")]
struct PrefsPage {
    chrome: Chrome,
    /// Signed out without preference consent: the form offers to give it.
    needs_consent: bool,
    /// A save was refused for want of that consent.
    refused: bool,
    csrf: String,
    groups: Vec<Group>,
}

fn prefs_page(state: &AppState, ctx: &PageContext, refused: bool) -> PrefsPage {
    let t = ctx.t;
    let p = ctx.prefs;
    PrefsPage {
        chrome: Chrome::new(state, ctx, t.prefs_heading(), true),
        needs_consent: ctx.session.is_none() && !ctx.consent.choices().allows(CookieCategory::Preferences),
        refused,
        csrf: ctx.csrf_token(state),
        groups: vec![
            Group {
                legend: t.prefs_theme(),
                name: "theme",
                options: vec![("light", t.prefs_light(), p.theme == Theme::Light), ("dark", t.prefs_dark(), p.theme == Theme::Dark)],
            },
            Group {
                legend: t.prefs_language(),
                name: "lang",
                options: vec![
                    ("auto", t.prefs_as_browser(), p.lang.is_none()),
                    ("da", "Dansk", p.lang == Some(Lang::Da)),
                    ("en", "English", p.lang == Some(Lang::En)),
                ],
            },
            Group {
                legend: t.prefs_text_size(),
                name: "text",
                options: vec![
                    ("normal", t.prefs_normal(), p.text == TextSize::Normal),
                    ("large", t.prefs_large(), p.text == TextSize::Large),
                ],
            },
        ],
    }
}

pub async fn form(State(state): State<AppState>, ctx: PageContext) -> Response {
    page(&ctx, &state, true, &prefs_page(&state, &ctx, false))
}

#[derive(Debug, Deserialize)]
pub struct PrefsInput {
    csrf: String,
    theme: String,
    lang: String,
    text: String,
    /// Signed out: "on" gives consent to preference cookies along with the save.
    consent: Option<String>,
}

crate::csrf_protected!(PrefsInput, refused = "cookies_refused_prefs");

pub async fn save(State(state): State<AppState>, ctx: PageContext, CsrfForm(input): CsrfForm<PrefsInput>) -> Result<Response, WebError> {
    let lang_choice = match input.lang.as_str() {
        "auto" => Some(None),
        code => Lang::parse(code).map(Some),
    };
    let (Some(theme), Some(chosen_lang), Some(text)) = (Theme::parse(&input.theme), lang_choice, TextSize::parse(&input.text)) else {
        return Err(WebError::bad_request("preferences_invalid"));
    };
    let prefs = Prefs { theme, lang: chosen_lang, text };
    // The confirmation in the language just chosen.
    let back = format!("/preferences?done=prefs_saved&lang={}", chosen_lang.unwrap_or(ctx.lang).code());
    let mut response = Redirect::to(&back).into_response();
    if let Some(account_id) = ctx.account_id() {
        state
            .store
            .set_account_prefs(account_id, theme.id(), chosen_lang.map_or("auto", Lang::code), text.id(), state.clock.now_ms())
            .await?;
        return Ok(response);
    }
    let mut choices = ctx.consent.choices();
    if !choices.allows(CookieCategory::Preferences) {
        if input.consent.as_deref() != Some("on") {
            let mut refused = page(&ctx, &state, true, &prefs_page(&state, &ctx, true));
            *refused.status_mut() = StatusCode::CONFLICT;
            return Ok(refused);
        }
        // Consent given here, recorded like any other choice.
        choices = Choices { preferences: true, ..choices };
        let recorded = state
            .consent
            .record(
                ctx.consent.previous(),
                choices,
                None,
                &state.policy.meta.version,
                crate::routes::consent::BANNER_VERSION,
                ctx.client_ip,
            )
            .await?;
        response
            .headers_mut()
            .extend(cookies::set(&state.policy, consent::COOKIE_NAME, &recorded.encode()).map(|v| (header::SET_COOKIE, v)));
    }
    response.headers_mut().extend(cookies::set(&state.policy, prefs::COOKIE, &prefs.encode()).map(|v| (header::SET_COOKIE, v)));
    Ok(response)
}
