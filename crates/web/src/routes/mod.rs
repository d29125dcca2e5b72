//! Route handlers, one module per area. Thin: parse, call core, render.

pub mod account;
pub mod analytics;
pub mod api;
pub mod billing;
pub mod compliance;
pub mod consent;
pub mod csp;
pub mod fraud;
pub mod health;
pub mod links;
pub mod messages;
pub mod openapi;
pub mod pages;
pub mod people;
pub mod prefs;
pub mod privacy;
pub mod requests;
pub mod staff;
pub mod support;
pub mod tracking;
