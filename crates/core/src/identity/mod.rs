//! Identity: accounts, passwords and server-side sessions. Building blocks of issue 3; the HTTP
//! flows (sign-up, log-in, remember-me, consent) build on these.

pub mod accounts;
pub mod email;
pub mod password;
pub mod sessions;
