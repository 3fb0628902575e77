//! Files in the database file: round trips with checksums, limits, rules for each principal
//! kind, hostile names, interrupted uploads, ranges, upload grants, and files deleted with the
//! documents and users they belong to.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{TestDb, kind, memory_db};
use larder::{
    BucketSpec, Client, CollectionSpec, Db, ErrorKind, Grant, KeyKind, NewApiKey, NewUser, Rule,
    Rules,
};
use serde_json::json;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "a long enough passphrase";

/// Deterministic bytes that are not a repeating pattern of the chunk size.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn user(db: &Db, email: &str) -> larder::Actor {
    let signed = db
        .users()
        .signup(NewUser::new(email, PASSWORD), &Client::unknown())
        .unwrap();
    db.as_user(&signed.access_token).unwrap()
}

#[test]
fn small_and_multi_megabyte_files_round_trip_byte_for_byte() {
    let t = TestDb::new();
    t.db.buckets().create("docs", BucketSpec::new()).unwrap();
    let bucket = t.db.bucket("docs");
    let mut names = Vec::new();
    for (len, seed) in [
        (0, 1),
        (1, 2),
        (256 * 1024, 3),
        (256 * 1024 + 1, 4),
        (5_000_000, 5),
    ] {
        let bytes = payload(len, seed);
        let info = bucket
            .put("report.bin", "application/octet-stream", bytes.as_slice())
            .unwrap();
        assert_eq!(info.size, len as u64);
        assert_eq!(info.sha256, hex_sha256(&bytes));
        assert_eq!(info.filename, "report.bin");
        assert!(info.name.ends_with("_report.bin"), "{}", info.name);
        assert_eq!(bucket.read_to_vec(&info.name).unwrap(), bytes);
        names.push((info.name, bytes));
    }
    // Still there, byte for byte, after a reopen.
    drop(bucket);
    let t = t.reopen();
    let bucket = t.db.bucket("docs");
    for (name, bytes) in &names {
        assert_eq!(&bucket.read_to_vec(name).unwrap(), bytes);
    }
    let info = t.db.buckets().info("docs").unwrap();
    assert_eq!(info.file_count, 5);
    assert_eq!(
        info.total_bytes,
        names.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    assert_eq!(bucket.list().unwrap().len(), 5);
}

#[test]
fn ranges_read_exactly_the_asked_bytes_across_chunks() {
    let (db, _) = memory_db();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    let bytes = payload(700_000, 9);
    let name = db
        .bucket("b")
        .put("x", "application/octet-stream", bytes.as_slice())
        .unwrap()
        .name;
    for (start, end) in [
        (0, 1),
        (0, 700_000),
        (262_143, 262_145),
        (300_000, 600_000),
        (699_999, 700_000),
        (5, 5),
    ] {
        let mut reader = db.bucket("b").open(&name).unwrap();
        reader.set_range(start, end).unwrap();
        assert_eq!(reader.remaining(), end - start);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, bytes[start as usize..end as usize], "{start}..{end}");
    }
    let mut reader = db.bucket("b").open(&name).unwrap();
    assert!(reader.set_range(10, 5).is_err());
    assert!(reader.set_range(0, 700_001).is_err());
}

#[test]
fn files_over_the_limit_are_refused_and_leave_nothing() {
    let t = TestDb::new();
    t.db.buckets()
        .create("small", BucketSpec::new().max_file_bytes(300_000))
        .unwrap();
    let bucket = t.db.bucket("small");
    let result = bucket.put("big", "text/plain", payload(300_001, 1).as_slice());
    assert!(matches!(kind(result), ErrorKind::TooLarge { .. }));
    assert!(
        bucket
            .put("ok", "text/plain", payload(300_000, 1).as_slice())
            .is_ok()
    );
    assert_eq!(t.db.buckets().info("small").unwrap().file_count, 1);
    // The refused upload staged a chunk and removed it when it was dropped.
    assert_eq!(t.db.buckets().cleanup().unwrap(), 0);

    // The database-wide default applies to buckets without a limit of their own.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .max_file_bytes(10)
        .open(dir.path().join("d.redb"))
        .unwrap();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    assert!(
        db.bucket("b")
            .put("a", "text/plain", &[0u8; 10][..])
            .is_ok()
    );
    let result = db.bucket("b").put("a", "text/plain", &[0u8; 11][..]);
    assert!(matches!(kind(result), ErrorKind::TooLarge { .. }));
}

#[test]
fn an_upload_cut_off_by_a_crash_leaves_nothing_after_reopen() {
    let t = TestDb::new();
    t.db.buckets().create("b", BucketSpec::new()).unwrap();
    let mut upload =
        t.db.bucket("b")
            .upload("half.bin", "application/octet-stream")
            .unwrap();
    upload.write(&payload(1_000_000, 3)).unwrap();
    let name = upload.name().to_owned();
    // A crash: the upload never finishes. Another durable write makes the staged chunks
    // durable too (the worst case); the file as it is on disk now is what a crash leaves.
    t.db.buckets().create("other", BucketSpec::new()).unwrap();
    let crashed = t.dir.path().join("crashed.redb");
    std::fs::copy(&t.path, &crashed).unwrap();
    drop(upload);
    let db = Db::open(&crashed).unwrap();
    assert!(matches!(
        kind(db.bucket("b").info(&name)),
        ErrorKind::NotFound { .. }
    ));
    assert_eq!(db.buckets().info("b").unwrap().file_count, 0);
    assert_eq!(db.buckets().cleanup().unwrap(), 0, "purged on open");
    // Freed pages are reused: storing and deleting the same amount again and again does not
    // grow the file.
    let mut sizes = Vec::new();
    for seed in 0..6 {
        let file = db
            .bucket("b")
            .put(
                "again.bin",
                "application/octet-stream",
                payload(1_000_000, seed).as_slice(),
            )
            .unwrap();
        db.bucket("b").delete(&file.name).unwrap();
        sizes.push(std::fs::metadata(&crashed).unwrap().len());
    }
    assert!(sizes[5] <= sizes[0], "{sizes:?}");
    assert!(db.check_integrity().unwrap());
}

#[test]
fn an_abandoned_upload_removes_its_chunks_when_dropped() {
    let (db, _) = memory_db();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    let mut upload = db.bucket("b").upload("x", "text/plain").unwrap();
    upload.write(&payload(600_000, 1)).unwrap();
    drop(upload);
    assert_eq!(db.buckets().cleanup().unwrap(), 0);
    assert_eq!(db.bucket("b").list().unwrap(), []);
}

#[test]
fn hostile_names_are_refused_never_interpreted() {
    let (db, _) = memory_db();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    let bucket = db.bucket("b");
    for name in [
        "../b/x",
        "..",
        "/etc/passwd",
        "a/b",
        "a\0b",
        ".env",
        "a\\b",
        &"a".repeat(500),
        "",
    ] {
        assert!(
            matches!(kind(bucket.info(name)), ErrorKind::InvalidInput { .. }),
            "{name:?}"
        );
        assert!(matches!(
            kind(bucket.delete(name)),
            ErrorKind::InvalidInput { .. }
        ));
    }
    // Original filenames are metadata: a traversal-looking name is stored safely.
    let info = bucket
        .put("../../etc/passwd", "text/plain", &b"x"[..])
        .unwrap();
    assert_eq!(info.filename, "../../etc/passwd");
    assert!(info.name.ends_with("_passwd") && !info.name.contains('/'));
    for filename in ["a\0b", "line\nbreak", ""] {
        assert!(matches!(
            kind(bucket.put(filename, "text/plain", &b"x"[..])),
            ErrorKind::InvalidInput { .. }
        ));
    }
    assert!(matches!(
        kind(bucket.put(&"n".repeat(256), "text/plain", &b"x"[..])),
        ErrorKind::InvalidInput { .. }
    ));
    assert!(matches!(
        kind(bucket.put("a", "text/html\r\nSet-Cookie: x=1", &b"x"[..])),
        ErrorKind::InvalidInput { .. }
    ));
    for bucket_name in ["../x", "B", "files/x", ""] {
        assert!(matches!(
            kind(db.buckets().create(bucket_name, BucketSpec::new())),
            ErrorKind::InvalidInput { .. }
        ));
    }
    assert!(matches!(
        kind(db.bucket("missing").put("a", "text/plain", &b"x"[..])),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn bucket_rules_decide_for_every_principal_kind() {
    let (db, _) = memory_db();
    db.buckets()
        .create(
            "avatars",
            BucketSpec::new().rules(Rules {
                list: Rule::Owner,
                view: Rule::Public,
                create: Rule::Authenticated,
                delete: Rule::Owner,
                ..Rules::default()
            }),
        )
        .unwrap();
    db.buckets().create("private", BucketSpec::new()).unwrap();
    let alice = user(&db, "alice@example.com");
    let bob = user(&db, "bob@example.com");
    let anonymous = db.anonymous();
    let key = |kind, grant: Option<(&str, Grant)>| {
        let mut new = NewApiKey::new(kind, "k");
        if let Some((name, grant)) = grant {
            new = new.grant(name, grant);
        }
        db.with_key(&db.keys().create(new).unwrap().secret).unwrap()
    };
    let secret = key(KeyKind::Secret, None);
    let publishable = key(KeyKind::Publishable, None);
    let scoped_read = key(KeyKind::Scoped, Some(("files/private", Grant::read())));
    let scoped_all = key(KeyKind::Scoped, Some(("files/private", Grant::all())));

    // Uploads: the create rule.
    let mine = alice
        .bucket("avatars")
        .put("me.png", "image/png", &b"alice"[..])
        .unwrap();
    assert_eq!(
        mine.owner.as_deref(),
        Some(alice.principal().user().unwrap().id.as_str())
    );
    let theirs = bob
        .bucket("avatars")
        .put("me.png", "image/png", &b"bob"[..])
        .unwrap();
    for refused in [&anonymous, &publishable] {
        assert!(matches!(
            kind(
                refused
                    .bucket("avatars")
                    .put("x.png", "image/png", &b"x"[..])
            ),
            ErrorKind::Unauthenticated { .. }
        ));
    }
    assert!(
        secret
            .bucket("avatars")
            .put("x.png", "image/png", &b"x"[..])
            .is_ok()
    );

    // Downloads: public.
    for who in [&anonymous, &publishable, &bob, &alice, &secret] {
        assert_eq!(
            who.bucket("avatars").read_to_vec(&mine.name).unwrap(),
            b"alice"
        );
    }
    // Lists: an owner rule narrows to one's own files; anonymous callers must sign in.
    let listed = alice.bucket("avatars").list().unwrap();
    assert_eq!(
        listed.iter().map(|f| &f.name).collect::<Vec<_>>(),
        [&mine.name]
    );
    assert_eq!(secret.bucket("avatars").list().unwrap().len(), 3);
    assert!(matches!(
        kind(anonymous.bucket("avatars").list()),
        ErrorKind::Unauthenticated { .. }
    ));
    // Deletes: the owner only; the file stays when refused.
    assert!(matches!(
        kind(bob.bucket("avatars").delete(&mine.name)),
        ErrorKind::Forbidden { .. }
    ));
    assert!(alice.bucket("avatars").read_to_vec(&mine.name).is_ok());
    alice.bucket("avatars").delete(&mine.name).unwrap();
    assert!(matches!(
        kind(alice.bucket("avatars").info(&mine.name)),
        ErrorKind::NotFound { .. }
    ));
    assert!(secret.bucket("avatars").delete(&theirs.name).is_ok());

    // An admin-only bucket: only administrators and granted scoped keys.
    let file = secret
        .bucket("private")
        .put("p.txt", "text/plain", &b"p"[..])
        .unwrap();
    for (who, expected) in [
        (&anonymous, "unauthenticated"),
        (&publishable, "unauthenticated"),
        (&alice, "forbidden"),
    ] {
        let got = kind(who.bucket("private").read_to_vec(&file.name));
        match expected {
            "unauthenticated" => assert!(matches!(got, ErrorKind::Unauthenticated { .. })),
            _ => assert!(matches!(got, ErrorKind::Forbidden { .. }), "{got:?}"),
        }
    }
    assert_eq!(
        scoped_read
            .bucket("private")
            .read_to_vec(&file.name)
            .unwrap(),
        b"p"
    );
    assert!(matches!(
        kind(
            scoped_read
                .bucket("private")
                .put("q", "text/plain", &b"q"[..])
        ),
        ErrorKind::Forbidden { .. }
    ));
    assert!(matches!(
        kind(scoped_read.bucket("private").delete(&file.name)),
        ErrorKind::Forbidden { .. }
    ));
    assert!(matches!(
        kind(scoped_read.bucket("avatars").list()),
        ErrorKind::Forbidden { .. }
    ));
    assert!(scoped_all.bucket("private").delete(&file.name).is_ok());
}

#[test]
fn upload_grants_are_one_time_exact_and_expire() {
    let (db, clock) = memory_db();
    db.buckets().create("uploads", BucketSpec::new()).unwrap();
    let bucket = db.bucket("uploads");
    let grant = bucket
        .grant_upload("a.txt", "text/plain", 5, Duration::from_secs(600))
        .unwrap();
    assert!(grant.name.ends_with("_a.txt"));
    // The wrong type is refused and changes nothing: the grant still works.
    assert!(matches!(
        kind(
            db.buckets()
                .upload_with_grant(&grant.token, "text/html", &b"hello"[..])
        ),
        ErrorKind::InvalidInput { .. }
    ));
    let info = db
        .buckets()
        .upload_with_grant(&grant.token, "text/plain", &b"hello"[..])
        .unwrap();
    assert_eq!(info.name, grant.name);
    assert_eq!(bucket.read_to_vec(&grant.name).unwrap(), b"hello");
    assert!(matches!(
        kind(
            db.buckets()
                .upload_with_grant(&grant.token, "text/plain", &b"hello"[..])
        ),
        ErrorKind::Forbidden { .. }
    ));

    // A short or long body stores nothing and leaves the grant for a retry.
    let grant = bucket
        .grant_upload("b", "text/plain", 5, Duration::from_secs(600))
        .unwrap();
    for body in [&b"hell"[..], &b"hello!"[..]] {
        assert!(matches!(
            kind(
                db.buckets()
                    .upload_with_grant(&grant.token, "text/plain", body)
            ),
            ErrorKind::InvalidInput { .. }
        ));
        assert!(matches!(
            kind(bucket.info(&grant.name)),
            ErrorKind::NotFound { .. }
        ));
    }
    db.buckets()
        .upload_with_grant(&grant.token, "text/plain", &b"hello"[..])
        .unwrap();

    // Two uploads racing on one grant: only one file is ever stored from it.
    let grant = bucket
        .grant_upload("r", "text/plain", 5, Duration::from_secs(600))
        .unwrap();
    let mut first = db
        .buckets()
        .redeem_grant(&grant.token, "text/plain")
        .unwrap();
    let mut second = db
        .buckets()
        .redeem_grant(&grant.token, "text/plain")
        .unwrap();
    first.write(b"hello").unwrap();
    second.write(b"hello").unwrap();
    first.finish().unwrap();
    assert!(matches!(kind(second.finish()), ErrorKind::Forbidden { .. }));
    assert_eq!(
        bucket
            .list()
            .unwrap()
            .iter()
            .filter(|f| f.name == grant.name)
            .count(),
        1
    );

    // A bucket limit lowered after the grant was made is the one that holds.
    let grant = bucket
        .grant_upload("big", "text/plain", 1000, Duration::from_secs(600))
        .unwrap();
    db.buckets()
        .update("uploads", BucketSpec::new().max_file_bytes(10))
        .unwrap();
    assert!(matches!(
        kind(
            db.buckets()
                .upload_with_grant(&grant.token, "text/plain", &[b'x'; 1000][..])
        ),
        ErrorKind::TooLarge { .. }
    ));
    db.buckets().update("uploads", BucketSpec::new()).unwrap();

    let grant = bucket
        .grant_upload("c", "text/plain", 1, Duration::from_secs(600))
        .unwrap();
    clock.advance(Duration::from_secs(601));
    assert!(matches!(
        kind(
            db.buckets()
                .upload_with_grant(&grant.token, "text/plain", &b"x"[..])
        ),
        ErrorKind::Forbidden { .. }
    ));
    assert!(matches!(
        kind(bucket.grant_upload("d", "text/plain", 0, Duration::from_secs(1))),
        ErrorKind::InvalidInput { .. }
    ));
    assert!(matches!(
        kind(bucket.grant_upload("d", "text/plain", 11 * 1024 * 1024, Duration::from_secs(1))),
        ErrorKind::TooLarge { .. }
    ));
    assert!(matches!(
        kind(
            db.buckets()
                .upload_with_grant("made-up", "text/plain", &b"x"[..])
        ),
        ErrorKind::Forbidden { .. }
    ));
    // A grant is checked against the rules when it is made.
    assert!(matches!(
        kind(db.anonymous().bucket("uploads").grant_upload(
            "e",
            "text/plain",
            1,
            Duration::from_secs(1)
        )),
        ErrorKind::Unauthenticated { .. }
    ));
}

#[test]
fn files_go_with_their_document_their_collection_and_their_uploader() {
    let (db, _) = memory_db();
    db.buckets().create("att", BucketSpec::new()).unwrap();
    db.buckets()
        .create(
            "kept",
            BucketSpec {
                keep_orphans: true,
                ..BucketSpec::new()
            },
        )
        .unwrap();
    db.collections()
        .create("posts", CollectionSpec::new())
        .unwrap();
    let posts: larder::Collection = db.collection("posts");
    let attach = |bucket: &str, doc: &str| {
        let mut upload = db.bucket(bucket).upload("a.png", "image/png").unwrap();
        upload.attach_to("posts", doc);
        upload.write(b"png").unwrap();
        upload.finish().unwrap()
    };
    let first = posts.insert(&json!({"t": 1})).unwrap();
    let second = posts.insert(&json!({"t": 2})).unwrap();
    let gone = attach("att", &first.id);
    let kept = attach("kept", &first.id);
    let stays = attach("att", &second.id);
    assert_eq!(
        gone.attached_to.as_deref(),
        Some(format!("posts/{}", first.id).as_str())
    );

    posts.delete(&first.id).unwrap();
    assert!(matches!(
        kind(db.bucket("att").info(&gone.name)),
        ErrorKind::NotFound { .. }
    ));
    assert!(db.bucket("kept").info(&kept.name).is_ok());
    assert!(db.bucket("att").info(&stays.name).is_ok());

    db.collections().delete("posts").unwrap();
    assert!(matches!(
        kind(db.bucket("att").info(&stays.name)),
        ErrorKind::NotFound { .. }
    ));

    // A user's uploads go with the account.
    db.buckets()
        .create(
            "mine",
            BucketSpec::new().rules(Rules {
                create: Rule::Authenticated,
                ..Rules::default()
            }),
        )
        .unwrap();
    let carol = user(&db, "carol@example.com");
    let file = carol
        .bucket("mine")
        .put("c.txt", "text/plain", &b"c"[..])
        .unwrap();
    // One of her uploads belongs to a document that outlives her account.
    db.collections()
        .create("wall", CollectionSpec::new())
        .unwrap();
    let wall: larder::Collection = db.collection("wall");
    let post = wall.insert(&json!({"t": 1})).unwrap();
    let mut upload = carol.bucket("mine").upload("p.png", "image/png").unwrap();
    upload.attach_to("wall", &post.id);
    upload.write(b"png").unwrap();
    let on_post = upload.finish().unwrap();
    db.users()
        .delete(&carol.principal().user().unwrap().id)
        .unwrap();
    assert!(matches!(
        kind(db.bucket("mine").info(&file.name)),
        ErrorKind::NotFound { .. }
    ));
    let kept_for_post = db.bucket("mine").info(&on_post.name).unwrap();
    assert_eq!(kept_for_post.owner, None);
    assert_eq!(db.buckets().cleanup().unwrap(), 0);
    wall.delete(&post.id).unwrap();
    assert!(matches!(
        kind(db.bucket("mine").info(&on_post.name)),
        ErrorKind::NotFound { .. }
    ));

    // Deleting a bucket deletes its files.
    db.buckets().delete("kept").unwrap();
    assert!(matches!(
        kind(db.bucket("kept").info(&kept.name)),
        ErrorKind::NotFound { .. }
    ));
    assert_eq!(db.buckets().cleanup().unwrap(), 0);
}

#[test]
fn cleanup_removes_files_of_documents_deleted_behind_its_back() {
    let (db, clock) = memory_db();
    db.buckets().create("att", BucketSpec::new()).unwrap();
    // Attached to a document that was never created (an upload whose insert then failed).
    let mut upload = db.bucket("att").upload("a", "text/plain").unwrap();
    upload.attach_to("posts", "no-such-id");
    upload.write(b"x").unwrap();
    let file = upload.finish().unwrap();
    // And an expired grant.
    db.bucket("att")
        .grant_upload("g", "text/plain", 1, Duration::from_secs(1))
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(db.buckets().cleanup().unwrap(), 1);
    assert!(matches!(
        kind(db.bucket("att").info(&file.name)),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn bucket_management() {
    let (db, _) = memory_db();
    let info = db.buckets().create("b", BucketSpec::new()).unwrap();
    assert_eq!(info.file_count, 0);
    assert!(matches!(
        kind(db.buckets().create("b", BucketSpec::new())),
        ErrorKind::AlreadyExists { .. }
    ));
    assert_eq!(
        db.buckets()
            .ensure("b", BucketSpec::new().max_file_bytes(1))
            .unwrap()
            .spec,
        BucketSpec::new()
    );
    let spec = BucketSpec::new().max_file_bytes(5);
    assert_eq!(db.buckets().update("b", spec.clone()).unwrap().spec, spec);
    assert_eq!(db.buckets().list().unwrap().len(), 1);
    let user = user(&db, "u@example.com");
    assert!(matches!(
        kind(user.bucket("b").list()),
        ErrorKind::Forbidden { .. }
    ));
    db.buckets().delete("b").unwrap();
    assert!(matches!(
        kind(db.buckets().info("b")),
        ErrorKind::NotFound { .. }
    ));
    assert!(matches!(
        kind(db.buckets().delete("b")),
        ErrorKind::NotFound { .. }
    ));
}

#[test]
fn cleanup_spares_an_upload_still_moving_and_a_purged_one_cannot_finish() {
    let (db, clock) = memory_db();
    db.buckets().create("big", BucketSpec::new()).unwrap();
    let bucket = db.bucket("big");
    let chunk = vec![7u8; 300 * 1024];

    // Bytes keep arriving every 50 minutes: cleanup leaves the upload alone.
    let mut moving = bucket
        .upload("slow.bin", "application/octet-stream")
        .unwrap();
    moving.write(&chunk).unwrap();
    clock.advance(Duration::from_secs(50 * 60));
    moving.write(&chunk).unwrap();
    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(db.buckets().cleanup().unwrap(), 0);
    let info = moving.finish().unwrap();
    assert_eq!(bucket.read_to_vec(&info.name).unwrap().len(), 600 * 1024);

    // Idle for over an hour: cleanup takes its bytes, and finishing it is a clear refusal
    // that stores nothing (never a file with missing chunks).
    let mut idle = bucket
        .upload("idle.bin", "application/octet-stream")
        .unwrap();
    idle.write(&chunk).unwrap();
    let name = idle.name().to_owned();
    clock.advance(Duration::from_secs(61 * 60));
    assert_eq!(db.buckets().cleanup().unwrap(), 1);
    assert!(matches!(
        kind(idle.finish()),
        ErrorKind::InvalidInput { .. }
    ));
    assert!(matches!(
        kind(bucket.info(&name)),
        ErrorKind::NotFound { .. }
    ));
    assert_eq!(bucket.list().unwrap().len(), 1);
}

#[test]
fn compaction_gives_the_space_of_deleted_files_back() {
    let mut t = TestDb::new();
    t.db.buckets().create("big", BucketSpec::new()).unwrap();
    let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
    let bytes: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let kept =
        t.db.bucket("big")
            .put("keep.bin", "application/octet-stream", &bytes[..1024])
            .unwrap();
    let big =
        t.db.bucket("big")
            .put("big.bin", "application/octet-stream", &bytes[..])
            .unwrap();
    let full = size(&t.path);
    assert!(full > 8 * 1024 * 1024, "{full}");
    t.db.bucket("big").delete(&big.name).unwrap();

    // Another handle alive: refused, nothing changed.
    let other = t.db.clone();
    assert!(matches!(
        kind(t.db.compact()),
        ErrorKind::InvalidInput { .. }
    ));
    drop(other);

    t.db.compact().unwrap();
    let compacted = size(&t.path);
    assert!(
        compacted < full / 2,
        "{full} bytes before, {compacted} after"
    );
    assert_eq!(
        t.db.bucket("big").read_to_vec(&kept.name).unwrap(),
        &bytes[..1024]
    );
    let t = t.reopen();
    assert_eq!(
        t.db.bucket("big").read_to_vec(&kept.name).unwrap(),
        &bytes[..1024]
    );
}

#[cfg(feature = "cli")]
#[test]
fn larder_compact_cleans_up_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.redb");
    {
        let db = Db::open(&path).unwrap();
        db.buckets().create("big", BucketSpec::new()).unwrap();
        let bytes = vec![3u8; 6 * 1024 * 1024];
        let big = db
            .bucket("big")
            .put("big.bin", "application/octet-stream", &bytes[..]);
        // Written after it, so the freed pages are not simply at the end of the file.
        db.bucket("big")
            .put("small.bin", "application/octet-stream", &bytes[..10])
            .unwrap();
        db.bucket("big").delete(&big.unwrap().name).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["compact", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before / 2, "{before} -> {after}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.trim_end().ends_with(&format!(" -> {after} bytes")),
        "{said}"
    );
    let db = Db::open(&path).unwrap();
    assert_eq!(db.bucket("big").list().unwrap().len(), 1);
}

#[test]
fn an_update_that_stops_mentioning_an_attached_file_deletes_it() {
    let (db, _) = memory_db();
    db.buckets().create("att", BucketSpec::new()).unwrap();
    db.collections()
        .create("posts", CollectionSpec::new())
        .unwrap();
    let posts: larder::Collection = db.collection("posts");
    let post = posts.insert(&json!({"t": 1})).unwrap();
    let attach = || {
        let mut upload = db.bucket("att").upload("a.png", "image/png").unwrap();
        upload.attach_to("posts", &post.id);
        upload.write(b"png").unwrap();
        upload.finish().unwrap()
    };
    let url = |name: &str| format!("http://127.0.0.1/api/files/att/{name}");
    let (photo, thumb, silent) = (attach(), attach(), attach());
    posts
        .patch(
            &post.id,
            &json!({"photo": url(&photo.name), "gallery": [url(&thumb.name)]}),
        )
        .unwrap();
    // Another field changes: every file is still mentioned and stays.
    posts.patch(&post.id, &json!({"t": 2})).unwrap();
    // The photo's URL is replaced and the gallery's kept: the photo goes, in that transaction.
    posts
        .patch(&post.id, &json!({"photo": "http://elsewhere/p.png"}))
        .unwrap();
    let exists = |name: &str| db.bucket("att").info(name).is_ok();
    assert!(!exists(&photo.name), "the replaced file is deleted");
    assert!(exists(&thumb.name), "a file still mentioned stays");
    assert!(
        exists(&silent.name),
        "a file the document never mentioned is not the update's to delete"
    );
    // A replace that leaves the gallery out drops it as well.
    posts.replace(&post.id, &json!({"t": 3})).unwrap();
    assert!(!exists(&thumb.name));
}
