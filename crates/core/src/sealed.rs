//! Authenticated encryption in memory (ring's AEADs), shared by the archives (ChaCha20-Poly1305)
//! and the token vault (AES-256-GCM). A fresh random nonce each time; `context` is the associated
//! data that binds the sealed bytes to where they belong, so bytes moved elsewhere do not open.

use ring::aead::{Aad, Algorithm, LessSafeKey, Nonce, UnboundKey};

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
