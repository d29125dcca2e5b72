//! The few cryptographic pieces the capabilities share:
//! - authenticated encryption in memory (ring's AEADs), for the archives (ChaCha20-Poly1305) and
//!   the token vault (AES-256-GCM): a fresh random nonce each time, and `context` as associated
//!   data that binds the sealed bytes to where they belong, so bytes moved elsewhere do not open;
//! - a key of its own for each use of the master key, so a leak of one is not a leak of the rest;
//! - comparison without an early exit.

use hmac::{Hmac, Mac};
use ring::aead::{Aad, Algorithm, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;

pub use ring::aead::{AES_256_GCM, CHACHA20_POLY1305};

pub const NONCE_LEN: usize = 12;

fn aead(algorithm: &'static Algorithm, key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(algorithm, key).unwrap_or_else(|_| unreachable!("both algorithms take a 32-byte key")))
}

/// Encrypts `plain` under `key`, bound to `context`; returns the nonce and the sealed bytes.
pub fn seal(algorithm: &'static Algorithm, key: &[u8; 32], context: &[u8], plain: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut sealed = plain.to_vec();
    aead(algorithm, key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut sealed)
        .unwrap_or_else(|_| unreachable!("sealing in memory does not fail"));
    (nonce, sealed)
}

/// The plain bytes, or `None` when the key, the context or the bytes are not the ones sealed.
pub fn open(algorithm: &'static Algorithm, key: &[u8; 32], context: &[u8], nonce: [u8; NONCE_LEN], mut sealed: Vec<u8>) -> Option<Vec<u8>> {
    let plain = aead(algorithm, key).open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut sealed).ok()?;
    Some(plain.to_vec())
}

/// A key for one use of `master`: HMAC-SHA-256 of `label` (e.g. `passme/csrf/v1`) under it.
pub fn derive_key(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(master).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    derive.update(label);
    derive.finalize().into_bytes().into()
}

/// A keyed hash (HMAC-SHA-256, hex) of `parts`, each length-prefixed so that no two lists of
/// parts hash alike: names a counter or a list entry without storing what it counts.
pub fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random id: `prefix` and `N` random bytes in hex (`frd_` and 20 hex digits for N = 10).
pub fn random_id<const N: usize>(prefix: &str) -> String {
    let bytes: [u8; N] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}
