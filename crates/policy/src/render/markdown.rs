use super::{Doc, Node, Options, Span};
use crate::model::Lang;

pub fn write(doc: &Doc, options: Options<'_>) -> String {
    let mut out = format!("# {}\n", doc.title);
    for node in &doc.nodes {
        out.push('\n');
        match node {
            Node::Heading { level, text, .. } => {
                out.push_str(&"#".repeat(usize::from(*level)));
                out.push(' ');
                out.push_str(text);
                out.push('\n');
            }
            Node::Para(spans) => {
                out.push_str(&spans_text(spans, options, doc.lang));
                out.push('\n');
            }
            Node::List(items) => {
                for item in items {
                    out.push_str("- ");
                    out.push_str(&spans_text(item, options, doc.lang));
                    out.push('\n');
                }
            }
            Node::Table { header, rows } => {
                let mut header = header.clone();
                if options.show_promises {
                    header.push("Promise".into());
                }
                out.push_str(&table_row(&header));
                out.push_str(&table_row(&vec!["---".to_string(); header.len()]));
                for row in rows {
                    let mut cells = row.cells.clone();
                    if options.show_promises {
                        cells.push(row.promises.iter().map(|p| mark(p, options, doc.lang)).collect::<Vec<_>>().join(" "));
                    }
                    out.push_str(&table_row(&cells));
                }
            }
        }
    }
    out
}

fn spans_text(spans: &[Span], options: Options<'_>, lang: Lang) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|s| {
            if options.show_promises && !s.promises.is_empty() {
                let ids: Vec<String> = s.promises.iter().map(|p| mark(p, options, lang)).collect();
                format!("{} [{}]", s.text, ids.join(" "))
            } else {
                s.text.clone()
            }
        })
        .collect();
    parts.join(" ")
}

fn table_row(cells: &[String]) -> String {
    let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
    format!("| {} |\n", escaped.join(" | "))
}

/// A promise's id, with the pending mark when the code does not keep it yet.
fn mark(promise: &str, options: Options<'_>, lang: Lang) -> String {
    if options.is_pending(promise) { format!("`{promise}` ({})", super::pending_word(lang)) } else { format!("`{promise}`") }
}
