//! Typed access: `Db::collection::<T>` with the caller's own serde structs.

mod common;

use common::{is_invalid, memory_db};
use larder::{CollectionSpec, ErrorKind, Filter, Query};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    title: String,
    stars: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

/// A struct that carries its own id: `None` lets larder generate one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    name: String,
}

#[test]
fn typed_round_trip() {
    let (db, _) = memory_db();
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let notes = db.collection::<Note>("notes");
    let note = Note {
        title: "typed".into(),
        stars: 4,
        tags: vec!["rust".into()],
    };
    let stored = notes.insert(&note).unwrap();
    assert_eq!(stored.data, note);
    let fetched = notes.get(&stored.id).unwrap().unwrap();
    assert_eq!(fetched.data, note);

    let better = Note {
        stars: 5,
        ..note.clone()
    };
    assert_eq!(notes.replace(&stored.id, &better).unwrap().data, better);
    assert_eq!(
        notes
            .patch(&stored.id, &json!({"stars": 1}))
            .unwrap()
            .data
            .stars,
        1
    );

    let found = notes
        .find(&Query::new().filter(Filter::contains("tags", "rust")))
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(notes.delete(&stored.id).unwrap().data.title, "typed");
}

#[test]
fn typed_and_json_handles_see_the_same_documents() {
    let (db, _) = memory_db();
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let typed = db.collection::<Note>("notes");
    let json: larder::Collection = db.collection("notes");
    let stored = typed
        .insert_many(&[
            Note {
                title: "a".into(),
                stars: 1,
                tags: vec![],
            },
            Note {
                title: "b".into(),
                stars: 2,
                tags: vec![],
            },
        ])
        .unwrap();
    assert_eq!(
        json.get(&stored[1].id).unwrap().unwrap().data,
        json!({"title": "b", "stars": 2})
    );
}

#[test]
fn a_struct_id_field_chooses_the_id() {
    let (db, _) = memory_db();
    db.collections()
        .create("accounts", CollectionSpec::new())
        .unwrap();
    let accounts = db.collection::<Account>("accounts");
    let chosen = accounts
        .insert(&Account {
            id: Some("acme".into()),
            name: "Acme".into(),
        })
        .unwrap();
    assert_eq!(chosen.id, "acme");
    let generated = accounts
        .insert(&Account {
            id: None,
            name: "Other".into(),
        })
        .unwrap();
    assert_eq!(generated.id.len(), 36);
    assert_eq!(
        generated.data.id, None,
        "the id lives on the Doc, not in the data"
    );
}

#[test]
fn documents_of_another_shape_are_a_clear_error() {
    let (db, _) = memory_db();
    db.collections()
        .create("notes", CollectionSpec::new())
        .unwrap();
    let json: larder::Collection = db.collection("notes");
    let odd = json.insert(&json!({"title": 5})).unwrap();
    let typed = db.collection::<Note>("notes");
    let error = typed.get(&odd.id).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::InvalidInput { message } if message.contains("requested type"))
    );
}

#[test]
fn values_that_are_not_objects_are_refused() {
    let (db, _) = memory_db();
    db.collections()
        .create("numbers", CollectionSpec::new())
        .unwrap();
    let numbers = db.collection::<u32>("numbers");
    assert!(is_invalid(numbers.insert(&5)));
}
