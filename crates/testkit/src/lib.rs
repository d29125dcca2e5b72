//! Test harness shared by every crate's tests: fresh databases on both engines, and the real
//! application over them.

pub mod app;
pub mod asn;
pub mod browser;
pub mod db;
pub mod oidc;
pub mod openapi;
pub mod people;
pub mod proxy;
pub mod push;
pub mod receiver;
pub mod smtp;
pub mod stripe;

pub use app::{TestApp, TestResponse};
pub use browser::PASSWORD;
pub use db::{TestDb, each_engine, for_each_engine, postgres, sqlite};
pub use smtp::SmtpSink;
