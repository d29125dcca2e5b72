//! Payment provider webhooks over loopback: how fast signed events are verified, stored once and
//! acknowledged, and how fast the job worker then applies them.
//!
//! Starts the real application (release build, SQLite in a temporary folder, or the PostgreSQL
//! database given; billing on, no background workers during the acceptance phase) with one
//! subscriber, then posts `--events` signed `customer.subscription.updated` events (default 5,000)
//! over `--connections` keep-alive connections (default 32), each signed as the provider signs it.
//! Every tenth delivery repeats an earlier event (a duplicate). Then one worker applies the queue.
//! Bounded: stops after the count or 120 s. Prints acceptance rate and latency, then the apply
//! rate.
//!
//!     cargo run --release -p passme-bench --bin webhooks -- --events 5000 --connections 32 [--postgres URL]

use std::time::{Duration, Instant};

use passme_bench::{KeepAlive, arg, percentile_ms};
use passme_core::config::{Config, PlanConfig, PlanName};
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::jobs::{Handlers, Worker};
use passme_web::Application;
use secrecy::SecretString;

const SECRET: &str = "whsec_bench";
const LIMIT: Duration = Duration::from_secs(120);

fn delivery(addr: &str, n: usize, customer: &str) -> Vec<u8> {
    let created = 1_795_000_000 + n as i64;
    let body = format!(
        r#"{{"id":"evt_bench_{n}","object":"event","type":"customer.subscription.updated","created":{created},"livemode":false,"data":{{"object":{{"id":"sub_bench_{sub}","object":"subscription","customer":"{customer}","status":"active","cancel_at_period_end":false,"current_period_end":{end},"items":{{"data":[{{"price":{{"id":"price_bench"}}}}]}}}}}}}}"#,
        sub = n % 50,
        end = created + 2_592_000,
    );
    let signature = passme_billing::signature::header(&[SECRET], jiff::Timestamp::now().as_second(), body.as_bytes());
    format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nStripe-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = arg("--events", 5_000);
    let connections: usize = arg("--connections", 32usize).max(1);
    let postgres: String = arg("--postgres", String::new());
    let dir = tempfile::tempdir()?;
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), listen: "127.0.0.1:0".parse()?, log_filter: "warn".into(), ..Config::default() };
    config.database_url = (!postgres.is_empty()).then(|| SecretString::from(postgres));
    config.jobs.workers = 0;
    config.billing.secret_key = Some(SecretString::from("sk_test_bench"));
    config.billing.webhook_secrets = vec![SecretString::from(SECRET)];
    // Nothing answers here: events newer than the stored state never need the provider.
    config.billing.api_base = "http://127.0.0.1:9".into();
    config.billing.plans = vec![PlanConfig {
        id: "pro".into(),
        name: PlanName { da: "Pro".into(), en: "Pro".into() },
        price: "price_bench".into(),
        interval: "month".into(),
        entitlements: vec!["chat".into()],
    }];
    let app = Application::build(config).await?;
    let addr = app.local_addr().to_string();
    let state = app.state().clone();
    let SignUp::Created { account_id } = Accounts::new(state.store.clone(), state.clock.clone())
        .sign_up("bench@example.com", SecretString::from("korrekt hest batteri hæfteklamme"))
        .await?
    else {
        return Err("the account exists".into());
    };
    state.store.insert_billing_customer(&account_id, "cus_bench", state.clock.now_ms()).await?;
    let server = tokio::spawn(app.run_until(std::future::pending()));

    let started = Instant::now();
    let per_connection = events.div_ceil(connections);
    let mut clients = Vec::new();
    for c in 0..connections {
        let addr = addr.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_connection);
            let mut refused = 0usize;
            let Ok(mut connection) = KeepAlive::connect(&addr).await else { return (latencies, per_connection) };
            for i in 0..per_connection {
                if started.elapsed() > LIMIT {
                    break;
                }
                let n = c * per_connection + i;
                // Every tenth delivery repeats the event before it.
                let raw = delivery(&addr, if n % 10 == 9 { n - 1 } else { n }, "cus_bench");
                let t = Instant::now();
                match connection.send(&raw).await {
                    Ok(200) => latencies.push(t.elapsed()),
                    _ => refused += 1,
                }
            }
            (latencies, refused)
        }));
    }
    let mut latencies = Vec::new();
    let mut refused = 0;
    for client in clients {
        let (l, r) = client.await?;
        latencies.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let stored = state.store.scalar_i64("SELECT COUNT(*) AS n FROM billing_events").await?;
    println!(
        "accepted {} deliveries ({refused} refused) over {connections} connections in {:.2} s: {:.0} /s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {stored} distinct events stored",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );

    let mut handlers = Handlers::default();
    if let Some(billing) = &state.billing {
        billing.register(&mut handlers);
    }
    let worker = Worker { batch: 64, ..Worker::new(state.store.clone(), state.clock.clone(), handlers) };
    let started = Instant::now();
    let mut applied = 0;
    while started.elapsed() < LIMIT {
        let pass = worker.run_once().await?;
        if pass.claimed() == 0 {
            break;
        }
        applied += pass.succeeded;
    }
    let elapsed = started.elapsed();
    println!(
        "applied {applied} events with one worker in {:.2} s: {:.0} /s",
        elapsed.as_secs_f64(),
        applied as f64 / elapsed.as_secs_f64()
    );
    server.abort();
    Ok(())
}
