//! Environment variables: free key/value pairs for hooks and scripts (seed 001). Names are
//! upper-cased with spaces turned into `_`; the names of built-in settings are refused; values
//! are masked in listings and revealed only by an explicit read.

use redb::ReadableTable;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::project::settings::{Project, Settings};
use crate::store::schema::ENV_VARS;

/// Longest name and value accepted.
const MAX_NAME: usize = 128;
const MAX_VALUE: usize = 64 * 1024;

/// A variable as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVarInfo {
    /// The normalised name.
    pub name: String,
    /// The value masked: its last 2 characters at most, the rest as `*`.
    pub masked_value: String,
}

/// `my key` → `MY_KEY`; refuses anything else than letters, digits and `_`, and built-in
/// setting names.
fn normalize_name(name: &str) -> Result<String> {
    let normalized: String = name.trim().replace(' ', "_").to_uppercase();
    let ok = !normalized.is_empty()
        && normalized.len() <= MAX_NAME
        && !normalized.starts_with(|c: char| c.is_ascii_digit())
        && normalized
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(Error::invalid(format!(
            "invalid variable name `{}`: use letters, digits, spaces and _",
            name.escape_debug()
        )));
    }
    let builtin = match serde_json::to_value(Settings::default()) {
        Ok(Value::Object(map)) => map.contains_key(&normalized),
        _ => false,
    };
    if builtin {
        return Err(Error::invalid(format!(
            "`{normalized}` is a built-in setting; change it through the settings"
        )));
    }
    Ok(normalized)
}

fn mask(value: &str) -> String {
    let count = value.chars().count();
    let shown = if count >= 8 { 2 } else { 0 };
    let tail: String = value.chars().skip(count - shown).collect();
    format!("{}{tail}", "*".repeat(count.clamp(4, 12) - shown))
}

impl Project<'_> {
    /// Sets a variable (creating or replacing it); returns its normalised name.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed or built-in name, `TooLarge` beyond 64 KiB.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// assert_eq!(db.project().set_env_var("stripe key", "sk_test_123456")?, "STRIPE_KEY");
    /// assert_eq!(db.project().env_var("STRIPE_KEY")?, "sk_test_123456");
    /// assert_eq!(db.project().list_env_vars()?[0].masked_value, "**********56");
    /// # Ok(()) }
    /// ```
    pub fn set_env_var(&self, name: &str, value: &str) -> Result<String> {
        let name = normalize_name(name)?;
        if value.len() > MAX_VALUE {
            return Err(Error::too_large("the value", MAX_VALUE as u64));
        }
        self.store.write(|txn| {
            txn.open_table(ENV_VARS)?.insert(name.as_str(), value)?;
            Ok(())
        })?;
        Ok(name)
    }

    /// Every variable, values masked, by name.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn list_env_vars(&self) -> Result<Vec<EnvVarInfo>> {
        self.store.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(ENV_VARS)?.iter()? {
                let (name, value) = entry?;
                out.push(EnvVarInfo {
                    name: name.value().to_owned(),
                    masked_value: mask(value.value()),
                });
            }
            Ok(out)
        })
    }

    /// One variable's value (the explicit, unmasked read).
    ///
    /// # Errors
    /// `NotFound` for an unknown name.
    pub fn env_var(&self, name: &str) -> Result<String> {
        let name = normalize_name(name)?;
        self.store.read(|txn| {
            txn.open_table(ENV_VARS)?
                .get(name.as_str())?
                .map(|v| v.value().to_owned())
                .ok_or_else(|| Error::not_found(format!("variable `{name}`")))
        })
    }

    /// Deletes a variable.
    ///
    /// # Errors
    /// `NotFound` for an unknown name.
    pub fn delete_env_var(&self, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        self.store.write(
            |txn| match txn.open_table(ENV_VARS)?.remove(name.as_str())? {
                Some(_) => Ok(()),
                None => Err(Error::not_found(format!("variable `{name}`"))),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_builtins_refused() {
        assert_eq!(normalize_name("my key").unwrap(), "MY_KEY");
        assert_eq!(normalize_name(" api_token ").unwrap(), "API_TOKEN");
        for bad in [
            "",
            "9LIVES",
            "a-b",
            "ä",
            "JWT_EXPIRY_MINUTES",
            "otp length",
            "enable 2fa",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_hides_short_values_entirely() {
        assert_eq!(mask("abc"), "****");
        assert_eq!(mask("sk_test_123456"), "**********56");
        assert!(!mask("hunter2!").contains("hunter"));
    }
}
