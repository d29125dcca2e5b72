//! E-mail addresses: what we accept and the key we look them up by.

use unicode_normalization::UnicodeNormalization;

use crate::CoreError;

/// The lookup and throttling key of an address: Unicode NFKC, then lower case, trimmed. Case and
/// compatibility variants of one address (`Ola@Example.com`, `ｏｌａ@example.com`) share one key,
/// so they share one account and one throttle counter.
pub fn key(address: &str) -> String {
    address.trim().nfkc().collect::<String>().to_lowercase()
}

/// A usable address, returned in Unicode NFKC form: ASCII only (see below), at most 254 bytes
/// (RFC 5321), and one the mail library can address. Refused before anything is stored, so that
/// an account never exists for an address that cannot be mailed. Deliverability is proved by the
/// verification mail.
pub fn validate(address: &str) -> Result<String, CoreError> {
    // Compatibility forms (full-width letters and the like) become their plain forms first.
    let normalised: String = address.trim().nfkc().collect();
    let address = normalised.as_str();
    if address.len() > 254 {
        return Err(CoreError::input("email_too_long"));
    }
    // Letters outside ASCII need SMTPUTF8, which many relays lack: the account would be created
    // and its verification mail never arrive. Refuse now, clearly, instead.
    if !address.is_ascii() {
        return Err(CoreError::input("email_not_ascii"));
    }
    let Some((local, domain)) = address.rsplit_once('@') else { return Err(CoreError::input("email_invalid")) };
    let plain =
        !address.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']'));
    let dotted = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
    // The mail library's own rules (local part and labels within their lengths, no empty labels,
    // no double dots), so that what we accept is what we can send to.
    if !plain || local.is_empty() || !dotted || address.parse::<lettre::Address>().is_err() {
        return Err(CoreError::input("email_invalid"));
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
            // What the mail library refused only when sending, after the account was stored:
            &format!("{}@example.com", "e".repeat(65)),
            &format!("frank@{}.example.com", "d".repeat(64)),
            "eve(note)@example.com",
            "frank@[127.0.0.1]",
            "fr..ank@example.com",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(validate(" ola@example.com ").expect("valid"), "ola@example.com");
        assert_eq!(validate("ｏｌａ@example.com").expect("valid"), "ola@example.com", "full-width letters are their plain forms");
    }
}
