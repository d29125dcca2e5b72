//! Every promise of an implemented capability is proved by at least one test, and every test
//! binding names a promise that exists.

use passme_core::is_implemented;

#[test]
fn every_promise_of_an_implemented_capability_has_a_test() {
    let policy = passme_policy::builtin();
    let unproved: Vec<String> = policy
        .promises()
        .into_iter()
        .filter(|p| is_implemented(p.capability) && passme::proofs::tests_for(&p.id).is_empty())
        .map(|p| p.id)
        .collect();
    assert!(unproved.is_empty(), "promises of implemented capabilities without a proving test: {unproved:?}");
}

#[test]
fn every_binding_names_a_declared_promise() {
    let ids: Vec<String> = passme_policy::builtin().promises().into_iter().map(|p| p.id).collect();
    assert!(!passme::proofs::BINDINGS.is_empty(), "the build script found no proves! bindings");
    for (file, test, promises) in passme::proofs::BINDINGS {
        for promise in *promises {
            assert!(ids.iter().any(|id| id == promise), "{file}::{test} proves unknown promise {promise:?}");
        }
    }
}
