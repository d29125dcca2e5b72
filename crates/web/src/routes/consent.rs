//! Recording a cookie choice from the consent form (banner or settings page). Works without
//! JavaScript: a plain form POST, answered with a redirect back to where the visitor was.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::consent::{self, Choices, ConsentCookie, ConsentLedger};
use passme_policy::CookieCategory;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::ApiError;
use crate::routes::pages::error_page;
use crate::{cookies, redirect};

/// The version of the banner's wording; recorded with each choice as part of the proof.
pub const BANNER_VERSION: &str = "1";

#[derive(Debug, Deserialize)]
pub struct ConsentFormInput {
    csrf: String,
    next: Option<String>,
    choice: String,
    preferences: Option<String>,
    statistics: Option<String>,
    marketing: Option<String>,
}

fn choices_of(input: &ConsentFormInput) -> Option<Choices> {
    let on = |v: &Option<String>| v.as_deref() == Some("on");
    match input.choice.as_str() {
        "all" => Some(Choices::ALL),
        "none" => Some(Choices::NONE),
        "custom" => {
            Some(Choices { preferences: on(&input.preferences), statistics: on(&input.statistics), marketing: on(&input.marketing) })
        }
        _ => None,
    }
}

pub async fn submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    form: Result<Form<ConsentFormInput>, FormRejection>,
) -> Response {
    let lang = ctx.lang;
    let fail = |status: StatusCode, code: &'static str, message: &str| error_page(&state, lang, &ApiError::new(status, code, message));
    let Ok(Form(input)) = form else {
        return fail(StatusCode::BAD_REQUEST, "form_invalid", lang.pick("Formularen var ufuldstændig.", "The form was incomplete."));
    };
    let explanation = lang.pick(
        "Din browser afviser cookies, så vi kan ikke huske et valg – og vi sætter heller ingen. Alle sider virker stadig.",
        "Your browser refuses cookies, so we cannot remember a choice – and we set none either. Every page still works.",
    );
    if let Some(refused) = super::csrf_refusal(&state, lang, &headers, &input.csrf, ("cookies_refused", explanation)) {
        return refused;
    }
    let Some(choices) = choices_of(&input) else {
        return fail(StatusCode::BAD_REQUEST, "consent_choice_invalid", lang.pick("Ukendt valg.", "Unknown choice."));
    };
    let ledger = ConsentLedger::new(state.store.clone(), state.clock.clone());
    let previous: Option<&ConsentCookie> = ctx.consent.previous();
    let recorded = match ledger
        .record(previous, choices, ctx.account_id.as_deref(), &state.policy.meta.version, BANNER_VERSION, ctx.client_ip)
        .await
    {
        Ok(cookie) => cookie,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", &ApiError::from(e).message),
    };
    let mut response = Redirect::to(&redirect::local_path(input.next.as_deref())).into_response();
    let set = response.headers_mut();
    if let Some(value) = cookies::set(&state.policy, consent::COOKIE_NAME, &recorded.encode()) {
        set.append(header::SET_COOKIE, value);
    }
    // Withdrawing a category removes its cookies now, not at their expiry.
    for category in [CookieCategory::Preferences, CookieCategory::Statistics, CookieCategory::Marketing] {
        if choices.allows(category) {
            continue;
        }
        for name in cookies::of_category(&state.policy, category) {
            if !cookies::values(&headers, name).is_empty()
                && let Some(value) = cookies::delete(name)
            {
                set.append(header::SET_COOKIE, value);
            }
        }
    }
    response
}
