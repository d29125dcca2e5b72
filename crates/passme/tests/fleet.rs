//! Three real `passme serve` processes on one PostgreSQL database, reached through a TCP front that
//! can cut the database off, with a real SMTP relay (aiosmtpd) that can be hung. What an operator
//! running a fleet relies on, proved with real processes and real signals: sessions and logouts
//! on every instance, limits for the whole fleet, no acknowledged page view lost or doubled
//! through `kill -9`, visits and rollups equal to a rebuild, a job taken over only after its
//! worker dies, mail through a relay outage and a crash, a database outage answered with 503 and
//! `Retry-After` and recovered without a restart, and SIGTERM draining in seconds.

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use passme_store::{JobStatus, Store};
use passme_testkit::SmtpSink;
use passme_testkit::proxy::TcpFront;

mod common;
use common::{header, http, page_view, passme, set_cookie, start_with, terminate};

/// One `passme serve` of the fleet.
struct Instance {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(database_url: &str, sink: &SmtpSink, master_key: &str) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = passme(dir.path());
        command
            .env("PASSME_DATABASE_URL", database_url)
            .env("PASSME_MAIL__SMTP_URL", sink.url())
            .env("PASSME_SECRETS__MASTER_KEY", master_key)
            .env("PASSME_JOBS__LEASE_SECS", "2")
            .env("PASSME_JOBS__POLL_INTERVAL_MS", "100")
            .env("PASSME_HTTP__TRUSTED_PROXIES", "127.0.0.1")
            .env("PASSME_LOG", "warn");
        let log = File::create(dir.path().join("stderr.log")).expect("log file");
        let (child, addr) = start_with(command, Stdio::from(log));
        Instance { child, addr, _dir: dir }
    }

    fn kill_9(&mut self) {
        let _ = Command::new("kill").arg("-KILL").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whose worker `locked_by` is: worker ids start with their instance's id.
async fn instance_index(store: &Store, fleet: &[Instance], locked_by: &str) -> Option<usize> {
    let live = store.live_instances(0).await.expect("instances");
    let id = live.iter().find(|i| locked_by.starts_with(&format!("{}.", i.id)))?;
    fleet.iter().position(|f| id.base_url == format!("http://{}", f.addr))
}

async fn wait_for<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return (found, started.elapsed());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_of_three_on_one_postgres_keeps_what_one_instance_promises() {
    let Some(db) = passme_testkit::postgres().await else { return };
    let url = db.url.clone().expect("a PostgreSQL URL");
    let host = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port");
    let upstream: SocketAddr = tokio::net::lookup_host(host).await.expect("resolve").next().expect("an address");
    let front = TcpFront::start(upstream).await;
    let through_front = url.replace(host, &front.addr().to_string());
    let sink = SmtpSink::start();
    let master_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let mut fleet: Vec<Instance> = (0..3).map(|_| Instance::start(&through_front, &sink, &master_key)).collect();
    let store = db.store.clone();

    // Sessions and logouts: signed in on one instance, seen on the next, ended on the third.
    let accounts = passme_core::identity::accounts::Accounts::new(store.clone(), passme_core::clock::system());
    let passme_core::identity::accounts::SignUp::Created { account_id } =
        accounts.sign_up("fleet@example.com", secrecy::SecretString::from(passme_testkit::PASSWORD)).await.expect("sign up")
    else {
        panic!("a new account")
    };
    store.set_email_verified(&account_id, 1).await.expect("verified");
    let login = format!(r#"{{"email":"fleet@example.com","password":"{}"}}"#, passme_testkit::PASSWORD);
    let origin = |i: &Instance| format!("http://{}", i.addr);
    let (status, headers, body) =
        http(&fleet[0].addr, "POST", "/api/v1/login", &[("Content-Type", "application/json"), ("Origin", &origin(&fleet[0]))], &login);
    assert_eq!(status, 200, "{body}");
    let session = set_cookie(&headers, "__Host-session").expect("a session cookie");
    assert_eq!(http(&fleet[1].addr, "GET", "/api/v1/me", &[("Cookie", &session)], "").0, 200, "the session works on another instance");
    let (status, ..) = http(&fleet[2].addr, "POST", "/api/v1/logout", &[("Cookie", &session), ("Origin", &origin(&fleet[2]))], "");
    assert!(status < 300, "signed out on the third: {status}");
    assert_eq!(http(&fleet[0].addr, "GET", "/api/v1/me", &[("Cookie", &session)], "").0, 401, "and signed out on the first at once");

    // One address sending round-robin to the three: one allowance for the fleet.
    let started = Instant::now();
    let accepted = (0..900).filter(|i| page_view(&fleet[i % 3].addr, &format!("/limit/{i}"), "198.51.100.77") == 202).count();
    let took = started.elapsed().as_secs_f64();
    let allowance = 200.0 + 20.0 * took;
    println!(
        "limit: {accepted} of 900 page views from one address accepted by three instances in {took:.1} s (one instance's allowance {allowance:.0})"
    );
    assert!((accepted as f64) <= allowance * 1.1, "{accepted} accepted; one instance allows {allowance:.0}");
    assert!(accepted >= 190, "{accepted}");

    // A backlog, so that the next minute pass takes a while; then kill -9 of the instance running
    // that pass while page views stream in: every acknowledged view stored once, and the dead
    // holder's pass lease lapses after one lease (2 s here) for another pass to take over.
    let agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    for r in 0..300 {
        let views: Vec<String> =
            (0..50).map(|v| format!(r#"{{"site":"passme","url":"http://127.0.0.1/backlog/{r}/{v}","ts":{now}}}"#)).collect();
        let client = format!("10.9.{}.{}", r / 200, r % 200 + 1);
        let (status, _, body) = http(
            &fleet[r % 3].addr,
            "POST",
            "/api/v1/events",
            &[("Content-Type", "application/json"), ("User-Agent", agent), ("X-Forwarded-For", &client)],
            &format!("[{}]", views.join(",")),
        );
        assert_eq!(status, 202, "{body}");
    }
    // The pass the next minute would queue, queued now, for whichever instance's worker is free.
    let now = passme_core::clock::system().now_ms();
    let pass = passme_store::NewJob {
        id: "analytics-rollup:fleet-test".into(),
        queue: passme_core::jobs::DEFAULT_QUEUE.into(),
        kind: passme_analytics::rollup::JOB_KIND.into(),
        payload: "{}".into(),
        max_attempts: 3,
        run_at: now,
    };
    store.enqueue_job(&pass, now).await.expect("queue a pass");
    let pass_holder = async || store.lease(passme_analytics::rollup::PASS_LEASE).await.expect("lease").and_then(|l| l.holder);
    let (holder, waited) = wait_for("a minute pass over the backlog", Duration::from_secs(75), pass_holder).await;
    let victim = instance_index(&store, &fleet, &holder).await.expect("the pass holder's instance");
    println!("a minute pass started on instance {victim} after {waited:?}");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for (n, instance) in fleet.iter().enumerate() {
        let (addr, acked, stop) = (instance.addr.clone(), acked.clone(), stop.clone());
        senders.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let path = format!("/kill/{n}/{i}");
                if page_view(&addr, &path, &format!("203.0.113.{}", i % 200 + 1)) == 202 {
                    acked.lock().expect("lock").push(path);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pass_holder().await.as_deref(), Some(holder.as_str()), "the pass still runs when its instance is killed");
    fleet[victim].kill_9();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for sender in senders {
        sender.join().expect("sender");
    }
    let acked = acked.lock().expect("lock").clone();
    let stored = store
        .scalar_i64("SELECT (SELECT COUNT(*) FROM analytics_events WHERE path LIKE '/kill/%') + (SELECT COUNT(*) FROM analytics_inbox WHERE path LIKE '/kill/%')")
        .await
        .expect("count");
    let distinct = store
        .scalar_i64("SELECT COUNT(DISTINCT path) FROM (SELECT path FROM analytics_events WHERE path LIKE '/kill/%' UNION ALL SELECT path FROM analytics_inbox WHERE path LIKE '/kill/%') AS p")
        .await
        .expect("count");
    let backlog = store
        .scalar_i64("SELECT (SELECT COUNT(*) FROM analytics_events WHERE path LIKE '/backlog/%') + (SELECT COUNT(*) FROM analytics_inbox WHERE path LIKE '/backlog/%')")
        .await
        .expect("count");
    println!("kill -9 of the pass holder: {} page views acknowledged, {stored} stored, {distinct} distinct", acked.len());
    assert!(acked.len() > 100, "the stream ran");
    assert_eq!(stored, distinct, "none stored twice");
    assert!(stored >= i64::try_from(acked.len()).expect("small"), "none acknowledged and lost");
    assert_eq!(backlog, 15_000, "the backlog the killed pass was moving: none lost, none doubled");
    fleet[victim] = Instance::start(&through_front, &sink, &master_key);

    // The minute pass, run here once the dead holder's lease has lapsed: visits and rollups
    // equal a rebuild.
    let rollups = passme_analytics::rollup::Rollups::new(store.clone(), passme_core::clock::system());
    let holder = passme_core::lease::Holder { id: "fleet-test".into(), lease_ms: 2_000 };
    let (_, lapsed) = wait_for("the pass lease, once its holder died", Duration::from_secs(60), async || {
        rollups.run_exclusive(&holder).await.expect("pass")
    })
    .await;
    println!("the dead holder's pass lease taken over {lapsed:?} later");
    let today = passme_core::clock::system().now_ms().div_euclid(86_400_000);
    let passes = store.rollup_days("passme", today, today).await.expect("days")[0].totals;
    rollups.rebuild("passme", today, today).await.expect("rebuild");
    let rebuilt = store.rollup_days("passme", today, today).await.expect("days")[0].totals;
    assert_eq!(passes, rebuilt, "visits and rollups equal a rebuild");

    // A hung relay: sign-up answers at once; the mail job is held (its lease renewed) while its
    // worker lives, taken over only after kill -9, and the mail arrives once the relay is back.
    sink.pause();
    let signup = r#"{"email":"relay@example.com","password":"et langt og sikkert kodeord","language":"en"}"#;
    let started = Instant::now();
    let (status, _, body) =
        http(&fleet[0].addr, "POST", "/api/v1/signup", &[("Content-Type", "application/json"), ("Origin", &origin(&fleet[0]))], signup);
    let answered = started.elapsed();
    println!("sign-up with the relay hung: {status} in {answered:?}");
    assert_eq!(status, 202, "{body}");
    assert!(answered < Duration::from_secs(1), "{answered:?}");
    let running = async || {
        let running = store.jobs_in(JobStatus::Running, 50).await.expect("running");
        running.into_iter().find(|j| j.kind == "account.mail")
    };
    let (job, _) = wait_for("the mail job claimed", Duration::from_secs(10), running).await;
    let holder = job.locked_by.clone().expect("a holder");
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let still = store.job(&job.id).await.expect("read").expect("job");
    assert_eq!((still.locked_by.as_deref(), still.attempts), (Some(holder.as_str()), 1), "held past its 2 s lease while the worker lives");
    let victim = instance_index(&store, &fleet, &holder).await.expect("the holder's instance");
    fleet[victim].kill_9();
    let taken = async || {
        let job = store.job(&job.id).await.expect("read").expect("job");
        (job.attempts == 2 && job.locked_by.as_deref() != Some(holder.as_str())).then_some(job)
    };
    let (_, after) = wait_for("taken over after kill -9", Duration::from_secs(8), taken).await;
    println!("mail job taken over {after:?} after kill -9 of its holder");
    sink.resume();
    let (mails, _) = wait_for("the verification mail", Duration::from_secs(30), async || {
        let mails: Vec<_> = sink.messages().into_iter().filter(|m| m.to == "relay@example.com").collect();
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mails_now = sink.messages().into_iter().filter(|m| m.to == "relay@example.com").count();
    assert_eq!((mails.len(), mails_now), (1, 1), "exactly one verification mail");
    fleet[victim] = Instance::start(&through_front, &sink, &master_key);

    // The database cut off: 503 with Retry-After, then back without a restart.
    front.cut();
    let (status, headers, _) = http(&fleet[0].addr, "GET", "/readyz", &[], "");
    assert_eq!((status, header(&headers, "retry-after").is_some()), (503, true), "readiness during the outage");
    let (status, headers, body) = {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let view = format!(r#"{{"site":"passme","url":"http://127.0.0.1/outage","ts":{now}}}"#);
        let agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        http(
            &fleet[2].addr,
            "POST",
            "/api/v1/events",
            &[("Content-Type", "text/plain"), ("User-Agent", agent), ("X-Forwarded-For", "192.0.2.99")],
            &view,
        )
    };
    assert_eq!((status, header(&headers, "retry-after").is_some()), (503, true), "a page view during the outage: {body}");
    let (status, headers, body) =
        http(&fleet[1].addr, "POST", "/api/v1/login", &[("Content-Type", "application/json"), ("Origin", &origin(&fleet[1]))], &login);
    assert_eq!(
        (status, header(&headers, "retry-after").is_some()),
        (503, true),
        "a sign-in during the outage: {body}\n{}",
        std::fs::read_to_string(fleet[1]._dir.path().join("stderr.log")).unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    front.restore();
    let ready = async || (http(&fleet[0].addr, "GET", "/readyz", &[], "").0 == 200).then_some(());
    let (_, recovered) = wait_for("ready again", Duration::from_secs(15), ready).await;
    println!("database outage: ready again {recovered:?} after the database came back");
    for instance in &fleet {
        assert_eq!(page_view(&instance.addr, "/after-outage", "192.0.2.98"), 202, "every instance serves again without a restart");
    }

    // SIGTERM: the instance drains and exits in seconds.
    let started = Instant::now();
    let status = terminate(&mut fleet[2].child);
    let drained = started.elapsed();
    println!("SIGTERM: exited in {drained:?}");
    assert!(status.success() && drained < Duration::from_secs(5), "{status:?} after {drained:?}");
}
