//! Service tracking, the policy's "we automatically track and aggregate data about interaction
//! with the Services": the tracker's events are validated against exactly the declared fields,
//! enriched on the server (browser and OS, ISP), counted without a cookie unless statistics
//! consent was given, grouped into visits and rolled up per day for the staff dashboard.

pub mod aggregate;
pub mod asn;
pub mod event;
pub mod useragent;

pub use passme_store::Dimension;
pub mod ingest;
pub mod report;
pub mod rollup;
pub mod service;
pub mod sketch;
pub mod visitor;
pub mod visits;

pub use service::{AcceptError, Accepted, Analytics, Caller};
