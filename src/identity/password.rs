//! Password rules and argon2id hashing.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with OWASP's parameters
//! and a 16-byte random salt. At most one hash per core runs at a time, each in one of a pool of
//! argon2 work memories (19 MiB each) reused from hash to hash: a burst of logins queues for a
//! core instead of time-slicing with every other login (which made each one as slow as all of
//! them together) and holding a work memory per thread (which grew to hundreds of MiB on a
//! server's blocking threads). Passwords are hashed exactly as given: no trimming, no case
//! change, no truncation.

use std::sync::OnceLock;

use parking_lot::{Condvar, Mutex};

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

/// The argon2 work memories not in use, and how many more may still be made.
struct WorkMemories {
    idle: Vec<Vec<Block>>,
    may_make: usize,
}

static WORK_MEMORIES: OnceLock<(Mutex<WorkMemories>, Condvar)> = OnceLock::new();

/// Runs `hash` with a work memory of the pool, waiting for one while every core is hashing.
fn with_work_memory<T>(hash: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    let (pool, returned) = WORK_MEMORIES.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = WorkMemories {
            idle: Vec::new(),
            may_make: cores,
        };
        (Mutex::new(pool), Condvar::new())
    });
    let memory = {
        let mut pool = pool.lock();
        loop {
            if let Some(memory) = pool.idle.pop() {
                break memory;
            }
            if pool.may_make > 0 {
                pool.may_make -= 1;
                break Vec::new();
            }
            returned.wait(&mut pool);
        }
    };
    let mut lease = Lease {
        pool,
        returned,
        memory: Some(memory),
    };
    hash(lease.memory.get_or_insert_with(Vec::new))
}

/// A work memory taken from the pool, given back when dropped (even if argon2 panicked), so
/// the pool never shrinks.
struct Lease<'a> {
    pool: &'a Mutex<WorkMemories>,
    returned: &'a Condvar,
    memory: Option<Vec<Block>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.pool.lock().idle.push(memory);
            self.returned.notify_one();
        }
    }
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

/// Runs argon2id in a work memory of the pool.
fn compute(password: &[u8], salt: &[u8], params: Params, out: &mut [u8]) -> Result<()> {
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    with_work_memory(|memory| {
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
