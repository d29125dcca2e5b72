//! Payments through the provider, against real peers: `localstripe` (a stateful Stripe emulator)
//! behind a recording proxy, PassMe's real router and job worker, on both engines. What
//! localstripe cannot send (Checkout, portal and `invoice.paid` / `subscription.updated` events) is
//! signed exactly as the provider signs it and delivered through the same endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::sessions::Sessions;
use passme_policy::proves;
use passme_testkit::stripe::{self, Fault, LocalStripe, PRO_PRICE, ProviderFront, TEAM_PRICE, signed};
use passme_testkit::{PASSWORD, TestApp, TestDb, TestResponse, each_engine, sqlite};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const CSRF_COOKIE: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE";
const T0: i64 = 1_795_000_000;

/// The peers of one test: the emulator, the proxy in front of it, and the app using the proxy.
struct Billed {
    stripe: LocalStripe,
    front: ProviderFront,
    app: TestApp,
}

async fn billed(db: TestDb) -> Billed {
    let stripe = LocalStripe::start().await;
    let front = ProviderFront::start(&stripe.url()).await;
    let clock = passme_core::clock::system();
    let billing = stripe::billing(&db.store, &clock, &front.url());
    let app = TestApp::builder(db).clock(clock).billing(billing).build();
    Billed { stripe, front, app }
}

/// A signed-in member: account id and the cookie header of a browser session.
struct Member {
    id: passme_store::AccountId,
    cookie: String,
}

async fn member(app: &TestApp, email: &str) -> Member {
    let store = app.state.store.clone();
    let clock = app.state.clock.clone();
    let SignUp::Created { account_id } =
        Accounts::new(store.clone(), clock.clone()).sign_up(email, SecretString::from(PASSWORD)).await.expect("sign up")
    else {
        panic!("{email} existed")
    };
    let (token, _) = Sessions::new(store, clock).issue(&account_id, "test", "127.0.0.1".parse().expect("ip")).await.expect("session");
    Member { id: account_id, cookie: format!("__Host-session={}; __Host-csrf={CSRF_COOKIE}", token.expose_secret()) }
}

fn csrf() -> String {
    passme_web::csrf::token(&[7; 32], CSRF_COOKIE)
}

async fn browse(app: &TestApp, who: &Member, path: &str) -> TestResponse {
    app.send(Request::get(path).header("accept", "text/html").header("cookie", &who.cookie).body(Body::empty()).expect("request")).await
}

async fn submit(app: &TestApp, who: &Member, path: &str, form: &str) -> TestResponse {
    app.send(
        Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "passme.test")
            .header("origin", "http://passme.test")
            .header("accept", "text/html")
            .header("cookie", &who.cookie)
            .body(Body::from(form.to_string()))
            .expect("request"),
    )
    .await
}

async fn entitlements(app: &TestApp, who: &Member) -> Value {
    let response = app.send(Request::get("/api/v1/entitlements").header("cookie", &who.cookie).body(Body::empty()).expect("request")).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    response.json()
}

async fn deliver(app: &TestApp, body: &str, signature: &str) -> TestResponse {
    app.send(
        Request::post("/webhooks/stripe")
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await
}

/// Delivers a signed event and runs the jobs; returns the outcome PassMe recorded.
async fn event(app: &TestApp, id: &str, kind: &str, created: i64, object: Value) -> String {
    let (body, signature) = signed(id, kind, created, object);
    let response = deliver(app, &body, &signature).await;
    assert_eq!(response.status.as_u16(), 200, "{kind}: {}", response.text());
    app.run_jobs().await;
    app.state.store.billing_event_outcome(id).await.expect("outcome").flatten().unwrap_or_default()
}

fn subscription_object(id: &str, customer: &str, price: &str, status: &str, period_end: i64, cancel: bool) -> Value {
    json!({ "id": id, "object": "subscription", "customer": customer, "status": status, "cancel_at_period_end": cancel,
        "current_period_end": period_end, "items": { "object": "list", "data": [ { "id": "si_1", "price": { "id": price } } ] } })
}

fn invoice_object(id: &str, customer: &str, subscription: &str, status: &str, total: i64) -> Value {
    json!({ "id": id, "object": "invoice", "customer": customer, "subscription": subscription, "status": status,
        "number": format!("PM-{id}"), "total": total, "currency": "eur", "created": T0 })
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.state.store.scalar_i64(&format!("SELECT COUNT(*) AS n FROM {table}")).await.expect("count")
}

/// Waits until localstripe's webhooks of the given types have been received.
async fn await_events(app: &TestApp, types: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut missing = Vec::new();
        for kind in types {
            let n = app
                .state
                .store
                .scalar_i64(&format!("SELECT COUNT(*) AS n FROM billing_events WHERE event_type = '{kind}'"))
                .await
                .expect("count");
            if n == 0 {
                missing.push(*kind);
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no {missing:?} webhook from localstripe");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_subscription_at_the_provider_grants_access_through_signed_webhooks_and_cancellation_ends_it() {
    proves!("processor.stripe");
    for db in each_engine().await {
        let engine = db.engine_name();
        let Billed { stripe, front, app } = billed(db).await;
        let addr = app.serve().await;
        stripe.register_webhook(&format!("http://{addr}/webhooks/stripe")).await;
        let ann = member(&app, "ann@example.test").await;
        let billing = app.state.billing.clone().expect("billing on");

        let customer = billing.ensure_customer(&ann.id).await.expect("customer");
        let created = front.requests_to("POST", "/v1/customers");
        assert_eq!(created.len(), 1, "{engine}");
        assert_eq!(created[0].idempotency_key.as_deref(), Some(format!("passme-customer-{}", ann.id).as_str()));
        assert_eq!(created[0].field("email"), Some("ann@example.test"));
        assert_eq!(created[0].authorization.as_deref(), Some(format!("Bearer {}", stripe::SECRET_KEY).as_str()));
        assert_eq!(billing.ensure_customer(&ann.id).await.expect("again"), customer, "one customer per account");
        assert_eq!(front.requests_to("POST", "/v1/customers").len(), 1);

        let subscription = stripe.subscribe_with_card(&customer, "4242424242424242", PRO_PRICE).await.expect("subscribed");
        assert_eq!(subscription["status"], "active");
        // localstripe sends the invoice's events before the subscription's.
        await_events(&app, &["invoice.payment_succeeded", "customer.subscription.created"]).await;
        let pass = app.run_jobs().await;
        assert_eq!(pass.dead, 0, "{engine}");
        let granted = entitlements(&app, &ann).await;
        assert_eq!(granted["access"], true, "{engine}: {granted}");
        assert_eq!(granted["plan"], "pro");
        assert_eq!(granted["status"], "active");
        assert_eq!(granted["entitlements"], json!(["chat", "priority"]));
        assert!(granted["current_period_end"].as_i64().unwrap_or(0) > T0);
        let invoices = app.state.store.billing_invoices_of(&ann.id, 10).await.expect("invoices");
        assert_eq!(invoices.len(), 1, "{engine}");
        assert_eq!((invoices[0].status.as_str(), invoices[0].amount, invoices[0].currency.as_str()), ("paid", 1500, "eur"));
        let page = browse(&app, &ann, "/billing?lang=en").await.text();
        assert!(page.contains("Pro (monthly)") && page.contains("Active") && page.contains("15.00 EUR"), "{page}");
        // Only the fields PassMe reads were queued: not the address the provider's objects carry.
        assert!(count(&app, "jobs").await > 0);
        let leaked = app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM jobs WHERE payload LIKE '%ann@example.test%'").await.expect("n");
        assert_eq!(leaked, 0, "{engine}: an e-mail address in a queued event");
        assert!(browse(&app, &ann, "/billing?lang=da").await.text().contains("15,00 EUR"));

        // Cancelled at the provider (by support, or the portal): the deletion event ends access.
        let sub_id = subscription["id"].as_str().expect("id");
        stripe.delete(&format!("/v1/subscriptions/{sub_id}")).await;
        await_events(&app, &["customer.subscription.deleted"]).await;
        app.run_jobs().await;
        let ended = entitlements(&app, &ann).await;
        assert_eq!((ended["access"].clone(), ended["status"].clone()), (json!(false), json!("canceled")), "{engine}: {ended}");
        assert_eq!(ended["entitlements"], json!([]));
        let stored = app.state.store.billing_subscription(sub_id).await.expect("row").expect("kept");
        assert!(stored.ended_at.is_some(), "the end is recorded for the retention rule");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_cards_leave_no_access() {
    for db in each_engine().await {
        let Billed { stripe, front: _front, app } = billed(db).await;
        let addr = app.serve().await;
        stripe.register_webhook(&format!("http://{addr}/webhooks/stripe")).await;
        let bob = member(&app, "bob@example.test").await;
        let customer = app.state.billing.clone().expect("billing").ensure_customer(&bob.id).await.expect("customer");

        let declined = stripe.subscribe_with_card(&customer, "4000000000000002", PRO_PRICE).await.expect_err("declined at attach");
        assert_eq!(declined["error"]["code"], "card_declined");
        let charge_declined = stripe.subscribe_with_card(&customer, "4000000000000341", PRO_PRICE).await.expect("subscription created");
        assert_eq!(charge_declined["status"], "incomplete");
        await_events(&app, &["customer.subscription.created"]).await;
        app.run_jobs().await;
        let e = entitlements(&app, &bob).await;
        assert_eq!(
            (e["access"].clone(), e["status"].clone(), e["payment_problem"].clone()),
            (json!(false), json!("incomplete"), json!(true)),
            "{e}"
        );
        let page = browse(&app, &bob, "/billing?lang=en").await.text();
        assert!(page.contains("Your latest payment failed"), "a clear notice: {page}");
        assert!(page.contains("Choose a plan"), "subscribing is offered again");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_and_portal_are_the_providers_pages_and_access_waits_for_the_signed_completion() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let Billed { stripe, front, app } = billed(db).await;
        let cy = member(&app, "cy@example.test").await;

        let page = browse(&app, &cy, "/billing?lang=en").await;
        assert_eq!(page.status.as_u16(), 200);
        assert!(page.text().contains("Pro (monthly)") && page.text().contains("Team (yearly)"), "{}", page.text());
        assert!(page.text().contains("your card details never reach us"));

        let redirect = submit(&app, &cy, "/billing/checkout", &format!("csrf={}&plan=pro", csrf())).await;
        assert_eq!(redirect.status.as_u16(), 303, "{engine}: {}", redirect.text());
        assert!(redirect.header("location").is_some_and(|l| l.starts_with("https://checkout.stripe.test/c/pay/cs_test_")));
        let sessions = front.requests_to("POST", "/v1/checkout/sessions");
        assert_eq!(sessions.len(), 1);
        let customer = app.state.store.billing_customer_of(&cy.id).await.expect("lookup").expect("customer made first");
        let s = &sessions[0];
        assert_eq!(s.field("mode"), Some("subscription"));
        assert_eq!(s.field("customer"), Some(customer.as_str()), "the customer is bound on the server");
        assert_eq!(s.field("client_reference_id"), Some(cy.id.as_str()));
        assert_eq!(s.field("line_items[0][price]"), Some(PRO_PRICE));
        assert_eq!(s.field("success_url"), Some("http://passme.test/billing?checkout=done"));
        assert!(s.idempotency_key.as_deref().is_some_and(|k| k.starts_with("passme-checkout-")));
        // Every POST carries a key.
        assert!(front.requests().iter().filter(|r| r.method == "POST").all(|r| r.idempotency_key.is_some()));

        // Coming back to the success URL without paying grants nothing.
        let back = browse(&app, &cy, "/billing?checkout=done&lang=en").await.text();
        assert!(back.contains("waiting for the payment provider"), "{back}");
        assert_eq!(entitlements(&app, &cy).await["access"], false);

        // The hosted page takes the card (at the provider), then the completion event arrives.
        let sub = stripe.subscribe_with_card(&customer, "4242424242424242", TEAM_PRICE).await.expect("paid");
        let sub_id = sub["id"].as_str().expect("id").to_string();
        let completed = json!({ "id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "customer": customer,
            "client_reference_id": cy.id, "subscription": sub_id, "payment_status": "paid" });
        assert_eq!(event(&app, "evt_checkout_1", "checkout.session.completed", T0, completed).await, "applied", "{engine}");
        let e = entitlements(&app, &cy).await;
        assert_eq!((e["access"].clone(), e["plan"].clone()), (json!(true), json!("team")), "{e}");
        assert!(front.requests_to("GET", &format!("/v1/subscriptions/{sub_id}")).len() == 1, "the subscription is read from the provider");
        // Another event from the same second: which came first is unknown, so the provider is
        // asked again and its answer (still active) wins over the event's claim.
        let same_second = subscription_object(&sub_id, &customer, TEAM_PRICE, "unpaid", T0 + 10, false);
        assert_eq!(event(&app, "evt_same_second", "customer.subscription.updated", T0, same_second).await, "applied");
        assert_eq!(front.requests_to("GET", &format!("/v1/subscriptions/{sub_id}")).len(), 2);
        assert_eq!(entitlements(&app, &cy).await["status"], "active", "{engine}");

        // The portal.
        let portal = submit(&app, &cy, "/billing/portal", &format!("csrf={}", csrf())).await;
        assert_eq!(portal.status.as_u16(), 303);
        assert!(portal.header("location").is_some_and(|l| l.starts_with("https://billing.stripe.test/p/session/")));
        let p = front.requests_to("POST", "/v1/billing_portal/sessions");
        assert_eq!((p[0].field("customer"), p[0].field("return_url")), (Some(customer.as_str()), Some("http://passme.test/billing")));

        // A second checkout while subscribed is refused: plan changes go through the portal.
        let again = submit(&app, &cy, "/billing/checkout", &format!("csrf={}&plan=pro", csrf())).await;
        assert_eq!(again.status.as_u16(), 409);
        assert!(again.text().contains("already_subscribed"));

        // Renewal fails: the provider reports past_due and a failed invoice. Access stays while it
        // retries, and the user sees a clear notice in both languages.
        let past_due = subscription_object(&sub_id, &customer, TEAM_PRICE, "past_due", T0 + 86_400 * 365, false);
        assert_eq!(event(&app, "evt_upd_1", "customer.subscription.updated", T0 + 100, past_due).await, "applied");
        let failed = invoice_object("in_renewal", &customer, &sub_id, "open", 12000);
        assert_eq!(event(&app, "evt_inv_failed", "invoice.payment_failed", T0 + 100, failed).await, "applied");
        let e = entitlements(&app, &cy).await;
        assert_eq!((e["access"].clone(), e["payment_problem"].clone()), (json!(true), json!(true)));
        assert!(browse(&app, &cy, "/billing?lang=en").await.text().contains("Your latest payment failed"));
        assert!(browse(&app, &cy, "/billing?lang=da").await.text().contains("Din seneste betaling mislykkedes"));
        let account_page = browse(&app, &cy, "/account?lang=en").await.text();
        assert!(account_page.contains("Your latest payment failed"), "the account page shows it too: {account_page}");
        // And a notice goes out, once however often the provider repeats the failure.
        let again = invoice_object("in_renewal", &customer, &sub_id, "open", 12000);
        assert_eq!(event(&app, "evt_inv_failed_again", "invoice.payment_failed", T0 + 101, again).await, "applied");
        let store = &app.state.store;
        assert_eq!(store.scalar_i64("SELECT COUNT(*) FROM jobs WHERE kind = 'billing.payment_failed'").await.expect("jobs"), 1);
        app.run_jobs().await;
        let notices = "SELECT COUNT(*) FROM message_log WHERE template = 'payment_failed' AND channel = 'email' AND status = 'sent'";
        assert_eq!(store.scalar_i64(notices).await.expect("log"), 1, "{engine}");
        let paid = invoice_object("in_renewal", &customer, &sub_id, "paid", 12000);
        assert_eq!(event(&app, "evt_inv_paid", "invoice.paid", T0 + 200, paid).await, "applied");
        let active = subscription_object(&sub_id, &customer, TEAM_PRICE, "active", T0 + 86_400 * 365, false);
        assert_eq!(event(&app, "evt_upd_2", "customer.subscription.updated", T0 + 200, active).await, "applied");
        assert_eq!(entitlements(&app, &cy).await["payment_problem"], false);
        assert!(!browse(&app, &cy, "/account?lang=en").await.text().contains("payment failed"));

        // Cancel at the end of the period: asked of the provider, with a key.
        let cancel = submit(&app, &cy, "/billing/cancel", &format!("csrf={}", csrf())).await;
        assert_eq!(cancel.status.as_u16(), 303, "{}", cancel.text());
        let asked = front.requests_to("POST", &format!("/v1/subscriptions/{sub_id}"));
        assert_eq!(asked.last().and_then(|r| r.field("cancel_at_period_end")), Some("true"));
        assert!(asked.last().and_then(|r| r.idempotency_key.as_deref()).is_some());
        let e = entitlements(&app, &cy).await;
        assert_eq!((e["access"].clone(), e["cancel_at_period_end"].clone()), (json!(true), json!(true)), "{e}");
        assert!(browse(&app, &cy, "/billing?lang=en").await.text().contains("Keep my subscription"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_bad_bodies_are_refused_before_anything_is_stored() {
    let Billed { app, .. } = billed(sqlite().await).await;
    let now = jiff::Timestamp::now().as_second();
    let (body, _) = signed("evt_attack", "invoice.paid", T0, invoice_object("in_x", "cus_x", "sub_x", "paid", 1));
    let sign = |t: i64, b: &str| passme_billing::signature::sign(stripe::WEBHOOK_SECRET, t, b.as_bytes());
    let good = sign(now, &body);
    let reserialised = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).expect("json")).expect("json");
    let cases: Vec<(String, String, &str)> = vec![
        (body.clone(), String::new(), "signature_malformed"),
        (body.clone(), "garbled".into(), "signature_malformed"),
        (body.clone(), format!("t=soon,v1={good}"), "signature_malformed"),
        (body.clone(), format!("t={},v1={}", now - 301, sign(now - 301, &body)), "signature_expired"),
        (body.clone(), format!("t={},v1={}", now + 301, sign(now + 301, &body)), "signature_expired"),
        (body.clone(), format!("t={now},v1={}", good.to_uppercase()), "signature_mismatch"),
        (body.clone(), format!("t={now},v1={}", &good[..40]), "signature_mismatch"),
        (body.clone(), format!("t={now},v0={good}"), "signature_mismatch"),
        (reserialised.clone(), format!("t={now},v1={good}"), "signature_mismatch"),
        ("not json".into(), format!("t={now},v1={}", sign(now, "not json")), "webhook_body_invalid"),
    ];
    for (body, header, code) in &cases {
        let response = deliver(&app, body, header).await;
        assert_eq!((response.status.as_u16(), response.error_code().as_str()), (400, *code), "{header}");
    }
    let missing = app
        .send(Request::post("/webhooks/stripe").header("content-type", "application/json").body(Body::from(body.clone())).expect("request"))
        .await;
    assert_eq!((missing.status.as_u16(), missing.error_code()), (400, "signature_missing".into()));
    let duplicate_keys = r#"{"id":"evt_dup","type":"invoice.paid","type":"customer.subscription.deleted","created":1,"livemode":false,"data":{"object":{}}}"#;
    let response = deliver(&app, duplicate_keys, &format!("t={now},v1={}", sign(now, duplicate_keys))).await;
    assert_eq!((response.status.as_u16(), response.error_code()), (400, "webhook_body_invalid".into()));
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 1));
    let response = deliver(&app, &huge, &format!("t={now},v1={}", sign(now, &huge))).await;
    assert_eq!(response.status.as_u16(), 413);
    assert_eq!(count(&app, "billing_events").await, 0, "nothing refused was stored");
    assert_eq!(count(&app, "jobs").await, 0);

    // Two v1 where only the second is right: accepted.
    let two = format!("t={now},v1={},v1={good}", passme_billing::signature::sign("whsec_wrong", now, body.as_bytes()));
    assert_eq!(deliver(&app, &body, &two).await.status.as_u16(), 200);
    assert_eq!(count(&app, "billing_events").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_replays_and_out_of_order_events_end_in_the_providers_order() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let Billed { app, stripe: _stripe, front: _front } = billed(db).await;
        let dee = member(&app, "dee@example.test").await;
        let customer = app.state.billing.clone().expect("billing").ensure_customer(&dee.id).await.expect("customer");

        // The same event delivered concurrently eight times: stored and applied once.
        let active = subscription_object("sub_dee", &customer, PRO_PRICE, "active", T0 + 1000, false);
        let (body, signature) = signed("evt_created", "customer.subscription.created", T0, active.clone());
        let app = Arc::new(app);
        let mut deliveries = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (app, body, signature) = (app.clone(), body.clone(), signature.clone());
            deliveries.spawn(async move { deliver(&app, &body, &signature).await.json() });
        }
        let answers = deliveries.join_all().await;
        assert!(answers.iter().all(|a| a["received"] == true), "{answers:?}");
        assert_eq!(answers.iter().filter(|a| a["duplicate"] == false).count(), 1, "{engine}: {answers:?}");
        assert_eq!(count(&app, "billing_events").await, 1);
        assert_eq!(count(&app, "jobs").await, 1);
        assert_eq!(app.run_jobs().await.succeeded, 1);
        assert_eq!(entitlements(&app, &dee).await["access"], true);

        // A stale update (older than the stored state) changes nothing; a newer one does.
        let newer = subscription_object("sub_dee", &customer, PRO_PRICE, "active", T0 + 2000, true);
        assert_eq!(event(&app, "evt_u2", "customer.subscription.updated", T0 + 20, newer).await, "applied");
        let stale = subscription_object("sub_dee", &customer, PRO_PRICE, "past_due", T0 + 1000, false);
        assert!(event(&app, "evt_u1", "customer.subscription.updated", T0 + 10, stale).await.starts_with("stale"), "{engine}");
        let row = app.state.store.billing_subscription("sub_dee").await.expect("row").expect("stored");
        assert_eq!((row.status.as_str(), row.cancel_at_period_end, row.last_event_id.as_deref()), ("active", true, Some("evt_u2")));

        // An old event replayed later is a duplicate: nothing is queued again.
        let (body, signature) = signed("evt_created", "customer.subscription.created", T0, active);
        let replay = deliver(&app, &body, &signature).await.json();
        assert_eq!(replay["duplicate"], true);
        assert_eq!(app.run_jobs().await.claimed(), 0);

        // `deleted` before `created`: the deletion stands, the late creation is stale.
        let ended = subscription_object("sub_two", &customer, TEAM_PRICE, "canceled", T0 + 500, false);
        assert_eq!(event(&app, "evt_two_deleted", "customer.subscription.deleted", T0 + 50, ended).await, "applied");
        let late = subscription_object("sub_two", &customer, TEAM_PRICE, "active", T0 + 500, false);
        assert!(event(&app, "evt_two_created", "customer.subscription.created", T0 + 40, late).await.starts_with("stale"));
        // Even a newer event cannot bring an ended subscription back.
        let revived = subscription_object("sub_two", &customer, TEAM_PRICE, "active", T0 + 900, false);
        assert!(event(&app, "evt_two_revived", "customer.subscription.updated", T0 + 60, revived).await.starts_with("stale"));
        assert_eq!(app.state.store.billing_subscription("sub_two").await.expect("row").expect("stored").status, "canceled");

        // Invoice events before the subscription's creation still end right.
        let inv = invoice_object("in_three", &customer, "sub_three", "paid", 1500);
        assert_eq!(event(&app, "evt_inv3", "invoice.payment_succeeded", T0 + 70, inv).await, "applied");
        let draft = invoice_object("in_three", &customer, "sub_three", "draft", 1500);
        assert!(event(&app, "evt_inv3_created", "invoice.created", T0 + 70, draft).await.starts_with("stale"), "same second: paid wins");
        assert_eq!(app.state.store.billing_invoice("in_three").await.expect("row").expect("stored").status, "paid");

        // Unknown status: stored as reported, grants nothing.
        let weird = subscription_object("sub_dee", &customer, PRO_PRICE, "frobnicated", T0 + 3000, false);
        assert_eq!(event(&app, "evt_u3", "customer.subscription.updated", T0 + 30, weird).await, "applied");
        assert_eq!(entitlements(&app, &dee).await["access"], false, "{engine}: an unknown status means no access");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_references_and_foreign_events_are_ignored() {
    for db in each_engine().await {
        let Billed { stripe, app, front: _front } = billed(db).await;
        let billing = app.state.billing.clone().expect("billing");
        let (eve, vic) = (member(&app, "eve@example.test").await, member(&app, "vic@example.test").await);
        let eve_customer = billing.ensure_customer(&eve.id).await.expect("customer");
        let vic_customer = billing.ensure_customer(&vic.id).await.expect("customer");
        let vic_sub = stripe.subscribe_with_card(&vic_customer, "4242424242424242", PRO_PRICE).await.expect("victim pays");
        let vic_sub = vic_sub["id"].as_str().expect("id");

        // Eve claims the victim's paid checkout for herself, either way round.
        let forged = json!({ "id": "cs_1", "object": "checkout.session", "mode": "subscription", "customer": vic_customer,
            "client_reference_id": eve.id, "subscription": vic_sub });
        assert!(event(&app, "evt_forged_1", "checkout.session.completed", T0, forged).await.starts_with("ignored"));
        let forged = json!({ "id": "cs_2", "object": "checkout.session", "mode": "subscription", "customer": eve_customer,
            "client_reference_id": eve.id, "subscription": vic_sub });
        assert!(event(&app, "evt_forged_2", "checkout.session.completed", T0, forged).await.contains("another customer"));
        assert_eq!(entitlements(&app, &eve).await["access"], false);

        // Unknown customers, live-mode events in test mode, unknown types: logged and ignored.
        let stranger = subscription_object("sub_s", "cus_stranger", PRO_PRICE, "active", T0 + 10, false);
        assert_eq!(event(&app, "evt_stranger", "customer.subscription.created", T0, stranger).await, "ignored: unknown customer");
        let (mut body, _) = signed(
            "evt_live",
            "customer.subscription.created",
            T0,
            subscription_object("sub_l", &eve_customer, PRO_PRICE, "active", T0, false),
        );
        body = body.replace("\"livemode\":false", "\"livemode\":true");
        let header = passme_billing::signature::header(&[stripe::WEBHOOK_SECRET], jiff::Timestamp::now().as_second(), body.as_bytes());
        assert_eq!(deliver(&app, &body, &header).await.status.as_u16(), 200);
        app.run_jobs().await;
        assert_eq!(
            app.state.store.billing_event_outcome("evt_live").await.expect("o").flatten().as_deref(),
            Some("ignored: livemode does not match our key")
        );
        assert_eq!(
            event(&app, "evt_other", "radar.early_fraud_warning.created", T0, json!({ "id": "issfr_1" })).await,
            "ignored: type not handled"
        );
        // A handled type whose object lacks what we read (here the price): recorded, never queued.
        let jobs_before = count(&app, "jobs").await;
        let broken = json!({ "id": "sub_b", "object": "subscription", "customer": eve_customer, "status": "active" });
        let outcome = event(&app, "evt_broken", "customer.subscription.created", T0, broken).await;
        assert!(outcome.starts_with("ignored: ") && outcome.contains("price"), "{outcome}");
        assert_eq!(count(&app, "jobs").await, jobs_before);
        assert_eq!(entitlements(&app, &eve).await["access"], false);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_failures_are_retried_with_the_same_key_and_never_duplicate_a_customer() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let Billed { stripe, front, app } = billed(db).await;
        let fay = member(&app, "fay@example.test").await;

        // The provider created the customer but the answer was lost (500): the retry carries the
        // same key and gets the stored answer, not a second customer.
        front.inject(Fault::FailAfter { path_prefix: "POST /v1/customers".into() });
        // Then checkout fails outright once before succeeding.
        front.inject(Fault::Fail { path_prefix: "POST /v1/checkout/sessions".into() });
        let redirect = submit(&app, &fay, "/billing/checkout", &format!("csrf={}&plan=pro", csrf())).await;
        assert_eq!(redirect.status.as_u16(), 303, "{engine}: {}", redirect.text());
        let attempts = front.requests_to("POST", "/v1/customers");
        assert_eq!(attempts.len(), 2, "{engine}");
        assert_eq!(attempts[0].idempotency_key, attempts[1].idempotency_key);
        assert_eq!(stripe.customers().await.len(), 1, "{engine}: one customer at the provider");
        assert_eq!(front.requests_to("GET", "/v1/customers?email=fay%40example.test").len(), 1, "looked for first");
        let sessions = front.requests_to("POST", "/v1/checkout/sessions");
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].idempotency_key, sessions[1].idempotency_key);

        // A customer the provider made for an account whose answer never arrived, longer ago
        // than the provider keeps idempotency keys: found by its metadata, not made twice.
        let lee = member(&app, "lee@example.test").await;
        let earlier = stripe.post("/v1/customers", &[("email", "lee@example.test"), ("metadata[passme_account]", lee.id.as_str())]).await;
        let creations = front.requests_to("POST", "/v1/customers").len();
        let found = app.state.billing.clone().expect("billing").ensure_customer(&lee.id).await.expect("customer");
        assert_eq!(Some(found.as_str()), earlier["id"].as_str(), "{engine}");
        assert_eq!(front.requests_to("POST", "/v1/customers").len(), creations, "no second customer");

        // A provider that keeps failing: a clear 503, nothing half-stored.
        for _ in 0..4 {
            front.inject(Fault::Fail { path_prefix: "POST /v1/billing_portal".into() });
        }
        let portal = submit(&app, &fay, "/billing/portal", &format!("csrf={}", csrf())).await;
        assert_eq!(portal.status.as_u16(), 503, "{}", portal.text());
        assert!(portal.text().contains("provider_unavailable"));
    }
    // A timeout is retried like a 500.
    let db = sqlite().await;
    let stripe = LocalStripe::start().await;
    let front = ProviderFront::start(&stripe.url()).await;
    // Margins a loaded CI machine keeps: the retry itself must not time out too.
    let client = passme_billing::StripeClient::new(&front.url(), SecretString::from(stripe::SECRET_KEY), Duration::from_millis(1_000))
        .expect("client")
        .with_retry_base(Duration::from_millis(10));
    let billing = passme_billing::Billing::new(
        db.store.clone(),
        passme_core::clock::system(),
        Arc::new(client),
        stripe::catalogue(),
        vec![SecretString::from(stripe::WEBHOOK_SECRET)],
        false,
        "http://passme.test",
    );
    let app = TestApp::builder(db).billing(Arc::new(billing)).build();
    let gus = member(&app, "gus@example.test").await;
    front.inject(Fault::Delay { path_prefix: "POST /v1/customers".into(), ms: 2_000 });
    app.state.billing.clone().expect("billing").ensure_customer(&gus.id).await.expect("customer after a timeout");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let attempts = front.requests_to("POST", "/v1/customers");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].idempotency_key, attempts[1].idempotency_key);
    assert_eq!(stripe.customers().await.len(), 1, "the timed-out attempt's customer is the one the retry got back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_flood_is_verified_first_and_every_genuine_event_is_kept_once() {
    let Billed { app, .. } = billed(sqlite().await).await;
    let app = Arc::new(app);
    let started = Instant::now();
    let mut deliveries = tokio::task::JoinSet::new();
    for i in 0..400 {
        let app = app.clone();
        deliveries.spawn(async move {
            let (body, signature) =
                signed(&format!("evt_flood_{i}"), "invoice.created", T0, invoice_object(&format!("in_{i}"), "cus_x", "sub_x", "draft", 1));
            // Every other delivery is a forgery of the same event.
            let forged = format!("t={},v1={}", jiff::Timestamp::now().as_second(), "0".repeat(64));
            let genuine = deliver(&app, &body, &signature).await.status.as_u16();
            let refused = deliver(&app, &body.replace("in_", "in_forged_"), &forged).await.status.as_u16();
            (genuine, refused)
        });
    }
    let answers = deliveries.join_all().await;
    assert!(answers.iter().all(|a| *a == (200, 400)), "{answers:?}");
    assert_eq!(count(&app, "billing_events").await, 400);
    assert_eq!(count(&app, "jobs").await, 400);
    eprintln!("800 deliveries answered in {:?}", started.elapsed());
    let pass = app.run_jobs().await;
    assert_eq!((pass.succeeded, pass.dead), (400, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation_repairs_missed_webhooks_and_checks_the_catalogue() {
    for db in each_engine().await {
        let engine = db.engine_name();
        // No webhook is registered: every event is "missed".
        let Billed { stripe, app, front: _front } = billed(db).await;
        let billing = app.state.billing.clone().expect("billing");
        let hal = member(&app, "hal@example.test").await;
        let customer = billing.ensure_customer(&hal.id).await.expect("customer");
        let sub = stripe.subscribe_with_card(&customer, "4242424242424242", PRO_PRICE).await.expect("paid");
        let sub_id = sub["id"].as_str().expect("id").to_string();
        // Someone else's subscription at the same provider account.
        let foreign = stripe.post("/v1/customers", &[("email", "other@example.test")]).await;
        stripe.subscribe_with_card(foreign["id"].as_str().expect("id"), "4242424242424242", PRO_PRICE).await.expect("paid");
        assert_eq!(entitlements(&app, &hal).await["access"], false);

        let report = billing.reconcile().await.expect("reconcile");
        assert_eq!((report.checked, report.foreign, report.catalogue_problems.len()), (1, 1, 0), "{engine}: {report:?}");
        assert_eq!(report.repaired, vec![passme_billing::Repair { subscription: sub_id.clone(), before: None, after: "active".into() }]);
        assert_eq!(entitlements(&app, &hal).await["access"], true);
        assert!(billing.reconcile().await.expect("again").repaired.is_empty(), "nothing left to repair");

        stripe.delete(&format!("/v1/subscriptions/{sub_id}")).await;
        let report = billing.reconcile().await.expect("reconcile");
        assert_eq!(report.repaired[0].after, "canceled", "{engine}");
        assert_eq!(entitlements(&app, &hal).await["access"], false);
        let audited =
            app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'billing.reconciled'").await.expect("n");
        assert_eq!(audited, 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn card_numbers_are_refused_wherever_they_arrive() {
    proves!("security.no_card_data");
    let Billed { app, .. } = billed(sqlite().await).await;
    let ivy = member(&app, "ivy@example.test").await;
    let json_post = |path: &str, body: String| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("cookie", &ivy.cookie)
            .body(Body::from(body))
            .expect("request")
    };
    for form in [
        format!("csrf={}&plan=pro&card%5Bnumber%5D=1", csrf()),
        format!("csrf={}&plan=pro&note=4242424242424242", csrf()),
        format!("csrf={}&plan=4242+4242+4242+4242", csrf()),
        format!("csrf={}&plan=pro&cvc=123", csrf()),
    ] {
        let response = submit(&app, &ivy, "/billing/checkout", &form).await;
        assert_eq!(response.status.as_u16(), 400, "{form}");
        assert!(response.text().contains("card_data_refused"));
        assert!(!response.text().contains("4242"), "the number is not echoed");
    }
    let signup = json_post("/api/v1/signup", json!({ "email": "x@example.test", "password": "4000 0000 0000 0002" }).to_string());
    let response = app.send(signup).await;
    assert_eq!((response.status.as_u16(), response.error_code()), (400, "card_data_refused".into()));
    let response = app.get("/billing?ref=4000-0000-0000-0341").await;
    assert_eq!((response.status.as_u16(), response.error_code()), (400, "card_data_refused".into()));
    // A page view whose address holds a card number is refused too; a Luhn-valid millisecond
    // timestamp as a JSON number is not a card.
    let events = |url: &str| json!([{ "site": "passme", "url": url, "ts": 1_732_912_345_672_i64 }]).to_string();
    let response = app
        .send(
            Request::post("/api/v1/events")
                .header("content-type", "text/plain")
                .body(Body::from(events("http://passme.test/?c=4242424242424242")))
                .expect("r"),
        )
        .await;
    assert_eq!(response.error_code(), "card_data_refused");
    assert_eq!(count(&app, "billing_customers").await, 0, "no checkout was started by any of these");
}

#[tokio::test]
async fn a_luhn_valid_timestamp_in_a_page_view_is_not_a_card() {
    let app = TestApp::new(sqlite().await);
    // A Luhn-valid timestamp, as a tenth of all timestamps are.
    let now = jiff::Timestamp::now().as_millisecond() / 10 * 10;
    let ts = (0..10).map(|d| now + d).find(|t| passme_core::cards::luhn_valid(t.to_string().as_bytes())).expect("one of ten");
    let body = json!([{ "site": "passme", "url": "http://passme.test/pricing", "ts": ts }]).to_string();
    let response =
        app.send(Request::post("/api/v1/events").header("content-type", "text/plain").body(Body::from(body.clone())).expect("r")).await;
    assert_eq!(response.status.as_u16(), 202, "{body}: {}", response.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_an_account_ends_its_subscription_at_the_provider() {
    for db in each_engine().await {
        let Billed { stripe, front, app } = billed(db).await;
        let kim = member(&app, "kim@example.test").await;
        let billing = app.state.billing.clone().expect("billing");
        let customer = billing.ensure_customer(&kim.id).await.expect("customer");
        stripe.subscribe_with_card(&customer, "4242424242424242", PRO_PRICE).await.expect("paid");
        billing.reconcile().await.expect("reconcile");
        // The product asks with a personal access token as well as with the session.
        let token = passme_core::identity::api_tokens::ApiTokens::new(app.state.store.clone(), app.state.clock.clone())
            .create(&kim.id, "product", &["me:read"])
            .await
            .expect("token");
        let by_token = app
            .send(
                Request::get("/api/v1/entitlements")
                    .header("authorization", format!("Bearer {}", token.expose_secret()))
                    .body(Body::empty())
                    .expect("r"),
            )
            .await;
        assert_eq!(by_token.json()["access"], true, "{}", by_token.text());
        let anonymous = app.get("/api/v1/entitlements").await;
        assert_eq!((anonymous.status.as_u16(), anonymous.error_code()), (401, "unauthenticated".into()));

        let closed = submit(&app, &kim, "/account/close", &format!("csrf={}&current={}", csrf(), PASSWORD.replace(' ', "+"))).await;
        assert_eq!(closed.status.as_u16(), 200, "{}", closed.text());
        assert_eq!(app.run_jobs().await.succeeded, 1);
        assert_eq!(front.requests_to("DELETE", "/v1/subscriptions/").len(), 1, "the provider is told");
        let subscriptions = app.state.store.billing_subscriptions_of(&kim.id).await.expect("read");
        assert_eq!(subscriptions[0].status, "canceled");
        // The provider deletes the customer too: the binding goes, a later checkout makes a new one.
        let deleted = json!({ "id": customer, "object": "customer", "deleted": true, "email": "kim@example.test" });
        assert_eq!(event(&app, "evt_customer_deleted", "customer.deleted", T0, deleted).await, "applied");
        assert_eq!(app.state.store.billing_customer_of(&kim.id).await.expect("read"), None);
        let leaked = app.state.store.scalar_i64("SELECT COUNT(*) AS n FROM jobs WHERE payload LIKE '%kim@example.test%'").await.expect("n");
        assert_eq!(leaked, 0, "the minimised event keeps the id only");
        let at_provider = stripe.get(&format!("/v1/subscriptions/{}", subscriptions[0].subscription_id)).await;
        assert_eq!(at_provider["status"], "canceled");
    }
}

/// Card payments the provider reports feed fraud scanning: the card is looked up at the provider
/// when the job runs and kept only as a keyed hash; one card paying for two accounts, and a card
/// declined at the charge, reach the analysts' queue with the rule that fired.
#[tokio::test(flavor = "multi_thread")]
async fn card_payments_the_provider_reports_feed_fraud_scanning_and_one_card_on_two_accounts_is_reviewed() {
    for db in each_engine().await {
        let Billed { stripe, front, app } = billed(db).await;
        let addr = app.serve().await;
        stripe.register_webhook(&format!("http://{addr}/webhooks/stripe")).await;
        let billing = app.state.billing.clone().expect("billing");
        let ann = member(&app, "ann@example.test").await;
        let ben = member(&app, "ben@example.test").await;
        for who in [&ann, &ben] {
            let customer = billing.ensure_customer(&who.id).await.expect("customer");
            stripe.subscribe_with_card(&customer, "4242424242424242", PRO_PRICE).await.expect("paid");
        }
        let paid = || async {
            app.state
                .store
                .scalar_i64("SELECT COUNT(*) FROM billing_events WHERE event_type = 'invoice.payment_succeeded'")
                .await
                .expect("n")
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while paid().await < 2 {
            assert!(Instant::now() < deadline, "two paid invoices");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.run_jobs().await;
        app.run_jobs().await;
        let store = &app.state.store;
        let payments = "SELECT COUNT(*) FROM fraud_events WHERE kind = 'payment' AND success = 1";
        assert_eq!(store.scalar_i64(payments).await.expect("n"), 2);
        assert_eq!(
            store.scalar_i64("SELECT COUNT(DISTINCT card) FROM fraud_events WHERE kind = 'payment'").await.expect("n"),
            1,
            "one card"
        );
        assert_eq!(store.scalar_i64("SELECT COUNT(*) FROM fraud_events WHERE card LIKE '%4242%'").await.expect("n"), 0, "a keyed hash");
        assert_eq!(front.requests_to("GET", "/v1/payment_methods/").len(), 2, "the card is looked up at the provider, once per attempt");
        let queue = store.fraud_review_queue(10).await.expect("queue");
        assert_eq!(queue.len(), 1, "the second account on the same card");
        assert_eq!(queue[0].account_id.as_ref(), Some(&ben.id));
        assert!(queue[0].fired.contains("shared_card") && queue[0].kind == "payment", "{}", queue[0].fired);
        // A repeated delivery of the same event is the same attempt: nothing counted twice.
        app.run_jobs().await;
        assert_eq!(store.scalar_i64(payments).await.expect("n"), 2);
    }
}

/// Reconciliation waiting on a slow provider outlives its job lease: the lease is renewed while it
/// runs, so the other workers polling all along never claim it and the provider is asked once.
#[tokio::test(flavor = "multi_thread")]
async fn a_reconciliation_outliving_its_lease_asks_the_provider_once() {
    for db in each_engine().await {
        let engine = db.engine_name();
        let Billed { front, app, stripe: _stripe } = billed(db).await;
        // Every listing waits 1.5 s: a second run would wait too, and be counted.
        for _ in 0..3 {
            front.inject(stripe::Fault::Delay { path_prefix: "GET /v1/subscriptions".into(), ms: 1_500 });
        }
        passme_billing::Billing::schedule_reconcile(&app.state.jobs, app.state.clock.now_ms()).await.expect("schedule");
        let handlers = app.state.job_handlers().expect("handlers");
        let workers: Vec<_> = (0..3)
            .map(|_| passme_core::jobs::Worker {
                lease_ms: 400,
                ..passme_core::jobs::Worker::new(app.state.store.clone(), app.state.clock.clone(), handlers.clone())
            })
            .collect();
        let started = std::time::Instant::now();
        let mut passes = Vec::new();
        for worker in workers {
            passes.push(tokio::spawn(async move {
                let mut succeeded = 0;
                while started.elapsed() < std::time::Duration::from_millis(4_000) {
                    succeeded += worker.run_once().await.expect("pass").succeeded;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                succeeded
            }));
        }
        let mut succeeded = 0;
        for pass in passes {
            succeeded += pass.await.expect("worker");
        }
        let calls = front.requests_to("GET", "/v1/subscriptions").len();
        println!("{engine}: the provider was asked {calls} time(s) for the subscriptions during one reconciliation");
        assert_eq!((succeeded, calls), (1, 1), "{engine}: one run, one call");
    }
}
