//! Page-view ingestion with durable acknowledgement, against the ceiling of an empty handler on
//! the same server, in one run.
//!
//! The bench re-runs itself as the server (a child process with SQLite, or PostgreSQL with
//! `--postgres URL`, in a temporary folder), so the server's peak memory is its own. Over
//! loopback, `--connections` keep-alive clients (default 64) first hit an empty handler behind the
//! same middleware for `--seconds` (default 10), then post single page views to
//! `/api/v1/events` for as long: each answer 202 means the view is committed. Page views vary
//! path, referrer, browser and client address (through a trusted X-Forwarded-For, so the
//! per-address limit is not what is measured). Bounded by time and by `--max-requests`.
//! Then it posts page views for as long again while the minute pass (visits and rollups) runs
//! over everything ingested so far, again and again, in the server: acknowledgement latency with
//! and without the pass side by side. The server runs no background jobs of its own, so the pass
//! runs exactly when the bench says. Prints each phase's rate and latency percentiles, the ratio,
//! the server's peak memory, and how long one rollup pass then takes over what was ingested.
//!
//! `--batch N` sends N page views per request, as the tracker does when several are pending.
//! `--log FILTER` has the server log as `passme serve` does (`info` is its default) into a file,
//! and reports how many bytes of log each thousand page views cost.
//!
//!     cargo run --release -p passme-bench --bin ingest -- --seconds 10 --connections 64 [--batch 10]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use passme_analytics::rollup::Rollups;
use passme_bench::{KeepAlive, arg, peak_rss_mib, percentile_ms};
use passme_core::clock;
use passme_core::config::Config;
use passme_store::{Store, StoreOptions};
use passme_web::Application;

const AGENTS: [&str; 5] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if std::env::args().any(|a| a == "--server") { runtime.block_on(serve()) } else { runtime.block_on(drive()) }
}

/// The child: the real application, plus an empty handler behind the same middleware.
async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir: String = arg("--data", String::new());
    let log: String = arg("--log", String::new());
    if !log.is_empty() {
        passme::logging::init(passme_core::config::LogFormat::Text, &log);
    }
    let mut config = Config { data_dir: data_dir.into(), listen: "127.0.0.1:0".parse()?, log_filter: "warn".into(), ..Config::default() };
    // The bench decides when the minute pass runs.
    config.jobs.workers = 0;
    config.http.trusted_proxies = vec!["127.0.0.1".parse()?];
    config.analytics.queue_events = arg("--queue", 20_000usize);
    let postgres: String = arg("--postgres", String::new());
    if !postgres.is_empty() {
        config.database_url = Some(secrecy::SecretString::from(postgres));
    }
    let app = Application::build(config).await?;
    println!("{}", app.local_addr());
    let rollups = Rollups::new(app.state().store.clone(), clock::system());
    let empty = Router::new().route("/bench/empty", post(|| async { StatusCode::ACCEPTED })).route(
        "/bench/pass",
        // Runs the minute pass back to back for the given seconds, in the background.
        post(move |seconds: String| {
            let rollups = rollups.clone();
            async move {
                let until = Instant::now() + Duration::from_secs(seconds.trim().parse().unwrap_or(10));
                tokio::spawn(async move {
                    let mut passes = 0;
                    while Instant::now() < until {
                        match rollups.run().await {
                            Ok(_) => passes += 1,
                            // The server stops at the end of the phase, often in the middle of a pass.
                            Err(_) if Instant::now() >= until => break,
                            Err(e) => eprintln!("pass failed: {e}"),
                        }
                    }
                    eprintln!("{passes} whole pass(es) during the phase (a pass over this backlog outlasts it)");
                });
                StatusCode::ACCEPTED
            }
        }),
    );
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1])).await;
    };
    app.run_with(empty, stdin_closed).await?;
    Ok(())
}

struct Phase {
    name: &'static str,
    ok: usize,
    refused: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn phase(
    name: &'static str,
    addr: &str,
    connections: usize,
    seconds: u64,
    max_requests: usize,
    make: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..connections {
        let (addr, stop, sent, make) = (addr.to_string(), stop.clone(), sent.clone(), make.clone());
        clients.push(tokio::spawn(async move {
            let mut connection = KeepAlive::connect(&addr).await.expect("connect");
            let (mut ok, mut refused, mut latencies) = (0, 0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= max_requests {
                    break;
                }
                let request = make(n);
                let t = Instant::now();
                match connection.send(&request).await {
                    Ok(202) => {
                        ok += 1;
                        latencies.push(t.elapsed());
                    }
                    Ok(_) => refused += 1,
                    Err(_) => {
                        refused += 1;
                        connection = KeepAlive::connect(&addr).await.expect("reconnect");
                    }
                }
            }
            (ok, refused, latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut result = Phase { name, ok: 0, refused: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for client in clients {
        if let Ok((ok, refused, latencies)) = client.await {
            result.ok += ok;
            result.refused += refused;
            result.latencies.extend(latencies);
        }
    }
    result.elapsed = started.elapsed();
    result.latencies.sort();
    result
}

fn report(p: &Phase) -> f64 {
    let rate = p.ok as f64 / p.elapsed.as_secs_f64();
    println!(
        "{:<28} {:>9.0} /s  ({} acknowledged, {} refused, {:.1} s)  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        p.name,
        rate,
        p.ok,
        p.refused,
        p.elapsed.as_secs_f64(),
        percentile_ms(&p.latencies, 0.5),
        percentile_ms(&p.latencies, 0.9),
        percentile_ms(&p.latencies, 0.99),
        percentile_ms(&p.latencies, 1.0),
    );
    rate
}

async fn drive() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = arg("--seconds", 10);
    let connections: usize = arg("--connections", 64);
    let max_requests: usize = arg("--max-requests", 2_000_000);
    let postgres: String = arg("--postgres", String::new());
    let batch: usize = arg("--batch", 1usize).clamp(1, 50);
    let log: String = arg("--log", String::new());
    let mut command = std::process::Command::new(std::env::current_exe()?);
    let dir = tempfile::tempdir()?;
    command.arg("--server").arg("--data").arg(dir.path()).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let log_file = dir.path().join("server.log");
    if !log.is_empty() {
        command.args(["--log", &log]).stderr(std::fs::File::create(&log_file)?);
    }
    if !postgres.is_empty() {
        command.args(["--postgres", &postgres]);
    }
    let mut server = command.spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().ok_or("no stdout")?), &mut line)?;
    let addr = line.trim().to_string();
    let pid = server.id();
    println!(
        "ingest bench: server pid {pid} on {addr} ({}), {connections} keep-alive connections, {seconds} s per phase",
        if postgres.is_empty() { "SQLite" } else { "PostgreSQL" }
    );

    let host = addr.clone();
    let empty: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = Arc::new(move |_| {
        format!("POST /bench/empty HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}").into_bytes()
    });
    let host = addr.clone();
    let event: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = Arc::new(move |n| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let events: Vec<String> = (0..batch)
            .map(|i| {
                format!(
                    r#"{{"site":"passme","url":"http://127.0.0.1/page/{}?utm_source=bench","referrer":"https://ref{}.example/","ts":{now}}}"#,
                    (n + i) % 200,
                    n % 30
                )
            })
            .collect();
        let body = if batch == 1 { events.concat() } else { format!("[{}]", events.join(",")) };
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nUser-Agent: {}\r\nX-Forwarded-For: 10.{}.{}.{}\r\nContent-Length: {}\r\n\r\n{body}",
            AGENTS[n % AGENTS.len()],
            (n / 65_536) % 256,
            (n / 256) % 256,
            n % 256,
            body.len()
        )
        .into_bytes()
    });
    // Warm-up: connections, caches, the first salt.
    phase("warm-up", &addr, connections, 1, max_requests, event.clone()).await;
    let ceiling = phase("empty handler (ceiling)", &addr, connections, seconds, max_requests, empty).await;
    let ingest = phase("page views, durable", &addr, connections, seconds, max_requests, event.clone()).await;
    let mut control = passme_bench::KeepAlive::connect(&addr).await?;
    let body = seconds.to_string();
    control.send(format!("POST /bench/pass HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await?;
    let during_pass = phase("page views, pass running", &addr, connections, seconds, max_requests, event).await;
    println!();
    let ceiling_rate = report(&ceiling);
    let ingest_rate = report(&ingest);
    report(&during_pass);
    println!("ingestion / ceiling (requests): {:.0} %", ingest_rate / ceiling_rate * 100.0);
    println!(
        "p99 without / with the pass running: {:.2} ms / {:.2} ms",
        percentile_ms(&ingest.latencies, 0.99),
        percentile_ms(&during_pass.latencies, 0.99)
    );
    println!("page views acknowledged: {:.0} /s ({batch} per request)", ingest_rate * batch as f64);
    println!("server peak memory (VmHWM): {:.1} MiB", peak_rss_mib(pid).unwrap_or(f64::NAN));
    if !log.is_empty() {
        let bytes = std::fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0);
        let views = (ingest.ok + during_pass.ok) * batch;
        println!("server log at {log:?}: {bytes} bytes, {:.0} bytes per 1,000 page views", bytes as f64 * 1000.0 / views.max(1) as f64);
    }
    drop(server.stdin.take());
    let _ = server.wait();
    let options = StoreOptions {
        database_url: (!postgres.is_empty()).then(|| secrecy::SecretString::from(postgres.clone())),
        data_dir: dir.path().to_path_buf(),
        max_connections: 4,
    };
    let store = Store::connect(&options).await?;
    let started = Instant::now();
    let pass = Rollups::new(store, clock::system()).run().await?;
    println!(
        "rollup pass over the ingested views: {} visitors' visits and {} day rollup(s) in {:.1} s",
        pass.visitors,
        pass.days,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
