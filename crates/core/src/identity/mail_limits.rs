//! How many account mails (verification, "you already have an account", password reset, new
//! address confirmation) requests can cause per hour, so that nobody can use PassMe to flood a
//! mailbox:
//!
//! - to one address from one network: 3 (the usual "send it again", and no more);
//! - to one address from anywhere: 10 (many networks taking turns);
//! - from one network to any addresses: 30 (one sender trying many addresses).
//!
//! Every request is counted alike whether or not the address has an account, and the caller
//! answers alike whether or not the mail went out, so the limits reveal nothing about who has an
//! account. The counters live in the shared throttle table, keyed by HMAC, so every instance of
//! the service counts together.

use std::net::IpAddr;

use passme_store::Store;

use super::throttle::{CounterKeys, network};
use crate::CoreError;
use crate::clock::SharedClock;

const HOUR_MS: i64 = 3_600_000;

struct Limit {
    name: &'static str,
    per_hour: i64,
}

const PAIR: Limit = Limit { name: "mail_pair", per_hour: 3 };
const ADDRESS: Limit = Limit { name: "mail_address", per_hour: 10 };
const NETWORK: Limit = Limit { name: "mail_network", per_hour: 30 };

#[derive(Clone)]
pub struct MailLimits {
    store: Store,
    clock: SharedClock,
    keys: CounterKeys,
}

impl std::fmt::Debug for MailLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailLimits").finish_non_exhaustive()
    }
}

impl MailLimits {
    pub fn new(store: Store, clock: SharedClock, master_key: &[u8; 32]) -> MailLimits {
        MailLimits { store, clock, keys: CounterKeys::new(master_key) }
    }

    /// Counts one mail to `email_key` asked for from `ip`; true when it is within every limit.
    ///
    /// The narrowest limit counts first, and a request it refuses counts no further: one sender
    /// hammering one address (refused by the pair limit) neither uses up that address's budget
    /// for its owner on another network nor the budget of others behind the same network.
    pub async fn allow(&self, email_key: &str, ip: IpAddr) -> Result<bool, CoreError> {
        let net = network(ip);
        let now = self.clock.now_ms();
        for (limit, key) in [
            (&PAIR, self.keys.key(PAIR.name, &[email_key, &net])),
            (&ADDRESS, self.keys.key(ADDRESS.name, &[email_key])),
            (&NETWORK, self.keys.key(NETWORK.name, &[&net])),
        ] {
            if self.store.throttle_failure(&key, now, now - HOUR_MS).await? > limit.per_hour {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
