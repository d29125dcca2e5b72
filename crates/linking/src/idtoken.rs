//! ID token validation (OpenID Connect Core 1.0, section 3.1.3.7), with ring's signature
//! verification. Asymmetric algorithms only: `alg: none` and every HMAC algorithm are refused, so
//! a token "signed" with the provider's public key as an HMAC secret never passes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A public key from the provider's JWKS.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// What the token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Seconds since the epoch, by our clock.
    pub now: i64,
}

/// Clock difference tolerated between us and the provider.
pub const LEEWAY_SECS: i64 = 60;

/// Why a token was refused; each is logged by name, none is shown in detail to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFault {
    #[error("not a compact JWS")]
    Malformed,
    #[error("alg none")]
    AlgNone,
    #[error("algorithm not accepted")]
    AlgRefused,
    #[error("signed with a key the provider does not publish")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("wrong authorized party")]
    AuthorizedParty,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("nonce does not match")]
    Nonce,
    #[error("no subject")]
    Subject,
}

impl TokenFault {
    pub fn name(self) -> &'static str {
        match self {
            TokenFault::Malformed => "malformed",
            TokenFault::AlgNone => "alg_none",
            TokenFault::AlgRefused => "alg_refused",
            TokenFault::UnknownKey => "unknown_key",
            TokenFault::BadSignature => "bad_signature",
            TokenFault::Issuer => "issuer",
            TokenFault::Audience => "audience",
            TokenFault::AuthorizedParty => "authorized_party",
            TokenFault::Expired => "expired",
            TokenFault::IssuedInFuture => "issued_in_future",
            TokenFault::Nonce => "nonce",
            TokenFault::Subject => "subject",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// A validated token's claims.
#[derive(Debug, Clone)]
pub struct IdClaims {
    pub subject: String,
    pub claims: Map<String, Value>,
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenFault> {
    let bytes = B64.decode(part).map_err(|_| TokenFault::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenFault::Malformed)
}

/// The header's `kid`, to decide whether the key set must be fetched again.
pub fn key_id(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    decode_json::<Header>(header).ok()?.kid
}

/// Verifies the signature against `keys`, then the claims against `expected`.
pub fn verify(token: &str, keys: &[Jwk], expected: Expected<'_>) -> Result<IdClaims, TokenFault> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts.as_slice() else { return Err(TokenFault::Malformed) };
    let header: Header = decode_json(header_b64)?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(TokenFault::AlgNone);
    }
    let (kty, algorithm) = algorithm(&header.alg)?;
    let signature = B64.decode(signature_b64).map_err(|_| TokenFault::Malformed)?;
    let signed = format!("{header_b64}.{payload_b64}");
    // A key must match the kid (when the token names one), the key type, and its own `alg`.
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.kty == kty && k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == header.alg))
        .filter(|k| header.kid.is_none() || k.kid == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(TokenFault::UnknownKey);
    }
    if !candidates.iter().any(|k| verifies(k, algorithm, signed.as_bytes(), &signature)) {
        return Err(TokenFault::BadSignature);
    }
    let claims: Map<String, Value> = decode_json(payload_b64)?;
    check_claims(claims, expected)
}

fn check_claims(claims: Map<String, Value>, expected: Expected<'_>) -> Result<IdClaims, TokenFault> {
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(TokenFault::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenFault::Audience),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenFault::Audience);
    }
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 && azp.is_none()) || azp.is_some_and(|a| a != expected.client_id) {
        return Err(TokenFault::AuthorizedParty);
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(TokenFault::Expired)?;
    if exp + LEEWAY_SECS <= expected.now {
        return Err(TokenFault::Expired);
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or(TokenFault::IssuedInFuture)?;
    if iat > expected.now + LEEWAY_SECS {
        return Err(TokenFault::IssuedInFuture);
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(TokenFault::Nonce);
    }
    let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(TokenFault::Subject)?.to_string();
    Ok(IdClaims { subject, claims })
}

#[derive(Clone, Copy)]
enum Algorithm {
    Rsa(&'static signature::RsaParameters),
    Ecdsa(&'static signature::EcdsaVerificationAlgorithm, &'static str),
    Ed25519,
}

fn algorithm(alg: &str) -> Result<(&'static str, Algorithm), TokenFault> {
    Ok(match alg {
        "RS256" => ("RSA", Algorithm::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256)),
        "RS384" => ("RSA", Algorithm::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384)),
        "RS512" => ("RSA", Algorithm::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512)),
        "PS256" => ("RSA", Algorithm::Rsa(&signature::RSA_PSS_2048_8192_SHA256)),
        "PS384" => ("RSA", Algorithm::Rsa(&signature::RSA_PSS_2048_8192_SHA384)),
        "PS512" => ("RSA", Algorithm::Rsa(&signature::RSA_PSS_2048_8192_SHA512)),
        "ES256" => ("EC", Algorithm::Ecdsa(&signature::ECDSA_P256_SHA256_FIXED, "P-256")),
        "ES384" => ("EC", Algorithm::Ecdsa(&signature::ECDSA_P384_SHA384_FIXED, "P-384")),
        "EdDSA" => ("OKP", Algorithm::Ed25519),
        _ => return Err(TokenFault::AlgRefused),
    })
}

fn field(value: Option<&String>) -> Option<Vec<u8>> {
    B64.decode(value?).ok()
}

fn verifies(key: &Jwk, algorithm: Algorithm, message: &[u8], sig: &[u8]) -> bool {
    match algorithm {
        Algorithm::Rsa(params) => {
            let (Some(n), Some(e)) = (field(key.n.as_ref()), field(key.e.as_ref())) else { return false };
            signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(params, message, sig).is_ok()
        }
        Algorithm::Ecdsa(alg, curve) => {
            let (Some(x), Some(y)) = (field(key.x.as_ref()), field(key.y.as_ref())) else { return false };
            if key.crv.as_deref() != Some(curve) {
                return false;
            }
            let point = [&[4u8][..], &x, &y].concat();
            UnparsedPublicKey::new(alg, point).verify(message, sig).is_ok()
        }
        Algorithm::Ed25519 => {
            let Some(x) = field(key.x.as_ref()) else { return false };
            key.crv.as_deref() == Some("Ed25519") && UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(header: &str, claims: &Value) -> String {
        format!("{}.{}.c2ln", B64.encode(header), B64.encode(claims.to_string()))
    }

    fn ignore<T>(_: T) {}

    const EXPECTED: Expected<'static> = Expected { issuer: "https://id.example", client_id: "passme", nonce: "n", now: 1_000_000 };

    #[test]
    fn none_and_hmac_algorithms_are_refused_before_any_key_is_looked_at() {
        let claims = serde_json::json!({ "iss": "https://id.example", "aud": "passme", "nonce": "n", "exp": 2_000_000, "iat": 1_000_000, "sub": "x" });
        for alg in ["none", "NONE", "None"] {
            assert_eq!(verify(&unsigned(&format!(r#"{{"alg":"{alg}"}}"#), &claims), &[], EXPECTED).err(), Some(TokenFault::AlgNone));
        }
        for alg in ["HS256", "HS384", "HS512", "RS1", ""] {
            assert_eq!(verify(&unsigned(&format!(r#"{{"alg":"{alg}"}}"#), &claims), &[], EXPECTED).err(), Some(TokenFault::AlgRefused));
        }
        for broken in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(verify(broken, &[], EXPECTED).err(), Some(TokenFault::Malformed), "{broken:?}");
        }
    }

    #[test]
    fn claims_are_checked_with_a_minute_of_leeway() {
        let base =
            serde_json::json!({ "iss": "https://id.example", "aud": "passme", "nonce": "n", "exp": 1_000_000, "iat": 999_000, "sub": "x" });
        let check = |change: &dyn Fn(&mut Map<String, Value>)| {
            let mut claims = base.as_object().cloned().unwrap_or_default();
            change(&mut claims);
            check_claims(claims, EXPECTED).err()
        };
        assert_eq!(check(&|_| {}), None, "expired 0 s ago: within the leeway");
        assert_eq!(check(&|c| ignore(c.insert("exp".into(), 999_940.into()))), Some(TokenFault::Expired));
        assert_eq!(check(&|c| ignore(c.insert("iat".into(), 1_000_061.into()))), Some(TokenFault::IssuedInFuture));
        assert_eq!(check(&|c| ignore(c.insert("aud".into(), serde_json::json!(["passme", "other"])))), Some(TokenFault::AuthorizedParty));
        assert_eq!(check(&|c| ignore(c.insert("azp".into(), "other".into()))), Some(TokenFault::AuthorizedParty));
        assert_eq!(
            check(&|c| {
                c.insert("aud".into(), serde_json::json!(["passme", "other"]));
                c.insert("azp".into(), "passme".into());
            }),
            None,
            "several audiences with our azp"
        );
        assert_eq!(check(&|c| ignore(c.remove("sub"))), Some(TokenFault::Subject));
        assert_eq!(check(&|c| ignore(c.insert("iss".into(), "https://id.example/".into()))), Some(TokenFault::Issuer));
    }
}
