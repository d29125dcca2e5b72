//! Every error code the service can answer with has its own message in both languages. The codes
//! are read from the source, where they are written: the catalogue's fallback (the status's
//! generic text) would hide a forgotten one.

use std::collections::BTreeSet;
use std::path::Path;

use passme_messages::{Lang, TextsOf};

/// Where a stable code is written as a literal: an error built in place, an input refused by core,
/// an event refused by analytics, and the match arms of the `code()` functions.
const CALL_PREFIXES: [&str; 4] = ["bad_request(\"", "input(\"", "code: \"", "refuse(index, \""];

fn codes_in(source: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for prefix in CALL_PREFIXES {
        codes.extend(source.match_indices(prefix).filter_map(|(at, _)| literal_at(&source[at + prefix.len() - 1..])));
    }
    // `WebError::new(StatusCode::X, "code")` and `(StatusCode::X, "code", …)`.
    for (at, _) in source.match_indices("StatusCode::") {
        let rest = &source[at + "StatusCode::".len()..];
        let name_end = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(rest.len());
        if let Some(after) = rest[name_end..].strip_prefix(", ") {
            codes.extend(literal_at(after));
        }
    }
    // The arms of every `fn code(…)`: `Variant => "code"`.
    for (at, _) in source.match_indices("fn code(") {
        let body = &source[at..];
        let end = body.find("\n    }\n").unwrap_or(body.len());
        for (arm, _) in body[..end].match_indices("=> \"") {
            codes.extend(literal_at(&body[arm + 3..end]));
        }
    }
    codes
}

/// The snake_case literal `text` starts with (`"code"`), if it is one.
fn literal_at(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?;
    let word = &inner[..inner.find('"')?];
    let is_code = !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    is_code.then(|| word.to_string())
}

fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            // Unit tests write codes they expect, not ones the service answers with.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            found.push((path.display().to_string(), text));
        }
    }
}

/// Codes that never reach a person: internal failures, answered as `internal_error`, and the
/// payment provider's own codes, answered as `provider_refused`.
const INTERNAL: [&str; 5] = ["billing_config_invalid", "audit_contention", "audit_details_secret", "resource_missing", "invalid_id"];

#[test]
fn every_error_code_has_a_message_in_danish_and_english() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["web", "core", "analytics", "billing"] {
        sources(&root.join(krate).join("src"), &mut files);
    }
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for (path, text) in &files {
        if path.ends_with("config.rs") {
            continue;
        }
        for code in codes_in(text) {
            if INTERNAL.contains(&code.as_str()) || !seen.insert(code.clone()) {
                continue;
            }
            for lang in [Lang::Da, Lang::En] {
                if lang.texts().error(&code).is_none() {
                    missing.push(format!("{code} ({}, from {path})", lang.code()));
                }
            }
        }
    }
    assert!(seen.len() > 40, "the scan finds the codes: {seen:?}");
    assert!(missing.is_empty(), "error codes without a message under [error]:\n{}", missing.join("\n"));
}

#[test]
fn the_scan_sees_each_way_a_code_is_written() {
    let source = r#"
        WebError::bad_request("one_code");
        CoreError::input("two_code");
        CoreError::NotFound { code: "three_code" };
        WebError::new(StatusCode::CONFLICT, "four_code");
        refuse(index, "five_code", "detail");
        pub fn code(&self) -> &'static str {
            match self {
                A => "six_code",
                B => e.code(),
            }
        }
        let label = "Not a code";
    "#;
    let codes: Vec<String> = codes_in(source).into_iter().collect();
    assert_eq!(codes, ["five_code", "four_code", "one_code", "six_code", "three_code", "two_code"]);
}

/// Error pages made by layers (405, 413, 404) and field errors speak the request's language, and a
/// Danish page carries no English sentence.
#[tokio::test]
async fn error_pages_keep_the_requests_language() {
    use axum::body::Body;
    use axum::http::Request;
    let app = passme_testkit::TestApp::builder(passme_testkit::sqlite().await).body_limit(1_024).build();
    let english = [
        "This method is not allowed here.",
        "The request body is too large.",
        "No such page or resource.",
        "Use at least 8 characters.",
        "use at least 8 characters",
    ];
    let page = |method: &str, uri: String, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("accept", "text/html")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", body.len())
            .body(Body::from(body))
            .expect("request")
    };
    for (lang, expected) in [
        ("da", ["Den metode kan ikke bruges her.", "Anmodningen er for stor.", "Siden eller ressourcen findes ikke."]),
        ("en", ["This method is not allowed here.", "The request body is too large.", "No such page or resource."]),
    ] {
        let answers = [
            app.send(page("DELETE", format!("/privacy?lang={lang}"), Vec::new())).await,
            app.send(page("POST", format!("/contact?lang={lang}"), vec![b'a'; 4_096])).await,
            app.send(page("GET", format!("/no-such-page?lang={lang}"), Vec::new())).await,
        ];
        for (answer, (status, text)) in answers.iter().zip([405, 413, 404].into_iter().zip(expected)) {
            let html = answer.text();
            assert_eq!(answer.status.as_u16(), status, "{lang}: {html}");
            assert!(html.contains(&format!("<html lang=\"{lang}\"")), "{status} in {lang}: {html}");
            assert!(html.contains(text), "{status} in {lang} says {text:?}: {html}");
            if lang == "da" {
                for sentence in english {
                    assert!(!html.contains(sentence), "{status}: an English sentence on a Danish page: {sentence}");
                }
            }
        }
        // Without `Accept: text/html` (an API client, curl) the same errors come as JSON, in
        // the same language.
        let json = |method: &str, uri: String, body: Vec<u8>| {
            Request::builder().method(method).uri(uri).header("content-length", body.len()).body(Body::from(body)).expect("request")
        };
        let answers = [
            app.send(json("DELETE", format!("/privacy?lang={lang}"), Vec::new())).await,
            app.send(json("POST", format!("/contact?lang={lang}"), vec![b'a'; 4_096])).await,
        ];
        for (answer, text) in answers.iter().zip(expected) {
            assert_eq!(answer.json()["error"]["message"], text, "{lang}: {}", answer.text());
        }
        let mut browser = passme_testkit::browser::Browser::new(&app);
        let short = browser
            .submit(
                &format!("/signup?lang={lang}"),
                &format!("/signup?lang={lang}"),
                &[("email", "kort@example.com"), ("password", "kort")],
            )
            .await;
        let html = short.text();
        assert_eq!(short.status.as_u16(), 400);
        let wanted = if lang == "da" { "Brug mindst 8 tegn." } else { "Use at least 8 characters." };
        assert!(html.contains(wanted), "{lang}: {html}");
        if lang == "da" {
            for sentence in english {
                assert!(!html.contains(sentence), "an English sentence on the Danish sign-up page: {sentence}");
            }
        }
    }
}
