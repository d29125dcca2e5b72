//! Sign-in throttling with growing delays, in three layers:
//!
//! - per address *and* network: after 5 failures in 15 minutes, a delay that doubles with each
//!   further failure (capped at 15 minutes) — the usual guessing attack;
//! - per network: after 20 failures in 10 minutes, whatever the addresses — credential stuffing,
//!   many users from one IP (capped at an hour);
//! - per address from any network: after 50 failures in an hour — one user from many IPs — but
//!   never for a network the account has signed in from in the last 30 days, so an attacker
//!   cannot lock the real user out.
//!
//! Counters are keyed by HMAC of the address key and the network, so the table holds neither, and
//! unknown addresses are counted exactly like known ones (no enumeration through throttling).

use std::net::IpAddr;

use passme_store::Store;

use crate::CoreError;
use crate::clock::SharedClock;
use crate::net::truncate_ip;

struct Rule {
    name: &'static str,
    threshold: i64,
    window_ms: i64,
    max_delay_ms: i64,
}

const PAIR: Rule = Rule { name: "pair", threshold: 5, window_ms: 15 * 60_000, max_delay_ms: 15 * 60_000 };
const NETWORK: Rule = Rule { name: "network", threshold: 20, window_ms: 10 * 60_000, max_delay_ms: 60 * 60_000 };
const ACCOUNT: Rule = Rule { name: "account", threshold: 50, window_ms: 60 * 60_000, max_delay_ms: 15 * 60_000 };
const KNOWN_NETWORK_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Try again in this many seconds.
    Throttled {
        retry_after_secs: i64,
    },
}

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
    clock: SharedClock,
    keys: CounterKeys,
}

/// Names the counters of the shared throttle table: an HMAC of a rule name and its parts under a
/// key derived from the master key, so the table holds neither addresses nor networks, and all
/// instances of the service count under the same names.
#[derive(Clone)]
pub(crate) struct CounterKeys([u8; 32]);

impl CounterKeys {
    pub(crate) fn new(master_key: &[u8; 32]) -> CounterKeys {
        CounterKeys(crate::crypto::derive_key(master_key, b"passme/throttle/v1"))
    }

    pub(crate) fn key(&self, rule: &str, parts: &[&str]) -> String {
        let all: Vec<&[u8]> = std::iter::once(rule.as_bytes()).chain(parts.iter().map(|p| p.as_bytes())).collect();
        crate::crypto::keyed_hash(&self.0, &all)
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

/// The network of an address as throttling sees it: the IPv4 address itself, or the IPv6 /48
/// (one subscriber typically holds a whole IPv6 prefix and could rotate addresses within it).
pub(crate) fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(_) => truncate_ip(ip),
    }
}

fn delay_ms(rule: &Rule, failures: i64) -> i64 {
    let over = u32::try_from((failures - rule.threshold).clamp(0, 30)).unwrap_or(30);
    (1_000_i64 << over).min(rule.max_delay_ms)
}

impl LoginThrottle {
    pub fn new(store: Store, clock: SharedClock, master_key: &[u8; 32]) -> LoginThrottle {
        LoginThrottle { store, clock, keys: CounterKeys::new(master_key) }
    }

    fn key(&self, rule: &Rule, parts: &[&str]) -> String {
        self.keys.key(rule.name, parts)
    }

    async fn known_network(&self, email_key: &str, ip: IpAddr) -> Result<bool, CoreError> {
        let Some(account) = self.store.account_by_email_key(email_key).await? else { return Ok(false) };
        let since = self.clock.now_ms() - KNOWN_NETWORK_DAYS * 86_400_000;
        Ok(self.store.account_networks(&account.id, since).await?.contains(&truncate_ip(ip)))
    }

    /// Whether an attempt for this address key from this address may go ahead now.
    pub async fn check(&self, email_key: &str, ip: IpAddr) -> Result<Verdict, CoreError> {
        let net = network(ip);
        let mut keys = vec![self.key(&PAIR, &[email_key, &net]), self.key(&NETWORK, &[&net])];
        if !self.known_network(email_key, ip).await? {
            keys.push(self.key(&ACCOUNT, &[email_key]));
        }
        let now = self.clock.now_ms();
        let mut until = 0;
        for key in keys {
            until = until.max(self.store.throttle_blocked_until(&key).await?);
        }
        Ok(if until > now { Verdict::Throttled { retry_after_secs: (until - now + 999) / 1000 } } else { Verdict::Allowed })
    }

    /// Counts a failed attempt in every layer and blocks the layers that crossed their threshold.
    pub async fn failed(&self, email_key: &str, ip: IpAddr) -> Result<(), CoreError> {
        let net = network(ip);
        let now = self.clock.now_ms();
        for (rule, key) in [
            (&PAIR, self.key(&PAIR, &[email_key, &net])),
            (&NETWORK, self.key(&NETWORK, &[&net])),
            (&ACCOUNT, self.key(&ACCOUNT, &[email_key])),
        ] {
            let failures = self.store.throttle_failure(&key, now, now - rule.window_ms).await?;
            if failures > rule.threshold {
                self.store.throttle_block(&key, now + delay_ms(rule, failures)).await?;
            }
        }
        Ok(())
    }

    /// A successful sign-in clears the counter of this address from this network.
    pub async fn succeeded(&self, email_key: &str, ip: IpAddr) -> Result<(), CoreError> {
        Ok(self.store.throttle_clear(&self.key(&PAIR, &[email_key, &network(ip)])).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_threshold_and_are_capped() {
        assert_eq!([6, 7, 8, 9].map(|f| delay_ms(&PAIR, f)), [2_000, 4_000, 8_000, 16_000]);
        assert_eq!(delay_ms(&PAIR, 500), PAIR.max_delay_ms);
    }
}
