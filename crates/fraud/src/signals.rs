//! What an event looks like to the rules: the signal catalogue, the identifiers an event carries
//! and how each is keyed before it is stored, and the checks that need no history (a hosting
//! network, a disposable address).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use passme_analytics::asn::AsnTable;
use passme_store::{AccountId, FraudCounts};

use crate::rules::{Type, Value};

/// Where an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Signup,
    Signin,
    Checkout,
    Link,
    /// A payment attempt the provider reports, with its card: decided after the fact, so it is
    /// never refused, only reviewed.
    Payment,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [EventKind::Signup, EventKind::Signin, EventKind::Checkout, EventKind::Link, EventKind::Payment];

    pub fn id(self) -> &'static str {
        match self {
            EventKind::Signup => "signup",
            EventKind::Signin => "signin",
            EventKind::Checkout => "checkout",
            EventKind::Link => "link",
            EventKind::Payment => "payment",
        }
    }
}

/// One sign-up, sign-in, checkout or link to scan, with the identifiers it carries in the clear;
/// only their keyed hashes are stored.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: EventKind,
    /// A sign-in with the right password, a checkout the provider accepted: failures count
    /// towards velocity but are not decided.
    pub success: bool,
    /// Where the person is; `None` for what the payment provider reports.
    pub ip: Option<IpAddr>,
    pub account: Option<&'a AccountId>,
    /// When the account was made, for its age.
    pub account_created_at: Option<i64>,
    pub email: Option<&'a str>,
    /// A coarse device signature (the browser's user agent and languages).
    pub device: Option<&'a str>,
    /// The payment provider's card fingerprint.
    pub card: Option<&'a str>,
    /// Tracking's visitor id for this browser (its cookie, or the day's cookieless id), to find
    /// its page views.
    pub visitor: Option<i64>,
}

/// Every signal a rule may read, its type and what it means.
pub const SIGNALS: &[(&str, Type, &str)] = &[
    ("event.kind", Type::Str, "signup, signin, checkout, link or payment (an attempt the payment provider reports)"),
    ("network.isp", Type::Str, "the network's internet service provider, from the ISP table"),
    ("network.hosting", Type::Bool, "the network belongs to a datacenter or hosting provider"),
    ("network.attempts_10m", Type::Num, "events of this kind from the network (/24 or /48) in 10 minutes"),
    ("network.failures_10m", Type::Num, "failed sign-ins and declined payments from the network in 10 minutes"),
    ("network.accounts_24h", Type::Num, "distinct accounts seen from the network in 24 hours"),
    ("network.signups_1h", Type::Num, "sign-ups from the network in an hour"),
    ("account.age_minutes", Type::Num, "minutes since the account was made (0 without one)"),
    ("account.failures_1h", Type::Num, "failed sign-ins and declined payments of the account in an hour"),
    ("account.known_network", Type::Bool, "the account signed in from this network in the last 30 days"),
    ("account.other_networks_1h", Type::Num, "other networks the account was used from in the last hour"),
    ("account.other_asns_1h", Type::Num, "other internet providers the account was used from in the last hour (travel between networks)"),
    ("account.cards_24h", Type::Num, "distinct cards the account used in 24 hours"),
    ("account.declines_1h", Type::Num, "declined payments of the account in an hour"),
    ("device.accounts_24h", Type::Num, "distinct accounts seen from this device in 24 hours"),
    ("card.accounts_24h", Type::Num, "other accounts that used this card in 24 hours"),
    ("card.declines_1h", Type::Num, "declines of this card in an hour"),
    ("email.disposable", Type::Bool, "the address is at a disposable-mail domain"),
    ("email.signups_30d", Type::Num, "sign-ups with the same address (after normalising) in 30 days"),
    (
        "address.pageviews_1h",
        Type::Num,
        "page views tracked from this browser at this exact IP address in the last hour (the full address tracking keeps 48 hours)",
    ),
];

pub fn catalogue() -> BTreeMap<&'static str, Type> {
    SIGNALS.iter().map(|(name, t, _)| (*name, *t)).collect()
}

/// The signal values of one event, from its counts and the checks without history.
pub fn values(
    event: &Event<'_>,
    counts: &FraudCounts,
    isp: Option<(u32, &str)>,
    disposable: bool,
    now: i64,
) -> BTreeMap<&'static str, Value> {
    let n = |v: i64| Value::Num(v as f64);
    BTreeMap::from([
        ("event.kind", Value::Str(event.kind.id().into())),
        ("network.isp", Value::Str(isp.map(|(_, name)| name.to_string()).unwrap_or_default())),
        ("network.hosting", Value::Bool(isp.is_some_and(|(asn, name)| is_hosting(asn, name)))),
        ("network.attempts_10m", n(counts.network_attempts_10m)),
        ("network.failures_10m", n(counts.network_failures_10m)),
        ("network.accounts_24h", n(counts.network_accounts_24h)),
        ("network.signups_1h", n(counts.network_signups_1h)),
        ("account.age_minutes", n(event.account_created_at.map_or(0, |at| (now - at).max(0) / 60_000))),
        ("account.failures_1h", n(counts.account_failures_1h)),
        ("account.known_network", Value::Bool(counts.account_known_network)),
        ("account.other_networks_1h", n(counts.account_other_networks_1h)),
        ("account.other_asns_1h", n(counts.account_other_asns_1h)),
        ("account.cards_24h", n(counts.account_cards_24h)),
        ("account.declines_1h", n(counts.account_declines_1h)),
        ("device.accounts_24h", n(counts.device_accounts_24h)),
        ("card.accounts_24h", n(counts.card_accounts_24h)),
        ("card.declines_1h", n(counts.card_declines_1h)),
        ("email.disposable", Value::Bool(disposable)),
        ("email.signups_30d", n(counts.email_signups_30d)),
        ("address.pageviews_1h", n(counts.address_pageviews_1h)),
    ])
}

/// Autonomous systems of the large clouds and hosting companies (their own numbers, from their
/// published peering records), and words that hosting companies put in their names.
const HOSTING_ASNS: &[u32] = &[
    16509, 14618, 8987, // Amazon
    15169, 396982, 19527, // Google, Google Cloud
    8075, 8068,  // Microsoft
    14061, // DigitalOcean
    24940, 213230, // Hetzner
    16276,  // OVH
    63949,  // Linode (Akamai)
    20473,  // Vultr (Choopa)
    51167, 40021, // Contabo
    60781, 28753,  // Leaseweb
    9009,   // M247
    212238, // Datacamp
    45102,  // Alibaba Cloud
    132203, // Tencent Cloud
    31898,  // Oracle Cloud
    36352,  // ColoCrossing
    62240,  // Clouvider
    8100,   // QuadraNet
    53667,  // FranTech (BuyVM)
    197540, // netcup
    12876,  // Scaleway
    46606,  // Unified Layer
    26496,  // GoDaddy
    54290,  // Hostwinds
    55286,  // ServerMania
];
const HOSTING_WORDS: &[&str] = &["hosting", "datacenter", "data center", "dedicated", "server", "vps", "colocation", "cloud"];

/// Whether an autonomous system is a datacenter or hosting provider.
pub fn is_hosting(asn: u32, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    HOSTING_ASNS.contains(&asn) || HOSTING_WORDS.iter().any(|w| name.contains(w))
}

pub fn isp(table: Option<&AsnTable>, ip: Option<IpAddr>) -> Option<(u32, String)> {
    table?.lookup(ip?).map(|isp| (isp.asn, isp.name))
}

/// An address as one mailbox: lower case, without a `+tag`, and for Gmail without dots and with
/// googlemail.com as gmail.com. Variants of one mailbox (`Mallory+2@googlemail.com`,
/// `m.allory@gmail.com`) are one address to the deny list and to the duplicate count.
pub fn canonical_email(address: &str) -> String {
    let address = address.trim().to_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else { return address };
    let local = local.split('+').next().unwrap_or(local);
    let domain = if domain == "googlemail.com" { "gmail.com" } else { domain };
    let local = if domain == "gmail.com" { local.replace('.', "") } else { local.to_string() };
    format!("{local}@{domain}")
}

/// The file `passme fraud import-domains` writes in the data folder and `serve` looks for.
pub const FILE_NAME: &str = "disposable-domains.txt";

/// The disposable-mail domains `passme fraud import-domains` converts from the npm package
/// `disposable-email-domains`; empty when the file is missing.
#[derive(Debug, Default)]
pub struct DisposableDomains {
    domains: HashSet<String>,
    pub source: String,
}

impl DisposableDomains {
    pub fn from_lines(text: &str) -> DisposableDomains {
        let mut source = String::new();
        let mut domains = HashSet::new();
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('#') {
                if source.is_empty() {
                    source = comment.trim().to_string();
                }
            } else if !line.is_empty() {
                domains.insert(line.to_ascii_lowercase());
            }
        }
        DisposableDomains { domains, source }
    }

    pub fn load(path: &Path) -> DisposableDomains {
        match std::fs::read_to_string(path) {
            Ok(text) => DisposableDomains::from_lines(&text),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no disposable-mail domain list: the email.disposable signal is always false");
                DisposableDomains::default()
            }
        }
    }

    /// Converts the npm package `disposable-email-domains` (its `index.json` and `wildcard.json`,
    /// arrays of domains) into the sorted list [`DisposableDomains::load`] reads, headed by the
    /// package's name and version. Returns how many domains it wrote.
    pub fn import(package: &Path, out: &Path) -> Result<usize, String> {
        let read = |name: &str| -> Result<serde_json::Value, String> {
            let path = package.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        };
        let manifest = read("package.json")?;
        let mut domains = std::collections::BTreeSet::new();
        for name in ["index.json", "wildcard.json"] {
            let list = read(name)?;
            let items = list.as_array().ok_or_else(|| format!("{name}: not an array of domains"))?;
            for item in items {
                let domain = item.as_str().ok_or_else(|| format!("{name}: {item} is not a domain"))?.trim().to_ascii_lowercase();
                if domain.contains('.') && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                    domains.insert(domain);
                }
            }
        }
        let header = format!("# {} {}\n", manifest["name"].as_str().unwrap_or("?"), manifest["version"].as_str().unwrap_or("?"));
        let text = header + &domains.iter().map(|d| format!("{d}\n")).collect::<String>();
        std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(domains.len())
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether the address's domain, or a domain it is under, is listed.
    pub fn contains(&self, address: &str) -> bool {
        let Some((_, mut domain)) = address.rsplit_once('@') else { return false };
        let lower = domain.to_ascii_lowercase();
        domain = &lower;
        loop {
            if self.domains.contains(domain) {
                return true;
            }
            match domain.split_once('.') {
                Some((_, parent)) if parent.contains('.') => domain = parent,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_mailbox_are_one_address() {
        for variant in ["Mallory+2@googlemail.com", "m.allory@gmail.com", " MALLORY+x+y@Gmail.com "] {
            assert_eq!(canonical_email(variant), "mallory@gmail.com", "{variant}");
        }
        assert_eq!(canonical_email("m.allory+1@example.dk"), "m.allory@example.dk");
        assert_ne!(canonical_email("mallory@example.dk"), canonical_email("mallory@example.com"));
    }

    #[test]
    fn disposable_domains_match_their_subdomains_only() {
        let list = DisposableDomains::from_lines("# disposable-email-domains 1.0.62\nmailinator.com\n\nyopmail.com\n");
        assert_eq!((list.len(), list.source.as_str()), (2, "disposable-email-domains 1.0.62"));
        assert!(list.contains("a@Mailinator.com"));
        assert!(list.contains("a@x.mailinator.com"));
        assert!(!list.contains("a@notmailinator.com"));
        assert!(!list.contains("a@com"));
    }

    #[test]
    fn hosting_networks_are_known_by_number_or_name() {
        assert!(is_hosting(16509, "AMAZON-02"));
        assert!(is_hosting(99999, "Example Hosting Ltd"));
        assert!(!is_hosting(3292, "TDC Holding A/S"));
    }
}
