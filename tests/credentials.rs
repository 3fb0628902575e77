//! Every credential at every door: secret, publishable and scoped keys, a key-minted JWT and a
//! user's token, on the data routes of the urBackend, Cocobase and ekoDB dialects and on the
//! Rust API. Each door answers with the same documents, the same fields and the same status
//! for the same caller, because each one asks the same authentication edge and the same policy.
#![cfg(feature = "http")]

mod common;

use common::http::{Answer, call};
use larder::{
    Client, CollectionSpec, Db, Grant, KeyKind, NewApiKey, NewUser, Rule, Rules, ServerConfig,
};
use serde_json::{Map, Value, json};

/// One caller: what it presents.
#[derive(Clone)]
struct Credential {
    name: &'static str,
    api_key: Option<String>,
    bearer: Option<String>,
}

/// The database, its router, and one of each credential.
struct Fixture {
    db: Db,
    router: axum::Router,
    secret: Credential,
    publishable: Credential,
    scoped: Credential,
    key_jwt: Credential,
    user: Credential,
    anonymous: Credential,
}

fn fixture() -> Fixture {
    let db = Db::in_memory().unwrap();
    let signed_in_only = Rules {
        list: Rule::Authenticated,
        view: Rule::Authenticated,
        create: Rule::Authenticated,
        update: Rule::Authenticated,
        delete: Rule::Authenticated,
    };
    db.collections()
        .create(
            "notes",
            CollectionSpec::new()
                .rules(signed_in_only.clone())
                .hidden_field("hidden"),
        )
        .unwrap();
    db.collections()
        .create("secrets", CollectionSpec::new().rules(signed_in_only))
        .unwrap();
    let notes = db.collection::<Value>("notes");
    for title in ["first", "second"] {
        notes
            .insert(&json!({"title": title, "internal": "ops only", "hidden": "nobody"}))
            .unwrap();
    }
    db.collection::<Value>("secrets")
        .insert(&json!({"title": "keep out"}))
        .unwrap();
    let key = |kind, label| {
        db.keys()
            .create(NewApiKey::new(kind, label))
            .unwrap()
            .secret
    };
    let secret = key(KeyKind::Secret, "server");
    let publishable = key(KeyKind::Publishable, "web");
    let mut read_notes = Grant::read();
    read_notes.exclude_fields = vec!["internal".into()];
    let scoped = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reports").grant("notes", read_notes))
        .unwrap()
        .secret;
    let (key_jwt, _) = db.keys().token(&scoped).unwrap();
    let user = db
        .users()
        .signup(
            NewUser::new("ada@example.com", "analytical engine"),
            &Client::unknown(),
        )
        .unwrap()
        .access_token;
    let credential = |name, api_key: Option<&str>, bearer: Option<&str>| Credential {
        name,
        api_key: api_key.map(str::to_owned),
        bearer: bearer.map(str::to_owned),
    };
    Fixture {
        router: larder::router(db.clone(), &ServerConfig::default()),
        secret: credential("secret key", Some(&secret), None),
        // Apps ship their publishable key with every request, and the user's token beside it.
        publishable: credential("publishable key", Some(&publishable), None),
        scoped: credential("scoped key", Some(&scoped), None),
        key_jwt: credential("key-minted JWT", None, Some(&key_jwt)),
        user: credential("user token", Some(&publishable), Some(&user)),
        anonymous: credential("nothing", None, None),
        db,
    }
}

/// The three dialects' doors to one collection's documents.
#[derive(Clone, Copy, Debug)]
enum Door {
    UrBackend,
    Cocobase,
    EkoDb,
}

const DOORS: [Door; 3] = [Door::UrBackend, Door::Cocobase, Door::EkoDb];

impl Fixture {
    fn send(&self, who: &Credential, method: &str, path: &str, body: Option<Value>) -> Answer {
        let bearer = who.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(key) = &who.api_key {
            headers.push(("x-api-key", key.as_str()));
        }
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        call(&self.router, method, path, &headers, body)
    }

    /// Lists a collection through a door: the status and each document's data fields (the
    /// dialect's own id and timestamp fields left out).
    fn list(
        &self,
        door: Door,
        who: &Credential,
        collection: &str,
    ) -> (u16, Vec<Map<String, Value>>) {
        let answer = match door {
            Door::UrBackend => self.send(who, "GET", &format!("/api/data/{collection}"), None),
            Door::Cocobase => self.send(
                who,
                "GET",
                &format!("/collections/{collection}/documents"),
                None,
            ),
            Door::EkoDb => self.send(
                who,
                "POST",
                &format!("/api/find/{collection}"),
                Some(json!({})),
            ),
        };
        let status = answer.status.as_u16();
        if status != 200 {
            return (status, Vec::new());
        }
        let docs = match door {
            Door::UrBackend => answer.json["data"]["items"].clone(),
            Door::Cocobase | Door::EkoDb => answer.json.clone(),
        };
        let docs = docs
            .as_array()
            .unwrap_or_else(|| panic!("{door:?} listed no array: {}", answer.json))
            .iter()
            .map(|doc| {
                let data = match door {
                    Door::Cocobase => doc["data"].clone(),
                    Door::UrBackend | Door::EkoDb => doc.clone(),
                };
                let mut data = data.as_object().cloned().unwrap_or_default();
                for managed in [
                    "_id",
                    "id",
                    "createdAt",
                    "updatedAt",
                    "created_at",
                    "updated_at",
                ] {
                    data.remove(managed);
                }
                data
            })
            .collect();
        (status, docs)
    }

    /// Creates a note through a door: the status.
    fn create_note(&self, door: Door, who: &Credential) -> u16 {
        let note = json!({"title": "new"});
        let answer = match door {
            Door::UrBackend => self.send(who, "POST", "/api/data/notes", Some(note)),
            Door::Cocobase => self.send(
                who,
                "POST",
                "/collections/documents?collection=notes",
                Some(json!({"data": note})),
            ),
            Door::EkoDb => self.send(who, "POST", "/api/insert/notes", Some(note)),
        };
        answer.status.as_u16()
    }
}

/// The field names of each listed document, sorted.
fn field_names(docs: &[Map<String, Value>]) -> Vec<Vec<String>> {
    let mut names: Vec<Vec<String>> = docs
        .iter()
        .map(|doc| {
            let mut keys: Vec<String> = doc.keys().cloned().collect();
            keys.sort();
            keys
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_credential_reads_exactly_what_the_policy_gives_it_at_every_door() {
    let f = fixture();
    let full = vec!["hidden", "internal", "title"];
    let as_user = vec!["internal", "title"];
    let as_scoped_key = vec!["title"];
    let expected: [(&Credential, u16, Option<&Vec<&str>>); 6] = [
        (&f.secret, 200, Some(&full)),
        (&f.scoped, 200, Some(&as_scoped_key)),
        (&f.key_jwt, 200, Some(&as_scoped_key)),
        (&f.user, 200, Some(&as_user)),
        // A publishable key alone is not signed in: the rule asks for a sign-in.
        (&f.publishable, 401, None),
        (&f.anonymous, 401, None),
    ];
    for door in DOORS {
        for (who, status, fields) in &expected {
            let (got, docs) = f.list(door, who, "notes");
            assert_eq!(got, *status, "{door:?}, {}: status", who.name);
            if let Some(fields) = fields {
                let fields: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
                assert_eq!(
                    field_names(&docs),
                    vec![fields.clone(), fields],
                    "{door:?}, {}: the fields of both notes",
                    who.name
                );
            }
        }
    }
}

#[test]
fn a_scoped_key_and_its_jwt_get_only_their_grants_at_every_door() {
    let f = fixture();
    for door in DOORS {
        for who in [&f.scoped, &f.key_jwt] {
            assert_eq!(
                f.list(door, who, "secrets").0,
                403,
                "{door:?}, {}: no grant on `secrets`",
                who.name
            );
            assert_eq!(
                f.create_note(door, who),
                403,
                "{door:?}, {}: a read grant does not write",
                who.name
            );
        }
        // The same doors let the caller with the right to write do it.
        assert_eq!(f.create_note(door, &f.user), 201, "{door:?}: a user writes");
    }
    let titles: Vec<Value> =
        f.db.collection::<Value>("notes")
            .find(&larder::Query::new())
            .unwrap()
            .into_iter()
            .map(|doc| doc.data["title"].clone())
            .filter(|title| title == "new")
            .collect();
    assert_eq!(titles.len(), DOORS.len(), "only the users' writes landed");
}

#[test]
fn the_rust_api_gives_the_same_answers_as_the_doors() {
    let f = fixture();
    let fields = |actor: larder::Actor| {
        let docs = actor
            .collection::<Value>("notes")
            .find(&larder::Query::new())
            .unwrap();
        let data: Vec<Map<String, Value>> = docs
            .into_iter()
            .map(|doc| doc.data.as_object().cloned().unwrap_or_default())
            .collect();
        field_names(&data)
    };
    let scoped = f.db.with_key(f.scoped.api_key.as_deref().unwrap()).unwrap();
    let jwt =
        f.db.authenticate_request(larder::Credentials {
            api_key: None,
            bearer: f.key_jwt.bearer.as_deref(),
        })
        .unwrap();
    let title_only = vec![vec!["title".to_owned()]; 2];
    assert_eq!(fields(scoped.clone()), title_only);
    assert_eq!(fields(f.db.acting_as(jwt)), title_only);
    let refused = scoped
        .collection::<Value>("secrets")
        .find(&larder::Query::new())
        .unwrap_err();
    assert!(matches!(
        refused.kind(),
        larder::ErrorKind::Forbidden { .. }
    ));
}

/// The file doors: larder's own `/api/files/{bucket}`, Cocobase's `/collections/file` (bucket
/// `uploads`) and urBackend's `/api/storage/upload` (bucket `storage`), each with a multipart
/// part named `file`.
#[test]
fn a_scoped_key_and_its_jwt_upload_exactly_where_their_grants_allow_at_every_file_door() {
    let db = Db::in_memory().unwrap();
    db.buckets()
        .create("docs", larder::BucketSpec::new())
        .unwrap();
    let write = Grant {
        read: true,
        write: true,
        ..Grant::default()
    };
    let granted = NewApiKey::new(KeyKind::Scoped, "uploader")
        .grant("files/docs", write.clone())
        .grant("files/uploads", write.clone())
        .grant("files/storage", write);
    let granted = db.keys().create(granted).unwrap().secret;
    let (granted_jwt, _) = db.keys().token(&granted).unwrap();
    let ungranted = db
        .keys()
        .create(NewApiKey::new(KeyKind::Scoped, "reader").grant("notes", Grant::read()))
        .unwrap()
        .secret;
    let (ungranted_jwt, _) = db.keys().token(&ungranted).unwrap();
    let router = larder::router(db.clone(), &ServerConfig::default());
    let (content_type, body) =
        common::http::multipart(&[("file", Some("report.txt"), &b"all good"[..])]);
    let upload = |path: &str, key: Option<&str>, bearer: Option<&str>| {
        let bearer = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", content_type.as_str())];
        if let Some(key) = key {
            headers.push(("x-api-key", key));
        }
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        common::http::call_raw(&router, "POST", path, &headers, body.clone())
    };
    for path in [
        "/api/files/docs",
        "/collections/file",
        "/api/storage/upload",
    ] {
        for (who, key, bearer) in [
            ("scoped key", Some(granted.as_str()), None),
            ("its JWT", None, Some(granted_jwt.as_str())),
        ] {
            let answer = upload(path, key, bearer);
            assert_eq!(answer.status, 201, "{path}, {who}: {}", answer.json());
        }
        for (who, key, bearer) in [
            ("scoped key", Some(ungranted.as_str()), None),
            ("its JWT", None, Some(ungranted_jwt.as_str())),
        ] {
            let answer = upload(path, key, bearer);
            assert_eq!(
                answer.status,
                403,
                "{path}, {who} without a grant: {}",
                answer.json()
            );
        }
    }
    let stored: usize = ["docs", "uploads", "storage"]
        .iter()
        .map(|bucket| db.bucket(bucket).list().unwrap().len())
        .sum();
    assert_eq!(
        stored, 6,
        "two uploads through each door, none refused stored"
    );
}
