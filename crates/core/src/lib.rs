//! PassMe's capabilities, written against the storage API of `passme-store` and never against a
//! database driver. One module per capability; the web layer calls these and renders.

pub mod audit;
pub mod cards;
pub mod clock;
pub mod config;
pub mod consent;
pub mod datamap;
pub mod error;
pub mod housekeeping;
pub mod identity;
pub mod jobs;
pub mod mail;
pub mod net;
pub mod prefs;
pub mod redact;

pub use error::CoreError;

use passme_policy::Capability;

/// Capabilities whose promises are kept by code in this repository. A promise of one of these
/// must be proved by a test (`passme policy promises` lists them), and every field it owns must
/// map to a real column (the schema check). Add a capability here when its issue lands.
pub const IMPLEMENTED_CAPABILITIES: &[Capability] =
    &[Capability::Platform, Capability::Consent, Capability::Accounts, Capability::Tracking, Capability::Billing];

pub fn is_implemented(capability: Capability) -> bool {
    IMPLEMENTED_CAPABILITIES.contains(&capability)
}
