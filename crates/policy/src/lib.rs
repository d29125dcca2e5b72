//! PassMe's privacy policy as code.
//!
//! The declarations (controller, purposes, data categories and fields with their retention,
//! storage tables, processors, cookies, security measures and the policy's prose) are loaded and
//! validated here, and everything published is derived from them: the privacy policy in Danish and
//! English, the machine-readable JSON, and the GDPR article 30 record. Every commitment the
//! declarations make is a [`Promise`] with a stable id; tests bind themselves to promise ids with
//! [`proves!`]. This crate depends on nothing else of ours: every other crate reads the policy here.

pub mod json;
mod load;
pub mod model;
pub mod period;
pub mod promises;
pub mod render;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use load::{Diagnostic, PolicyError, SourceFile, Sources, load};
pub use model::*;
pub use period::Period;
pub use promises::{Promise, PromiseKind};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Changing the version asks every visitor for consent again.
    pub version: String,
    /// The date the version takes effect (YYYY-MM-DD).
    pub effective: String,
}

/// The validated declarations.
#[derive(Debug, Clone)]
pub struct Policy {
    pub sources: Sources,
    pub meta: Meta,
    pub controller: Controller,
    pub purposes: Vec<Purpose>,
    pub categories: Vec<Category>,
    pub tables: Vec<Table>,
    pub processors: Vec<Processor>,
    pub cookies: Vec<Cookie>,
    pub cookie_categories: Vec<CookieCategoryDecl>,
    pub security: Vec<SecurityMeasure>,
    pub sections: Vec<Section>,
    /// One validated rule per field.
    pub retention: Vec<RetentionRule>,
}

impl Policy {
    /// PassMe's own declarations, compiled into the binary.
    pub fn builtin() -> Result<Policy, PolicyError> {
        load(Sources::from_strs(builtin::BUILTIN_FILES))
    }

    /// Loads a declaration file or folder from disk.
    pub fn from_path(path: &std::path::Path) -> Result<Policy, PolicyError> {
        load(Sources::read(path)?)
    }

    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|p| p.id.get_ref() == id)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&Category, &Field)> {
        self.categories.iter().flat_map(|c| c.fields.iter().map(move |f| (c, f)))
    }

    pub fn field(&self, id: &str) -> Option<(&Category, &Field)> {
        self.fields().find(|(_, f)| f.id.get_ref() == id)
    }

    pub fn field_capability(&self, category: &Category, field: &Field) -> Capability {
        field.capability.unwrap_or(category.capability)
    }

    pub fn retention_rule(&self, id: &str) -> Option<&RetentionRule> {
        self.retention.iter().find(|r| r.id == id)
    }

    pub fn rule_for_field(&self, field: &str) -> Option<&RetentionRule> {
        self.retention.iter().find(|r| r.field == field)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name.get_ref() == name)
    }

    pub fn cookie(&self, name: &str) -> Option<&Cookie> {
        self.cookies.iter().find(|c| c.name.get_ref() == name)
    }

    pub fn cookie_category(&self, category: CookieCategory) -> Option<&CookieCategoryDecl> {
        self.cookie_categories.iter().find(|d| d.category == category)
    }
}

/// The built-in policy, loaded once per process. Panics if PassMe's own declarations are
/// invalid, which a test guarantees they are not.
pub fn builtin() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| match Policy::builtin() {
        Ok(policy) => policy,
        Err(e) => panic!("PassMe's built-in policy declarations are invalid:\n{e}"),
    })
}

/// Binds a test to the promises it proves. At run time it checks that every id is declared, so a
/// typo or a removed promise fails the test; `passme policy promises` finds these calls in the
/// source to list which tests prove which promise.
#[macro_export]
macro_rules! proves {
    ($($id:literal),+ $(,)?) => {
        $crate::promises::assert_declared(&[$($id),+])
    };
}
