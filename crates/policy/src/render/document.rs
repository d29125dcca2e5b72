use crate::Lang;

/// A rendered document: a title and a sequence of nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub lang: Lang,
    pub title: String,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Heading { level: u8, anchor: String, text: String },
    Para(Vec<Span>),
    List(Vec<Vec<Span>>),
    Table { header: Vec<String>, rows: Vec<Row> },
}

/// A run of text and the promises it states.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub text: String,
    pub promises: Vec<String>,
}

impl Span {
    pub fn plain(text: impl Into<String>) -> Span {
        Span { text: text.into(), promises: Vec::new() }
    }

    pub fn promising(text: impl Into<String>, promise: impl Into<String>) -> Span {
        Span { text: text.into(), promises: vec![promise.into()] }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<String>,
    pub promises: Vec<String>,
}
