//! Password rules and argon2id hashing.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with OWASP's parameters
//! and a 16-byte random salt. Each thread keeps its own argon2 work memory (19 MiB) and reuses it,
//! instead of allocating it on every hash. Passwords are hashed exactly as given: no trimming,
//! no case change, no truncation.

use std::cell::RefCell;
use std::sync::OnceLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes (a bound on the work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

thread_local! {
    /// This thread's argon2 work memory, reused across hashes.
    static WORK_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Checks a new password: length bounds and the common-password list (the `passwords` crate's
/// list of common passwords). No composition rules.
pub(crate) fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if passwords::analyzer::is_common_password(password) {
        return Err(Error::invalid(
            "this password is too common; choose another one",
        ));
    }
    Ok(())
}

fn params() -> Result<Params> {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(internal)
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::internal(std::io::Error::other(error.to_string()))
}

/// Runs argon2id with this thread's reused work memory.
fn compute(password: &[u8], salt: &[u8], params: Params, out: &mut [u8]) -> Result<()> {
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    WORK_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(internal)
    })
}

/// Hashes a password into a PHC string.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(internal)?;
    let params = params()?;
    let mut out = [0u8; OUTPUT_LEN];
    compute(password.as_bytes(), &salt, params.clone(), &mut out)?;
    let salt = SaltString::encode_b64(&salt).map_err(internal)?;
    let params_string: ParamsString = (&params).try_into().map_err(internal)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params_string,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, compared in constant time.
pub(crate) fn verify_password(password: &str, phc: &str) -> Result<bool> {
    if password.len() > MAX_PASSWORD_BYTES {
        // Still spend the time, so the length of a guess is not an oracle.
        verify_password("", phc)?;
        return Ok(false);
    }
    let parsed = PasswordHash::new(phc).map_err(internal)?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(internal("stored password hash is not argon2id"));
    }
    let params = Params::try_from(&parsed).map_err(internal)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(internal("stored password hash is incomplete"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(internal)?;
    let mut out = vec![0u8; expected.len()];
    compute(password.as_bytes(), salt, params, &mut out)?;
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// Spends the time of one verification, for unknown accounts (no enumeration by timing).
pub(crate) fn dummy_verify(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash_password("larder-dummy-password").ok()) {
        let _ = verify_password(password, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_random_salts() {
        let a = hash_password("correct horse battery staple").unwrap();
        let b = hash_password("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "equal passwords give different hashes");
        assert!(verify_password("correct horse battery staple", &a).unwrap());
        assert!(!verify_password("correct horse battery stapl", &a).unwrap());
        assert!(!verify_password("Correct horse battery staple", &a).unwrap());
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let long = "x".repeat(200);
        let hash = hash_password(&long).unwrap();
        assert!(!verify_password(&long[..72], &hash).unwrap());
        assert!(verify_password(&long, &hash).unwrap());
    }

    #[test]
    fn rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("password").is_err(), "common");
        assert!(check_new_password("12345678").is_err(), "common");
        assert!(
            check_new_password(&"é".repeat(8)).is_ok(),
            "characters, not bytes"
        );
        assert!(check_new_password("plain lowercase words ok").is_ok());
        assert!(
            check_new_password(&"a1".repeat(600)).is_err(),
            "over 1024 bytes"
        );
    }
}
