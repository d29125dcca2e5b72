//! Test harness shared by every crate's tests: fresh databases on both engines, and helpers for
//! running the real application.

pub mod db;

pub use db::{TestDb, each_engine, for_each_engine, postgres, sqlite};
