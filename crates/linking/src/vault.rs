//! The token vault: tokens from linked accounts sealed with AES-256-GCM before they are stored.
//!
//! A blob is `v1:key_id:nonce:ciphertext` (nonce and ciphertext base64url). Its associated data
//! is `table|column|row|user|provider`, so a blob copied to another row, column, person or
//! provider does not open. Data keys live in `vault_keys`, each sealed by the master key: the
//! newest encrypts, every key decrypts, and all instances of a fleet see a rotation at once
//! because they read the key ring from the database, not from their own memory.
//!
//! There is no plaintext mode: the master key is required in production (the service refuses to
//! start without it) and in development it is the generated key file.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use passme_core::clock::SharedClock;
use passme_core::crypto::{self, AES_256_GCM, NONCE_LEN};
use passme_store::{AccountId, Store, StoreError, TokenRow, VaultKeyRow};
use secrecy::{ExposeSecret, SecretBox, SecretString};

const VERSION: &str = "v1";

/// Where a blob belongs; the associated data it is sealed with.
#[derive(Debug, Clone, Copy)]
pub struct BlobPlace<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
    pub user: &'a str,
    pub provider: &'a str,
}

impl BlobPlace<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("{}|{}|{}|{}|{}", self.table, self.column, self.row, self.user, self.provider).into_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Not `v1:key_id:nonce:ciphertext`, or cut short.
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value names an unknown key {0:?}")]
    UnknownKey(String),
    /// The key is known but the blob does not open: tampered with, or moved from another place.
    #[error("the sealed value does not open here")]
    DoesNotOpen,
    #[error("a vault key does not open with the master key")]
    BadKeyRing,
    #[error("another process rotated the key at the same moment; run the command again")]
    RotationRace,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VaultError {
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Malformed => "vault_blob_malformed",
            VaultError::UnknownKey(_) => "vault_key_unknown",
            VaultError::DoesNotOpen => "vault_blob_does_not_open",
            VaultError::BadKeyRing => "vault_key_ring_unreadable",
            VaultError::RotationRace => "vault_rotation_race",
            VaultError::Store(e) => e.code(),
        }
    }
}

/// A data key in memory.
type DataKey = Arc<SecretBox<[u8; 32]>>;

/// The key ring: the data keys this process has opened, by id.
#[derive(Clone)]
pub struct Vault {
    store: Store,
    clock: SharedClock,
    master: Arc<SecretBox<[u8; 32]>>,
    keys: Arc<RwLock<HashMap<String, DataKey>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

/// The key that encrypts now.
#[derive(Clone)]
pub struct ActiveKey {
    pub id: String,
    key: DataKey,
}

/// What a rewrap did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub rows: u64,
    /// Rows a concurrent refresh rewrote meanwhile (already under the new key, or read again).
    pub raced: u64,
}

fn master_context(id: &str) -> Vec<u8> {
    format!("vault_keys|wrapped|{id}").into_bytes()
}

impl Vault {
    pub fn new(store: Store, clock: SharedClock, master: &[u8; 32]) -> Vault {
        Vault { store, clock, master: Arc::new(SecretBox::new(Box::new(*master))), keys: Arc::default() }
    }

    fn unwrap_key(&self, row: &VaultKeyRow) -> Result<[u8; 32], VaultError> {
        let bytes = B64.decode(&row.wrapped).map_err(|_| VaultError::BadKeyRing)?;
        if bytes.len() < NONCE_LEN {
            return Err(VaultError::BadKeyRing);
        }
        let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().map_err(|_| VaultError::BadKeyRing)?;
        let plain = crypto::open(&AES_256_GCM, self.master.expose_secret(), &master_context(&row.id), nonce, bytes[NONCE_LEN..].to_vec())
            .ok_or(VaultError::BadKeyRing)?;
        plain.try_into().map_err(|_| VaultError::BadKeyRing)
    }

    fn wrap_key(&self, id: &str, key: &[u8; 32]) -> String {
        let (nonce, sealed) = crypto::seal(&AES_256_GCM, self.master.expose_secret(), &master_context(id), key);
        B64.encode([nonce.as_slice(), &sealed].concat())
    }

    /// Reads the ring from the database; returns the newest key's row.
    async fn load(&self) -> Result<Option<VaultKeyRow>, VaultError> {
        let rows = self.store.vault_keys().await?;
        let mut opened = Vec::with_capacity(rows.len());
        for row in &rows {
            opened.push((row.id.clone(), Arc::new(SecretBox::new(Box::new(self.unwrap_key(row)?)))));
        }
        let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.extend(opened);
        Ok(rows.last().cloned())
    }

    fn cached(&self, id: &str) -> Option<DataKey> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }

    /// The key that encrypts now, read from the database each time (a rotation by another
    /// process takes effect at once); the first key is made on first use.
    pub async fn active(&self) -> Result<ActiveKey, VaultError> {
        let newest = match self.store.vault_keys().await?.pop() {
            Some(row) => row,
            None => {
                // Two processes may both find the ring empty; the first insert wins, the other
                // reads it back.
                self.add_key(1).await?;
                self.store.vault_keys().await?.pop().ok_or(VaultError::BadKeyRing)?
            }
        };
        let key = match self.cached(&newest.id) {
            Some(key) => key,
            None => {
                self.load().await?;
                self.cached(&newest.id).ok_or_else(|| VaultError::UnknownKey(newest.id.clone()))?
            }
        };
        Ok(ActiveKey { id: newest.id, key })
    }

    async fn add_key(&self, seq: i64) -> Result<Option<String>, VaultError> {
        let id = format!("k{seq}");
        let key: [u8; 32] = rand::random();
        let row = VaultKeyRow { id: id.clone(), seq, wrapped: self.wrap_key(&id, &key), created_at: self.clock.now_ms() };
        Ok(self.store.insert_vault_key(&row).await?.then_some(id))
    }

    /// Adds a key that encrypts from now on; returns its id.
    pub async fn add_rotation_key(&self) -> Result<String, VaultError> {
        let next = self.store.vault_keys().await?.last().map_or(1, |k| k.seq + 1);
        self.add_key(next).await?.ok_or(VaultError::RotationRace)
    }

    pub fn seal(&self, key: &ActiveKey, place: BlobPlace<'_>, plain: &str) -> String {
        let (nonce, sealed) = crypto::seal(&AES_256_GCM, key.key.expose_secret(), &place.aad(), plain.as_bytes());
        format!("{VERSION}:{}:{}:{}", key.id, B64.encode(nonce), B64.encode(sealed))
    }

    /// The key id a blob names, if it is well-formed enough to name one.
    pub fn key_id_of(blob: &str) -> Option<&str> {
        let mut parts = blob.splitn(4, ':');
        (parts.next() == Some(VERSION)).then(|| parts.next()).flatten()
    }

    pub async fn open(&self, place: BlobPlace<'_>, blob: &str) -> Result<SecretString, VaultError> {
        let parts: Vec<&str> = blob.split(':').collect();
        let [version, key_id, nonce, sealed] = parts.as_slice() else { return Err(VaultError::Malformed) };
        if *version != VERSION || key_id.is_empty() {
            return Err(VaultError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = B64.decode(nonce).ok().and_then(|n| n.try_into().ok()).ok_or(VaultError::Malformed)?;
        let sealed = B64.decode(sealed).map_err(|_| VaultError::Malformed)?;
        // A tag is 16 bytes: anything shorter was cut.
        if sealed.len() < 16 {
            return Err(VaultError::Malformed);
        }
        let key = match self.cached(key_id) {
            Some(key) => key,
            None => {
                self.load().await?;
                self.cached(key_id).ok_or_else(|| VaultError::UnknownKey((*key_id).to_string()))?
            }
        };
        let plain = crypto::open(&AES_256_GCM, key.expose_secret(), &place.aad(), nonce, sealed).ok_or(VaultError::DoesNotOpen)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| VaultError::DoesNotOpen)
    }

    /// The place of one of a token row's columns.
    pub fn token_place<'a>(row_id: &'a str, account: &'a AccountId, provider: &'a str, column: &'a str) -> BlobPlace<'a> {
        BlobPlace { table: "linked_tokens", column, row: row_id, user: account.as_str(), provider }
    }

    /// Re-seals every token row not under the active key, `batch` rows at a time, each batch in
    /// one transaction (a crash loses at most the batch in flight, which is still under its old
    /// key and is picked up by the next run). `progress` hears (done, total) after each batch.
    pub async fn rewrap(&self, batch: i64, mut progress: impl FnMut(u64, u64)) -> Result<Rewrapped, VaultError> {
        let active = self.active().await?;
        let total: u64 = self
            .store
            .token_rows_by_key()
            .await?
            .iter()
            .filter(|(k, _)| *k != active.id)
            .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
            .sum();
        let mut done = Rewrapped::default();
        let mut after = String::new();
        progress(0, total);
        loop {
            let rows = self.store.token_rows_not_under(&active.id, &after, batch).await?;
            let Some(last) = rows.last() else { break };
            after = last.link_id.clone();
            let mut pairs = Vec::with_capacity(rows.len());
            for row in rows {
                let resealed = self.reseal_row(&active, &row).await?;
                pairs.push((row, resealed));
            }
            let replaced = self.store.rewrap_token_rows(&pairs).await?;
            done.rows += replaced;
            done.raced += pairs.len() as u64 - replaced;
            progress(done.rows + done.raced, total);
        }
        Ok(done)
    }

    /// A blob opened and sealed again under `key`, in the same place.
    pub async fn reseal(&self, key: &ActiveKey, place: BlobPlace<'_>, blob: &str) -> Result<String, VaultError> {
        let plain = self.open(place, blob).await?;
        Ok(self.seal(key, place, plain.expose_secret()))
    }

    /// A token row with every blob resealed under `key`.
    async fn reseal_row(&self, key: &ActiveKey, row: &TokenRow) -> Result<TokenRow, VaultError> {
        let mut out = row.clone();
        out.key_id = key.id.clone();
        for (column, value) in
            [("id_token", &mut out.id_token), ("access_token", &mut out.access_token), ("refresh_token", &mut out.refresh_token)]
        {
            if let Some(blob) = value.as_ref() {
                *value = Some(self.reseal(key, Vault::token_place(&row.link_id, &row.account_id, &row.provider, column), blob).await?);
            }
        }
        Ok(out)
    }
}
