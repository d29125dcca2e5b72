//! The published policy as visitors and clients get it: the Danish page follows the seed, English
//! is available, promise ids can be shown, /privacy.json carries every cookie, /cookies lists them,
//! and the OpenAPI document covers the JSON API.

use passme_testkit::{TestApp, sqlite};

fn seed_paragraphs() -> Vec<String> {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policy/60-text.toml")).expect("declarations");
    seed.lines().filter_map(|l| l.strip_prefix("da = \"")).map(|l| l.trim_end_matches('"').replace("\\\"", "\"")).collect()
}

#[tokio::test]
async fn the_danish_policy_page_carries_the_seed_wording_and_the_concrete_periods() {
    let app = TestApp::new(sqlite().await);
    let page = app.browse("/privacy").await;
    assert_eq!(page.status.as_u16(), 200);
    let html = page.text();
    assert!(html.contains("<html lang=\"da\""));
    for heading in [
        "Betalingsoplysninger",
        "Tjenestesporing via cookies og andre sporingsteknologier",
        "Tredjepartsdata",
        "Informationsbrug",
        "Tredjepartstjenester",
        "Sikkerhed",
        "Dataopbevaring",
        "Cookies",
        "Kontakt os",
    ] {
        assert!(html.contains(&format!(">{heading}</h2>")), "missing section {heading}");
    }
    // The seed's sentences appear verbatim (HTML-escaped quotes aside).
    let seed_start = "Alle finansielle kontooplysninger, der tilføjes til din konto, sendes til vores tredjeparts betalingsudbyder";
    assert!(html.contains(seed_start));
    assert!(html.contains("5 år efter udgangen af regnskabsåret"), "concrete accounting period");
    assert!(html.contains("48 timer efter indsamling"), "concrete IP period");
    assert!(html.contains("Stripe Payments Europe"), "processors listed");
    assert!(html.contains("__Host-remember"), "cookie table");
    assert!(html.contains("Dine rettigheder"), "rights section");
    assert!(!seed_paragraphs().is_empty());
}

#[tokio::test]
async fn english_is_chosen_by_query_or_by_the_browser() {
    let app = TestApp::new(sqlite().await);
    assert!(app.browse("/privacy?lang=en").await.text().contains(">Payment information</h2>"));
    let by_header = app
        .send(
            axum::http::Request::get("/privacy")
                .header("accept-language", "en-GB,en;q=0.9")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert!(by_header.text().contains("<html lang=\"en\""));
    let unknown = app.browse("/privacy?lang=fr").await;
    assert!(unknown.text().contains("<html lang=\"da\""), "unknown languages fall back to Danish");
}

#[tokio::test]
async fn promise_ids_can_be_shown_behind_each_sentence() {
    let app = TestApp::new(sqlite().await);
    let plain = app.browse("/privacy").await.text();
    assert!(plain.contains("data-promise=\"retention.payment.invoices\""), "ids are always in the markup");
    assert!(!plain.contains("<sup class=\"promise\">"));
    let shown = app.browse("/privacy?promises=1").await.text();
    for promise in passme_policy::builtin().promises() {
        let referenced = shown.contains(&format!("<code>{}</code>", promise.id));
        // Every retention rule, cookie, processor and security measure appears in the text.
        if !matches!(promise.kind, passme_policy::PromiseKind::ConsentGate) {
            assert!(referenced, "promise {} is not shown in the rendered policy", promise.id);
        }
    }
    // A promise the code does not keep yet is marked as such, in the page's language; a kept one
    // is not.
    assert!(shown.contains("<sup class=\"promise pending\"><code>consent.advertising</code> afventer</sup>"));
    assert!(
        shown.contains("<sup class=\"promise\"><code>security.staff_access_audited</code></sup>"),
        "kept since support reads are audited"
    );
    assert!(shown.contains("<sup class=\"promise\"><code>retention.payment.invoices</code></sup>"));
    let english = app.browse("/privacy?promises=1&lang=en").await.text();
    assert!(english.contains("<code>consent.advertising</code> pending</sup>"));
    assert!(!plain.contains("afventer"), "only with the promises shown");
}

#[tokio::test]
async fn privacy_json_describes_every_cookie() {
    let app = TestApp::new(sqlite().await);
    let json = app.get("/privacy.json").await.json();
    let cookies = json["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), passme_policy::builtin().cookies.len());
    for cookie in cookies {
        for key in ["name", "category", "lifetime", "purpose"] {
            assert!(!cookie[key].is_null(), "{cookie} lacks {key}");
        }
        assert!(["necessary", "preferences", "statistics", "marketing"].contains(&cookie["category"].as_str().unwrap_or_default()));
    }
    assert_eq!(json["version"], passme_policy::builtin().meta.version);
    let invoices = json["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["fields"].as_array().into_iter().flatten())
        .find(|f| f["id"] == "payment.invoices")
        .expect("invoices");
    assert_eq!(invoices["retention"]["period"], "P5Y", "an ISO 8601 duration, as declared");
    assert_eq!(invoices["retention"]["trigger"], "financial_year_end");
}

#[tokio::test]
async fn the_cookie_page_lists_every_declared_cookie_in_both_languages() {
    let app = TestApp::new(sqlite().await);
    for (lang, heading) in [("da", "Cookie-indstillinger"), ("en", "Cookie settings")] {
        let html = app.browse(&format!("/cookies?lang={lang}")).await.text();
        assert!(html.contains(heading));
        for cookie in &passme_policy::builtin().cookies {
            assert!(html.contains(cookie.name.get_ref().as_str()), "{lang}: {} missing", cookie.name.get_ref());
        }
    }
    let landing = app.browse("/").await.text();
    assert!(landing.contains("href=\"/privacy?lang=da\"") && landing.contains("href=\"/cookies?lang=da\""));
}

#[tokio::test]
async fn the_published_text_is_as_reviewed() {
    let policy = passme_policy::builtin();
    for lang in [passme_policy::Lang::Da, passme_policy::Lang::En] {
        let md = passme_policy::render::write(
            &passme_policy::render::policy(policy, lang),
            passme_policy::render::Format::Markdown,
            Default::default(),
        );
        insta::assert_snapshot!(format!("policy_{}", lang.code()), md);
    }
    let record = passme_policy::render::write(
        &passme_policy::render::record(policy, passme_policy::Lang::Da),
        passme_policy::render::Format::Markdown,
        Default::default(),
    );
    insta::assert_snapshot!("record_da", record);
}

#[tokio::test]
async fn the_openapi_document_covers_the_json_api() {
    let app = TestApp::new(sqlite().await);
    let doc = app.get("/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().expect("paths");
    for path in ["/healthz", "/readyz", "/metrics", "/privacy.json", "/api/v1/csp-reports"] {
        assert!(paths.contains_key(path), "{path} undocumented");
        assert_ne!(app.get(path).await.status.as_u16(), 404, "{path} documented but not served");
    }
    insta::assert_json_snapshot!("openapi", doc);
}
