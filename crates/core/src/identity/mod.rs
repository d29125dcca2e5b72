//! Identity: accounts, passwords and server-side sessions. Building blocks of issue 3; the HTTP
//! flows (sign-up, log-in, remember-me, consent) build on these.

pub mod account_mail;
pub mod accounts;
pub mod api_tokens;
pub mod email;
pub mod mail_limits;
pub mod password;
pub mod remember;
pub mod service;
pub mod sessions;
pub mod staff;
pub mod throttle;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A fresh secret token (256 random bits, base64url, 43 characters) for a cookie or a mailed
/// link. Only [`token_hash`] of it is ever stored.
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The stored form of a token: SHA-256, hex. A copy of the database holds no usable token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a presented token has exactly the shape we issue; anything else (too long, NUL
/// bytes, other alphabets) is refused before touching the database.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
