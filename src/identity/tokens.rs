//! Access tokens: EdDSA (Ed25519) JWTs signed with a key pair kept in the file, verified with
//! one algorithm, a short clock tolerance, a fixed issuer, audience and token type, and a cache
//! of verified tokens so a repeat token costs a hash lookup instead of a signature check.
//!
//! A token's signature and claims only say who it was issued to; whether its session is still
//! alive is checked against the session table on every use (see `sessions.rs`).

use std::collections::{HashMap, HashSet};

use jwt_simple::prelude::{
    Claims, Duration as JwtDuration, Ed25519KeyPair, Ed25519PublicKey, EdDSAKeyPairLike,
    EdDSAPublicKeyLike, Token, VerificationOptions,
};
use parking_lot::{Mutex, RwLock};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::project::settings::Project;
use crate::store::Store;
use crate::store::schema::{self, SIGNING_KEYS};

/// The `iss` of every token.
pub(crate) const ISSUER: &str = "larder";
/// The `aud` of every access token.
pub(crate) const AUDIENCE: &str = "larder";
/// Clock skew accepted on `exp` and `nbf` (jwt-simple's default is 900 s).
pub(crate) const TOLERANCE_SECS: u64 = 30;
/// Longest token accepted; anything longer is refused before it is parsed.
pub(crate) const MAX_TOKEN_BYTES: usize = 4096;
/// Most verified tokens remembered.
const CACHE_CAPACITY: usize = 16_384;

/// The type of a token, in its `typ` claim; each type has its own verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenType {
    /// A user session's access token (`sub` = user id, `sid` = session id).
    Access,
    /// A token exchanged for an API key (`sub` = key id, `gen` = the secret's generation).
    Key,
}

#[derive(Debug, Serialize, Deserialize)]
struct CustomClaims {
    typ: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, rename = "gen", skip_serializing_if = "Option::is_none")]
    generation: Option<u32>,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedToken {
    pub(crate) typ: TokenType,
    pub(crate) subject: String,
    pub(crate) session_id: Option<String>,
    pub(crate) generation: Option<u32>,
    pub(crate) expires_at_secs: u64,
}

/// A signing key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSigningKey {
    /// jwt-simple's 64-byte Ed25519 key pair encoding.
    keypair: Vec<u8>,
    created_at: i64,
    /// When it stopped signing; `None` for the active key.
    retired_at: Option<i64>,
    /// Until when tokens it signed still verify (microseconds).
    verify_until: Option<i64>,
}

struct LoadedKey {
    kid: String,
    pair: Ed25519KeyPair,
    public: Ed25519PublicKey,
    stored: StoredSigningKey,
}

/// The signing keys in memory, and the cache of verified tokens.
pub(crate) struct KeyRing {
    keys: RwLock<Vec<LoadedKey>>,
    verified: Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

impl KeyRing {
    /// Loads the keys, generating the first one on a new database.
    pub(crate) fn load_or_create(redb: &redb::Database, now: i64) -> Result<KeyRing> {
        let mut txn = redb.begin_write()?;
        txn.set_two_phase_commit(true);
        let keys = {
            let mut table = txn.open_table(SIGNING_KEYS)?;
            let mut keys = load(&table)?;
            if !keys.iter().any(|k| k.stored.retired_at.is_none()) {
                let (kid, stored) = new_key(now)?;
                table.insert(kid.as_str(), schema::encode(&stored)?.as_slice())?;
                keys.push(loaded(kid, stored)?);
            }
            keys
        };
        txn.commit()?;
        Ok(KeyRing {
            keys: RwLock::new(keys),
            verified: Mutex::new(HashMap::new()),
        })
    }
}

fn load<T>(table: &T) -> Result<Vec<LoadedKey>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let mut keys = Vec::new();
    for entry in table.iter()? {
        let (kid, bytes) = entry?;
        keys.push(loaded(
            kid.value().to_owned(),
            schema::decode(bytes.value())?,
        )?);
    }
    Ok(keys)
}

fn loaded(kid: String, stored: StoredSigningKey) -> Result<LoadedKey> {
    let pair = Ed25519KeyPair::from_bytes(&stored.keypair)
        .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))?
        .with_key_id(&kid);
    let public = pair.public_key().with_key_id(&kid);
    Ok(LoadedKey {
        kid,
        pair,
        public,
        stored,
    })
}

fn new_key(now: i64) -> Result<(String, StoredSigningKey)> {
    let pair = Ed25519KeyPair::generate();
    Ok((
        crate::store::ids::random_hex(16)?,
        StoredSigningKey {
            keypair: pair.to_bytes(),
            created_at: now,
            retired_at: None,
            verify_until: None,
        },
    ))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn unauthenticated() -> Error {
    Error::unauthenticated("invalid or expired token")
}

/// The keys that sign access tokens: `db.signing_keys()`.
#[derive(Debug, Clone, Copy)]
pub struct SigningKeys<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> SigningKeys<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        SigningKeys { store }
    }
}

impl SigningKeys<'_> {
    /// Signs an access token for a session.
    pub(crate) fn mint_access_token(
        &self,
        user_id: &str,
        session_id: &str,
        lifetime_secs: u64,
    ) -> Result<(String, u64)> {
        self.mint_token(
            TokenType::Access,
            user_id,
            Some(session_id),
            None,
            lifetime_secs,
        )
    }

    /// Signs a token of any type with the active key.
    pub(crate) fn mint_token(
        &self,
        typ: TokenType,
        subject: &str,
        session_id: Option<&str>,
        generation: Option<u32>,
        lifetime_secs: u64,
    ) -> Result<(String, u64)> {
        let now = u64::try_from(self.store.now_micros() / 1_000_000).unwrap_or(0);
        let expires_at = now + lifetime_secs;
        let mut claims = Claims::with_custom_claims(
            CustomClaims {
                typ,
                sid: session_id.map(str::to_owned),
                generation,
            },
            JwtDuration::from_secs(lifetime_secs),
        )
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(subject);
        claims.issued_at = Some(JwtDuration::from_secs(now));
        claims.invalid_before = Some(JwtDuration::from_secs(now));
        claims.expires_at = Some(JwtDuration::from_secs(expires_at));
        let keys = self.store.state::<KeyRing>()?.keys.read();
        let active = keys
            .iter()
            .find(|k| k.stored.retired_at.is_none())
            .ok_or_else(|| Error::internal(std::io::Error::other("no active signing key")))?;
        let token = active
            .pair
            .sign(claims)
            .map_err(|e| Error::internal(std::io::Error::other(e.to_string())))?;
        Ok((token, expires_at))
    }

    /// Verifies a token's signature and claims (not whether its session or key is still live),
    /// using the cache.
    pub(crate) fn verify_token(&self, token: &str) -> Result<VerifiedToken> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated());
        }
        let now = u64::try_from(self.store.now_micros() / 1_000_000).unwrap_or(0);
        let hash = token_hash(token);
        let ring = self.store.state::<KeyRing>()?;
        let cached = ring.verified.lock().get(&hash).cloned();
        if let Some(hit) = cached {
            return if now > hit.expires_at_secs + TOLERANCE_SECS {
                ring.verified.lock().remove(&hash);
                Err(unauthenticated())
            } else {
                Ok(hit)
            };
        }
        let verified = self.verify_signature(token, now)?;
        let mut cache = ring.verified.lock();
        if cache.len() >= CACHE_CAPACITY {
            // Expired entries go first; if that is not enough, start over.
            cache.retain(|_, v| now <= v.expires_at_secs + TOLERANCE_SECS);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(hash, verified.clone());
        Ok(verified)
    }

    fn verify_signature(&self, token: &str, now: u64) -> Result<VerifiedToken> {
        let metadata = Token::decode_metadata(token).map_err(|_| unauthenticated())?;
        if metadata.algorithm() != "EdDSA" {
            return Err(unauthenticated());
        }
        let kid = metadata.key_id().ok_or_else(unauthenticated)?;
        let now_micros = self.store.now_micros();
        let keys = self.store.state::<KeyRing>()?.keys.read();
        let key = keys
            .iter()
            .find(|k| {
                k.kid == kid
                    && k.stored
                        .verify_until
                        .is_none_or(|until| now_micros <= until)
            })
            .ok_or_else(unauthenticated)?;
        let options = VerificationOptions {
            accept_future: false,
            required_key_id: Some(key.kid.clone()),
            allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
            allowed_audiences: Some(HashSet::from([AUDIENCE.to_owned()])),
            time_tolerance: Some(JwtDuration::from_secs(TOLERANCE_SECS)),
            max_token_length: Some(MAX_TOKEN_BYTES),
            max_header_length: Some(512),
            artificial_time: Some(JwtDuration::from_secs(now)),
            ..VerificationOptions::default()
        };
        let claims = key
            .public
            .verify_token::<CustomClaims>(token, Some(options))
            .map_err(|_| unauthenticated())?;
        let (Some(subject), Some(expires_at)) = (claims.subject, claims.expires_at) else {
            return Err(unauthenticated());
        };
        let complete = match claims.custom.typ {
            TokenType::Access => claims.custom.sid.is_some(),
            TokenType::Key => claims.custom.generation.is_some(),
        };
        if !complete {
            return Err(unauthenticated());
        }
        Ok(VerifiedToken {
            typ: claims.custom.typ,
            subject,
            session_id: claims.custom.sid,
            generation: claims.custom.generation,
            expires_at_secs: expires_at.as_secs(),
        })
    }

    /// The public signing keys as a JWKS document (`/.well-known/jwks.json`): the active key
    /// and retired keys whose tokens may still be valid.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// let db = larder::Db::in_memory()?;
    /// let jwks = db.signing_keys().jwks()?;
    /// assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Only a database that was not set up.
    pub fn jwks(&self) -> Result<Value> {
        use base64::Engine;
        let now = self.store.now_micros();
        let keys = self.store.state::<KeyRing>()?.keys.read();
        let keys: Vec<Value> = keys
            .iter()
            .filter(|k| k.stored.verify_until.is_none_or(|until| now <= until))
            .map(|k| {
                let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(k.public.to_bytes());
                json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": x})
            })
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// Starts signing with a new key. The old key keeps verifying the tokens it signed until
    /// they expire (the current token lifetime plus the clock tolerance), then disappears.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn rotate(&self) -> Result<()> {
        let now = self.store.now_micros();
        let lifetime_secs = Project::new(self.store).settings()?.jwt_expiry_minutes * 60;
        let grace = i64::try_from((lifetime_secs + TOLERANCE_SECS) * 1_000_000).unwrap_or(i64::MAX);
        let keys = self.store.write(|txn| {
            let mut table = txn.open_table(SIGNING_KEYS)?;
            let mut keys = load(&table)?;
            for key in &mut keys {
                if key.stored.retired_at.is_none() {
                    key.stored.retired_at = Some(now);
                    key.stored.verify_until = Some(now.saturating_add(grace));
                }
            }
            keys.retain(|k| k.stored.verify_until.is_none_or(|until| now <= until));
            let (kid, stored) = new_key(now)?;
            keys.push(loaded(kid, stored)?);
            // Rewrite the table: retired keys past their grace are dropped.
            let existing: Vec<String> = table
                .iter()?
                .map(|e| e.map(|(k, _)| k.value().to_owned()))
                .collect::<std::result::Result<_, _>>()?;
            for kid in existing {
                table.remove(kid.as_str())?;
            }
            for key in &keys {
                table.insert(key.kid.as_str(), schema::encode(&key.stored)?.as_slice())?;
            }
            Ok(keys)
        })?;
        let ring = self.store.state::<KeyRing>()?;
        *ring.keys.write() = keys;
        ring.verified.lock().clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_repeat_hits_the_cache() {
        let db = crate::Db::in_memory().unwrap();
        let keys = db.signing_keys();
        let (token, exp) = keys.mint_access_token("u1", "s1", 600).unwrap();
        let first = keys.verify_token(&token).unwrap();
        assert_eq!(first.typ, TokenType::Access);
        assert_eq!(first.subject, "u1");
        assert_eq!(first.session_id.as_deref(), Some("s1"));
        assert_eq!(first.expires_at_secs, exp);
        let ring = keys.store.state::<KeyRing>().unwrap();
        assert_eq!(ring.verified.lock().len(), 1);
        assert_eq!(keys.verify_token(&token).unwrap(), first);
    }
}
