//! The display preferences page: theme, language, text size. Saved on the account when signed in;
//! for signed-out visitors in the `__Host-prefs` cookie, and only with preference consent.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::prefs::{self, Prefs, TextSize, Theme};
use passme_policy::{CookieCategory, Lang};
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::ApiError;
use crate::routes::pages::{Chrome, error_page, page};
use crate::{cookies, csrf};

pub struct Group {
    legend: &'static str,
    name: &'static str,
    options: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "prefs.html")]
struct PrefsPage {
    chrome: Chrome,
    heading: &'static str,
    intro: &'static str,
    note: Option<&'static str>,
    csrf: String,
    groups: Vec<Group>,
    submit: &'static str,
}

pub async fn form(State(state): State<AppState>, ctx: PageContext) -> Response {
    let lang = ctx.lang;
    let p = ctx.prefs;
    let can_store = ctx.account_id.is_some() || ctx.consent.choices().allows(CookieCategory::Preferences);
    let body = PrefsPage {
        chrome: Chrome::new(&state, &ctx, lang.pick("Visning", "Display"), "/preferences", true),
        heading: lang.pick("Visning", "Display"),
        intro: lang.pick("Vælg tema, sprog og tekststørrelse.", "Choose theme, language and text size."),
        note: (!can_store).then(|| {
            lang.pick(
                "Uden konto huskes valget i en præference-cookie, som kræver dit samtykke (se cookie-indstillingerne).",
                "Without an account the choice is kept in a preference cookie, which needs your consent (see the cookie settings).",
            )
        }),
        csrf: csrf::token(state.secrets.master_key(), &ctx.csrf_cookie),
        groups: vec![
            Group {
                legend: lang.pick("Tema", "Theme"),
                name: "theme",
                options: vec![
                    ("light", lang.pick("Lyst", "Light"), p.theme == Theme::Light),
                    ("dark", lang.pick("Mørkt", "Dark"), p.theme == Theme::Dark),
                ],
            },
            Group {
                legend: lang.pick("Sprog", "Language"),
                name: "lang",
                options: vec![
                    ("auto", lang.pick("Som browseren", "As the browser"), p.lang.is_none()),
                    ("da", "Dansk", p.lang == Some(Lang::Da)),
                    ("en", "English", p.lang == Some(Lang::En)),
                ],
            },
            Group {
                legend: lang.pick("Tekststørrelse", "Text size"),
                name: "text",
                options: vec![
                    ("normal", lang.pick("Normal", "Normal"), p.text == TextSize::Normal),
                    ("large", lang.pick("Stor", "Large"), p.text == TextSize::Large),
                ],
            },
        ],
        submit: lang.pick("Gem", "Save"),
    };
    page(&ctx, &state, true, &body)
}

#[derive(Debug, Deserialize)]
pub struct PrefsInput {
    csrf: String,
    theme: String,
    lang: String,
    text: String,
}

pub async fn save(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<PrefsInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let Ok(Form(input)) = form else {
        return error_page(
            &state,
            lang,
            &ApiError::new(StatusCode::BAD_REQUEST, "form_invalid", lang.pick("Formularen var ufuldstændig.", "The form was incomplete.")),
        );
    };
    let explanation =
        lang.pick("Din browser afviser cookies, så valget kan ikke huskes.", "Your browser refuses cookies, so the choice cannot be kept.");
    if let Some(refused) = super::csrf_refusal(&state, lang, &headers, &input.csrf, ("cookies_refused", explanation)) {
        return refused;
    }
    let lang_choice = match input.lang.as_str() {
        "auto" => Some(None),
        code => Lang::parse(code).map(Some),
    };
    let (Some(theme), Some(chosen_lang), Some(text)) = (Theme::parse(&input.theme), lang_choice, TextSize::parse(&input.text)) else {
        return error_page(
            &state,
            lang,
            &ApiError::new(StatusCode::BAD_REQUEST, "preferences_invalid", lang.pick("Ukendt valg.", "Unknown choice.")),
        );
    };
    let prefs = Prefs { theme, lang: chosen_lang, text };
    let mut response = Redirect::to("/preferences").into_response();
    if let Some(account_id) = &ctx.account_id {
        if let Err(e) = state
            .store
            .set_account_prefs(account_id, theme.id(), chosen_lang.map_or("auto", Lang::code), text.id(), state.clock.now_ms())
            .await
        {
            return error_page(&state, lang, &ApiError::from(e));
        }
    } else if ctx.consent.choices().allows(CookieCategory::Preferences) {
        response.headers_mut().extend(cookies::set(&state.policy, prefs::COOKIE, &prefs.encode()).map(|v| (header::SET_COOKIE, v)));
    } else {
        return error_page(
            &state,
            lang,
            &ApiError::new(
                StatusCode::CONFLICT,
                "preferences_need_consent",
                lang.pick(
                    "Uden konto kræver det samtykke til præference-cookies at huske valget.",
                    "Without an account, keeping the choice needs consent to preference cookies.",
                ),
            ),
        );
    }
    response
}
