//! Credentials, made up or mutated from valid ones: user access tokens, refresh tokens, API key
//! secrets, key JWTs and signed upload grants, through every call that takes one.
//!
//! Oracles: no call panics; a made-up or changed credential is refused with `Unauthenticated`
//! (or `NotFound`/`InvalidInput` for an upload grant), never a storage or internal error; a
//! credential that is accepted after a change authenticates the same identity as the original
//! (a change that decodes to the same bytes); the original still works afterwards.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use larder::{BucketSpec, Client, Credentials, Db, ErrorKind, KeyKind, NewApiKey, NewUser};

#[derive(Debug, Arbitrary)]
pub struct Input {
    kind: Kind,
    credential: Source,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Kind {
    AccessToken,
    RefreshToken,
    SecretKey,
    KeyToken,
    UploadGrant,
}

#[derive(Debug, Arbitrary)]
enum Source {
    /// Any text.
    MadeUp(String),
    /// A valid credential of the kind, changed.
    Mutated(Vec<Change>),
}

#[derive(Debug, Arbitrary)]
enum Change {
    Flip {
        at: u16,
        bit: u8,
    },
    Replace {
        at: u16,
        byte: u8,
    },
    Truncate(u16),
    Append(String),
    Insert {
        at: u16,
        text: String,
    },
    /// Swap two of the JWT's dot-separated parts.
    SwapParts(u8, u8),
}

struct Valid {
    image: Vec<u8>,
    access: String,
    refresh: String,
    secret: String,
    key_token: String,
    grant: String,
    grant_name: String,
}

fn valid() -> Valid {
    let (disk, db) = super::fresh_db();
    let client = Client::unknown().server_trusted();
    let signed_in = db
        .users()
        .signup(
            NewUser::new("a@example.com", "correct horse battery"),
            &client,
        )
        .unwrap();
    let secret = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "admin"))
        .unwrap()
        .secret;
    let (key_token, _) = db.keys().token(&secret).unwrap();
    db.buckets().create("files", BucketSpec::new()).unwrap();
    let grant = db
        .bucket("files")
        .grant_upload(
            "a.txt",
            "text/plain",
            10,
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    let image = super::image_of(disk, db);
    Valid {
        image,
        access: signed_in.access_token,
        refresh: signed_in.refresh_token,
        secret,
        key_token,
        grant: grant.token,
        grant_name: grant.name,
    }
}

impl Valid {
    fn of(&self, kind: Kind) -> &str {
        match kind {
            Kind::AccessToken => &self.access,
            Kind::RefreshToken => &self.refresh,
            Kind::SecretKey => &self.secret,
            Kind::KeyToken => &self.key_token,
            Kind::UploadGrant => &self.grant,
        }
    }
}

fn mutate(original: &str, changes: &[Change]) -> String {
    let mut bytes = original.as_bytes().to_vec();
    for change in changes.iter().take(8) {
        let at = |i: u16| {
            if bytes.is_empty() {
                0
            } else {
                i as usize % bytes.len()
            }
        };
        match change {
            Change::Flip { at: i, bit } => {
                let i = at(*i);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Change::Replace { at: i, byte } => {
                let i = at(*i);
                if let Some(b) = bytes.get_mut(i) {
                    *b = *byte;
                }
            }
            Change::Truncate(len) => bytes.truncate(*len as usize),
            Change::Append(text) => bytes.extend_from_slice(text.as_bytes()),
            Change::Insert { at: i, text } => {
                let i = at(*i);
                bytes.splice(i..i, text.bytes());
            }
            Change::SwapParts(x, y) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut parts: Vec<&str> = text.split('.').collect();
                let (x, y) = (*x as usize % parts.len(), *y as usize % parts.len());
                parts.swap(x, y);
                bytes = parts.join(".").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What a credential proves: a user or key id (`None`: refused).
fn identify(db: &Db, kind: Kind, credential: &str) -> larder::Result<String> {
    match kind {
        Kind::AccessToken | Kind::KeyToken => {
            let principal = db.authenticate_request(Credentials {
                api_key: None,
                bearer: Some(credential),
            })?;
            Ok(format!("{principal:?}"))
        }
        Kind::RefreshToken => {
            // Not `refresh`: it rotates the token, and the original must stay usable here.
            let (token, _) = db.sessions().access_token_from_refresh(credential)?;
            Ok(db.sessions().authenticate(&token)?.user().id.clone())
        }
        Kind::SecretKey => {
            let principal = db.authenticate_request(Credentials {
                api_key: Some(credential),
                bearer: None,
            })?;
            Ok(format!("{principal:?}"))
        }
        Kind::UploadGrant => {
            let upload = db.buckets().redeem_grant(credential, "text/plain")?;
            Ok(upload.name().to_owned())
        }
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = super::decode::<Input>(data) else {
        return;
    };
    static VALID: OnceLock<Valid> = OnceLock::new();
    let valid = VALID.get_or_init(valid);
    let db = super::open_image(&valid.image);
    let original = valid.of(input.kind);
    let candidate = match &input.credential {
        Source::MadeUp(text) => text.clone(),
        Source::Mutated(changes) => mutate(original, changes),
    };
    match identify(&db, input.kind, &candidate) {
        Ok(who) => {
            let expected = match input.kind {
                // Used up now: the grant's file name stands for it.
                Kind::UploadGrant => valid.grant_name.clone(),
                _ => identify(&db, input.kind, original).expect("the original is valid"),
            };
            assert!(
                candidate == original || who == expected,
                "{:?} `{candidate}` was accepted as {who}",
                input.kind
            );
        }
        Err(error) => {
            let refused = match input.kind {
                Kind::UploadGrant => matches!(
                    error.kind(),
                    ErrorKind::Unauthenticated { .. }
                        | ErrorKind::NotFound { .. }
                        | ErrorKind::InvalidInput { .. }
                        | ErrorKind::Forbidden { .. }
                ),
                _ => matches!(error.kind(), ErrorKind::Unauthenticated { .. }),
            };
            assert!(refused, "{:?} `{candidate}`: {error:?}", input.kind);
            assert!(
                candidate != original,
                "the valid credential was refused: {error:?}"
            );
        }
    }
    // The original keeps working (a refused attempt never locks it out or consumes it).
    if !matches!(input.kind, Kind::UploadGrant) {
        identify(&db, input.kind, original).expect("the original still works");
    }
}
