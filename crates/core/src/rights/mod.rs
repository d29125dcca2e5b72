//! Data-subject rights: access and portability (articles 15 and 20), erasure with proof (article
//! 17), legal holds, and archives isolated per person.

pub mod access;
pub mod archive;
pub mod erasure;
pub mod holds;
pub mod objections;
pub mod requests;
mod tar;
