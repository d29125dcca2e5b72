//! PassMe's HTTP edge: axum routes, server-rendered pages, middleware and the OpenAPI document.
//! Handlers are thin: parse the request, call `passme-core`, render. Data flows one way:
//! HTTP → web → core → store.

pub mod app;
pub mod context;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod lang;
pub mod metrics;
pub mod middleware;
pub mod redirect;
pub mod routes;
pub mod serve;
pub mod visitor;

pub use app::{AppState, Application, Services, StartError, router};
