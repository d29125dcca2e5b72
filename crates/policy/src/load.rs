//! Loading the declaration files and validating them into a [`Policy`]. Every problem is reported
//! with its file, line and column, all at once, so one run shows everything to fix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::model::*;
use crate::period::Period;
use crate::{Meta, Policy};

/// The text of every declaration file, kept so that errors can point at lines.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl Sources {
    /// Reads one `.toml` file, or every `.toml` file of a folder in name order.
    pub fn read(path: &Path) -> Result<Sources, PolicyError> {
        let io_error = |p: &Path, e: std::io::Error| PolicyError::single(&p.display().to_string(), 0, 0, format!("cannot read: {e}"));
        let mut paths = Vec::new();
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(|e| io_error(path, e))? {
                let entry = entry.map_err(|e| io_error(path, e))?;
                let p = entry.path();
                if p.extension().is_some_and(|ext| ext == "toml") {
                    paths.push(p);
                }
            }
            paths.sort();
            if paths.is_empty() {
                return Err(PolicyError::single(&path.display().to_string(), 0, 0, "no .toml declaration files in this folder".into()));
            }
        } else {
            paths.push(path.to_path_buf());
        }
        let mut files = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| io_error(&p, e))?;
            files.push(SourceFile { name: p.display().to_string(), text });
        }
        Ok(Sources { files })
    }

    pub fn from_strs(files: &[(&str, &str)]) -> Sources {
        Sources { files: files.iter().map(|(name, text)| SourceFile { name: (*name).to_string(), text: (*text).to_string() }).collect() }
    }

    fn locate(&self, file: usize, offset: usize) -> (String, usize, usize) {
        let Some(source) = self.files.get(file) else {
            return ("<unknown>".into(), 0, 0);
        };
        let before = &source.text[..offset.min(source.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (source.name.clone(), line, col)
    }
}

/// One problem in the declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyError {
    fn single(file: &str, line: usize, column: usize, message: String) -> PolicyError {
        PolicyError { diagnostics: vec![Diagnostic { file: file.into(), line, column, message }] }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the policy declarations are invalid ({} problem(s)):", self.diagnostics.len())?;
        for d in &self.diagnostics {
            writeln!(f, "  {}:{}:{}: {}", d.file, d.line, d.column, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// What one file may contain. Files are merged; singletons (`meta`, `controller`) appear once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    meta: Option<Spanned<Meta>>,
    controller: Option<Spanned<Controller>>,
    #[serde(default)]
    purposes: Vec<Purpose>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    tables: Vec<Table>,
    #[serde(default)]
    processors: Vec<Processor>,
    #[serde(default)]
    cookies: Vec<Cookie>,
    #[serde(default)]
    cookie_categories: Vec<CookieCategoryDecl>,
    #[serde(default)]
    security: Vec<SecurityMeasure>,
    #[serde(default)]
    sections: Vec<Section>,
}

struct Checker<'a> {
    sources: &'a Sources,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, file: usize, offset: usize, message: impl Into<String>) {
        let (name, line, column) = self.sources.locate(file, offset);
        self.diagnostics.push(Diagnostic { file: name, line, column, message: message.into() });
    }

    fn at(&mut self, file: usize, spanned_start: usize, message: impl Into<String>) {
        self.error(file, spanned_start, message);
    }
}

pub fn load(sources: Sources) -> Result<Policy, PolicyError> {
    let mut checker = Checker { sources: &sources, diagnostics: Vec::new() };
    let mut parsed = Vec::new();
    for (index, file) in sources.files.iter().enumerate() {
        match toml::from_str::<PolicyFile>(&file.text) {
            Ok(content) => parsed.push((index, content)),
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                checker.error(index, offset, e.message().trim().to_string());
            }
        }
    }
    if !checker.diagnostics.is_empty() {
        return Err(PolicyError { diagnostics: checker.diagnostics });
    }
    let merged = merge(&mut checker, parsed);
    let policy = merged.and_then(|m| validate(&mut checker, m));
    match policy {
        Some(mut policy) if checker.diagnostics.is_empty() => {
            policy.sources = sources.clone();
            Ok(policy)
        }
        _ => Err(PolicyError { diagnostics: checker.diagnostics }),
    }
}

struct Merged {
    meta: Meta,
    controller: Controller,
    purposes: Vec<Purpose>,
    categories: Vec<Category>,
    tables: Vec<Table>,
    processors: Vec<Processor>,
    cookies: Vec<Cookie>,
    cookie_categories: Vec<CookieCategoryDecl>,
    security: Vec<SecurityMeasure>,
    sections: Vec<Section>,
}

fn merge(checker: &mut Checker<'_>, parsed: Vec<(usize, PolicyFile)>) -> Option<Merged> {
    let mut meta: Option<Meta> = None;
    let mut controller: Option<Controller> = None;
    let mut m = Merged {
        meta: Meta::default(),
        controller: Controller {
            name: String::new(),
            email: String::new(),
            address: None,
            country: Text { da: String::new(), en: String::new() },
            authority: Text { da: String::new(), en: String::new() },
            authority_url: String::new(),
        },
        purposes: vec![],
        categories: vec![],
        tables: vec![],
        processors: vec![],
        cookies: vec![],
        cookie_categories: vec![],
        security: vec![],
        sections: vec![],
    };
    let mut first_file = None;
    for (file, content) in parsed {
        first_file.get_or_insert(file);
        if let Some(value) = content.meta {
            if meta.is_some() {
                checker.at(file, value.span().start, "[meta] is declared twice");
            }
            meta = Some(value.into_inner());
        }
        if let Some(value) = content.controller {
            if controller.is_some() {
                checker.at(file, value.span().start, "[controller] is declared twice");
            }
            controller = Some(value.into_inner());
        }
        let origin = |offset: usize| Origin { file, offset };
        m.purposes.extend(content.purposes.into_iter().map(|mut p| {
            p.origin = origin(p.id.span().start);
            p
        }));
        m.categories.extend(content.categories.into_iter().map(|mut c| {
            c.origin = origin(c.id.span().start);
            c
        }));
        m.tables.extend(content.tables.into_iter().map(|mut t| {
            t.origin = origin(t.name.span().start);
            t
        }));
        m.processors.extend(content.processors.into_iter().map(|mut p| {
            p.origin = origin(p.id.span().start);
            p
        }));
        m.cookies.extend(content.cookies.into_iter().map(|mut c| {
            c.origin = origin(c.name.span().start);
            c
        }));
        m.cookie_categories.extend(content.cookie_categories);
        m.security.extend(content.security.into_iter().map(|mut s| {
            s.origin = origin(s.id.span().start);
            s
        }));
        m.sections.extend(content.sections.into_iter().map(|mut s| {
            s.origin = origin(s.id.span().start);
            s
        }));
    }
    let file = first_file.unwrap_or(0);
    match (meta, controller) {
        (Some(meta), Some(controller)) => {
            m.meta = meta;
            m.controller = controller;
            Some(m)
        }
        (meta, controller) => {
            if meta.is_none() {
                checker.error(file, 0, "missing [meta] (policy version and effective date)");
            }
            if controller.is_none() {
                checker.error(file, 0, "missing [controller] (who is responsible and how to reach them)");
            }
            None
        }
    }
}

/// Records each id once and reports a second declaration with a pointer to the first.
struct Unique {
    seen: HashMap<String, (usize, usize)>,
    what: &'static str,
}

impl Unique {
    fn new(what: &'static str) -> Unique {
        Unique { seen: HashMap::new(), what }
    }

    fn insert(&mut self, checker: &mut Checker<'_>, id: &str, file: usize, offset: usize) -> bool {
        if let Some(&(first_file, first_offset)) = self.seen.get(id) {
            let (name, line, _) = checker.sources.locate(first_file, first_offset);
            checker.error(file, offset, format!("{} {id:?} is declared twice (first at {name}:{line})", self.what));
            return false;
        }
        self.seen.insert(id.to_string(), (file, offset));
        true
    }
}

fn validate(checker: &mut Checker<'_>, m: Merged) -> Option<Policy> {
    let mut promise_ids = Unique::new("promise");

    let mut purposes = Unique::new("purpose");
    for p in &m.purposes {
        purposes.insert(checker, p.id.get_ref(), p.origin.file, p.origin.offset);
        if p.legal_basis.is_empty() {
            checker.at(p.origin.file, p.origin.offset, format!("purpose {:?} has no legal basis", p.id.get_ref()));
        }
        if p.consent_gate.is_some() && !p.legal_basis.contains(&LegalBasis::Consent) {
            checker.at(
                p.origin.file,
                p.origin.offset,
                format!("purpose {:?} has a consent gate but consent is not among its legal bases", p.id.get_ref()),
            );
        }
        if p.consent_gate.is_some() {
            promise_ids.insert(checker, &format!("consent.{}", p.id.get_ref()), p.origin.file, p.origin.offset);
        }
    }
    let purpose_bases: HashMap<&str, &Vec<LegalBasis>> = m.purposes.iter().map(|p| (p.id.get_ref().as_str(), &p.legal_basis)).collect();

    let mut tables = Unique::new("table");
    let mut table_map: HashMap<&str, &Table> = HashMap::new();
    for t in &m.tables {
        if tables.insert(checker, t.name.get_ref(), t.origin.file, t.origin.offset) {
            table_map.insert(t.name.get_ref(), t);
        }
        if !t.personal && !t.technical.is_empty() {
            checker.at(
                t.origin.file,
                t.origin.offset,
                format!("table {:?} is declared free of personal data; list no technical columns for it", t.name.get_ref()),
            );
        }
        // The deletion manifest: every personal table says how a person's rows leave it.
        match (t.personal, t.erasure) {
            (true, None) => checker.at(
                t.origin.file,
                t.origin.offset,
                format!(
                    "personal table {:?} does not say how a person's rows leave it: add erasure = \"with_account\", \"expires\" or \"legal_duty\"",
                    t.name.get_ref()
                ),
            ),
            (false, Some(_)) => checker.at(
                t.origin.file,
                t.origin.offset,
                format!("table {:?} is declared free of personal data; it needs no erasure entry", t.name.get_ref()),
            ),
            _ => {}
        }
    }

    let mut categories = Unique::new("category");
    let mut fields = Unique::new("field");
    let mut columns = Unique::new("column");
    let mut field_purposes: HashMap<String, Vec<String>> = HashMap::new();
    let mut retention = Vec::new();
    for c in &m.categories {
        let file = c.origin.file;
        categories.insert(checker, c.id.get_ref(), file, c.origin.offset);
        if c.fields.is_empty() {
            checker.at(file, c.origin.offset, format!("category {:?} declares no fields", c.id.get_ref()));
        }
        for f in &c.fields {
            let fid = f.id.get_ref();
            let at = f.id.span().start;
            fields.insert(checker, fid, file, at);
            let mut allowed: HashSet<LegalBasis> = HashSet::new();
            for p in &f.purposes {
                match purpose_bases.get(p.get_ref().as_str()) {
                    Some(bases) => allowed.extend(bases.iter().copied()),
                    None => checker.at(
                        file,
                        p.span().start,
                        format!("field {fid:?} names unknown purpose {:?} (known: {})", p.get_ref(), known(purpose_bases.keys().copied())),
                    ),
                }
            }
            if f.purposes.is_empty() {
                checker.at(file, at, format!("field {fid:?} has no purpose"));
            }
            if f.legal_basis.is_empty() {
                checker.at(file, at, format!("field {fid:?} has no legal basis"));
            }
            for basis in &f.legal_basis {
                if !allowed.is_empty() && !allowed.contains(basis) {
                    checker.at(file, at, format!("field {fid:?} claims legal basis {basis:?}, which none of its purposes allows"));
                }
            }
            field_purposes.insert(fid.clone(), f.purposes.iter().map(|p| p.get_ref().clone()).collect());
            let capability = f.capability.unwrap_or(c.capability);
            if let Some(rule) = retention_rule(checker, file, fid, capability, &f.retention) {
                promise_ids.insert(checker, &rule.id, file, f.retention.span().start);
                retention.push(rule);
            }
            for column in &f.columns {
                let at = column.span().start;
                let Some((table, col)) = column.get_ref().split_once('.') else {
                    checker.at(file, at, format!("column {:?} must be written table.column", column.get_ref()));
                    continue;
                };
                columns.insert(checker, column.get_ref(), file, at);
                match table_map.get(table) {
                    None => checker.at(file, at, format!("field {fid:?} maps to table {table:?}, which is not declared in [[tables]]")),
                    Some(t) if !t.personal => checker.at(
                        file,
                        at,
                        format!("field {fid:?} maps to {:?}, but table {table:?} is declared free of personal data", column.get_ref()),
                    ),
                    Some(t) if t.technical.iter().any(|tc| tc.get_ref() == col) => {
                        checker.at(file, at, format!("column {:?} is both a personal field and listed as technical", column.get_ref()))
                    }
                    Some(_) => {}
                }
            }
        }
    }

    let mut processors = Unique::new("processor");
    for p in &m.processors {
        let file = p.origin.file;
        processors.insert(checker, p.id.get_ref(), file, p.origin.offset);
        promise_ids.insert(checker, &format!("processor.{}", p.id.get_ref()), file, p.origin.offset);
        for purpose in &p.purposes {
            if !purpose_bases.contains_key(purpose.get_ref().as_str()) {
                checker.at(
                    file,
                    purpose.span().start,
                    format!("processor {:?} names unknown purpose {:?}", p.id.get_ref(), purpose.get_ref()),
                );
            }
        }
        for field in &p.receives {
            match field_purposes.get(field.get_ref()) {
                None => checker.at(
                    file,
                    field.span().start,
                    format!("processor {:?} receives unknown field {:?}", p.id.get_ref(), field.get_ref()),
                ),
                Some(fp) if !p.purposes.iter().any(|pp| fp.contains(pp.get_ref())) => checker.at(
                    file,
                    field.span().start,
                    format!("processor {:?} receives {:?} for purposes that field is not declared for", p.id.get_ref(), field.get_ref()),
                ),
                Some(_) => {}
            }
        }
        for field in &p.sends {
            if !field_purposes.contains_key(field.get_ref()) {
                checker.at(file, field.span().start, format!("processor {:?} sends unknown field {:?}", p.id.get_ref(), field.get_ref()));
            }
        }
    }

    let mut cookies = Unique::new("cookie");
    for c in &m.cookies {
        let file = c.origin.file;
        cookies.insert(checker, c.name.get_ref(), file, c.origin.offset);
        promise_ids.insert(checker, &format!("cookie.{}", c.name.get_ref()), file, c.origin.offset);
        if c.lifetime.get_ref() != "session"
            && let Err(e) = Period::parse(c.lifetime.get_ref())
        {
            checker.at(file, c.lifetime.span().start, format!("cookie {:?}: {e}", c.name.get_ref()));
        }
    }
    let described: Vec<CookieCategory> = m.cookie_categories.iter().map(|d| d.category).collect();
    for category in CookieCategory::ALL {
        let count = described.iter().filter(|&&c| c == category).count();
        if count != 1 {
            checker.error(
                0,
                0,
                format!("cookie category {:?} must be described exactly once in [[cookie_categories]] (found {count})", category.id()),
            );
        }
    }

    for s in &m.security {
        promise_ids.insert(checker, s.id.get_ref(), s.origin.file, s.origin.offset);
    }

    let mut sections = Unique::new("section");
    for s in &m.sections {
        let file = s.origin.file;
        sections.insert(checker, s.id.get_ref(), file, s.origin.offset);
        for block in &s.blocks {
            let kinds = usize::from(block.da.is_some() || block.en.is_some())
                + usize::from(block.items.is_some())
                + usize::from(block.generate.is_some());
            if kinds != 1 {
                checker.at(
                    file,
                    s.origin.offset,
                    format!(
                        "section {:?}: each block is exactly one of a paragraph (da + en), a list (items) or a generated part",
                        s.id.get_ref()
                    ),
                );
            }
            if block.da.is_some() != block.en.is_some() {
                checker.at(file, s.origin.offset, format!("section {:?}: a paragraph needs both da and en", s.id.get_ref()));
            }
        }
    }
    // Promise references in the text are checked once every promise is known.
    for s in &m.sections {
        for block in &s.blocks {
            let refs = block.promises.iter().chain(block.items.iter().flatten().flat_map(|i| i.promises.iter()));
            for r in refs {
                if !promise_ids.seen.contains_key(r.get_ref()) {
                    checker.at(
                        s.origin.file,
                        r.span().start,
                        format!("section {:?} cites unknown promise {:?}", s.id.get_ref(), r.get_ref()),
                    );
                }
            }
        }
    }

    Some(Policy {
        sources: Sources::default(),
        meta: m.meta,
        controller: m.controller,
        purposes: m.purposes,
        categories: m.categories,
        tables: m.tables,
        processors: m.processors,
        cookies: m.cookies,
        cookie_categories: m.cookie_categories,
        security: m.security,
        sections: m.sections,
        retention,
    })
}

fn retention_rule(
    checker: &mut Checker<'_>,
    file: usize,
    field: &str,
    capability: Capability,
    decl: &Spanned<RetentionDecl>,
) -> Option<RetentionRule> {
    let at = decl.span().start;
    let d = decl.get_ref();
    let mut ok = true;
    let mut fail = |checker: &mut Checker<'_>, message: String| {
        checker.at(file, at, format!("retention of field {field:?}: {message}"));
        ok = false;
    };
    let period = match d.period.as_deref().map(Period::parse) {
        None => {
            fail(checker, "no period".into());
            None
        }
        Some(Err(e)) => {
            fail(checker, e.to_string());
            None
        }
        Some(Ok(p)) => Some(p),
    };
    if d.trigger.is_none() {
        fail(checker, "no trigger (when does the period start?)".into());
    }
    let action = match (d.action, d.method, d.cleanup.as_deref()) {
        (None, ..) => {
            fail(checker, "no action (delete, anonymise or archive)".into());
            None
        }
        (Some(ActionKind::Anonymise), None, _) => {
            fail(
                checker,
                "anonymise needs a method (truncate_ip, destroy_key, nullify, aggregate, generalise_client, remove_text, pseudonymise or coarsen_time)".into(),
            );
            None
        }
        (Some(kind), Some(_), _) if kind != ActionKind::Anonymise => {
            fail(checker, "a method is only meaningful with action = \"anonymise\"".into());
            None
        }
        (Some(ActionKind::Archive), _, None) => {
            fail(checker, "archive needs a cleanup period (when the archive clean-up deletes it)".into());
            None
        }
        (Some(kind), _, Some(_)) if kind != ActionKind::Archive => {
            fail(checker, "a cleanup period is only meaningful with action = \"archive\"".into());
            None
        }
        (Some(ActionKind::Delete), None, None) => Some(Action::Delete),
        (Some(ActionKind::Anonymise), Some(method), None) => Some(Action::Anonymise { method }),
        (Some(ActionKind::Archive), None, Some(cleanup)) => match Period::parse(cleanup) {
            Ok(cleanup) => Some(Action::Archive { cleanup }),
            Err(e) => {
                fail(checker, format!("cleanup: {e}"));
                None
            }
        },
        _ => None,
    };
    if !d.id.starts_with("retention.") {
        fail(checker, format!("rule id {:?} must start with \"retention.\"", d.id));
    }
    if !ok {
        return None;
    }
    Some(RetentionRule {
        id: d.id.clone(),
        field: field.to_string(),
        capability,
        period: period?,
        trigger: d.trigger?,
        action: action?,
        reason: d.reason.clone(),
    })
}

fn known<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let sorted: BTreeMap<&str, ()> = ids.map(|i| (i, ())).collect();
    sorted.into_keys().collect::<Vec<_>>().join(", ")
}
