//! Login latency and throughput over loopback.
//!
//! Starts the real application (release build, SQLite in a temporary folder, no background
//! workers), creates one verified account, then sends `--requests` successful log-ins (default
//! 200) with `--concurrency` clients (default 4), each a full form POST with CSRF cookie and token,
//! Argon2id verification and session creation. Bounded: stops after the count or 120 s. Prints
//! median, p99 and throughput, with the Argon2 parameters in use.
//!
//!     cargo run --release -p passme-bench --bin login -- --requests 200 --concurrency 4

use std::sync::Arc;
use std::time::{Duration, Instant};

use passme_bench::{arg, cookie_of, percentile_ms, request};
use passme_core::config::Config;
use passme_core::identity::accounts::{Accounts, SignUp};
use passme_core::identity::password::{ARGON2_M_KIB, ARGON2_P, ARGON2_T};
use passme_web::Application;
use secrecy::SecretString;

const PASSWORD: &str = "korrekt hest batteri hæfteklamme";
const EMAIL: &str = "bench@example.com";
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = arg("--requests", 200);
    let concurrency: usize = arg("--concurrency", 4usize).max(1);
    let dir = tempfile::tempdir()?;
    let mut config =
        Config { data_dir: dir.path().to_path_buf(), listen: "127.0.0.1:0".parse()?, log_filter: "warn".into(), ..Config::default() };
    config.jobs.workers = 0;
    let app = Application::build(config).await?;
    let addr = app.local_addr().to_string();
    let store = app.state().store.clone();
    let clock = app.state().clock.clone();
    let SignUp::Created { account_id } =
        Accounts::new(store.clone(), clock.clone()).sign_up(EMAIL, SecretString::from(PASSWORD.to_string())).await?
    else {
        return Err("the account exists".into());
    };
    store.set_email_verified(&account_id, clock.now_ms()).await?;
    let server = tokio::spawn(app.run_until(std::future::pending()));

    // One CSRF cookie and token, as a browser would hold them.
    let (_, page) = request(&addr, &format!("GET /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await?;
    let csrf_cookie = cookie_of(&page, "__Host-csrf").ok_or("no csrf cookie")?;
    let token = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).ok_or("no csrf token")?.to_string();
    let body = format!("csrf={token}&email=bench%40example.com&password=korrekt+hest+batteri+h%C3%A6fteklamme");
    let raw = Arc::new(format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {csrf_cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));

    let started = Instant::now();
    let per_client = requests.div_ceil(concurrency);
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (addr, raw) = (addr.clone(), raw.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut failures = 0;
            for _ in 0..per_client {
                if started.elapsed() > LIMIT {
                    break;
                }
                let t = Instant::now();
                match request(&addr, &raw).await {
                    Ok((303, _)) => latencies.push(t.elapsed()),
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for client in clients {
        let (l, f) = client.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    server.abort();
    latencies.sort();
    println!(
        "login bench: {} successful log-ins, {failures} failed, {concurrency} concurrent clients, {:.1} s",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    println!("argon2id: m={} KiB, t={}, p={}", ARGON2_M_KIB, ARGON2_T, ARGON2_P);
    println!("latency: median {:.1} ms, p99 {:.1} ms", percentile_ms(&latencies, 0.5), percentile_ms(&latencies, 0.99));
    println!("throughput: {:.1} log-ins/s", latencies.len() as f64 / elapsed.as_secs_f64());
    Ok(())
}
