//! A rate limit for the whole fleet that costs no database round trip per request.
//!
//! The allowance is a token bucket in the shared database ([`passme_store::Bucket`]). Each
//! instance lets a sender through on a small local allowance first (a few page views: what a
//! visitor sends), and only a sender that goes past it costs a statement, which charges what the
//! local allowance let through and takes a block of tokens for the next requests. So a visitor
//! never touches the database, a heavy sender costs one statement per block, and a sender refused
//! by the shared bucket is refused locally until it could have refilled a block.
//!
//! How far the fleet can overshoot the one-instance allowance: each instance lets at most
//! `free` uncharged requests through per sender, once until the sender has been quiet for a full
//! bucket, and forgets them at `leak` a millisecond; both are 5 % of the bucket's burst and
//! refill shared by the number of live instances. What the local allowances let through is
//! charged when the sender goes past them, so a burst gets exactly the bucket, and a sender
//! that stays under every instance's allowance gets at most 5 % more than the bucket refills.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use passme_store::{Bucket, Store};

use crate::CoreError;

/// The share of the allowance instances may let through before the shared bucket hears of it.
const LOCAL_SHARE: f64 = 0.05;
/// Senders remembered per instance; past it, light senders are forgotten first.
const MAX_SENDERS: usize = 100_000;

#[derive(Debug, Default, Clone, Copy)]
struct Sender {
    /// Requests let through on the local allowance, not yet charged to the shared bucket.
    uncharged: f64,
    /// Tokens taken from the shared bucket, not yet spent.
    tokens: f64,
    /// Refused by the shared bucket: refused locally until then.
    refused_until: i64,
    /// Went past the local allowance: every request is charged to the shared bucket until the
    /// sender has been quiet long enough for a full bucket.
    heavy: bool,
    at: i64,
}

#[derive(Debug)]
pub struct SharedLimit {
    store: Store,
    /// Names this limit's buckets: a keyed hash of the limit and the address.
    key: [u8; 32],
    name: &'static str,
    bucket: Bucket,
    /// Tokens taken from the shared bucket at once.
    block: f64,
    fleet: AtomicUsize,
    senders: Mutex<HashMap<IpAddr, Sender>>,
}

impl SharedLimit {
    /// A limit of `burst` requests per address, refilled at `per_sec`.
    pub fn new(store: Store, master_key: &[u8; 32], name: &'static str, burst: f64, per_sec: f64) -> SharedLimit {
        SharedLimit {
            store,
            key: crate::crypto::derive_key(master_key, b"passme/limits/v1"),
            name,
            bucket: Bucket { burst, per_ms: per_sec / 1000.0 },
            block: (burst / 10.0).max(1.0),
            fleet: AtomicUsize::new(1),
            senders: Mutex::new(HashMap::new()),
        }
    }

    /// How many instances share the limit (from the instance registry); sizes the local share.
    pub fn set_fleet_size(&self, instances: usize) {
        self.fleet.store(instances.max(1), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Sender>> {
        self.senders.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `ip` may make `n` more requests now.
    pub async fn allow(&self, ip: IpAddr, n: usize, now: i64) -> Result<bool, CoreError> {
        let n = n as f64;
        let fleet = self.fleet.load(Ordering::Relaxed) as f64;
        let (free, leak) = (LOCAL_SHARE * self.bucket.burst / fleet, LOCAL_SHARE * self.bucket.per_ms / fleet);
        let owed = {
            let mut senders = self.lock();
            if senders.len() >= MAX_SENDERS && !senders.contains_key(&ip) {
                forget_light_senders(&mut senders, leak, now);
            }
            let sender = sender_at(&mut senders, ip, now);
            let quiet = (now - sender.at).max(0) as f64;
            sender.uncharged = (sender.uncharged - quiet * leak).max(0.0);
            sender.heavy &= quiet < self.bucket.burst / self.bucket.per_ms;
            sender.at = now;
            if sender.tokens >= n {
                sender.tokens -= n;
                return Ok(true);
            }
            if now < sender.refused_until {
                return Ok(false);
            }
            if !sender.heavy && sender.uncharged + n <= free {
                sender.uncharged += n;
                return Ok(true);
            }
            sender.heavy = true;
            std::mem::take(&mut sender.uncharged)
        };
        let key = crate::crypto::keyed_hash(&self.key, &[self.name.as_bytes(), ip.to_string().as_bytes()]);
        let granted = match self.store.take_tokens(&key, self.bucket, owed, self.block.max(n), now).await {
            Ok(granted) => granted,
            Err(e) => {
                // Nothing was charged: owe it still.
                sender_at(&mut self.lock(), ip, now).uncharged += owed;
                return Err(e.into());
            }
        };
        let mut senders = self.lock();
        let sender = sender_at(&mut senders, ip, now);
        sender.tokens += granted;
        if sender.tokens >= n {
            sender.tokens -= n;
            return Ok(true);
        }
        // Until the bucket could have refilled a block, asking again would only cost a statement.
        sender.refused_until = now + (self.block / self.bucket.per_ms).ceil() as i64;
        Ok(false)
    }
}

/// The sender's state, new (seen now) if this instance holds none for it: it may have been
/// forgotten while its statement was out.
fn sender_at(senders: &mut HashMap<IpAddr, Sender>, ip: IpAddr, now: i64) -> &mut Sender {
    senders.entry(ip).or_insert(Sender { at: now, ..Sender::default() })
}

/// Forgets the senders that hold nothing of the shared bucket's: those whose local allowance has
/// drained, or failing that (a flood of new addresses), every light sender.
fn forget_light_senders(senders: &mut HashMap<IpAddr, Sender>, leak: f64, now: i64) {
    let light = |s: &Sender| s.tokens <= 0.0 && s.refused_until <= now;
    senders.retain(|_, s| !(light(s) && s.uncharged - (now - s.at).max(0) as f64 * leak <= 0.0));
    if senders.len() >= MAX_SENDERS * 3 / 4 {
        senders.retain(|_, s| !light(s));
    }
}
