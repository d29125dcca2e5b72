//! The provider's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`,
//! where each `v1` is HMAC-SHA256 over `"{t}.{raw body}"` keyed with a whole `whsec_…` secret.
//! Checked on the raw bytes before anything parses them; any `v1` under any configured secret
//! may match (two secrets are valid while one is rolled, and the provider then sends two `v1`).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How far the signed time may be from ours, either way (the providers' SDK default).
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the signed time is more than 300 seconds away from ours")]
    Expired,
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Expired => "signature_expired",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// HMAC-SHA256 over `"{t}.{body}"` keyed with the whole secret, ready to finish or compare.
fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1` signature of `body` signed at `t` with `secret`, as the provider computes it.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// A whole header value for `body`, one `v1` per secret: what the provider sends.
pub fn header(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut value = format!("t={t}");
    for secret in secrets {
        value.push_str(&format!(",v1={}", sign(secret, t, body)));
    }
    value
}

/// Verifies a header against the raw body; returns the signed time.
pub fn verify(header: Option<&str>, body: &[u8], secrets: &[SecretString], now_secs: i64) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                // Digits only: no sign, no spaces, no exponent, and only one `t`.
                if timestamp.is_some() || value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                timestamp = value.parse::<i64>().ok();
            }
            "v1" => candidates.push(value),
            // Other schemes (`v0`, a future `v2`) are not ours to check.
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if (now_secs - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    for secret in secrets {
        let mac = mac(secret.expose_secret(), t, body);
        // Only lowercase hex of the full length can match; `verify_slice` compares in constant time.
        for candidate in &candidates {
            let Ok(bytes) = hex::decode(candidate) else { continue };
            if candidate.bytes().any(|b| b.is_ascii_uppercase()) {
                continue;
            }
            if mac.clone().verify_slice(&bytes).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_992_314;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values.iter().map(|s| SecretString::from((*s).to_string())).collect()
    }

    #[test]
    fn a_signature_from_any_configured_secret_and_any_v1_is_accepted() {
        let both = secrets(&["whsec_old", "whsec_new"]);
        assert_eq!(verify(Some(&header(&["whsec_new"], NOW, BODY)), BODY, &both, NOW), Ok(NOW));
        assert_eq!(verify(Some(&header(&["whsec_old"], NOW, BODY)), BODY, &both, NOW + 300), Ok(NOW));
        // Two v1 where only the second is right.
        let two = format!("t={NOW},v1={},v1={}", sign("whsec_wrong", NOW, BODY), sign("whsec_new", NOW, BODY));
        assert_eq!(verify(Some(&two), BODY, &secrets(&["whsec_new"]), NOW), Ok(NOW));
    }

    #[test]
    fn every_malformed_or_wrong_header_is_refused() {
        let s = secrets(&["whsec_test"]);
        let good = sign("whsec_test", NOW, BODY);
        let cases: &[(Option<String>, SignatureError)] = &[
            (None, SignatureError::Missing),
            (Some(String::new()), SignatureError::Malformed),
            (Some("garbage".into()), SignatureError::Malformed),
            (Some(format!("v1={good}")), SignatureError::Malformed),
            (Some(format!("t=abc,v1={good}")), SignatureError::Malformed),
            (Some(format!("t=-{NOW},v1={good}")), SignatureError::Malformed),
            (Some(format!("t= {NOW},v1={good}")), SignatureError::Malformed),
            (Some(format!("t={NOW},t={NOW},v1={good}")), SignatureError::Malformed),
            (Some(format!("t={},v1={}", NOW - 301, sign("whsec_test", NOW - 301, BODY))), SignatureError::Expired),
            (Some(format!("t={},v1={}", NOW + 301, sign("whsec_test", NOW + 301, BODY))), SignatureError::Expired),
            (Some(format!("t={NOW},v1={}", good.to_uppercase())), SignatureError::Mismatch),
            (Some(format!("t={NOW},v1={}", &good[..32])), SignatureError::Mismatch),
            (Some(format!("t={NOW},v0={good}")), SignatureError::Mismatch),
            (Some(format!("t={NOW},v1={}", sign("whsec_other", NOW, BODY))), SignatureError::Mismatch),
            (Some(format!("t={},v1={good}", NOW + 1)), SignatureError::Mismatch),
        ];
        for (header, expected) in cases {
            assert_eq!(verify(header.as_deref(), BODY, &s, NOW), Err(*expected), "{header:?}");
        }
    }

    #[test]
    fn the_signature_covers_the_raw_bytes_not_the_json() {
        let s = secrets(&["whsec_test"]);
        let header = header(&["whsec_test"], NOW, BODY);
        let reserialised = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(BODY).expect("json")).expect("json");
        assert_eq!(verify(Some(&header), &reserialised, &s, NOW), Err(SignatureError::Mismatch));
    }
}
