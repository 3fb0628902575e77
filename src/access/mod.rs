//! The access layer: who is calling (the principal), the authentication edge that makes one,
//! and the one policy decision.

pub(crate) mod auth;
pub(crate) mod policy;
pub(crate) mod principal;
pub(crate) mod rules;
