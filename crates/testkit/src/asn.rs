//! The real IP-to-ASN table and disposable-mail domain list for tests: `scripts/test` installs `@ip-location-db/asn` from npm
//! into `.tools/` and converts it with `passme geo import`. A missing table fails the test with
//! the command that makes it; it is never replaced by a table typed by hand.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use passme_analytics::asn::AsnTable;

pub fn asn_table_path() -> PathBuf {
    std::env::var_os("PASSME_TEST_ASN_TABLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/asn.pmasn"))
}

pub fn asn_table() -> Arc<AsnTable> {
    static TABLE: OnceLock<Arc<AsnTable>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let path = asn_table_path();
            let table = AsnTable::load(&path).unwrap_or_else(|e| {
                panic!("the IP-to-ASN table is missing ({e}): run scripts/test, which installs @ip-location-db/asn and runs `passme geo import`")
            });
            Arc::new(table)
        })
        .clone()
}

pub fn disposable_domains_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools").join(passme_fraud::signals::FILE_NAME)
}

/// The list `scripts/test` converts from npm `disposable-email-domains`; empty when it is missing
/// (the fraud tests check that it is there).
pub fn disposable_domains() -> Arc<passme_fraud::DisposableDomains> {
    static LIST: OnceLock<Arc<passme_fraud::DisposableDomains>> = OnceLock::new();
    LIST.get_or_init(|| Arc::new(passme_fraud::DisposableDomains::load(&disposable_domains_path()))).clone()
}
