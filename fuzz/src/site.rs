//! The service the HTTP targets talk to: a database with two users, keys of every kind and
//! collections under different rules, behind the real router (no socket), plus the oracles every
//! answer is held to.

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use larder::{
    Client, CollectionSpec, Db, Grant, KeyKind, NewApiKey, NewUser, Rule, Rules, ServerConfig,
};
use serde_json::json;
use tower::ServiceExt;

/// In every hidden field: no answer to anyone but an administrator may contain it.
pub const HIDDEN_MARK: &str = "hidden-4f1c9e";
/// In every document the second user owns: no answer to the first user, a key without a grant
/// on it, or an anonymous caller may contain it.
pub const PRIVATE_MARK: &str = "private-b7d20a";
/// Documents the first user owns in `notes`.
pub const OWN_NOTES: u64 = 12;

/// Who a request comes from.
#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
pub enum Caller {
    Anonymous,
    /// A secret key: an administrator.
    Admin,
    /// The first user's access token (with the publishable key beside it, as apps send it).
    User,
    /// A scoped key: read on `pub` only, without its `secret` field.
    Scoped,
    /// A key JWT exchanged for the secret key (the ekoDB flow).
    KeyToken,
    /// A credential that is not valid.
    Forged,
}

impl Caller {
    /// Whether the caller may see hidden fields and every user's documents.
    pub fn is_admin(self) -> bool {
        matches!(self, Caller::Admin | Caller::KeyToken)
    }
}

/// The credentials of the site's callers.
#[derive(Clone)]
pub struct Keys {
    admin_key: String,
    publishable_key: String,
    scoped_key: String,
    user_token: String,
    key_token: String,
}

pub struct Site {
    pub db: Db,
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    keys: Keys,
}

impl Site {
    /// A fresh site in memory.
    pub fn new() -> Site {
        let db = Db::in_memory().unwrap();
        let keys = populate(&db);
        Site::serve(db, keys)
    }

    /// The image of a fresh site's file and its credentials: [`Site::from_image`] then starts
    /// a copy in a fraction of the time a fresh one takes (two password hashes).
    pub fn image() -> (Vec<u8>, Keys) {
        let (disk, db) = super::fresh_db();
        let keys = populate(&db);
        let image = super::image_of(disk, db);
        (image, keys)
    }

    /// A site on a copy of an [`image`](Site::image).
    pub fn from_image(image: &[u8], keys: &Keys) -> Site {
        Site::serve(super::open_image(image), keys.clone())
    }

    fn serve(db: Db, keys: Keys) -> Site {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig {
            max_body_bytes: 64 * 1024,
            max_upload_bytes: 256 * 1024,
            ..ServerConfig::default()
        };
        Site {
            router: larder::router(db.clone(), &config),
            db,
            runtime,
            keys,
        }
    }

    /// Adds the caller's credentials to a request.
    pub fn authorize(&self, caller: Caller, request: &mut Request<Body>) {
        let keys = &self.keys;
        let headers: Vec<(&str, String)> = match caller {
            Caller::Anonymous => vec![],
            Caller::Admin => vec![("x-api-key", keys.admin_key.clone())],
            Caller::User => vec![
                ("x-api-key", keys.publishable_key.clone()),
                ("authorization", format!("Bearer {}", keys.user_token)),
            ],
            Caller::Scoped => vec![("x-api-key", keys.scoped_key.clone())],
            Caller::KeyToken => vec![("authorization", format!("Bearer {}", keys.key_token))],
            Caller::Forged => vec![("x-api-key", format!("sk_live_{}", "A".repeat(43)))],
        };
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(&value).unwrap());
        }
    }

    /// The database alone (the router's handle to it dropped).
    pub fn into_db(self) -> Db {
        self.db
    }

    /// Sends a request through the router: its status and body.
    pub fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, body.to_vec())
        })
    }
}

/// The oracles every answer is held to. `sent` is everything the request carried (an answer may
/// echo the caller's own input, marks included).
pub fn check_answer(caller: Caller, sent: &[u8], status: StatusCode, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    // Client input never causes a server error (501 is the documented "needs the network").
    assert!(
        !status.is_server_error() || status == StatusCode::NOT_IMPLEMENTED,
        "{status} for client input: {text}"
    );
    // Error bodies are generic: no panic message or internal name.
    if !status.is_success() && !contains(sent, b"panicked") {
        assert!(!text.contains("panicked"), "{status}: {text}");
    }
    let mark_echoed = |mark: &str| contains(sent, mark.as_bytes());
    if !caller.is_admin() && !mark_echoed(HIDDEN_MARK) {
        assert!(
            !text.contains(HIDDEN_MARK),
            "a hidden field reached {caller:?}: {text}"
        );
    }
    if !caller.is_admin() && !mark_echoed(PRIVATE_MARK) {
        assert!(
            !text.contains(PRIVATE_MARK),
            "another user's document reached {caller:?}: {text}"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Two users, their notes, public documents and keys of every kind.
fn populate(db: &Db) -> Keys {
    let owner_rules = Rules {
        list: Rule::Owner,
        view: Rule::Owner,
        create: Rule::Authenticated,
        update: Rule::Owner,
        delete: Rule::Owner,
    };
    db.collections()
        .create(
            "notes",
            CollectionSpec::new()
                .index("n")
                .owner_field("owner")
                .hidden_field("secret")
                .rules(owner_rules),
        )
        .unwrap();
    db.collections()
        .create(
            "pub",
            CollectionSpec::new()
                .index("s")
                .hidden_field("secret")
                .rules(Rules {
                    list: Rule::Public,
                    view: Rule::Public,
                    ..Rules::default()
                }),
        )
        .unwrap();
    let client = Client::unknown().server_trusted();
    let first = db
        .users()
        .signup(
            NewUser::new("first@example.com", "correct horse battery"),
            &client,
        )
        .unwrap();
    let second = db
        .users()
        .signup(
            NewUser::new("second@example.com", "staple grape volcano"),
            &client,
        )
        .unwrap();
    let notes = db.collection::<serde_json::Value>("notes");
    let public = db.collection::<serde_json::Value>("pub");
    for i in 0..OWN_NOTES as i64 {
        let words = ["alpha", "Beta", "gamma", "", "10", "2.5"];
        let common = json!({
            "n": i % 5 - 1,
            "s": words[i as usize % words.len()],
            "tags": [words[i as usize % 3], i],
            "stats": {"n": i * 10, "flag": i % 2 == 0},
            "maybe": if i % 3 == 0 { json!(null) } else { json!(i) },
            "secret": format!("{HIDDEN_MARK}-{i}"),
        });
        let mut mine = common.clone();
        mine["owner"] = json!(first.user.id);
        mine["id"] = json!(format!("note{i}"));
        notes.insert(&mine).unwrap();
        let mut theirs = common.clone();
        theirs["owner"] = json!(second.user.id);
        theirs["s"] = json!(format!("{PRIVATE_MARK}-{i}"));
        theirs["id"] = json!(format!("other{i}"));
        notes.insert(&theirs).unwrap();
        let mut open = common;
        open["id"] = json!(format!("pub{i}"));
        public.insert(&open).unwrap();
    }
    let admin_key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "admin"))
        .unwrap()
        .secret;
    let publishable_key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Publishable, "app"))
        .unwrap()
        .secret;
    let scoped_key = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reader").grant(
            "pub",
            Grant {
                exclude_fields: vec!["secret".into()],
                ..Grant::read()
            },
        ))
        .unwrap()
        .secret;
    let (key_token, _) = db.keys().token(&admin_key).unwrap();
    Keys {
        admin_key,
        publishable_key,
        scoped_key,
        user_token: first.access_token,
        key_token,
    }
}
