//! The rule language: small on purpose. A rule is one expression over the signals, e.g.
//!
//! ```text
//! event.kind == "signin" && network.failures_10m >= 20 && !network.known
//! ```
//!
//! Numbers, strings, `true`/`false`, lists (`x in ["a", "b"]`), `== != < <= > >=`, `+ - * / %`,
//! `&& || !` and parentheses. There are no loops, calls or variables, so every expression ends
//! after one pass over its nodes; the checker bounds the size and depth when a rule is saved,
//! rejects unknown signals and wrong types, and accepts only a non-zero number as a divisor,
//! so a saved rule cannot fail when it runs.

use std::collections::BTreeMap;
use std::fmt;

/// The longest expression accepted, in characters, and the most nodes and nesting.
pub const MAX_LEN: usize = 1_000;
const MAX_NODES: usize = 200;
const MAX_DEPTH: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Num,
    Bool,
    Str,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Num => "number",
            Type::Bool => "boolean",
            Type::Str => "string",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Str(String),
}

impl Value {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 9e15 => serde_json::Value::from(*n as i64),
            Value::Num(n) => serde_json::Value::from(*n),
            Value::Bool(b) => serde_json::Value::from(*b),
            Value::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

/// Why an expression was refused when saved; `code` is the stable error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub code: &'static str,
    pub message: String,
}

impl RuleError {
    fn new(code: &'static str, message: impl Into<String>) -> RuleError {
        RuleError { code, message: message.into() }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Signal(String),
    List(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
}

/// A checked expression, ready to run against the signals it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
    signals: Vec<String>,
}

impl Expr {
    /// Parses and checks `source` against the known signals and their types.
    pub fn compile(source: &str, known: &BTreeMap<&'static str, Type>) -> Result<Expr, RuleError> {
        if source.trim().is_empty() {
            return Err(RuleError::new("rule_empty", "the expression is empty"));
        }
        if source.chars().count() > MAX_LEN {
            return Err(RuleError::new("rule_too_complex", format!("longer than {MAX_LEN} characters")));
        }
        let tokens = lex(source)?;
        let mut parser = Parser { tokens, at: 0, nodes: 0 };
        let root = parser.expr(0)?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(RuleError::new("rule_syntax", format!("unexpected {token} after the expression")));
        }
        let mut signals = Vec::new();
        if check(&root, known, &mut signals)? != Type::Bool {
            return Err(RuleError::new("rule_type_error", "a rule must be true or false"));
        }
        signals.sort();
        signals.dedup();
        Ok(Expr { root, signals })
    }

    /// The signals the expression reads, sorted: a decision stores their values.
    pub fn signals(&self) -> &[String] {
        &self.signals
    }

    /// Whether the rule fires. Signals it reads must be in `values` (the checker saw to their
    /// names and types); a missing one makes the rule not fire.
    pub fn fires(&self, values: &BTreeMap<&str, Value>) -> bool {
        matches!(eval(&self.root, values), Some(Value::Bool(true)))
    }
}

fn eval(node: &Node, values: &BTreeMap<&str, Value>) -> Option<Value> {
    Some(match node {
        Node::Lit(v) => v.clone(),
        Node::Signal(name) => values.get(name.as_str())?.clone(),
        Node::List(_) => return None,
        Node::Not(inner) => match eval(inner, values)? {
            Value::Bool(b) => Value::Bool(!b),
            _ => return None,
        },
        Node::Neg(inner) => match eval(inner, values)? {
            Value::Num(n) => Value::Num(-n),
            _ => return None,
        },
        Node::Binary(Op::And, a, b) => Value::Bool(eval(a, values)? == Value::Bool(true) && eval(b, values)? == Value::Bool(true)),
        Node::Binary(Op::Or, a, b) => Value::Bool(eval(a, values)? == Value::Bool(true) || eval(b, values)? == Value::Bool(true)),
        Node::Binary(Op::In, a, b) => {
            let needle = eval(a, values)?;
            let Node::List(items) = &**b else { return None };
            let mut found = false;
            for item in items {
                found |= eval(item, values)? == needle;
            }
            Value::Bool(found)
        }
        Node::Binary(op, a, b) => {
            let (a, b) = (eval(a, values)?, eval(b, values)?);
            match (op, a, b) {
                (Op::Eq, a, b) => Value::Bool(a == b),
                (Op::Ne, a, b) => Value::Bool(a != b),
                (op, Value::Num(a), Value::Num(b)) => match op {
                    Op::Lt => Value::Bool(a < b),
                    Op::Le => Value::Bool(a <= b),
                    Op::Gt => Value::Bool(a > b),
                    Op::Ge => Value::Bool(a >= b),
                    Op::Add => Value::Num(a + b),
                    Op::Sub => Value::Num(a - b),
                    Op::Mul => Value::Num(a * b),
                    Op::Div => Value::Num(a / b),
                    Op::Rem => Value::Num(a % b),
                    _ => return None,
                },
                (op, Value::Str(a), Value::Str(b)) => match op {
                    Op::Lt => Value::Bool(a < b),
                    Op::Le => Value::Bool(a <= b),
                    Op::Gt => Value::Bool(a > b),
                    Op::Ge => Value::Bool(a >= b),
                    _ => return None,
                },
                _ => return None,
            }
        }
    })
}

fn check(node: &Node, known: &BTreeMap<&'static str, Type>, signals: &mut Vec<String>) -> Result<Type, RuleError> {
    let mismatch = |what: &str, t: Type| RuleError::new("rule_type_error", format!("{what} needs {t}"));
    Ok(match node {
        Node::Lit(Value::Num(_)) => Type::Num,
        Node::Lit(Value::Bool(_)) => Type::Bool,
        Node::Lit(Value::Str(_)) => Type::Str,
        Node::Signal(name) => {
            let Some(t) = known.get(name.as_str()) else {
                return Err(RuleError::new("rule_unknown_signal", format!("no signal is called {name}")));
            };
            signals.push(name.clone());
            *t
        }
        Node::List(_) => return Err(RuleError::new("rule_syntax", "a list stands only after `in`")),
        Node::Not(inner) => {
            if check(inner, known, signals)? != Type::Bool {
                return Err(mismatch("!", Type::Bool));
            }
            Type::Bool
        }
        Node::Neg(inner) => {
            if check(inner, known, signals)? != Type::Num {
                return Err(mismatch("-", Type::Num));
            }
            Type::Num
        }
        Node::Binary(Op::In, a, b) => {
            let needle = check(a, known, signals)?;
            let Node::List(items) = &**b else { return Err(RuleError::new("rule_syntax", "`in` needs a list: x in [\"a\", \"b\"]")) };
            for item in items {
                if !matches!(item, Node::Lit(_)) || check(item, known, signals)? != needle {
                    return Err(RuleError::new("rule_type_error", format!("the list after `in` must hold {needle} values")));
                }
            }
            Type::Bool
        }
        Node::Binary(op, a, b) => {
            let (ta, tb) = (check(a, known, signals)?, check(b, known, signals)?);
            if ta != tb {
                return Err(RuleError::new("rule_type_error", format!("cannot compare or combine {ta} with {tb}")));
            }
            match op {
                Op::And | Op::Or if ta != Type::Bool => return Err(mismatch("&& and ||", Type::Bool)),
                Op::And | Op::Or | Op::Eq | Op::Ne => Type::Bool,
                Op::Lt | Op::Le | Op::Gt | Op::Ge if ta == Type::Bool => return Err(mismatch("ordering", Type::Num)),
                Op::Lt | Op::Le | Op::Gt | Op::Ge => Type::Bool,
                _ if ta != Type::Num => return Err(mismatch("arithmetic", Type::Num)),
                Op::Div | Op::Rem => match &**b {
                    Node::Lit(Value::Num(n)) if *n != 0.0 => Type::Num,
                    Node::Lit(Value::Num(_)) => return Err(RuleError::new("rule_divides_by_zero", "the expression divides by zero")),
                    _ => {
                        return Err(RuleError::new(
                            "rule_divides_by_zero",
                            "a divisor must be a number other than zero (a signal may be zero)",
                        ));
                    }
                },
                _ => Type::Num,
            }
        }
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Str(s) => write!(f, "{s:?}"),
            Token::Ident(s) => write!(f, "`{s}`"),
            Token::Sym(s) => write!(f, "`{s}`"),
        }
    }
}

const SYMBOLS: &[&str] = &["&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]", ","];

fn lex(source: &str) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_digit() {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let n = rest[..end].parse::<f64>().map_err(|_| RuleError::new("rule_syntax", format!("{} is not a number", &rest[..end])))?;
            tokens.push(Token::Num(n));
            rest = &rest[end..];
        } else if c == '"' {
            let end = rest[1..].find('"').ok_or_else(|| RuleError::new("rule_syntax", "a string is not closed"))? + 1;
            tokens.push(Token::Str(rest[1..end].to_string()));
            rest = &rest[end + 1..];
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
            tokens.push(Token::Ident(rest[..end].to_string()));
            rest = &rest[end..];
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Sym(sym));
            rest = &rest[sym.len()..];
        } else {
            return Err(RuleError::new("rule_syntax", format!("unexpected character {c:?}")));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    nodes: usize,
}

/// Binary operators by precedence, loosest first.
const LEVELS: &[&[(&str, Op)]] = &[
    &[("||", Op::Or)],
    &[("&&", Op::And)],
    &[("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt), ("in", Op::In)],
    &[("+", Op::Add), ("-", Op::Sub)],
    &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
];

impl Parser {
    fn node(&mut self, node: Node, depth: usize) -> Result<Node, RuleError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES || depth > MAX_DEPTH {
            return Err(RuleError::new("rule_too_complex", format!("more than {MAX_NODES} parts or {MAX_DEPTH} levels of nesting")));
        }
        Ok(node)
    }

    fn peek_is(&self, text: &str) -> bool {
        match self.tokens.get(self.at) {
            Some(Token::Sym(s)) => *s == text,
            Some(Token::Ident(s)) => s == text && text == "in",
            _ => false,
        }
    }

    fn expect(&mut self, text: &str) -> Result<(), RuleError> {
        if self.peek_is(text) {
            self.at += 1;
            Ok(())
        } else {
            let found = self.tokens.get(self.at).map_or("the end".to_string(), Token::to_string);
            Err(RuleError::new("rule_syntax", format!("expected `{text}`, found {found}")))
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Node, RuleError> {
        self.level(0, depth)
    }

    fn level(&mut self, level: usize, depth: usize) -> Result<Node, RuleError> {
        let Some(ops) = LEVELS.get(level) else { return self.unary(depth) };
        let mut left = self.level(level + 1, depth)?;
        while let Some((text, op)) = ops.iter().find(|(text, _)| self.peek_is(text)) {
            self.at += 1;
            let right = if *op == Op::In { self.list(depth + 1)? } else { self.level(level + 1, depth + 1)? };
            left = self.node(Node::Binary(*op, Box::new(left), Box::new(right)), depth)?;
            // Comparisons do not chain: `a < b < c` is a mistake, not a range.
            if level == 2 && ops.iter().any(|(t, _)| self.peek_is(t)) {
                return Err(RuleError::new("rule_syntax", format!("comparisons do not chain; write `a {text} b && b … c`")));
            }
        }
        Ok(left)
    }

    fn list(&mut self, depth: usize) -> Result<Node, RuleError> {
        self.expect("[")?;
        let mut items = Vec::new();
        while !self.peek_is("]") {
            items.push(self.unary(depth + 1)?);
            if !self.peek_is("]") {
                self.expect(",")?;
            }
        }
        self.expect("]")?;
        self.node(Node::List(items), depth)
    }

    fn unary(&mut self, depth: usize) -> Result<Node, RuleError> {
        if self.peek_is("!") {
            self.at += 1;
            let inner = self.unary(depth + 1)?;
            return self.node(Node::Not(Box::new(inner)), depth);
        }
        if self.peek_is("-") {
            self.at += 1;
            let inner = self.unary(depth + 1)?;
            return self.node(Node::Neg(Box::new(inner)), depth);
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Result<Node, RuleError> {
        let token = self.tokens.get(self.at).cloned().ok_or_else(|| RuleError::new("rule_syntax", "the expression ends too soon"))?;
        self.at += 1;
        let node = match token {
            Token::Num(n) => Node::Lit(Value::Num(n)),
            Token::Str(s) => Node::Lit(Value::Str(s)),
            Token::Ident(name) if name == "true" || name == "false" => Node::Lit(Value::Bool(name == "true")),
            Token::Ident(name) => {
                if self.peek_is("(") {
                    return Err(RuleError::new("rule_syntax", format!("`{name}(…)`: the language has no functions or loops")));
                }
                Node::Signal(name)
            }
            Token::Sym("(") => {
                let inner = self.expr(depth + 1)?;
                self.expect(")")?;
                inner
            }
            other => return Err(RuleError::new("rule_syntax", format!("unexpected {other}"))),
        };
        self.node(node, depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeMap<&'static str, Type> {
        BTreeMap::from([("network.failures_10m", Type::Num), ("network.hosting", Type::Bool), ("event.kind", Type::Str)])
    }

    fn values(failures: f64, hosting: bool, kind: &str) -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            ("network.failures_10m", Value::Num(failures)),
            ("network.hosting", Value::Bool(hosting)),
            ("event.kind", Value::Str(kind.into())),
        ])
    }

    fn code(source: &str) -> &'static str {
        Expr::compile(source, &known()).map(|_| "ok").unwrap_or_else(|e| e.code)
    }

    #[test]
    fn rules_fire_on_the_signals_they_read() {
        let rule = Expr::compile(r#"event.kind in ["signin", "signup"] && (network.failures_10m * 2 >= 40 || network.hosting)"#, &known())
            .expect("a valid rule");
        assert_eq!(rule.signals(), ["event.kind", "network.failures_10m", "network.hosting"]);
        assert!(rule.fires(&values(20.0, false, "signin")));
        assert!(rule.fires(&values(0.0, true, "signup")));
        assert!(!rule.fires(&values(19.0, false, "signin")));
        assert!(!rule.fires(&values(50.0, true, "checkout")));
        assert!(
            Expr::compile("!network.hosting && -network.failures_10m < -3 % 2", &known()).expect("valid").fires(&values(4.0, false, ""))
        );
    }

    #[test]
    fn bad_rules_are_refused_when_saved_with_their_own_code() {
        assert_eq!(code("network.failures_10m / 0 > 1"), "rule_divides_by_zero");
        assert_eq!(code("10 / network.failures_10m > 1"), "rule_divides_by_zero");
        assert_eq!(code("10 % (1 - 1) > 1"), "rule_divides_by_zero");
        assert_eq!(code("account.unknown > 3"), "rule_unknown_signal");
        assert_eq!(code("network.hosting > 3"), "rule_type_error");
        assert_eq!(code("network.failures_10m"), "rule_type_error");
        assert_eq!(code(r#"event.kind in [1, 2]"#), "rule_type_error");
        assert_eq!(code("1 < 2 < 3"), "rule_syntax");
        // Loops are not in the language: CEL's macros and any call are refused.
        assert_eq!(code("[1, 2].all(x, x > 0)"), "rule_syntax");
        assert_eq!(code("while(true)"), "rule_syntax");
        assert_eq!(code(&format!("{}true{}", "(".repeat(40), ")".repeat(40))), "rule_too_complex");
        assert_eq!(code(&vec!["network.hosting"; 120].join(" || ")), "rule_too_complex");
        assert_eq!(code(&"x".repeat(MAX_LEN + 1)), "rule_too_complex");
        assert_eq!(code("  "), "rule_empty");
        assert_eq!(code("\"open"), "rule_syntax");
        assert_eq!(code("network.hosting &&"), "rule_syntax");
        assert_eq!(code("network.hosting @ 1"), "rule_syntax");
    }
}
