//! The identity layer: users, passwords, sessions, signing keys and tokens, API keys,
//! one-time codes and the throttles that guard sign-in.

pub(crate) mod accounts;
pub(crate) mod api_keys;
pub(crate) mod otp;
pub(crate) mod password;
pub(crate) mod sessions;
pub(crate) mod throttle;
pub(crate) mod tokens;
pub(crate) mod users;
