//! PassMe's capabilities, written against the storage API of `passme-store` and never against a
//! database driver. One module per capability; the web layer calls these and renders.

pub mod audit;
pub mod cards;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod datamap;
pub mod error;
pub mod fleet;
pub mod housekeeping;
pub mod identity;
pub mod jobs;
pub mod lease;
pub mod limits;
pub mod mail;
pub mod net;
pub mod personalise;
pub mod prefs;
pub mod promotions;
pub mod redact;
pub mod rights;
pub mod text;

pub use error::CoreError;

use passme_policy::{Capability, Policy, Promise, PromiseKind};

/// Capabilities whose promises are kept by code in this repository. A promise of one of these
/// must be proved by a test (`passme policy promises` lists them), and every field it owns must
/// map to a real column (the schema check). Add a capability here when its issue lands.
pub const IMPLEMENTED_CAPABILITIES: &[Capability] = &[
    Capability::Platform,
    Capability::Consent,
    Capability::Accounts,
    Capability::Tracking,
    Capability::Billing,
    Capability::Rights,
    Capability::Linking,
    Capability::Personalisation,
    Capability::Messaging,
    Capability::Fraud,
    Capability::Support,
    Capability::Compliance,
];

pub fn is_implemented(capability: Capability) -> bool {
    IMPLEMENTED_CAPABILITIES.contains(&capability)
}

/// Why the code here does not keep `promise` yet, if it does not: its capability is not built, or
/// it is a consent gate with nothing behind it (no declared data of a built capability is used for
/// its purpose), which a test could only "prove" because the feature does not exist.
pub fn pending_reason(policy: &Policy, promise: &Promise) -> Option<String> {
    if !is_implemented(promise.capability) {
        return Some(format!("capability {} not implemented yet", promise.capability.id()));
    }
    if promise.kind == PromiseKind::ConsentGate {
        let purpose = promise.id.strip_prefix("consent.").unwrap_or(&promise.id);
        let gated = policy
            .categories
            .iter()
            .flat_map(|c| c.fields.iter().map(move |f| (c, f)))
            .any(|(c, f)| is_implemented(policy.field_capability(c, f)) && f.purposes.iter().any(|p| p.get_ref() == purpose));
        if !gated {
            return Some(format!("no data of a built capability is used to {purpose}: nothing to gate yet"));
        }
    }
    None
}

/// The promises the published policy makes that the code does not keep yet, each with why.
pub fn pending_promises(policy: &Policy) -> Vec<(Promise, String)> {
    policy.promises().into_iter().filter_map(|p| pending_reason(policy, &p).map(|why| (p, why))).collect()
}
