//! Data-subject rights: access and portability (articles 15 and 20), erasure with proof (article
//! 17) and legal holds.

pub mod access;
pub mod erasure;
pub mod holds;
mod tar;
