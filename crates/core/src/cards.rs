//! Card-like numbers. PassMe never holds card data: the provider's hosted pages take it. Anything
//! that looks like a card number anyway (13–19 digits, optionally split by single spaces, dashes
//! or `+`/`%20` as a form encodes a space, passing the Luhn check) is refused when it arrives in a
//! request and masked before a log line is written.
//!
//! A run of more than 19 digits is some other number, not a card, and is left alone; so are
//! digits glued to letters (`in_1234…`, ids), since a pasted card number stands on its own.

use std::borrow::Cow;
use std::ops::Range;

pub const MIN_DIGITS: usize = 13;
pub const MAX_DIGITS: usize = 19;
pub const MASK: &str = "[card number removed]";

/// Form and JSON field names that ask for card data, which no PassMe endpoint does.
const CARD_FIELD_NAMES: &[&str] =
    &["card[number]", "card_number", "cardnumber", "card-number", "pan", "cvc", "cvv", "cvc2", "cvv2", "card[cvc]"];

/// The Luhn check over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Length of a separator at `at` (one byte for space, dash or plus; three for `%20`), 0 if none.
fn separator_len(text: &[u8], at: usize) -> usize {
    match text.get(at) {
        Some(b' ' | b'-' | b'+') => 1,
        Some(b'%') if text.get(at + 1..at + 3) == Some(b"20") => 3,
        _ => 0,
    }
}

/// The byte ranges of every card-like number in `text`.
pub fn find_all(text: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let glued = i > 0 && (text[i - 1].is_ascii_alphanumeric() || text[i - 1] == b'_');
        if !text[i].is_ascii_digit() || glued {
            i += 1;
            continue;
        }
        // A run: digits, each optionally followed by one separator when a digit follows it.
        // Requests pass through here (a hot path): the run's digits go to a buffer on the stack;
        // a run longer than any card only needs counting.
        let start = i;
        let mut digits = [0u8; MAX_DIGITS];
        let mut count = 0;
        let mut end = i;
        let mut j = i;
        while j < text.len() && text[j].is_ascii_digit() {
            if let Some(slot) = digits.get_mut(count) {
                *slot = text[j];
            }
            count += 1;
            j += 1;
            end = j;
            let sep = separator_len(text, j);
            if sep > 0 && text.get(j + sep).is_some_and(u8::is_ascii_digit) {
                j += sep;
            }
        }
        let glued_after = text.get(end).is_some_and(u8::is_ascii_alphabetic);
        if (MIN_DIGITS..=MAX_DIGITS).contains(&count) && !glued_after && luhn_valid(&digits[..count]) {
            found.push(start..end);
        }
        i = end.max(i + 1);
    }
    found
}

pub fn contains_card_number(text: &[u8]) -> bool {
    !find_all(text).is_empty()
}

/// `text` with every card-like number replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let found = find_all(text.as_bytes());
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in found {
        out.push_str(&text[at..range.start]);
        out.push_str(MASK);
        at = range.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Whether a form or query field name asks for card data.
pub fn is_card_field(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    CARD_FIELD_NAMES.contains(&name.as_str()) || name.starts_with("card[")
}

/// The string literals of a JSON text, escapes left as they are: where a card number typed into
/// a field would be. Numbers are not strings, so a 13-digit millisecond timestamp is never
/// mistaken for a card.
pub fn json_strings(json: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < json.len() {
            if json[i] != b'"' {
                i += 1;
                continue;
            }
            let start = i + 1;
            let mut j = start;
            while j < json.len() && json[j] != b'"' {
                j += if json[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(json.len());
            i = end + 1;
            return Some(&json[start..end]);
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_found_in_every_spelling() {
        for text in [
            "4242424242424242",
            "card 4242 4242 4242 4242 please",
            "4242-4242-4242-4242",
            "number=4242+4242+4242+4242&x=1",
            "n=4242%204242%204242%204242",
            "4000000000000002",
            "4000000000000341",
            "378282246310005",
            "4222222222222",
            "6011111111111117",
            "\"pan\":\"5555555555554444\"",
        ] {
            assert!(contains_card_number(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn other_numbers_are_not_cards() {
        for text in [
            "4242424242424241",                        // Luhn fails
            "424242424242",                            // 12 digits
            "42424242424242424242",                    // 20 digits
            "in_4242424242424242",                     // glued to an id
            "4242424242424242abc",                     // glued to letters
            "4242  4242 4242 4242",                    // a double space ends the run
            "phone +45 12 34 56 78, order 2026-11-29", // short groups
        ] {
            assert!(!contains_card_number(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn redaction_masks_only_the_number() {
        assert_eq!(redact("paid with 4242 4242 4242 4242."), format!("paid with {MASK}."));
        assert_eq!(redact("nothing here 1234"), "nothing here 1234");
        assert!(matches!(redact("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_numbers_are_not_scanned_but_strings_are() {
        // 1732912345672 passes the Luhn check: as a JSON number it is a timestamp, not a card.
        let body = br#"[{"ts":1732912345672,"url":"https://x.test/?c=4242424242424242","e":"a\"b"}]"#;
        let strings: Vec<&[u8]> = json_strings(body).collect();
        assert!(strings.contains(&&b"https://x.test/?c=4242424242424242"[..]));
        assert!(strings.contains(&&br#"a\"b"#[..]));
        assert!(!strings.iter().any(|s| s.starts_with(b"1732")));
        assert!(luhn_valid(b"1732912345672"));
    }

    #[test]
    fn card_field_names_are_recognised() {
        assert!(is_card_field("card[number]") && is_card_field("CVC") && is_card_field("card[exp_month]"));
        assert!(!is_card_field("email") && !is_card_field("plan"));
    }
}
