//! The `passme` binary's commands, as a library so that tests can reach them.

pub mod cli;
pub mod logging;

/// Which tests prove which promises, found in the workspace's sources at build time.
pub mod proofs {
    include!(concat!(env!("OUT_DIR"), "/proofs.rs"));

    /// The tests (as `file::name`) bound to a promise id.
    pub fn tests_for(promise: &str) -> Vec<String> {
        BINDINGS.iter().filter(|(_, _, ids)| ids.contains(&promise)).map(|(file, test, _)| format!("{file}::{test}")).collect()
    }
}
