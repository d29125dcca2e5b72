//! The allow and deny lists: an entry names an address (as one mailbox, see
//! [`canonical_email`]), a network, a device or a card by its keyed hash, with a reason, who added
//! it and an optional expiry. The key is derived from the master key and a salt made once a year;
//! the retention engine deletes salts (and the entries made under them) after the declared 12
//! months, after which nobody can tell what an old hash named.

use hmac::{Hmac, Mac};
use passme_core::CoreError;
use passme_core::clock::SharedClock;
use passme_store::{FraudListRow, Store};
use sha2::Sha256;

use crate::signals::{Event, canonical_email};
use crate::{Outcome, Reason};

const YEAR_MS: i64 = 365 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Email,
    Network,
    Device,
    Card,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [ListKind::Email, ListKind::Network, ListKind::Device, ListKind::Card];

    pub fn id(self) -> &'static str {
        match self {
            ListKind::Email => "email",
            ListKind::Network => "network",
            ListKind::Device => "device",
            ListKind::Card => "card",
        }
    }

    pub fn parse(s: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.id() == s)
    }

    /// The form a value is hashed in: one mailbox for an address, the /24 or /48 for a network.
    fn normalise(self, value: &str) -> Option<String> {
        match self {
            ListKind::Email => value.contains('@').then(|| canonical_email(value)),
            ListKind::Network => {
                let ip = value.split('/').next()?.trim().parse().ok()?;
                Some(passme_core::net::truncate_ip(ip))
            }
            ListKind::Device | ListKind::Card => Some(value.trim().to_string()).filter(|v| !v.is_empty()),
        }
    }
}

/// The live list keys `(id, key, made at)`, newest first.
type Keys = Vec<(String, [u8; 32], i64)>;

/// How long an instance reuses the keys it read. A key is made once a year and, when retention
/// destroys one, the entries made under it go in the same run, so a key read a minute ago can
/// only match entries that still exist.
const KEYS_FOR_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Lists {
    store: Store,
    clock: SharedClock,
    list_key: [u8; 32],
    keys: std::sync::Arc<std::sync::Mutex<Option<(i64, Keys)>>>,
}

impl Lists {
    pub fn new(store: Store, clock: SharedClock, master_key: &[u8; 32]) -> Lists {
        Lists { store, clock, list_key: passme_core::crypto::derive_key(master_key, b"passme/fraud/lists/v1"), keys: Default::default() }
    }

    /// The live keys, newest first, making this year's when needed.
    async fn keys(&self, now: i64) -> Result<Keys, CoreError> {
        let year = format!("y{}", now / YEAR_MS);
        if let Some((read_at, keys)) = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
            && now - read_at < KEYS_FOR_MS
            && now >= *read_at
            && keys.first().is_some_and(|(id, _, _)| *id == year)
        {
            return Ok(keys.clone());
        }
        let salt: [u8; 16] = rand::random();
        let rows = self.store.fraud_list_keys(&year, &hex::encode(salt), now).await?;
        let keys: Keys = rows
            .into_iter()
            .map(|(id, salt, at)| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.list_key).unwrap_or_else(|_| unreachable!("any key length"));
                mac.update(salt.as_bytes());
                (id, mac.finalize().into_bytes().into(), at)
            })
            .collect();
        *self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, keys.clone()));
        Ok(keys)
    }

    fn hash(key: &[u8; 32], kind: ListKind, normalised: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(kind.id().as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Adds an entry to the allow or deny list.
    pub async fn add(
        &self,
        list: Outcome,
        kind: ListKind,
        value: &str,
        reason: &str,
        by: &str,
        days: Option<i64>,
    ) -> Result<String, CoreError> {
        if !matches!(list, Outcome::Allow | Outcome::Block) {
            return Err(CoreError::input("list_invalid"));
        }
        let normalised = kind.normalise(value).ok_or(CoreError::input("list_value_invalid"))?;
        let reason = reason.trim();
        if reason.chars().count() < 5 || reason.chars().count() > 300 {
            return Err(CoreError::input("list_reason_length"));
        }
        if days.is_some_and(|d| !(1..=365).contains(&d)) {
            return Err(CoreError::input("list_expiry_invalid"));
        }
        let now = self.clock.now_ms();
        let keys = self.keys(now).await?;
        let (key_id, key, key_at) = keys.first().ok_or_else(|| CoreError::broken("fraud list key", "none made"))?;
        let id = passme_core::crypto::random_id::<10>("fle_");
        self.store
            .add_fraud_list_entry(&FraudListRow {
                id: id.clone(),
                list: if list == Outcome::Allow { "allow".into() } else { "deny".into() },
                kind: kind.id().into(),
                value_hash: Lists::hash(key, kind, &normalised),
                key_id: key_id.clone(),
                key_created_at: *key_at,
                reason: reason.to_string(),
                added_by: by.to_string(),
                created_at: now,
                expires_at: days.map(|d| now + d * 86_400_000),
            })
            .await?;
        Ok(id)
    }

    /// The entries in force that name any identifier of the event, as reasons (allow first).
    pub async fn matches(&self, event: &Event<'_>) -> Result<Vec<Reason>, CoreError> {
        let now = self.clock.now_ms();
        let ip = event.ip.map(|ip| ip.to_string());
        let identifiers = [
            (ListKind::Email, event.email),
            (ListKind::Network, ip.as_deref()),
            (ListKind::Device, event.device),
            (ListKind::Card, event.card),
        ];
        let normalised: Vec<(ListKind, String)> =
            identifiers.iter().filter_map(|(kind, value)| Some((*kind, kind.normalise((*value)?)?))).collect();
        let mut hashes = Vec::new();
        for (_, key, _) in self.keys(now).await? {
            hashes.extend(normalised.iter().map(|(kind, value)| Lists::hash(&key, *kind, value)));
        }
        let mut reasons: Vec<Reason> = self
            .store
            .fraud_list_matches(&hashes, now)
            .await?
            .into_iter()
            .map(|row| Reason {
                source: "list".into(),
                outcome: if row.list == "allow" { Outcome::Allow } else { Outcome::Block },
                id: row.id,
                version: None,
                name: row.reason,
            })
            .collect();
        reasons.sort_by_key(|r| r.outcome != Outcome::Allow);
        Ok(reasons)
    }

    pub async fn entries(&self) -> Result<Vec<FraudListRow>, CoreError> {
        Ok(self.store.fraud_list_entries(self.clock.now_ms()).await?)
    }

    pub async fn remove(&self, id: &str) -> Result<bool, CoreError> {
        Ok(self.store.remove_fraud_list_entry(id).await?)
    }
}
