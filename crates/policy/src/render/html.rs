use super::{Doc, Node, Options, Span};
use crate::model::Lang;

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

/// Text with its web addresses (`https://…`, `stripe.com/privacy`) and the site's own paths
/// (`/cookies`) turned into links, everything escaped.
pub fn linked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        // Brackets and trailing punctuation belong to the sentence, not to the address.
        let core_start = word.find(|c: char| c != '(').unwrap_or(word.len());
        let core_end = word.trim_end_matches(['.', ',', ';', ':', ')', '!', '?']).len().max(core_start);
        let (before, core, tail) = (&word[..core_start], &word[core_start..core_end], &word[core_end..]);
        out.push_str(&escape(before));
        match href(core) {
            Some(href) => out.push_str(&format!("<a href=\"{}\">{}</a>", escape(&href), escape(core))),
            None => out.push_str(&escape(core)),
        }
        out.push_str(&escape(tail));
        let space_end = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
        out.push_str(&after[..space_end]);
        rest = &after[space_end..];
    }
    out
}

/// Where a word links to, if it is an address.
fn href(word: &str) -> Option<String> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/%?=&#".contains(c));
    if let Some(rest) = word.strip_prefix("https://").or_else(|| word.strip_prefix("http://")) {
        return plain(rest).then(|| word.to_string());
    }
    if let Some(path) = word.strip_prefix('/') {
        let is_path = path.starts_with(|c: char| c.is_ascii_lowercase())
            && path.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_/.".contains(c));
        return is_path.then(|| word.to_string());
    }
    let host = word.split('/').next().unwrap_or_default();
    let labels: Vec<&str> = host.split('.').collect();
    let is_host = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        && ["dk", "com", "eu", "org", "net", "ai", "io"].contains(&labels[labels.len() - 1]);
    (is_host && plain(word)).then(|| format!("https://{word}"))
}

pub fn write(doc: &Doc, options: Options<'_>) -> String {
    let lang = doc.lang.code();
    let mut out = format!("<article class=\"policy\" lang=\"{lang}\">\n<h1>{}</h1>\n", escape(&doc.title));
    // A table is named by the heading above it (for the region that scrolls it on narrow screens).
    let mut section = doc.title.as_str();
    for node in &doc.nodes {
        match node {
            Node::Heading { level, anchor, text } => {
                section = text;
                let level = (*level).clamp(2, 6);
                out.push_str(&format!("<h{level} id=\"{}\">{}</h{level}>\n", escape(anchor), escape(text)));
            }
            Node::Para(spans) => out.push_str(&format!("<p>{}</p>\n", spans_html(spans, options, doc.lang))),
            Node::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str(&format!("<li>{}</li>\n", spans_html(item, options, doc.lang)));
                }
                out.push_str("</ul>\n");
            }
            Node::Table { header, rows } => {
                // Focusable, so keyboard users can scroll it when it is wider than the screen; on
                // phones the stylesheet stacks each row into a card labelled by `data-label`.
                out.push_str(&format!(
                    "<div class=\"table-wrap\" tabindex=\"0\" role=\"region\" aria-label=\"{}\"><table class=\"stack\">\n<thead><tr>",
                    escape(section)
                ));
                for h in header {
                    out.push_str(&format!("<th scope=\"col\">{}</th>", escape(h)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str(&format!("<tr data-promise=\"{}\">", escape(&row.promises.join(" "))));
                    for (i, cell) in row.cells.iter().enumerate() {
                        let marks = if i == 0 { promise_marks(&row.promises, options, doc.lang) } else { String::new() };
                        let label = header.get(i).map(String::as_str).unwrap_or_default();
                        out.push_str(&format!("<td data-label=\"{}\">{}{marks}</td>", escape(label), linked(cell)));
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

fn spans_html(spans: &[Span], options: Options<'_>, lang: Lang) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|s| {
            if s.promises.is_empty() {
                linked(&s.text)
            } else {
                format!(
                    "<span data-promise=\"{}\">{}{}</span>",
                    escape(&s.promises.join(" ")),
                    linked(&s.text),
                    promise_marks(&s.promises, options, lang)
                )
            }
        })
        .collect();
    parts.join(" ")
}

fn promise_marks(promises: &[String], options: Options<'_>, lang: Lang) -> String {
    if !options.show_promises || promises.is_empty() {
        return String::new();
    }
    promises
        .iter()
        .map(|p| match options.is_pending(p) {
            true => format!(" <sup class=\"promise pending\"><code>{}</code> {}</sup>", escape(p), super::pending_word(lang)),
            false => format!(" <sup class=\"promise\"><code>{}</code></sup>", escape(p)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::linked;

    #[test]
    fn addresses_and_paths_become_links_and_the_rest_stays_text() {
        assert_eq!(
            linked("See https://stripe.com/privacy, or (datatilsynet.dk)."),
            "See <a href=\"https://stripe.com/privacy\">https://stripe.com/privacy</a>, or (<a href=\"https://datatilsynet.dk\">datatilsynet.dk</a>)."
        );
        assert_eq!(linked("the settings (/cookies), always"), "the settings (<a href=\"/cookies\">/cookies</a>), always");
        assert_eq!(linked("stripe.com/privacy"), "<a href=\"https://stripe.com/privacy\">stripe.com/privacy</a>");
        for text in ["e.g. a list", "24/7", "and/or", "v1.2", "3.5 years", "ISO 8601", "<b>", "/", "a.b.x", "/24", "/48"] {
            assert!(!linked(text).contains("<a "), "{text}");
        }
        assert_eq!(linked("<script> & \"x\""), "&lt;script&gt; &amp; &quot;x&quot;");
        assert_eq!(linked("javascript:alert(1)"), "javascript:alert(1)");
    }
}
