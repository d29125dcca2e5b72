//! The links in our messages: one-click unsubscribe and the double opt-in confirmation. Each is
//! a signed statement (HMAC-SHA-256 under a key of its own derived from the master key), so a
//! link cannot be forged or changed to name another person, address or choice, and nothing
//! needs storing to check it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use passme_core::crypto::{constant_time_eq, derive_key};
use passme_store::AccountId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Channel, Topic};

/// What an unsubscribe link stops: one person's choice, for the address the message went to,
/// as it rested on one grant (so a link from an earlier sign-up cannot end a later one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    #[serde(rename = "a")]
    pub account_id: AccountId,
    #[serde(rename = "t")]
    pub topic: Topic,
    #[serde(rename = "c")]
    pub channel: Channel,
    /// The grant the choice rested on; service messages have none.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The hashed address the message was sent to.
    #[serde(rename = "h")]
    pub address_hash: String,
}

/// A pending double opt-in, confirmed by opening the mailed link before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    #[serde(rename = "a")]
    pub account_id: AccountId,
    #[serde(rename = "g")]
    pub grant_id: String,
    #[serde(rename = "x")]
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Links {
    key: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

/// The longest token accepted: real ones are about 250 characters.
const MAX_TOKEN: usize = 1024;

impl Links {
    pub fn new(master_key: &[u8; 32]) -> Links {
        Links { key: derive_key(master_key, b"passme/messaging/links/v1") }
    }

    fn mac(&self, kind: &str, payload: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(kind.as_bytes());
        mac.update(b"|");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn sign<T: Serialize>(&self, kind: &str, value: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let mac = URL_SAFE_NO_PAD.encode(self.mac(kind, &payload));
        format!("{payload}.{mac}")
    }

    fn verify<T: for<'de> Deserialize<'de>>(&self, kind: &str, token: &str) -> Option<T> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let (payload, mac) = token.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !constant_time_eq(&mac, &self.mac(kind, payload)) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    pub fn unsubscribe_token(&self, u: &Unsubscribe) -> String {
        self.sign("unsubscribe", u)
    }

    pub fn read_unsubscribe(&self, token: &str) -> Option<Unsubscribe> {
        self.verify("unsubscribe", token)
    }

    pub fn confirm_token(&self, c: &Confirm) -> String {
        self.sign("confirm", c)
    }

    pub fn read_confirm(&self, token: &str) -> Option<Confirm> {
        self.verify("confirm", token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Unsubscribe {
        Unsubscribe {
            account_id: AccountId::new("acc_1"),
            topic: Topic::Marketing,
            channel: Channel::Email,
            grant_id: Some("g1".into()),
            address_hash: "ab".repeat(32),
        }
    }

    #[test]
    fn a_link_reads_back_and_any_change_or_other_key_breaks_it() {
        let links = Links::new(&[7; 32]);
        let token = links.unsubscribe_token(&sample());
        assert_eq!(links.read_unsubscribe(&token), Some(sample()));
        // Another person's id in the same signature.
        let other = Unsubscribe { account_id: AccountId::new("acc_2"), ..sample() };
        let forged =
            format!("{}.{}", links.unsubscribe_token(&other).split('.').next().unwrap_or(""), token.split('.').nth(1).unwrap_or(""));
        assert_eq!(links.read_unsubscribe(&forged), None);
        assert_eq!(Links::new(&[8; 32]).read_unsubscribe(&token), None, "signed under another key");
        assert_eq!(links.read_confirm(&token), None, "an unsubscribe token is not a confirmation");
        for junk in ["", ".", "x.y", &"a".repeat(5000), "e30.", "\0.\0"] {
            assert_eq!(links.read_unsubscribe(junk), None, "{junk:?}");
        }
    }
}
