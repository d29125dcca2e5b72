use super::{Doc, Node, Options, Span};

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn write(doc: &Doc, options: Options) -> String {
    let lang = doc.lang.code();
    let mut out = format!("<article class=\"policy\" lang=\"{lang}\">\n<h1>{}</h1>\n", escape(&doc.title));
    for node in &doc.nodes {
        match node {
            Node::Heading { level, anchor, text } => {
                let level = (*level).clamp(2, 6);
                out.push_str(&format!("<h{level} id=\"{}\">{}</h{level}>\n", escape(anchor), escape(text)));
            }
            Node::Para(spans) => out.push_str(&format!("<p>{}</p>\n", spans_html(spans, options))),
            Node::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str(&format!("<li>{}</li>\n", spans_html(item, options)));
                }
                out.push_str("</ul>\n");
            }
            Node::Table { header, rows } => {
                out.push_str("<div class=\"table-wrap\"><table>\n<thead><tr>");
                for h in header {
                    out.push_str(&format!("<th scope=\"col\">{}</th>", escape(h)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str(&format!("<tr data-promise=\"{}\">", escape(&row.promises.join(" "))));
                    for (i, cell) in row.cells.iter().enumerate() {
                        let marks = if i == 0 { promise_marks(&row.promises, options) } else { String::new() };
                        out.push_str(&format!("<td>{}{marks}</td>", escape(cell)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table></div>\n");
            }
        }
    }
    out.push_str("</article>\n");
    if options.standalone {
        format!(
            "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n</head>\n<body>\n{out}</body>\n</html>\n",
            escape(&doc.title)
        )
    } else {
        out
    }
}

fn spans_html(spans: &[Span], options: Options) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|s| {
            if s.promises.is_empty() {
                escape(&s.text)
            } else {
                format!(
                    "<span data-promise=\"{}\">{}{}</span>",
                    escape(&s.promises.join(" ")),
                    escape(&s.text),
                    promise_marks(&s.promises, options)
                )
            }
        })
        .collect();
    parts.join(" ")
}

fn promise_marks(promises: &[String], options: Options) -> String {
    if !options.show_promises || promises.is_empty() {
        return String::new();
    }
    promises.iter().map(|p| format!(" <sup class=\"promise\"><code>{}</code></sup>", escape(p))).collect()
}
