//! Promises: every commitment the declarations make, each with a stable id and the capability
//! that keeps it. Tests bind to ids with [`crate::proves!`]; [`scan`] finds those bindings in
//! source text so the binary can list them.

#[path = "scan.rs"]
pub mod scan;

use serde::Serialize;

use crate::Policy;
use crate::model::{Capability, Lang, Text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseKind {
    Retention,
    ConsentGate,
    Cookie,
    Processor,
    Security,
}

#[derive(Debug, Clone, Serialize)]
pub struct Promise {
    pub id: String,
    pub capability: Capability,
    pub kind: PromiseKind,
    pub summary: Text,
}

impl Policy {
    /// Every promise, in declaration order: retention rules, consent gates, cookies, processors,
    /// security measures.
    pub fn promises(&self) -> Vec<Promise> {
        let mut out = Vec::new();
        for rule in &self.retention {
            let field = self.field(&rule.field).map(|(_, f)| f.name.clone());
            let summary = |lang: Lang| {
                let name = field.as_ref().map_or(rule.field.as_str(), |t| t.get(lang));
                format!("{name}: {} {}", rule.period.describe(lang), rule.trigger.label(lang))
            };
            out.push(Promise {
                id: rule.id.clone(),
                capability: rule.capability,
                kind: PromiseKind::Retention,
                summary: Text { da: summary(Lang::Da), en: summary(Lang::En) },
            });
        }
        for p in &self.purposes {
            if let Some(capability) = p.consent_gate {
                out.push(Promise {
                    id: format!("consent.{}", p.id.get_ref()),
                    capability,
                    kind: PromiseKind::ConsentGate,
                    summary: p.text.clone(),
                });
            }
        }
        for c in &self.cookies {
            out.push(Promise {
                id: format!("cookie.{}", c.name.get_ref()),
                capability: c.capability,
                kind: PromiseKind::Cookie,
                summary: c.purpose.clone(),
            });
        }
        for p in &self.processors {
            out.push(Promise {
                id: format!("processor.{}", p.id.get_ref()),
                capability: p.capability,
                kind: PromiseKind::Processor,
                summary: p.service.clone(),
            });
        }
        for s in &self.security {
            out.push(Promise {
                id: s.id.get_ref().clone(),
                capability: s.capability,
                kind: PromiseKind::Security,
                summary: s.text.clone(),
            });
        }
        out
    }
}

/// Panics unless every id is a promise of the built-in policy. Called by [`crate::proves!`].
pub fn assert_declared(ids: &[&str]) {
    let promises = crate::builtin().promises();
    for id in ids {
        assert!(promises.iter().any(|p| p.id == *id), "proves!({id:?}): no such promise in the policy declarations");
    }
}
