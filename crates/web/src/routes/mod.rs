//! Route handlers, one module per area. Thin: parse, call core, render.

pub mod consent;
pub mod csp;
pub mod health;
pub mod openapi;
pub mod pages;
pub mod privacy;
