//! Resuming a remembered sign-in. Runs before the handlers: a request with a valid
//! `__Host-remember` cookie and no live session gets a fresh session (marked remembered), which
//! the handler sees as if the browser had sent it; the response carries the new session cookie
//! and the rotated remember cookie.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use passme_core::identity::remember::{self, Remember, Resume};
use passme_core::identity::sessions::Sessions;
use passme_core::mail::Template as Mail;
use passme_policy::Lang;
use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::context::client_ip;
use crate::cookies;
use crate::routes::account::{SESSION_COOKIE, current_session};

/// The request's Cookie header with `name` set to `value` (any earlier value of it dropped).
fn with_cookie(request: &mut Request, name: &str, value: &str) {
    let mut pairs: Vec<String> = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with(&format!("{name}=")))
        .map(str::to_string)
        .collect();
    pairs.push(format!("{name}={value}"));
    request.headers_mut().remove(header::COOKIE);
    if let Ok(joined) = HeaderValue::from_str(&pairs.join("; ")) {
        request.headers_mut().insert(header::COOKIE, joined);
    }
}

pub async fn resume_remembered(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(cookie) = cookies::single(request.headers(), remember::COOKIE).map(str::to_string) else {
        return next.run(request).await;
    };
    if current_session(&state, request.headers()).await.is_some() {
        return next.run(request).await;
    }
    let remember = Remember::new(state.store.clone(), state.clock.clone());
    let mut set_cookies = Vec::new();
    match remember.resume(&SecretString::from(cookie)).await {
        Ok(Resume::Resumed { account_id, new_cookie }) => {
            let ip = client_ip(request.headers(), request.extensions(), &state.trusted_proxies);
            let agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if let Ok((token, _)) = Sessions::new(state.store.clone(), state.clock.clone()).issue_with(&account_id, &agent, ip, true).await
            {
                with_cookie(&mut request, SESSION_COOKIE, token.expose_secret());
                set_cookies.extend(cookies::set(&state.policy, SESSION_COOKIE, token.expose_secret()));
            }
            if let Some(rotated) = new_cookie {
                set_cookies.extend(cookies::set(&state.policy, remember::COOKIE, &rotated));
            }
        }
        Ok(Resume::Stolen { account_id }) => {
            set_cookies.extend(cookies::delete(remember::COOKIE));
            if let Ok(Some(account)) = state.store.account(&account_id).await {
                // In the account's own language when it chose one; Danish, the original, otherwise.
                let lang = state
                    .store
                    .account_prefs(&account_id)
                    .await
                    .ok()
                    .and_then(|(_, l, _)| l.as_deref().and_then(Lang::parse))
                    .unwrap_or(Lang::Da);
                let mailer = state.mailer.clone();
                let link = format!("{}/reset-request", state.base_url);
                tokio::spawn(async move {
                    let _ = mailer.send(&account.email, lang, &Mail::RememberTheft { reset_link: link }).await;
                });
            }
        }
        Ok(Resume::Invalid) => set_cookies.extend(cookies::delete(remember::COOKIE)),
        // Left alone: the browser may already hold the rotated cookie another tab received.
        Ok(Resume::Refused) => {}
        Err(e) => tracing::warn!(error = %e, code = e.code(), "remember-me resume failed"),
    }
    let mut response = next.run(request).await;
    for value in set_cookies {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
