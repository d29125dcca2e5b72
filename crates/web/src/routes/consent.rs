//! Recording a cookie choice from the consent form (banner or settings page). Works without
//! JavaScript: a plain form POST, answered with a redirect back to where the visitor was.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::consent::{self, Choices};
use passme_policy::CookieCategory;
use serde::Deserialize;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::CsrfForm;
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

crate::csrf_protected!(ConsentFormInput, refused = "cookies_refused_consent");

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
    CsrfForm(input): CsrfForm<ConsentFormInput>,
) -> Result<Response, WebError> {
    let choices = choices_of(&input).ok_or_else(|| WebError::bad_request("consent_choice_invalid"))?;
    let recorded = state
        .consent
        .record(ctx.consent.previous(), choices, ctx.account_id(), &state.policy.meta.version, BANNER_VERSION, ctx.client_ip)
        .await?;
    let mut response = Redirect::to(&with_done(&redirect::local_path(input.next.as_deref()), "consent_saved")).into_response();
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
    Ok(response)
}

/// `path` with `done=code` in its query, replacing an earlier one: the confirmation the page
/// shows once.
pub fn with_done(path: &str, code: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("done=")).collect();
    let done = format!("done={code}");
    pairs.push(&done);
    format!("{base}?{}", pairs.join("&"))
}
