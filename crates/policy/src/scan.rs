//! Finds `proves!("id", ...)` bindings in Rust source text. Self-contained (std only) because the
//! binary's build script includes this file to embed the bindings.

/// One test and the promise ids it proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub test: String,
    pub promises: Vec<String>,
}

/// Scans one source file. A binding belongs to the nearest `fn` declared above it.
pub fn bindings(source: &str) -> Vec<Binding> {
    let mut out: Vec<Binding> = Vec::new();
    let mut current_fn: Option<String> = None;
    let mut pending: Option<String> = None;
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if let Some(name) = fn_name(code) {
            current_fn = Some(name);
        }
        if let Some(args) = binding_start(code) {
            pending = Some(args.to_string());
        } else if let Some(text) = pending.as_mut() {
            text.push_str(code);
        }
        if let Some(text) = pending.as_ref().filter(|t| t.contains(')')) {
            let args = &text[..text.find(')').unwrap_or(text.len())];
            let promises: Vec<String> = args.split(',').map(|a| a.trim().trim_matches('"').to_string()).filter(|a| !a.is_empty()).collect();
            if let Some(test) = current_fn.clone() {
                match out.iter_mut().find(|b| b.test == test) {
                    Some(b) => b.promises.extend(promises),
                    None => out.push(Binding { test, promises }),
                }
            }
            pending = None;
        }
    }
    out
}

/// The text after `proves!(` when the line is a `proves!` statement, optionally path-qualified
/// (`passme_policy::proves!(`). A mention inside a string or a comment is not a binding.
fn binding_start(code: &str) -> Option<&str> {
    let path_end = code.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(code.len());
    let (path, rest) = code.split_at(path_end);
    let rest = rest.strip_prefix("!(")?;
    (path == "proves" || path.ends_with("::proves")).then_some(rest)
}

fn fn_name(code: &str) -> Option<String> {
    let rest = code.strip_prefix("pub ").unwrap_or(code);
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_calls_to_the_enclosing_test() {
        let source = "#[test]\nfn a() {\n    proves!(\"x.one\", \"x.two\");\n}\n// proves!(\"ignored\")\nasync fn b() {\n    passme_policy::proves!(\n        \"y\",\n    );\n    assert!(ok, \"proves!(not a binding)\");\n}\n";
        assert_eq!(
            bindings(source),
            vec![
                Binding { test: "a".into(), promises: vec!["x.one".into(), "x.two".into()] },
                Binding { test: "b".into(), promises: vec!["y".into()] },
            ]
        );
    }
}
