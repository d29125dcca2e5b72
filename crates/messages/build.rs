//! Compiles `locales/da.toml` and `locales/en.toml` (at the workspace root) into one method per
//! key on `Texts`. The build fails when a key is in one language only, when the two languages
//! name different `{placeholders}`, or when a key is not snake_case (see `src/catalogue.rs`); so
//! a text cannot be missing in one language, and a mistyped key in code does not compile.

#[path = "src/catalogue.rs"]
mod catalogue;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("../../locales");
    let read = |name: &str| {
        let path = root.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        catalogue::parse(&format!("locales/{name}"), &text).unwrap_or_else(|e| panic!("{e}"))
    };
    let entries = catalogue::check(&read("da.toml"), &read("en.toml")).unwrap_or_else(|e| panic!("{e}"));

    let mut code = String::from(
        "/// The texts of one language: a method per catalogue key (`site.privacy` is `site_privacy`).\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub struct Texts(pub Lang);\n\nimpl Texts {\n",
    );
    // Sections whose texts are also looked up by a code that arrives at run time.
    let mut lookups: Vec<(&str, String)> = vec![
        ("error", String::new()),
        ("hint", String::new()),
        ("done", String::new()),
        ("message_template", String::new()),
        ("message_status", String::new()),
        ("role", String::new()),
        ("fraud_outcome", String::new()),
        ("support_signal", String::new()),
        ("terms_clause", String::new()),
        ("console_name", String::new()),
        ("console_about", String::new()),
        ("fraud_rule", String::new()),
    ];
    for entry in &entries {
        let method = entry.key.replace('.', "_");
        let (da, en) = (&entry.da, &entry.en);
        let _ = writeln!(code, "    /// da: {da:?}\n    ///\n    /// en: {en:?}");
        if entry.placeholders.is_empty() {
            let _ = writeln!(
                code,
                "    pub fn {method}(self) -> &'static str {{\n        match self.0 {{\n            Lang::Da => {da:?},\n            Lang::En => {en:?},\n        }}\n    }}\n"
            );
        } else {
            let params: Vec<String> = entry.placeholders.iter().map(|n| format!("{n}: impl std::fmt::Display")).collect();
            let _ = writeln!(
                code,
                "    pub fn {method}(self, {}) -> String {{\n        match self.0 {{\n            Lang::Da => format!({da:?}),\n            Lang::En => format!({en:?}),\n        }}\n    }}\n",
                params.join(", ")
            );
        }
        for (section, arms) in &mut lookups {
            if let Some(code) = entry.key.strip_prefix(&format!("{section}.")) {
                let _ = writeln!(arms, "            {code:?} => Some(self.{method}()),");
            }
        }
    }
    for (section, arms) in &lookups {
        let _ = writeln!(
            code,
            "    /// The `{section}.*` text of a code, when the catalogue has one.\n    pub fn {section}(self, code: &str) -> Option<&'static str> {{\n        match code {{\n{arms}            _ => None,\n        }}\n    }}\n"
        );
    }
    code.push_str("}\n");
    fs::write(PathBuf::from(env::var("OUT_DIR").expect("out dir")).join("texts.rs"), code).expect("write texts.rs");
}
