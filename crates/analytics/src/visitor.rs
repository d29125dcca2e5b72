//! Who a page view belongs to, without knowing who anyone is. With statistics consent: a random
//! first-party cookie. Without it: a keyed hash of (daily salt, IP, user agent, site). The salt
//! is random, lives in the database for its UTC day only and is destroyed at rotation, so no one
//! (us included) can link one day's visitors to the next. Both ids pass through a server key, so
//! the stored number reveals neither the cookie nor the address.

use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use passme_core::CoreError;
use passme_store::Store;
use rand::RngCore;
use sha2::Sha256;

use crate::visits::day_of;

/// The visitor cookie's value: 128 random bits, base64url.
pub const COOKIE_VALUE_LEN: usize = 22;

pub struct VisitorIds {
    key: [u8; 32],
    store: Store,
    today: Mutex<Option<(i64, String)>>,
}

impl std::fmt::Debug for VisitorIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorIds").finish_non_exhaustive()
    }
}

fn keyed(key: &[u8], parts: &[&[u8]]) -> i64 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    let bytes = mac.finalize().into_bytes();
    // Never negative: the retention engine replaces old ids with negative random ones, which
    // tells the two apart.
    i64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) & i64::MAX
}

impl VisitorIds {
    pub fn new(store: Store, master_key: &[u8; 32]) -> VisitorIds {
        VisitorIds { key: passme_core::crypto::derive_key(master_key, b"passme/analytics/visitor/v1"), store, today: Mutex::new(None) }
    }

    /// A new value for the visitor cookie.
    pub fn new_cookie_value() -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        B64.encode(bytes)
    }

    pub fn valid_cookie_value(value: &str) -> bool {
        value.len() == COOKIE_VALUE_LEN && B64.decode(value).is_ok_and(|b| b.len() == 16)
    }

    pub fn from_cookie(&self, value: &str) -> i64 {
        keyed(&self.key, &[b"cookie", value.as_bytes()])
    }

    /// The cookieless id, under the salt of the UTC day `now_ms` falls in.
    pub async fn daily(&self, now_ms: i64, ip: IpAddr, user_agent: &str, site: &str) -> Result<i64, CoreError> {
        let salt = self.salt(day_of(now_ms)).await?;
        Ok(keyed(&self.key, &[b"daily", salt.as_bytes(), ip.to_string().as_bytes(), user_agent.as_bytes(), site.as_bytes()]))
    }

    async fn salt(&self, day: i64) -> Result<String, CoreError> {
        if let Some((cached_day, salt)) = self.today.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && *cached_day == day
        {
            return Ok(salt.clone());
        }
        let mut candidate = [0u8; 32];
        rand::rng().fill_bytes(&mut candidate);
        // Every process proposes one; the first stored wins, so all agree on the day's salt.
        let salt = self.store.daily_salt(day, &B64.encode(candidate)).await?;
        *self.today.lock().unwrap_or_else(|p| p.into_inner()) = Some((day, salt.clone()));
        Ok(salt)
    }
}
