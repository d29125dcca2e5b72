//! A browser as the tests drive one through the real router: it keeps cookies, sends Origin and
//! Host like a same-site form post, and can come from any address (directly or through a proxy).

use axum::body::Body;
use axum::http::Request;

use crate::{SmtpSink, TestApp, TestResponse};

/// A password strong enough for sign-up.
pub const PASSWORD: &str = "korrekt hest batteri hæfteklamme";

/// A browser-ish client: remembers cookies, sends Origin and Host like a same-site form post.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: Vec<(String, String)>,
    /// The TCP peer, as axum's ConnectInfo reports it, and an X-Forwarded-For to send.
    pub peer: std::net::SocketAddr,
    pub forwarded_for: Option<String>,
    /// The User-Agent to send, if any.
    pub user_agent: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser { app, cookies: Vec::new(), peer: "127.0.0.1:50000".parse().expect("addr"), forwarded_for: None, user_agent: None }
    }

    pub fn from(app: &'a TestApp, peer: &str) -> Browser<'a> {
        Browser { peer: format!("{peer}:50000").parse().expect("addr"), ..Browser::new(app) }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    pub fn remember(&mut self, response: &TestResponse) {
        for set in response.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or_default();
            self.cookies.retain(|(n, _)| n != name);
            if !set.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        let mut request = Request::get(path).header("accept", "text/html");
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        let request = request.body(Body::empty()).expect("request");
        let response = self.app.send(request).await;
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        let body: String = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
        let mut request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "passme.test")
            .header("origin", "http://passme.test");
        // A browser that refuses cookies sends no Cookie header at all.
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        if let Some(xff) = &self.forwarded_for {
            request = request.header("x-forwarded-for", xff.as_str());
        }
        if let Some(ua) = &self.user_agent {
            request = request.header("user-agent", ua.as_str());
        }
        let mut request = request.body(Body::from(body)).expect("request");
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        let response = self.app.send(request).await;
        self.remember(&response);
        response
    }

    /// A JSON request from this site's own page (as its script sends one): the cookies, Origin,
    /// and a JSON body.
    pub async fn json(&mut self, method: &str, path: &str, body: &serde_json::Value) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("host", "passme.test")
            .header("origin", "http://passme.test");
        if !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        let mut request = request.body(Body::from(body.to_string())).expect("request");
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        let response = self.app.send(request).await;
        self.remember(&response);
        response
    }

    /// Posts a form to `action` with the CSRF token of the form on `page`, as a person filling it
    /// in there would.
    pub async fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> TestResponse {
        let csrf = self.token(page).await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(action, &fields).await
    }

    /// The CSRF token of the form on `path`.
    pub async fn token(&mut self, path: &str) -> String {
        let html = self.get(path).await.text();
        html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("a form with a token").to_string()
    }
}

pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

pub fn link_token(body: &str) -> String {
    body.split("token=").nth(1).and_then(|s| s.split(['&', '\n', '\r']).next()).expect("a token in the mail").to_string()
}

/// Signs up and verifies an address; returns the browser, signed in.
pub async fn signed_in<'a>(app: &'a TestApp, sink: &SmtpSink, email: &str, seen: usize) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let token = browser.token("/signup").await;
    let response = browser.post("/signup", &[("csrf", &token), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    let mail = app.deliver(sink, seen + 1).await.into_iter().find(|m| m.to == email).expect("verification mail");
    let verify_token = link_token(&mail.body);
    let csrf = browser.token(&format!("/verify?token={verify_token}")).await;
    let verified = browser.post("/verify", &[("csrf", &csrf), ("token", &verify_token)]).await;
    assert_eq!((verified.status.as_u16(), verified.header("location")), (303, Some("/account")), "{}", verified.text());
    browser
}
