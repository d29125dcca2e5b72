//! PassMe's own declarations load, and malformed or contradictory declarations are refused with a
//! precise file:line message.

use passme_policy::{Lang, Policy, Sources, load};

fn builtin_files() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policy");
    let sources = Sources::read(&dir).expect("policy folder");
    sources.files.into_iter().map(|f| (f.name.rsplit('/').next().unwrap_or_default().to_string(), f.text)).collect()
}

/// Loads the built-in files with one file's text replaced by `edit(text)`.
fn load_edited(file: &str, edit: impl Fn(&str) -> String) -> Result<Policy, passme_policy::PolicyError> {
    let files: Vec<(String, String)> = builtin_files()
        .into_iter()
        .map(|(n, t)| {
            if n == file {
                let e = edit(&t);
                (n, e)
            } else {
                (n, t)
            }
        })
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    load(Sources::from_strs(&refs))
}

fn line_of(file: &str, needle: &str) -> usize {
    let text = builtin_files().into_iter().find(|(n, _)| n == file).map(|(_, t)| t).unwrap_or_default();
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).expect("needle in file")
}

#[test]
fn passme_declarations_load_and_cover_every_seed_category() {
    let policy = Policy::builtin().unwrap_or_else(|e| panic!("{e}"));
    for category in
        ["account", "consent", "payment", "tracking", "linked", "partner", "support", "messaging", "fraud", "compliance", "rights"]
    {
        assert!(policy.categories.iter().any(|c| c.id.get_ref() == category), "category {category} missing");
    }
    // The seed's tracked items each have a field.
    for field in ["tracking.ip_address", "tracking.network", "tracking.client", "tracking.pages"] {
        assert!(policy.field(field).is_some(), "{field} missing");
    }
    // Every field has exactly one validated retention rule.
    assert_eq!(policy.retention.len(), policy.fields().count());
    let invoices = policy.retention_rule("retention.payment.invoices").expect("invoice rule");
    assert_eq!((invoices.period.years, invoices.trigger), (5, passme_policy::Trigger::FinancialYearEnd));
    for kind in passme_policy::CookieCategory::ALL {
        assert!(policy.cookie_category(kind).is_some());
    }
}

#[test]
fn an_unknown_purpose_is_reported_with_file_and_line() {
    let err = load_edited("10-data.toml", |t| t.replacen("purposes = [\"fraud\", \"secure\"]", "purposes = [\"frod\", \"secure\"]", 1))
        .expect_err("must fail");
    let d = &err.diagnostics[0];
    assert_eq!(d.file, "10-data.toml");
    assert_eq!(d.line, line_of("10-data.toml", "purposes = [\"fraud\", \"secure\"]"));
    assert!(d.message.contains("unknown purpose \"frod\""), "{}", d.message);
}

#[test]
fn a_field_declared_in_two_categories_is_refused() {
    let err = load_edited("10-data.toml", |t| t.replacen("id = \"support.signals\"", "id = \"account.email\"", 1)).expect_err("must fail");
    let message = err.to_string();
    assert!(message.contains("field \"account.email\" is declared twice (first at 10-data.toml:"), "{message}");
    assert!(message.contains(&format!("10-data.toml:{}:", line_of("10-data.toml", "id = \"support.signals\""))), "{message}");
}

#[test]
fn retention_without_an_action_is_refused() {
    let err = load_edited("10-data.toml", |t| {
        t.replacen("period = \"P14D\", trigger = \"job_finished\", action = \"delete\"", "period = \"P14D\", trigger = \"job_finished\"", 1)
    })
    .expect_err("must fail");
    let d = err.diagnostics.iter().find(|d| d.message.contains("no action")).unwrap_or_else(|| panic!("{err}"));
    assert!(d.message.contains("operations.job_payload"), "{}", d.message);
}

#[test]
fn other_contradictions_are_refused() {
    let cases: [(&str, &str, &str, &str); 7] = [
        ("10-data.toml", "action = \"anonymise\", method = \"truncate_ip\"", "action = \"anonymise\"", "anonymise needs a method"),
        (
            "10-data.toml",
            "period = \"P5Y\", trigger = \"financial_year_end\"",
            "period = \"5 years\", trigger = \"financial_year_end\"",
            "invalid period",
        ),
        (
            "10-data.toml",
            "columns = [\"jobs.payload\", \"jobs.last_error\"]",
            "columns = [\"jobs.payload\", \"schema_migrations.name\"]",
            "declared free of personal data",
        ),
        (
            "10-data.toml",
            "columns = [\"jobs.payload\", \"jobs.last_error\"]",
            "columns = [\"jobs.payload\", \"jobs.payload\"]",
            "column \"jobs.payload\" is declared twice",
        ),
        (
            "30-processors.toml",
            "receives = [\"messaging.partner_audience\"]",
            "receives = [\"messaging.partner_audience\", \"tracking.ip_address\"]",
            "for purposes that field is not declared for",
        ),
        ("40-cookies.toml", "category = \"marketing\"\ncapability", "category = \"adverts\"\ncapability", "unknown variant"),
        ("60-text.toml", "promises = [\"cookie.__Host-consent\"]", "promises = [\"cookie.nope\"]", "unknown promise \"cookie.nope\""),
    ];
    for (file, from, to, expected) in cases {
        let err = load_edited(file, |t| {
            assert!(t.contains(from), "fixture text {from:?} not in {file}");
            t.replacen(from, to, 1)
        })
        .expect_err(expected);
        assert!(err.to_string().contains(expected), "expected {expected:?}, got:\n{err}");
        assert!(err.diagnostics.iter().all(|d| d.line > 0), "{err}");
    }
}

#[test]
fn a_syntax_error_points_at_its_line() {
    let err = load(Sources::from_strs(&[("broken.toml", "[meta]\nversion = \"1\"\neffective = \n")])).expect_err("must fail");
    assert_eq!((err.diagnostics[0].file.as_str(), err.diagnostics[0].line), ("broken.toml", 3));
}

#[test]
fn every_text_exists_in_both_languages() {
    let err = load_edited("00-passme.toml", |t| {
        t.replacen(
            "text = { da = \"Behandle transaktioner\", en = \"Process transactions\" }",
            "text = { da = \"Behandle transaktioner\" }",
            1,
        )
    })
    .expect_err("must fail");
    assert!(err.to_string().contains("missing field `en`"), "{err}");
    let _ = Lang::En;
}

#[test]
fn a_personal_table_without_a_deletion_manifest_entry_is_refused() {
    let err = load_edited("20-tables.toml", |t| {
        t.replacen(
            "name = \"billing_invoices\"\npersonal = true\nerasure = \"legal_duty\"\n",
            "name = \"billing_invoices\"\npersonal = true\n",
            1,
        )
    })
    .expect_err("must fail");
    let d = &err.diagnostics[0];
    assert_eq!(d.file, "20-tables.toml");
    assert!(d.message.contains("personal table \"billing_invoices\" does not say how a person's rows leave it"), "{}", d.message);
    let err = load_edited("20-tables.toml", |t| {
        t.replacen(
            "name = \"analytics_rollup\"\npersonal = false\n",
            "name = \"analytics_rollup\"\npersonal = false\nerasure = \"expires\"\n",
            1,
        )
    })
    .expect_err("must fail");
    assert!(err.to_string().contains("needs no erasure entry"), "{err}");
}
