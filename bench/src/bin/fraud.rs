//! A traffic simulator for fraud scanning: `--users` people sign up, sign in (now and then with a
//! wrong password first, now and then from their phone's network), check out with their card
//! (now and then declined once) and link an account, over `--days` simulated days; half of them
//! have phones behind a shared carrier network (CGNAT). Mixed in,
//! labelled: credential stuffing (a list of addresses tried from one network, a few of them
//! real), card testing (one account trying many cards, most declined), multi-accounting (many
//! sign-ups from one device) and trial abuse (sign-ups with variants of one Gmail address, some
//! at disposable domains). Every event goes through the real engine with the rules a new
//! installation starts with, on SQLite or PostgreSQL, with the real ISP table and
//! disposable-domain list; the clock is simulated.
//!
//! Prints, per attack, the detection rate (attack events decided other than allow) and the
//! false-positive rate (normal events of the same kind decided other than allow), and the decision
//! time's p50 and p99.
//!
//!     cargo run --release -p passme-bench --bin fraud -- --users 2000 [--days 3] [--seed 7] [--postgres URL]
//!
//! Needs `.tools/asn.pmasn` and `.tools/disposable-domains.txt` (`scripts/test` makes both). With
//! `--postgres`, give it a database of its own: it empties the fraud tables.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use passme_analytics::asn::AsnTable;
use passme_bench::{arg, percentile_ms};
use passme_core::clock::{Clock, ManualClock, SharedClock};
use passme_fraud::signals::{DisposableDomains, is_hosting};
use passme_fraud::{Event, EventKind, Fraud, Outcome};
use passme_store::{AccountId, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Normal,
    CredentialStuffing,
    CardTesting,
    MultiAccounting,
    TrialAbuse,
}

impl Label {
    fn name(self) -> &'static str {
        match self {
            Label::Normal => "normal",
            Label::CredentialStuffing => "credential stuffing",
            Label::CardTesting => "card testing",
            Label::MultiAccounting => "multi-accounting",
            Label::TrialAbuse => "trial abuse",
        }
    }

    /// The event kind whose normal traffic the attack's false positives are counted on.
    fn kind(self) -> EventKind {
        match self {
            Label::CredentialStuffing => EventKind::Signin,
            Label::CardTesting => EventKind::Payment,
            Label::MultiAccounting | Label::TrialAbuse | Label::Normal => EventKind::Signup,
        }
    }
}

/// One simulated event; `decide` false for failures that are only counted.
#[derive(Debug, Clone)]
struct Sim {
    at: i64,
    label: Label,
    kind: EventKind,
    decide: bool,
    success: bool,
    ip: IpAddr,
    account: Option<usize>,
    email: String,
    device: String,
    card: Option<String>,
}

struct Person {
    email: String,
    home: IpAddr,
    mobile: IpAddr,
    device: String,
    card: String,
    joined: i64,
}

/// A random address whose provider is (or is not) a hosting company, from the real ISP table.
fn address(rng: &mut StdRng, asn: &AsnTable, hosting: bool) -> IpAddr {
    loop {
        let ip = IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()));
        if let Some(isp) = asn.lookup(ip)
            && is_hosting(isp.asn, &isp.name) == hosting
        {
            return ip;
        }
    }
}

fn device(rng: &mut StdRng) -> String {
    let browsers = ["Firefox/133.0", "Chrome/131.0.0.0 Safari/537.36", "Version/18.1 Safari/605.1.15", "Edg/131.0.0.0"];
    let systems = ["Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 14_6", "X11; Linux x86_64", "iPhone; CPU iPhone OS 18_1"];
    format!(
        "Mozilla/5.0 ({}) {} build/{}\nda-DK,da;q=0.9,en;q=0.8",
        systems[rng.random_range(0..systems.len())],
        browsers[rng.random_range(0..browsers.len())],
        rng.random_range(0..100_000)
    )
}

fn normal_traffic(rng: &mut StdRng, asn: &AsnTable, users: usize, days: i64, start: i64) -> (Vec<Person>, Vec<Sim>) {
    let mut people = Vec::new();
    let mut events = Vec::new();
    // Mobile carriers put many customers behind a few addresses (carrier-grade NAT): half the
    // people's phones share one of these networks, the hard case for per-network velocity.
    let carriers: Vec<IpAddr> = (0..(users / 50).max(2)).map(|_| address(rng, asn, false)).collect();
    for i in 0..users {
        let joined = start + rng.random_range(0..days * DAY / 2);
        let person = Person {
            email: format!("person{i}@{}", ["gmail.com", "outlook.dk", "example.dk", "hotmail.com"][i % 4]),
            home: address(rng, asn, false),
            mobile: if rng.random_bool(0.5) { carriers[rng.random_range(0..carriers.len())] } else { address(rng, asn, false) },
            device: device(rng),
            card: format!("card_{i}"),
            joined,
        };
        let sim = |at: i64, kind: EventKind, success: bool, decide: bool, ip: IpAddr, card: Option<String>| Sim {
            at,
            label: Label::Normal,
            kind,
            decide,
            success,
            ip,
            account: (kind != EventKind::Signup).then_some(i),
            email: person.email.clone(),
            device: person.device.clone(),
            card,
        };
        let signup_from = if rng.random_bool(0.25) { person.mobile } else { person.home };
        events.push(sim(joined, EventKind::Signup, true, true, signup_from, None));
        let mut at = joined + rng.random_range(10 * MINUTE..3 * HOUR);
        if rng.random_bool(0.6) {
            // The checkout (no card yet: the provider's page takes it), then the provider's
            // report of the payment with its card, now and then declined once first.
            events.push(sim(at, EventKind::Checkout, true, true, person.home, None));
            at += MINUTE;
            if rng.random_bool(0.02) {
                events.push(sim(at, EventKind::Payment, false, true, person.home, Some(person.card.clone())));
                at += 2 * MINUTE;
            }
            events.push(sim(at, EventKind::Payment, true, true, person.home, Some(person.card.clone())));
        }
        if rng.random_bool(0.2) {
            events.push(sim(at + HOUR, EventKind::Link, true, true, person.home, None));
        }
        while at < start + days * DAY {
            let ip = if rng.random_bool(0.2) { person.mobile } else { person.home };
            if rng.random_bool(0.05) {
                events.push(sim(at, EventKind::Signin, false, false, ip, None));
                at += MINUTE;
            }
            events.push(sim(at, EventKind::Signin, true, true, ip, None));
            at += rng.random_range(4 * HOUR..30 * HOUR);
        }
        people.push(person);
    }
    (people, events)
}

fn attacks(rng: &mut StdRng, asn: &AsnTable, people: &[Person], days: i64, start: i64, disposable: &[&str]) -> Vec<Sim> {
    let mut events = Vec::new();
    let span = days * DAY;
    // Credential stuffing: 10 waves, each 150 leaked addresses from one network (half from
    // datacenters, half through residential proxies); 2 % of them are real with their password.
    for wave in 0..10 {
        let ip = address(rng, asn, wave % 2 == 0);
        let device = device(rng);
        let mut at = start + span / 2 + rng.random_range(0..span / 2);
        for n in 0..150 {
            at += rng.random_range(1_000..4_000);
            let real = rng.random_bool(0.02).then(|| rng.random_range(0..people.len())).filter(|p| people[*p].joined < at);
            let email = real.map_or_else(|| format!("leaked{wave}_{n}@example.com"), |p| people[p].email.clone());
            events.push(Sim {
                at,
                label: Label::CredentialStuffing,
                kind: EventKind::Signin,
                decide: real.is_some(),
                success: real.is_some(),
                ip,
                account: real,
                email,
                device: device.clone(),
                card: None,
            });
        }
    }
    // Card testing: 15 fresh accounts, each trying 20 stolen cards, 85 % declined.
    for _ in 0..15 {
        let victim = rng.random_range(0..people.len());
        let hosting = rng.random_bool(0.5);
        let ip = address(rng, asn, hosting);
        let device = device(rng);
        let mut at = (start + span / 3 + rng.random_range(0..span / 2)).max(people[victim].joined + HOUR);
        for c in 0..20 {
            at += rng.random_range(20_000..90_000);
            let card = format!("stolen_{victim}_{c}_{}", rng.random::<u32>());
            let declined = rng.random_bool(0.85);
            let event = |kind: EventKind, success: bool, card: Option<String>| Sim {
                at,
                label: Label::CardTesting,
                kind,
                decide: true,
                success,
                ip,
                account: Some(victim),
                email: people[victim].email.clone(),
                device: device.clone(),
                card,
            };
            events.push(event(EventKind::Checkout, true, None));
            events.push(event(EventKind::Payment, !declined, Some(card.clone())));
        }
    }
    // Multi-accounting: 10 devices, each making 8 accounts within a day from a home network.
    for d in 0..10 {
        let ip = address(rng, asn, false);
        let device = device(rng);
        let mut at = start + rng.random_range(0..span - DAY);
        for n in 0..8 {
            at += rng.random_range(10 * MINUTE..3 * HOUR);
            events.push(Sim {
                at,
                label: Label::MultiAccounting,
                kind: EventKind::Signup,
                decide: true,
                success: true,
                ip,
                account: None,
                email: format!("multi{d}x{n}@{}", ["gmail.com", "outlook.dk", "proton.me"][n % 3]),
                device: device.clone(),
                card: None,
            });
        }
    }
    // Trial abuse: 20 people signing up again and again with variants of one Gmail address
    // (dots, +tags, googlemail.com), from changing networks and browsers, or at disposable domains.
    for p in 0..20 {
        let mut at = start + rng.random_range(0..span - DAY);
        for n in 0..5 {
            at += rng.random_range(2 * HOUR..8 * HOUR);
            let email = if n % 3 == 2 {
                format!("trial{p}x{n}@{}", disposable[rng.random_range(0..disposable.len())])
            } else {
                let dotted: String = format!("trialabuser{p}")
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i == n + 1 { format!("{c}.") } else { c.to_string() })
                    .collect();
                format!("{dotted}+{n}@{}", if n % 2 == 0 { "gmail.com" } else { "googlemail.com" })
            };
            events.push(Sim {
                at,
                label: Label::TrialAbuse,
                kind: EventKind::Signup,
                decide: true,
                success: true,
                ip: address(rng, asn, false),
                account: None,
                email,
                device: device(rng),
                card: None,
            });
        }
    }
    events
}

#[derive(Default)]
struct Tally {
    decided: u64,
    flagged: u64,
}

async fn connect(data: &Path, postgres: &str) -> Result<Store, Box<dyn std::error::Error>> {
    let options = StoreOptions {
        database_url: (!postgres.is_empty()).then(|| SecretString::from(postgres.to_string())),
        data_dir: data.to_path_buf(),
        max_connections: 8,
    };
    let store = Store::connect(&options).await?;
    store.migrate().await?;
    for table in ["fraud_events", "fraud_decisions", "fraud_lists"] {
        store.execute_script(&format!("DELETE FROM {table}")).await?;
    }
    Ok(store)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users: usize = arg("--users", 2_000);
    let days: i64 = arg("--days", 3);
    let seed: u64 = arg("--seed", 7);
    let postgres: String = arg("--postgres", String::new());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let asn = Arc::new(AsnTable::load(&root.join("asn.pmasn"))?);
    let disposable = Arc::new(DisposableDomains::load(&root.join(passme_fraud::signals::FILE_NAME)));
    assert!(!disposable.is_empty(), "run scripts/test first: it converts the disposable-mail list into .tools/");
    let data = tempfile::tempdir()?;
    let store = connect(data.path(), &postgres).await?;

    let mut rng = StdRng::seed_from_u64(seed);
    let start = 1_800_000_000_000;
    let (people, mut events) = normal_traffic(&mut rng, &asn, users, days, start);
    let throwaway = ["mailinator.com", "yopmail.com", "guerrillamail.com", "10minutemail.com"];
    assert!(throwaway.iter().all(|d| disposable.contains(&format!("a@{d}"))));
    events.extend(attacks(&mut rng, &asn, &people, days, start, &throwaway));
    events.sort_by_key(|e| e.at);

    let clock = Arc::new(ManualClock::at(start));
    let shared: SharedClock = clock.clone();
    let fraud = Fraud::new(store.clone(), shared, &[9; 32], Some(asn), disposable);
    let ids: Vec<AccountId> = (0..people.len()).map(|i| AccountId::new(format!("acc_{i:08}"))).collect();
    let mut tallies: BTreeMap<(Label, &'static str), Tally> = BTreeMap::new();
    let mut times = Vec::new();
    let started = Instant::now();
    for sim in &events {
        clock.advance(sim.at - clock.now_ms());
        let event = Event {
            kind: sim.kind,
            success: sim.success,
            // The provider reports payments: no network.
            ip: (sim.kind != EventKind::Payment).then_some(sim.ip),
            account: sim.account.map(|i| &ids[i]),
            account_created_at: sim.account.map(|i| people[i].joined),
            email: Some(&sim.email),
            device: Some(&sim.device),
            card: sim.card.as_deref(),
            visitor: None,
        };
        if !sim.decide {
            fraud.record(&event).await?;
            continue;
        }
        let t = Instant::now();
        let decision = fraud.assess(&event).await?;
        times.push(t.elapsed());
        let tally = tallies.entry((sim.label, sim.kind.id())).or_default();
        tally.decided += 1;
        tally.flagged += u64::from(decision.outcome != Outcome::Allow);
    }
    let elapsed = started.elapsed();
    times.sort();
    let engine = if postgres.is_empty() { "sqlite" } else { "postgres" };
    println!(
        "{engine}: {} events ({} decided) from {users} people over {days} days in {:.1} s",
        events.len(),
        times.len(),
        elapsed.as_secs_f64()
    );
    let rate = |t: Option<&Tally>| t.map_or((0, 0.0), |t| (t.decided, 100.0 * t.flagged as f64 / t.decided.max(1) as f64));
    for label in [Label::CredentialStuffing, Label::CardTesting, Label::MultiAccounting, Label::TrialAbuse] {
        let (n, detected) = rate(tallies.get(&(label, label.kind().id())));
        let (m, false_positives) = rate(tallies.get(&(Label::Normal, label.kind().id())));
        println!(
            "{:<20} detected {detected:5.1} % of {n:>4} decided events; false positives {false_positives:4.2} % of {m} normal {} events",
            label.name(),
            label.kind().id()
        );
    }
    for kind in EventKind::ALL {
        let (n, flagged) = rate(tallies.get(&(Label::Normal, kind.id())));
        println!("normal {:<9} {flagged:5.2} % of {n} flagged", kind.id());
    }
    println!(
        "decision time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile_ms(&times, 0.5),
        percentile_ms(&times, 0.99),
        times.last().copied().unwrap_or(Duration::ZERO).as_secs_f64() * 1000.0
    );
    Ok(())
}
