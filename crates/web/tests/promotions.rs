//! In-app promotions: tailored by the `__Host-pm_ads` cookie only with marketing consent; without
//! the cookie or without consent every visitor sees the same untailored promotion.

use axum::body::Body;
use axum::http::Request;
use passme_core::consent::{Choices, ConsentCookie};
use passme_policy::proves;
use passme_testkit::{TestApp, TestResponse, sqlite};

fn consent(marketing: bool) -> String {
    let choices = Choices { marketing, ..Choices::NONE };
    let version = passme_policy::builtin().meta.version.clone();
    format!("__Host-consent={}", ConsentCookie { id: "AbCdEfGhIjKlMnOpQrStUv".into(), policy_version: version, choices }.encode())
}

async fn visit(app: &TestApp, path: &str, cookies: &[String]) -> TestResponse {
    let mut request = Request::get(path).header("accept", "text/html");
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    app.send(request.body(Body::empty()).expect("request")).await
}

fn ads_cookie(response: &TestResponse) -> Option<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-pm_ads="))
        .map(str::to_string)
}

fn promotion(response: &TestResponse) -> String {
    let html = response.text();
    html.split("data-promo=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("a promotion on the page: {html}"))
        .to_string()
}

#[tokio::test]
async fn with_marketing_consent_the_campaign_cookie_tailors_the_promotion() {
    proves!("cookie.__Host-pm_ads");
    let app = TestApp::new(sqlite().await);
    let landed = visit(&app, "/?utm_campaign=team-launch", &[consent(true)]).await;
    let set = ads_cookie(&landed).expect("the campaign is remembered");
    assert!(set.starts_with("__Host-pm_ads=team-launch;"), "{set}");
    assert!(set.contains("Secure") && set.contains("HttpOnly") && set.contains("Max-Age=7776000"), "90 days, as declared: {set}");
    assert_eq!(promotion(&landed), "team");
    // Later visits are tailored by the cookie.
    let later = visit(&app, "/", &[consent(true), "__Host-pm_ads=team-launch".into()]).await;
    assert_eq!(promotion(&later), "team");
    assert!(ads_cookie(&later).is_none(), "nothing to set again");
    let developers = visit(&app, "/", &[consent(true), "__Host-pm_ads=dev-newsletter".into()]).await;
    assert_eq!(promotion(&developers), "developers");
    // Consent without a campaign: the general promotion.
    assert_eq!(promotion(&visit(&app, "/", &[consent(true)]).await), "general");
    // A value that is not a campaign id is ignored, not stored.
    let junk = visit(&app, "/?utm_campaign=%3Cscript%3E", &[consent(true)]).await;
    assert!(ads_cookie(&junk).is_none());
    assert_eq!(promotion(&junk), "general");
}

#[tokio::test]
async fn without_consent_or_cookie_everyone_sees_the_same_untailored_promotion() {
    let app = TestApp::new(sqlite().await);
    for cookies in [vec![], vec![consent(false)]] {
        let landed = visit(&app, "/?utm_campaign=team-launch", &cookies).await;
        assert!(ads_cookie(&landed).is_none(), "never set without marketing consent");
        assert_eq!(promotion(&landed), "general");
    }
    // A campaign cookie left from before consent was withdrawn tailors nothing and is removed.
    let stale = visit(&app, "/", &[consent(false), "__Host-pm_ads=team-launch".into()]).await;
    assert_eq!(promotion(&stale), "general");
    let removal = ads_cookie(&stale).expect("the stale cookie is deleted");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    // Cookies refused altogether: the same page for everyone.
    let a = visit(&app, "/", &[]).await.text();
    let b = visit(&app, "/?utm_campaign=dev-newsletter", &[]).await.text();
    assert_eq!(promotion(&visit(&app, "/", &[]).await), "general");
    assert_eq!(a.split("data-promo").nth(1), b.split("data-promo").nth(1), "the same promotion markup");
}
