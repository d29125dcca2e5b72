//! Rendering the declarations for people: the privacy policy and the article 30 record are built
//! as a small document model, then written as Markdown or HTML. Every sentence that states a
//! promise carries its id, so a rendering can show which promise stands behind it.

mod document;
mod html;
mod markdown;
mod policy_text;
mod record;

pub use document::{Doc, Node, Row, Span};

use crate::{Lang, Policy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Show the promise id behind each sentence.
    pub show_promises: bool,
    /// For HTML: a whole document rather than an `<article>` to embed in a page.
    pub standalone: bool,
    /// Promises the code does not keep yet: marked as pending where promises are shown.
    pub pending: &'a [String],
}

impl Options<'_> {
    fn is_pending(&self, promise: &str) -> bool {
        self.pending.iter().any(|p| p == promise)
    }
}

/// The word that marks a pending promise.
fn pending_word(lang: Lang) -> &'static str {
    match lang {
        Lang::Da => "afventer",
        Lang::En => "pending",
    }
}

/// The published privacy policy.
pub fn policy(policy: &Policy, lang: Lang) -> Doc {
    policy_text::build(policy, lang)
}

/// The GDPR article 30 record of processing activities.
pub fn record(policy: &Policy, lang: Lang) -> Doc {
    record::build(policy, lang)
}

/// One section of a document: its heading and everything up to the next heading of its level.
pub fn section(doc: &Doc, anchor: &str) -> Doc {
    let mut nodes = Vec::new();
    let mut level = None;
    for node in &doc.nodes {
        match (node, level) {
            (Node::Heading { level: l, anchor: a, .. }, None) if a == anchor => {
                level = Some(*l);
                continue;
            }
            (Node::Heading { level: l, .. }, Some(inside)) if *l <= inside => break,
            (_, Some(_)) => nodes.push(node.clone()),
            _ => {}
        }
    }
    Doc { lang: doc.lang, title: doc.title.clone(), nodes }
}

pub fn write(doc: &Doc, format: Format, options: Options<'_>) -> String {
    match format {
        Format::Markdown => markdown::write(doc, options),
        Format::Html => html::write(doc, options),
    }
}
