//! Reading and checking the two locale files. Shared by the build script, which generates the
//! `Texts` methods from it, and by this crate's tests.

use std::collections::BTreeMap;

/// One key with its two texts and its placeholders (in order of first use in Danish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub da: String,
    pub en: String,
    pub placeholders: Vec<String>,
}

/// A locale file as `key -> text`, nested tables joined with dots.
pub fn parse(name: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
    let mut out = BTreeMap::new();
    flatten(name, "", &table, &mut out)?;
    Ok(out)
}

fn flatten(name: &str, prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) -> Result<(), String> {
    for (part, value) in table {
        let good = !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !good {
            return Err(format!("{name}: key {part:?} must be snake_case"));
        }
        let key = if prefix.is_empty() { part.clone() } else { format!("{prefix}.{part}") };
        match value {
            toml::Value::String(text) => {
                out.insert(key, text.clone());
            }
            toml::Value::Table(inner) => flatten(name, &key, inner, out)?,
            other => return Err(format!("{name}: {key} must be a text or a table, not {}", other.type_str())),
        }
    }
    Ok(())
}

/// The `{name}` placeholders of a text, in order of first use. Texts may hold no other braces.
pub fn placeholders(key: &str, text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("{key}: a stray }} in {text:?}"));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("{key}: an unclosed {{ in {text:?}"))?;
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(format!("{key}: {{{name}}} is not a placeholder name (texts may hold no other braces)"));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Both languages, checked: the same keys, the same placeholders for each, no placeholder in an
/// `error.*` text (those are looked up by code).
pub fn check(da: &BTreeMap<String, String>, en: &BTreeMap<String, String>) -> Result<Vec<Entry>, String> {
    let only_da: Vec<&String> = da.keys().filter(|k| !en.contains_key(*k)).collect();
    let only_en: Vec<&String> = en.keys().filter(|k| !da.contains_key(*k)).collect();
    if !only_da.is_empty() || !only_en.is_empty() {
        return Err(format!("locales/en.toml lacks {only_da:?}; locales/da.toml lacks {only_en:?}"));
    }
    let mut entries = Vec::with_capacity(da.len());
    for (key, da_text) in da {
        let en_text = &en[key];
        let placeholders = placeholders(key, da_text)?;
        let (mut a, mut b) = (placeholders.clone(), self::placeholders(key, en_text)?);
        a.sort();
        b.sort();
        if a != b {
            return Err(format!("{key}: Danish names {a:?} and English names {b:?}"));
        }
        if ["error.", "hint.", "done."].iter().any(|s| key.starts_with(s)) && !placeholders.is_empty() {
            return Err(format!("{key}: texts looked up by code take no placeholders"));
        }
        entries.push(Entry { key: key.clone(), da: da_text.clone(), en: en_text.clone(), placeholders });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(da: &str, en: &str) -> Result<Vec<Entry>, String> {
        check(&parse("da.toml", da)?, &parse("en.toml", en)?)
    }

    #[test]
    fn a_text_missing_in_one_language_is_refused() {
        let error = both("[a]\nx = \"x\"\ny = \"y\"\n", "[a]\nx = \"x\"\n").expect_err("missing");
        assert!(error.contains("lacks [\"a.y\"]"), "{error}");
    }

    #[test]
    fn placeholders_must_agree_and_braces_are_only_placeholders() {
        assert!(both("t = \"Hej {name}\"", "t = \"Hello {who}\"").is_err());
        assert!(both("t = \"{a} og {b}\"", "t = \"{b} and {a}\"").is_ok(), "order may differ");
        assert!(both("t = \"x { y\"", "t = \"x\"").is_err());
        assert!(both("t = \"x } y\"", "t = \"x } y\"").is_err());
        assert!(both("[error]\nx = \"{code}\"", "[error]\nx = \"{code}\"").is_err(), "errors are looked up by code alone");
        assert!(both("Bad = \"x\"", "Bad = \"x\"").is_err(), "keys are snake_case");
        let entries = both("[mail]\nhello = \"Hej {name}\"", "[mail]\nhello = \"Hi {name}\"").expect("valid");
        assert_eq!(entries[0].placeholders, ["name"]);
    }
}
