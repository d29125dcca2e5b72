//! E-mail addresses: what we accept and the key we look them up by.

use unicode_normalization::UnicodeNormalization;

use crate::CoreError;

/// The lookup and throttling key of an address: Unicode NFKC, then lower case, trimmed. Case and
/// compatibility variants of one address (`Ola@Example.com`, `ｏｌａ@example.com`) share one key,
/// so they share one account and one throttle counter.
pub fn key(address: &str) -> String {
    address.trim().nfkc().collect::<String>().to_lowercase()
}

/// A plausible address, returned in Unicode NFKC form: one `@`, a non-empty local part and a
/// dotted domain, ASCII only, no spaces or control characters, at most 254 bytes (RFC 5321).
/// Deliverability is proved by the verification mail.
pub fn validate(address: &str) -> Result<String, CoreError> {
    // Compatibility forms (full-width letters and the like) become their plain forms first.
    let normalised: String = address.trim().nfkc().collect();
    let address = normalised.as_str();
    let invalid = |why: &str| CoreError::Invalid { code: "email_invalid", message: format!("this is not a usable e-mail address: {why}") };
    if address.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')) {
        return Err(invalid("it contains spaces or characters that addresses cannot hold"));
    }
    // Letters outside ASCII need SMTPUTF8, which many relays lack: the account would be created
    // and its verification mail never arrive. Refuse now, clearly, instead.
    if !address.is_ascii() {
        return Err(invalid(
            "letters such as æ, ø and å cannot be used in e-mail addresses here yet; use your address's plain-letter form",
        ));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(invalid("no @"));
    };
    if local.is_empty()
        || local.contains('@')
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(invalid("expected name@domain.tld"));
    }
    Ok(address.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_address_share_a_key() {
        assert_eq!(key(" Ola@Example.COM "), "ola@example.com");
        assert_eq!(key("ｏｌａ@example.com"), "ola@example.com", "full-width letters fold by NFKC");
        assert_eq!(key("søren@eksempel.dk"), key("SØREN@EKSEMPEL.DK"));
        assert!(validate("søren@eksempel.dk").is_err(), "non-ASCII addresses are refused until SMTPUTF8 is supported");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@b",
            "a@.com",
            "a@example.",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "a,b@example.com",
            &format!("{}@example.com", "x".repeat(250)),
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(validate(" ola@example.com ").expect("valid"), "ola@example.com");
        assert_eq!(validate("ｏｌａ@example.com").expect("valid"), "ola@example.com", "full-width letters are their plain forms");
    }
}
