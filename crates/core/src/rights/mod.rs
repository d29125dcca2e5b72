//! Data-subject rights: erasure with proof (article 17) and legal holds. The rest of the rights
//! (access, portability, objection, the request register) build on these.

pub mod erasure;
pub mod holds;
