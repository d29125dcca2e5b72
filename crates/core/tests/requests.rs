//! The register of privacy requests, on both engines: identity verified (signed in or by a mailed
//! link), the one-month deadline and its single two-month extension, closing with an outcome,
//! forged and expired links, and an audit trail.

use std::sync::Arc;

use passme_core::clock::{ManualClock, SharedClock};
use passme_core::housekeeping::Housekeeping;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::jobs::JobQueue;
use passme_core::rights::requests::Requests;
use passme_messages::Lang;
use passme_policy::proves;
use passme_testkit::for_each_engine;
use secrecy::SecretString;

// 2026-12-15 00:00 UTC.
const T0: i64 = 1_797_292_800_000;
const DAY: i64 = 86_400_000;

async fn ola(store: &passme_store::Store, clock: &SharedClock) -> passme_store::AccountId {
    let accounts = Accounts::new(store.clone(), clock.clone());
    let SignUp::Created { account_id } =
        accounts.sign_up("ola@example.com", SecretString::from("correct horse battery staple")).await.expect("sign up")
    else {
        panic!("new")
    };
    account_id
}

#[tokio::test]
async fn requests_are_verified_due_in_a_month_extended_once_and_closed() {
    proves!("retention.rights.requests", "retention.rights.request_text");
    for_each_engine(|store| async move {
        let manual = ManualClock::at(T0);
        let clock: SharedClock = Arc::new(manual.clone());
        let requests = Requests::new(store.clone(), clock.clone());
        let queue = JobQueue::new(store.clone(), clock.clone(), 3);
        let account_id = ola(&store, &clock).await;

        // Signed in: open at once, due a calendar month later (15 January).
        let signed_in = requests.submit_signed_in(&account_id, "access", "What do you hold?").await.expect("submit");
        assert_eq!((signed_in.status.as_str(), signed_in.due_at), ("open", T0 + 31 * DAY));
        assert_eq!(requests.submit_signed_in(&account_id, "astrology", "").await.expect_err("kind").code(), "request_kind_unknown");
        let long = "x".repeat(4_001);
        assert_eq!(requests.submit_signed_in(&account_id, "other", &long).await.expect_err("long").code(), "request_message_too_long");

        // By e-mail, a day later: an unknown address registers nothing; a known one waits for
        // its link.
        manual.advance(DAY);
        requests.submit_by_email("nobody@example.com", "erase", "Delete me", "form", Lang::En, &queue).await.expect("submit");
        assert_eq!(store.job_counts().await.expect("counts").queued, 0, "no mail for an unknown address");
        requests.submit_by_email("Ola@Example.com", "erase", "Delete me", "form", Lang::En, &queue).await.expect("submit");
        assert_eq!(store.job_counts().await.expect("counts").queued, 1);
        assert_eq!(requests.queue().await.expect("queue").len(), 1, "only the verified request is in the queue");
        let waiting = store.privacy_requests_with_status("unverified", 10).await.expect("rows");
        let (address, token) = requests.confirmation(&waiting[0].id).await.expect("mail").expect("token");
        assert_eq!(address, "ola@example.com");

        assert!(requests.confirm(&SecretString::from("forged".to_string())).await.expect("forged").is_none());
        assert!(requests.confirm(&SecretString::from("A".repeat(43))).await.expect("forged").is_none());
        let confirmed = requests.confirm(&token).await.expect("confirm").expect("verified");
        assert_eq!((confirmed.status.as_str(), confirmed.kind.as_str()), ("open", "erase"));
        assert!(requests.confirm(&token).await.expect("again").is_none(), "a link works once");

        // An expired link verifies nothing.
        requests.submit_by_email("ola@example.com", "object", "", "email", Lang::Da, &queue).await.expect("submit");
        let late = store.privacy_requests_with_status("unverified", 10).await.expect("rows");
        let (_, late_token) = requests.confirmation(&late[0].id).await.expect("mail").expect("token");
        manual.advance(25 * 3_600_000);
        assert!(requests.confirm(&late_token).await.expect("late").is_none());

        // The queue: soonest due first; one extension of two months, with a reason.
        let open = requests.queue().await.expect("queue");
        assert_eq!(open.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [signed_in.id.as_str(), confirmed.id.as_str()]);
        assert_eq!(requests.extend(&signed_in.id, " ", "officer").await.expect_err("reason").code(), "request_reason_missing");
        let due = requests.extend(&signed_in.id, "Many archives to search", "officer").await.expect("extend");
        assert_eq!(due, T0 + (31 + 31 + 28) * DAY, "15 January plus two months is 15 March");
        assert_eq!(requests.extend(&signed_in.id, "Again", "officer").await.expect_err("once").code(), "request_not_extendable");

        assert_eq!(requests.close(&confirmed.id, true, "", "officer").await.expect_err("outcome").code(), "request_outcome_missing");
        requests.close(&confirmed.id, true, "Account erased, receipt era_1", "officer").await.expect("close");
        assert_eq!(requests.close(&confirmed.id, true, "again", "officer").await.expect_err("closed").code(), "request_not_open");
        assert_eq!(requests.close("req_nope", true, "x", "officer").await.expect_err("unknown").code(), "request_unknown");
        assert_eq!(requests.of(&account_id).await.expect("mine").len(), 2, "the person sees their verified requests");

        let actions = store.column_text("audit_log", "action").await.expect("audit");
        for action in ["request.received", "request.verified", "request.extended", "request.closed"] {
            assert!(actions.iter().any(|a| a == action), "{action}");
        }

        // Three years after it was closed a request goes, and so does a never-confirmed one; an
        // open one stays whatever its age.
        // A month after it was answered, what the person wrote goes; the register keeps the rest.
        let housekeeping = Housekeeping::new(store.clone(), clock.clone(), passme_policy::builtin()).expect("housekeeping");
        manual.advance(29 * DAY);
        housekeeping.run().await.expect("run");
        assert_eq!(store.privacy_request(&confirmed.id).await.expect("read").expect("row").message, "Delete me");
        manual.advance(2 * DAY);
        housekeeping.run().await.expect("run");
        let answered = store.privacy_request(&confirmed.id).await.expect("read").expect("row");
        assert_eq!((answered.message.as_str(), answered.kind.as_str(), answered.status.as_str()), ("", "erase", "done"));
        let open = store.privacy_request(&signed_in.id).await.expect("read").expect("row");
        assert_eq!(open.message, "What do you hold?", "an open request keeps its text");

        manual.advance(3 * 365 * DAY - 31 * DAY);
        housekeeping.run().await.expect("run");
        assert!(store.privacy_request(&confirmed.id).await.expect("read").is_some(), "not yet three years (a leap day)");
        manual.advance(2 * DAY);
        housekeeping.run().await.expect("run");
        assert!(store.privacy_request(&confirmed.id).await.expect("read").is_none());
        assert!(store.privacy_request(&late[0].id).await.expect("read").is_none(), "never confirmed");
        assert!(store.privacy_request(&signed_in.id).await.expect("read").is_some(), "still open");
    })
    .await;
}

#[tokio::test]
async fn objections_last_as_long_as_the_account() {
    proves!("retention.rights.objections");
    for_each_engine(|store| async move {
        let manual = ManualClock::at(T0);
        let clock: SharedClock = Arc::new(manual.clone());
        let policy = passme_policy::builtin();
        let objections = passme_core::rights::objections::Objections::new(store.clone(), clock.clone());
        let account_id = ola(&store, &clock).await;
        assert_eq!(
            objections.object(policy, &account_id, "develop").await.expect("object"),
            passme_core::rights::objections::Objected::Stopped
        );
        assert!(objections.objects(&account_id, "develop").await.expect("read"));
        store.close_account(&account_id, T0).await.expect("close");
        let housekeeping = Housekeeping::new(store.clone(), clock.clone(), policy).expect("housekeeping");
        manual.advance(29 * DAY);
        housekeeping.run().await.expect("run");
        assert!(objections.objects(&account_id, "develop").await.expect("read"), "kept through the grace period");
        manual.advance(2 * DAY);
        housekeeping.run().await.expect("run");
        assert!(objections.of(&account_id).await.expect("read").is_empty());
    })
    .await;
}
