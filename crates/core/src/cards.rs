//! Card numbers. PassMe never holds card data: the provider's hosted pages take it. Anything that
//! is a card number anyway is refused when it arrives in a request and masked before a log line
//! is written.
//!
//! A card number is 13–19 digits (optionally split by single spaces, dashes, or `+`/`%20` as a
//! form encodes a space) that start with a card network's issuer prefix, have one of that
//! network's lengths, and pass the Luhn check. The prefix rule is what tells a card from a
//! Luhn-valid millisecond timestamp (`1796084472077` starts with 1, no network's prefix) or an
//! order number. A run of more than 19 digits is some other number, and digits glued to letters
//! (`in_1234…`, ids) are too, since a pasted card number stands on its own.
//!
//! Requests are scanned as the application will read them, not as raw bytes: JSON strings with
//! their escapes resolved (`\u0034242…` is `4242…`), and values percent-decoded repeatedly until
//! nothing changes (`%2534242…` is `%34242…` is `4242…`).

use std::borrow::Cow;
use std::ops::Range;

pub const MIN_DIGITS: usize = 13;
pub const MAX_DIGITS: usize = 19;
pub const MASK: &str = "[card number removed]";
/// Percent-decodings tried on one value; real traffic is encoded at most twice.
const MAX_DECODINGS: usize = 4;

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

/// The number formed by the first `n` digits.
fn prefix(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// Whether the digits begin with a card network's issuer prefix (IIN) and have one of its
/// lengths: Visa, Mastercard, American Express, Discover, Diners Club, JCB, UnionPay, Maestro
/// (Dankort included), Mir, RuPay and Troy, after the networks' published ranges. UATP (airline
/// cards starting with 1) is left out: no payment provider of ours takes it, and 15-digit numbers
/// starting with 1 are more often something else.
pub fn issuer_accepts(digits: &[u8]) -> bool {
    let len = digits.len();
    let in_lengths = |lo: usize, hi: usize| (lo..=hi).contains(&len);
    let (p1, p2, p3, p4, p6) = (prefix(digits, 1), prefix(digits, 2), prefix(digits, 3), prefix(digits, 4), prefix(digits, 6));
    match p1 {
        // Visa.
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 2-series, Mir.
        2 => ((2221..=2720).contains(&p4) && len == 16) || ((2200..=2204).contains(&p4) && in_lengths(16, 19)),
        // American Express, Diners Club, JCB.
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || (((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39)) && in_lengths(14, 19))
                || ((3528..=3589).contains(&p4) && in_lengths(16, 19))
        }
        // Mastercard 51-55; Maestro (50, 56-59) including Dankort (5019); RuPay (508).
        5 => ((51..=55).contains(&p2) && len == 16) || (matches!(p2, 50 | 56..=59) && in_lengths(13, 19)),
        // Discover, UnionPay, RuPay and Maestro share the 6-series; all are 13-19 digits long at
        // most, and Maestro's lengths (12-19) cover them.
        6 => {
            in_lengths(13, 19) && (p4 == 6011 || (644..=649).contains(&p3) || (60..=69).contains(&p2) || (622_126..=622_925).contains(&p6))
        }
        // UnionPay (81), RuPay (81, 82).
        8 => matches!(p2, 81 | 82) && in_lengths(16, 19),
        // Troy.
        9 => p4 == 9792 && len == 16,
        _ => false,
    }
}

/// Whether these digits are a card number: a network's prefix and length, and the Luhn check.
pub fn is_card_number(digits: &[u8]) -> bool {
    (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) && issuer_accepts(digits) && luhn_valid(digits)
}

/// Length of a separator at `at` (one byte for space, dash or plus; three for `%20`), 0 if none.
fn separator_len(text: &[u8], at: usize) -> usize {
    match text.get(at) {
        Some(b' ' | b'-' | b'+') => 1,
        Some(b'%') if text.get(at + 1..at + 3) == Some(b"20") => 3,
        _ => 0,
    }
}

/// The byte ranges of every card number in `text`, as it stands (no decoding).
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
        if count <= MAX_DIGITS && !glued_after && is_card_number(&digits[..count]) {
            found.push(start..end);
        }
        i = end.max(i + 1);
    }
    found
}

/// Whether `text`, as it stands, holds a card number.
pub fn contains_card_number(text: &[u8]) -> bool {
    !find_all(text).is_empty()
}

/// Whether a value holds a card number as the application may read it: the value itself and each
/// of its percent-decodings, repeated until nothing changes.
pub fn carries_card_number(value: &[u8]) -> bool {
    let mut current = Cow::Borrowed(value);
    for _ in 0..MAX_DECODINGS {
        if contains_card_number(&current) {
            return true;
        }
        match percent_decoded(&current) {
            Some(decoded) => current = Cow::Owned(decoded),
            None => return false,
        }
    }
    contains_card_number(&current)
}

/// `text` with every `%XX` escape decoded, or `None` when it holds none.
fn percent_decoded(text: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|v| u8::try_from(v).ok());
    let mut out = Vec::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%'
            && let (Some(hi), Some(lo)) = (text.get(i + 1).copied().and_then(hex), text.get(i + 2).copied().and_then(hex))
        {
            out.push(hi << 4 | lo);
            changed = true;
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// `text` with every card number replaced by [`MASK`].
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

/// Whether a form body or query string holds a card number (in a name or a value, decoded) or asks
/// for a card field.
pub fn form_carries_card(form: &[u8]) -> bool {
    url::form_urlencoded::parse(form)
        .any(|(name, value)| is_card_field(&name) || carries_card_number(name.as_bytes()) || carries_card_number(value.as_bytes()))
}

/// Whether a JSON text holds a card number in any string (keys included), escapes resolved and
/// percent-encodings decoded. Numbers are not strings, and a 13-digit millisecond timestamp
/// would not pass the issuer check anyway.
pub fn json_carries_card(json: &[u8]) -> bool {
    json_strings(json).any(|raw| carries_card_number(&json_unescaped(raw)))
}

/// The string literals of a JSON text, escapes left as they are.
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

/// A JSON string literal's content with its escapes resolved (`\"`, `\n`, `\u0034`, surrogate
/// pairs). Malformed escapes are kept as written: the parser refuses them later anyway.
pub fn json_unescaped(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let hex4 = |at: usize| -> Option<u32> { std::str::from_utf8(raw.get(at..at + 4)?).ok().and_then(|h| u32::from_str_radix(h, 16).ok()) };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let simple = match raw.get(i + 1) {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'b') => Some(8),
            Some(b'f') => Some(12),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let unit = if raw.get(i + 1) == Some(&b'u') { hex4(i + 2) } else { None };
        let Some(unit) = unit else {
            out.push(raw[i]);
            i += 1;
            continue;
        };
        let (code, used) = match (unit, raw.get(i + 6..i + 8), hex4(i + 8)) {
            (0xD800..=0xDBFF, Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) => (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12),
            _ => (unit, 6),
        };
        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        i += used;
    }
    Cow::Owned(out)
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
            "5555555555554444",
            "2223003122003222",
            "3056930009020004",
            "36227206271667",
            "3566002020360505",
            "6200000000000005",
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
            "?_=1796084472077",                        // a millisecond timestamp, Luhn-valid
            "1732912345672",                           // another
            "order 2026112900009",                     // an order number, Luhn-valid, no issuer
            "7000000000000005",                        // no network starts with 7
            "424242424242424",                         // Visa has no 15-digit numbers
        ] {
            assert!(!contains_card_number(text.as_bytes()), "{text}");
        }
        assert!(
            luhn_valid(b"1796084472077")
                && luhn_valid(b"2026112900009")
                && luhn_valid(b"424242424242424")
                && luhn_valid(b"7000000000000005")
        );
    }

    #[test]
    fn encoded_card_numbers_are_found_after_decoding() {
        for value in ["%34242424242424242", "%2534242424242424242", "%252534242424242424242", "4242%2D4242%2D4242%2D4242"] {
            assert!(carries_card_number(value.as_bytes()), "{value}");
        }
        assert!(!carries_card_number(b"100%25 sure"), "a percent sign alone is no card");
        assert!(json_carries_card(br#"{"email":"\u0034242424242424242@example.com"}"#));
        assert!(json_carries_card(br#"{"url":"https://x.test/?c=%34242424242424242"}"#));
        assert!(json_carries_card(br#"{"\u0063ard":"4242\u00204242\u00204242\u00204242"}"#));
        assert!(!json_carries_card(br#"{"ts":1796084472077,"url":"https://x.test/?_=1796084472077"}"#));
        assert!(form_carries_card(b"email=%2534242424242424242%40example.com"));
        assert!(form_carries_card(b"card%5Bnumber%5D=1"), "a card field name, encoded");
    }

    #[test]
    fn json_escapes_resolve_as_a_parser_reads_them() {
        assert_eq!(&*json_unescaped(br#"a\"b\\c\/d\n"#), b"a\"b\\c/d\n");
        assert_eq!(&*json_unescaped(br"\u00e6\ud83d\ude00"), "æ😀".as_bytes());
        assert_eq!(&*json_unescaped(br"bad \q \u12"), br"bad \q \u12");
        assert!(matches!(json_unescaped(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn redaction_masks_only_the_number() {
        assert_eq!(redact("paid with 4242 4242 4242 4242."), format!("paid with {MASK}."));
        assert_eq!(redact("nothing here 1234"), "nothing here 1234");
        assert!(matches!(redact("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_strings_are_yielded_raw() {
        let body = br#"[{"ts":1732912345672,"url":"https://x.test/?c=4242424242424242","e":"a\"b"}]"#;
        let strings: Vec<&[u8]> = json_strings(body).collect();
        assert!(strings.contains(&&b"https://x.test/?c=4242424242424242"[..]));
        assert!(strings.contains(&&br#"a\"b"#[..]));
        assert!(!strings.iter().any(|s| s.starts_with(b"1732")));
    }

    #[test]
    fn card_field_names_are_recognised() {
        assert!(is_card_field("card[number]") && is_card_field("CVC") && is_card_field("card[exp_month]"));
        assert!(!is_card_field("email") && !is_card_field("plan"));
    }
}
