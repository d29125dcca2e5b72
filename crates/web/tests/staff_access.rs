//! Opening a person's data as staff: a reason is required, each opening is audited with it, each
//! role sees only its part, and the person sees who looked, when and why.

use passme_core::identity::staff::Role;
use passme_store::{AccountId, Store};
use passme_testkit::browser::{Browser, signed_in};
use passme_testkit::people::{account_of, staff_member};
use passme_testkit::{SmtpSink, TestApp, each_engine};

async fn open(staff: &mut Browser<'_>, email: &str, reason: &str) -> passme_testkit::TestResponse {
    let csrf = staff.token("/staff/people").await;
    staff.post("/staff/people", &[("csrf", &csrf), ("email", email), ("reason", reason)]).await
}

async fn reads(store: &Store, id: &AccountId) -> i64 {
    store
        .scalar_i64(&format!("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.person_read' AND subject = 'account:{id}'"))
        .await
        .expect("count")
}

#[tokio::test]
async fn staff_open_a_person_only_with_a_reason_see_only_their_part_and_the_person_sees_who_looked() {
    for db in each_engine().await {
        let sink = SmtpSink::start();
        let app = TestApp::builder(db).smtp(sink.url()).build();
        let store = app.state.store.clone();
        let mut ola = signed_in(&app, &sink, "ola@example.com", 0).await;
        let ola_id = account_of(&store, "ola@example.com").await;
        let mut agent = staff_member(&app, &sink, "agent@passme.test", 1, Role::Support).await;
        let mut boss = staff_member(&app, &sink, "boss@passme.test", 2, Role::Admin).await;
        let mut analyst = staff_member(&app, &sink, "ana@passme.test", 3, Role::Analyst).await;

        // No reason, or a token one: refused, and nothing is shown or recorded.
        for reason in ["", "because", "          x"] {
            let refused = open(&mut agent, "ola@example.com", reason).await;
            assert_eq!(refused.status.as_u16(), 400, "{reason:?}");
            assert!(refused.text().contains("Skriv en begrundelse på 10 til 500 tegn"), "the page says what is missing");
            assert!(!refused.text().contains("Sessions") && !refused.text().contains("Aktive logins"));
        }
        assert_eq!(reads(&store, &ola_id).await, 0);
        assert_eq!(open(&mut agent, "nobody@example.com", "Ticket 42: the person wrote in").await.status.as_u16(), 404);

        // Support, with a reason: the account and its messages, never billing or linked accounts.
        let reason = "Ticket 42: <script>alert(1)</script> cannot sign in";
        let opened = open(&mut agent, "ola@example.com", reason).await;
        assert_eq!(opened.status.as_u16(), 200, "{}", opened.text());
        let page = opened.text();
        assert!(page.contains("id=\"part-account\"") && page.contains("id=\"part-messages\""), "{page}");
        assert!(!page.contains("part-billing") && !page.contains("part-linked_accounts") && !page.contains("part-privacy_requests"));
        // In the staff member's language, not the stored ids.
        assert!(
            page.contains("Drifts- og vedligeholdelsesbeskeder · E-mail") && page.contains("Slået til") && page.contains("aktiv"),
            "{page}"
        );
        assert!(!page.contains("service / email") && !page.contains("verify_address"), "{page}");
        assert_eq!(reads(&store, &ola_id).await, 1);
        // Admins see billing and linked accounts too; analysts may not open a person at all.
        let page = open(&mut boss, "ola@example.com", "Checking a refund the person asked for").await.text();
        assert!(page.contains("id=\"part-billing\"") && page.contains("id=\"part-linked_accounts\""), "{page}");
        let csrf = analyst.token("/account").await;
        let forbidden =
            analyst.post("/staff/people", &[("csrf", &csrf), ("email", "ola@example.com"), ("reason", "Curious about this person")]).await;
        assert_eq!(forbidden.status.as_u16(), 403);
        assert_eq!(analyst.get("/staff/people").await.status.as_u16(), 403);
        assert_eq!(ola.get("/staff/people").await.status.as_u16(), 403, "not staff");
        assert_eq!(reads(&store, &ola_id).await, 2);

        // The person sees each opening, its role and reason (escaped), on their privacy page.
        let centre = ola.get("/account/privacy?lang=en").await.text();
        assert!(centre.contains("Who at PassMe has looked at your data"), "{centre}");
        assert!(centre.contains("customer support") && centre.contains("Ticket 42: &#60;script&#62;"), "{centre}");
        assert!(!centre.contains("<script>alert(1)</script>"));
        assert!(centre.contains("administrator") && centre.contains("Checking a refund the person asked for"));
        // And in their own data export.
        let export = passme_core::rights::access::Export::of(&store, &ola_id, passme_core::clock::system().now_ms()).await.expect("export");
        let audited = export
            .tables
            .get("audit_log")
            .map_or(0, |rows| rows.iter().filter(|r| r.get("action").and_then(|a| a.as_deref()) == Some("staff.person_read")).count());
        assert_eq!(audited, 2);
    }
}
