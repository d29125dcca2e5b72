//! The machine-readable declarations served at `/privacy.json`. A stable, explicit shape: adding
//! to it is fine, renaming is a breaking change for the clients that read it.

use serde_json::{Value, json};

use crate::Policy;
use crate::model::*;

pub fn to_json(policy: &Policy) -> Value {
    json!({
        "version": policy.meta.version,
        "effective": policy.meta.effective,
        "controller": policy.controller,
        "purposes": policy.purposes.iter().map(|p| json!({
            "id": p.id.get_ref(),
            "text": p.text,
            "legal_basis": p.legal_basis,
            "consent_required": p.consent_gate.is_some(),
        })).collect::<Vec<_>>(),
        "categories": policy.categories.iter().map(|c| json!({
            "id": c.id.get_ref(),
            "name": c.name,
            "subjects": c.subjects,
            "source": c.source,
            "fields": c.fields.iter().map(|f| json!({
                "id": f.id.get_ref(),
                "name": f.name,
                "purposes": f.purposes.iter().map(|p| p.get_ref()).collect::<Vec<_>>(),
                "legal_basis": f.legal_basis,
                "retention": policy.rule_for_field(f.id.get_ref()).map(retention_json),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "processors": policy.processors.iter().map(|p| json!({
            "id": p.id.get_ref(),
            "name": p.name,
            "role": p.role,
            "service": p.service,
            "receives": p.receives.iter().map(|f| f.get_ref()).collect::<Vec<_>>(),
            "sends": p.sends.iter().map(|f| f.get_ref()).collect::<Vec<_>>(),
            "scopes": p.scopes,
            "profile_fields": p.profile_fields.iter().map(|f| f.claim.as_str()).collect::<Vec<_>>(),
            "purposes": p.purposes.iter().map(|f| f.get_ref()).collect::<Vec<_>>(),
            "location": p.location,
            "safeguard": p.safeguard,
            "privacy_url": p.privacy_url,
        })).collect::<Vec<_>>(),
        "cookie_categories": policy.cookie_categories.iter().map(|d| json!({
            "category": d.category,
            "description": d.description,
        })).collect::<Vec<_>>(),
        "cookies": policy.cookies.iter().map(|c| json!({
            "name": c.name.get_ref(),
            "category": c.category,
            "lifetime": c.lifetime.get_ref(),
            "lifetime_seconds": lifetime_seconds(c.lifetime.get_ref()),
            "purpose": c.purpose,
            "without": c.without,
        })).collect::<Vec<_>>(),
        "security": policy.security.iter().map(|s| json!({ "id": s.id.get_ref(), "text": s.text })).collect::<Vec<_>>(),
    })
}

fn retention_json(rule: &RetentionRule) -> Value {
    let action = match rule.action {
        Action::Delete => json!({ "kind": "delete" }),
        Action::Anonymise { method } => json!({ "kind": "anonymise", "method": method }),
        Action::Archive { cleanup } => json!({ "kind": "archive", "cleanup": cleanup.iso() }),
    };
    json!({
        "id": rule.id,
        "period": rule.period.iso(),
        "trigger": rule.trigger,
        "action": action,
        "reason": rule.reason,
    })
}

/// Upper bound in seconds, or null for a session cookie.
fn lifetime_seconds(lifetime: &str) -> Option<i64> {
    crate::Period::parse(lifetime).ok().map(|p| p.max_millis() / 1000)
}
