//! The project layer: settings, environment variables and mail (the outbox, SMTP, SMS).

pub(crate) mod env_vars;
pub(crate) mod mail;
pub(crate) mod settings;
#[cfg(feature = "smtp")]
pub(crate) mod smtp;
