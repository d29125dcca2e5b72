//! The HTTP skeleton through the real router: health, readiness, metrics, errors, body limits,
//! request ids and security headers, on both engines where storage is involved.

use axum::body::Body;
use axum::http::Request;
use passme_policy::proves;
use passme_testkit::{TestApp, each_engine, sqlite};

const ROUTES: &[&str] = &[
    "/",
    "/privacy",
    "/privacy?lang=en",
    "/cookies",
    "/privacy.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/static/style.css",
];

#[tokio::test]
async fn health_and_readiness_on_both_engines() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let app = TestApp::new(db);
        assert_eq!(app.get("/healthz").await.json()["status"], "ok");
        let ready = app.get("/readyz").await;
        assert_eq!((ready.status.as_u16(), ready.json()["database"].as_str()), (200, Some(engine)));
        app.state.store.close().await;
        let down = app.get("/readyz").await;
        assert_eq!((down.status.as_u16(), down.error_code().as_str()), (503, "database_unavailable"));
        assert_eq!(app.get("/healthz").await.status.as_u16(), 200, "liveness does not depend on the database");
    }
}

#[tokio::test]
async fn every_route_sends_the_security_headers() {
    proves!("security.headers");
    let app = TestApp::new(sqlite().await);
    for path in ROUTES.iter().chain(&["/no-such-page", "/api/v1/nothing"]) {
        let response = app.browse(path).await;
        let csp = response.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{path}: CSP lacks {directive}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(response.header("referrer-policy"), Some("same-origin"), "{path}");
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(response.header("strict-transport-security").is_none(), "{path}: no HSTS without TLS in front");
    }
}

#[tokio::test]
async fn hsts_is_sent_when_tls_is_in_front() {
    proves!("security.transport");
    let app = TestApp::builder(sqlite().await).behind_tls().build();
    for path in ROUTES {
        let hsts = app.get(path).await.header("strict-transport-security").map(str::to_string);
        assert_eq!(hsts.as_deref(), Some("max-age=63072000; includeSubDomains"), "{path}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_stable_error_codes() {
    let app = TestApp::new(sqlite().await);
    let missing = app.get("/api/v1/nothing").await;
    assert_eq!((missing.status.as_u16(), missing.error_code().as_str()), (404, "not_found"));
    assert_eq!(missing.header("content-type"), Some("application/json"));
    let page = app.browse("/no-such-page").await;
    assert_eq!(page.status.as_u16(), 404);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(page.text().contains("Siden findes ikke") && page.text().contains("not_found"), "{}", page.text());
    let wrong_method = app.send(Request::delete("/healthz").body(Body::empty()).expect("request")).await;
    assert_eq!((wrong_method.status.as_u16(), wrong_method.error_code().as_str()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn oversized_malformed_and_mistyped_bodies_are_refused_with_the_error_json() {
    proves!("security.input_limits");
    let app = TestApp::builder(sqlite().await).body_limit(4096).build();
    let valid = r#"{"csp-report":{"violated-directive":"script-src 'self'","blocked-uri":"https://evil.example/x.js?user=42"}}"#;
    assert_eq!(app.post("/api/v1/csp-reports", "application/csp-report", valid).await.status.as_u16(), 204);

    let padded = format!(r#"{{"csp-report":{{"violated-directive":"img-src","blocked-uri":"{}"}}}}"#, "a".repeat(8192));
    let declared = app.post("/api/v1/csp-reports", "application/json", padded.clone()).await;
    assert_eq!((declared.status.as_u16(), declared.error_code().as_str()), (413, "body_too_large"));
    // Without a Content-Length (a streamed body) the limit still holds.
    let stream = futures_stream(padded.into_bytes());
    let streamed =
        app.send(Request::post("/api/v1/csp-reports").header("content-type", "application/json").body(stream).expect("request")).await;
    assert_eq!((streamed.status.as_u16(), streamed.error_code().as_str()), (413, "body_too_large"));

    for (body, code) in [
        ("{not json", "body_invalid_json"),
        ("[]", "body_invalid_json"),
        (r#"{"csp-report":{}}"#, "body_invalid_json"),
        ("\u{0}\u{1}", "body_invalid_json"),
    ] {
        let response = app.post("/api/v1/csp-reports", "application/json", body).await;
        assert_eq!((response.status.as_u16(), response.error_code()), (400, code.to_string()), "{body:?}");
    }
    let bad_directive = app.post("/api/v1/csp-reports", "application/json", r#"{"csp-report":{"violated-directive":"<script>"}}"#).await;
    assert_eq!(bad_directive.error_code(), "csp_report_invalid");
    let mistyped = app.post("/api/v1/csp-reports", "text/plain", valid).await;
    assert_eq!((mistyped.status.as_u16(), mistyped.error_code().as_str()), (415, "unsupported_media_type"));
    assert!(app.get("/metrics").await.text().contains("passme_csp_violations_total{directive=\"script-src\"} 1"));
}

/// A body with no Content-Length, delivered in chunks.
fn futures_stream(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter(items: Vec<Result<Vec<u8>, std::io::Error>>) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_replaced_otherwise() {
    let app = TestApp::new(sqlite().await);
    let with = |id: &str| Request::get("/healthz").header("x-request-id", id).body(Body::empty()).expect("request");
    assert_eq!(app.send(with("abc-123")).await.header("x-request-id"), Some("abc-123"));
    for hostile in ["a b", "<script>", &"x".repeat(65)] {
        let echoed = app.send(with(hostile)).await.header("x-request-id").map(str::to_string).expect("an id");
        assert_ne!(echoed, hostile);
        assert_eq!(echoed.len(), 24);
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = TestApp::new(sqlite().await);
    app.get("/healthz").await;
    app.get("/no/such/thing?token=abc").await;
    let text = app.get("/metrics").await.text();
    assert!(text.contains("passme_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("route=\"unmatched\",status=\"404\""), "{text}");
    assert!(!text.contains("token=abc"), "raw paths never become labels");
    assert!(text.contains("passme_jobs{status=\"queued\"}"), "{text}");
}
