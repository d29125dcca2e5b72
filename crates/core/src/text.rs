//! Free text people write (a message, a reason, an appeal), as it is kept.

/// The text trimmed, without control characters other than line breaks: kept as written, shown
/// escaped.
pub fn plain(text: &str) -> String {
    text.trim().chars().filter(|c| !c.is_control() || *c == '\n').collect()
}
