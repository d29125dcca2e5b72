//! Where a form may send the visitor afterwards: local paths only.

/// `next` when it is a local path (`/…`, not `//host`, not `/\host`, no scheme, no control
/// characters), else `/`. Open redirects through our forms are impossible.
pub fn local_path(next: Option<&str>) -> String {
    let Some(next) = next.map(str::trim) else { return "/".into() };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && !next.contains("://");
    if local { next.to_string() } else { "/".into() }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_survive() {
        assert_eq!(local_path(Some("/privacy?lang=en")), "/privacy?lang=en");
        for evil in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil.example",
            "/x\r\nLocation: https://evil.example",
            "javascript:alert(1)",
            "/redirect?to=https://evil.example",
            "",
        ] {
            assert_eq!(local_path(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
