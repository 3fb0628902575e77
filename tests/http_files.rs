//! Files over HTTP through the router: native upload/download/list/delete, ranges and
//! validators, safe download headers, limits, signed upload URLs, hostile paths, and the storage
//! flows of the urBackend and Cocobase dialects.
#![cfg(feature = "http")]

mod common;

use common::http::{RawAnswer, call_raw, multipart};
use larder::{BucketSpec, Db, KeyKind, NewApiKey, Rule, Rules, ServerConfig};
use serde_json::{Value, json};

struct Fixture {
    db: Db,
    router: axum::Router,
    admin: String,
}

fn fixture() -> Fixture {
    fixture_with(ServerConfig::default())
}

fn fixture_with(config: ServerConfig) -> Fixture {
    let db = Db::in_memory().unwrap();
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "app"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &config);
    Fixture { db, router, admin }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

impl Fixture {
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> RawAnswer {
        call_raw(&self.router, method, path, headers, body)
    }

    fn admin_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawAnswer {
        let mut all = vec![("x-api-key", self.admin.as_str())];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body)
    }

    fn public_bucket(&self, name: &str) {
        self.db
            .buckets()
            .create(
                name,
                BucketSpec::new().rules(Rules {
                    view: Rule::Public,
                    ..Rules::default()
                }),
            )
            .unwrap();
    }

    /// Uploads as the admin through the raw-body route; returns the answer's JSON.
    fn upload(&self, bucket: &str, filename: &str, content_type: &str, bytes: Vec<u8>) -> Value {
        let answer = self.admin_send(
            "POST",
            &format!("/api/files/{bucket}?filename={filename}"),
            &[("content-type", content_type)],
            bytes,
        );
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }
}

/// `http://host/api/files/…` → `/api/files/…`.
fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_owned()
}

#[test]
fn upload_download_list_delete() {
    let f = fixture();
    f.public_bucket("pics");
    let bytes = payload(600_000);
    let file = f.upload("pics", "photo.png", "image/png", bytes.clone());
    assert_eq!(file["size"], 600_000);
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["filename"], "photo.png");
    let url = file["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://") && url.ends_with("_photo.png"),
        "{url}"
    );

    // Anyone may download from a public bucket; the bytes and headers are right.
    let got = f.send("GET", &path_of(url), &[], Vec::new());
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(got.header("content-length"), "600000");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(got.header("accept-ranges"), "bytes");
    assert!(
        got.header("content-disposition")
            .starts_with("inline; filename=\"photo.png\"")
    );
    assert!(got.header("content-security-policy").contains("sandbox"));
    let etag = got.header("etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", file["sha256"].as_str().unwrap()));

    // Validators: the same ETag is 304 without a body.
    let cached = f.send(
        "GET",
        &path_of(url),
        &[("if-none-match", &etag)],
        Vec::new(),
    );
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());

    // Listing and deleting need the rules' permission: admin-only here.
    let listed = f.admin_send("GET", "/api/files/pics", &[], Vec::new());
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        f.send("GET", "/api/files/pics", &[], Vec::new()).status,
        401
    );
    assert_eq!(f.send("DELETE", &path_of(url), &[], Vec::new()).status, 401);
    assert_eq!(
        f.admin_send("DELETE", &path_of(url), &[], Vec::new())
            .status,
        200
    );
    assert_eq!(f.send("GET", &path_of(url), &[], Vec::new()).status, 404);
}

#[test]
fn range_requests() {
    let f = fixture();
    f.public_bucket("b");
    let bytes = payload(300_000);
    let url = f.upload("b", "data.bin", "application/octet-stream", bytes.clone())["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = path_of(&url);
    let range = |value: &str| f.send("GET", &path, &[("range", value)], Vec::new());

    let part = range("bytes=262140-262150");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, bytes[262_140..=262_150]);
    assert_eq!(part.header("content-range"), "bytes 262140-262150/300000");
    assert_eq!(part.header("content-length"), "11");

    let tail = range("bytes=-10");
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, bytes[299_990..]);
    let open = range("bytes=299999-");
    assert_eq!(open.body, bytes[299_999..]);

    let outside = range("bytes=300000-");
    assert_eq!(outside.status, 416, "{:?}", outside.headers);
    assert_eq!(
        outside.header("content-range"),
        "bytes */300000",
        "{:?}",
        outside.headers
    );
    // Several ranges, or a malformed one: the whole file.
    for whole in ["bytes=0-1,5-6", "bytes=oops", "lines=1-2"] {
        let answer = range(whole);
        assert_eq!(answer.status, 200, "{whole}");
        assert_eq!(answer.body.len(), 300_000);
    }
    // If-Range with another validator: the file changed, so all of it.
    let stale = f.send(
        "GET",
        &path,
        &[("range", "bytes=0-0"), ("if-range", "\"other\"")],
        Vec::new(),
    );
    assert_eq!(stale.status, 200);
}

#[test]
fn risky_types_are_downloaded_as_attachments() {
    let f = fixture();
    f.public_bucket("b");
    for (name, kind) in [
        ("page.html", "text/html"),
        ("image.svg", "image/svg+xml"),
        ("x.js", "text/javascript"),
    ] {
        let url = f.upload("b", name, kind, b"<script>alert(1)</script>".to_vec())["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let got = f.send("GET", &path_of(&url), &[], Vec::new());
        assert!(
            got.header("content-disposition").starts_with("attachment;"),
            "{kind}: {}",
            got.header("content-disposition")
        );
        assert_eq!(got.header("x-content-type-options"), "nosniff");
    }
    // A non-ASCII name survives in RFC 8187 form, never raw in the header.
    let url = f.upload(
        "b",
        "r%C3%A9sum%C3%A9%20%22x%22.pdf",
        "application/pdf",
        b"%PDF".to_vec(),
    )["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = f.send("GET", &path_of(&url), &[], Vec::new());
    let disposition = got.header("content-disposition");
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.pdf"),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename=\"r__sum__ _x_.pdf\"")
            || disposition.contains("filename=\"r_sum_ _x_.pdf\""),
        "{disposition}"
    );
}

#[test]
fn multipart_uploads_and_limits() {
    let config = ServerConfig {
        max_upload_bytes: 3_000_000,
        ..ServerConfig::default()
    };
    let f = fixture_with(config);
    f.db.buckets()
        .create("small", BucketSpec::new().max_file_bytes(100_000))
        .unwrap();
    let (kind, body) = multipart(&[
        ("note", None, b"ignored"),
        ("file", Some("a.txt"), b"hello"),
    ]);
    let answer = f.admin_send("POST", "/api/files/small", &[("content-type", &kind)], body);
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["filename"], "a.txt");
    assert_eq!(answer.json()["content_type"], "text/plain");

    // Over the bucket's limit: 413, nothing stored.
    let big = payload(100_001);
    let (kind, body) = multipart(&[("file", Some("big.bin"), &big)]);
    let answer = f.admin_send("POST", "/api/files/small", &[("content-type", &kind)], body);
    assert_eq!(answer.status, 413);
    let answer = f.admin_send(
        "POST",
        "/api/files/small?filename=big.bin",
        &[("content-type", "application/octet-stream")],
        big,
    );
    assert_eq!(answer.status, 413);
    assert_eq!(f.db.buckets().info("small").unwrap().file_count, 1);
    // Over the server's upload ceiling, declared: refused before reading.
    let answer = f.admin_send(
        "POST",
        "/api/files/small?filename=x",
        &[("content-length", "1000000000000")],
        Vec::new(),
    );
    assert_eq!(answer.status, 413);
    // No file part.
    let (kind, body) = multipart(&[("other", Some("a.txt"), b"x")]);
    let answer = f.admin_send("POST", "/api/files/small", &[("content-type", &kind)], body);
    assert_eq!(answer.status, 400);
    assert_eq!(f.db.buckets().cleanup().unwrap(), 0);
}

#[test]
fn hostile_paths_are_refused() {
    let f = fixture();
    f.public_bucket("b");
    f.upload("b", "a.txt", "text/plain", b"x".to_vec());
    for path in [
        "/api/files/b/..%2F..%2Fetc%2Fpasswd",
        "/api/files/b/%2Eenv",
        "/api/files/b/a%00b",
        "/api/files/B/x",
        "/api/files/..%2Fb/x",
        "/api/storage/public/storage/..%2F..%2Fx",
        "/api/storage/public/other/x",
    ] {
        let answer = f.admin_send("GET", path, &[], Vec::new());
        assert!(
            [400, 403, 404].contains(&answer.status.as_u16()),
            "{path}: {}",
            answer.status
        );
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains("root:"), "{path}");
    }
}

#[test]
fn signed_upload_urls() {
    let f = fixture();
    f.public_bucket("b");
    let request =
        json!({"bucket": "b", "filename": "s.txt", "contentType": "text/plain", "size": 5});
    // Anonymous callers cannot make one for an admin-only upload rule.
    let refused = f.send(
        "POST",
        "/api/uploads",
        &[("content-type", "application/json")],
        request.to_string().into_bytes(),
    );
    assert_eq!(refused.status, 401);
    let grant = f.admin_send(
        "POST",
        "/api/uploads",
        &[("content-type", "application/json")],
        request.to_string().into_bytes(),
    );
    assert_eq!(grant.status, 201);
    let grant = grant.json();
    let upload_path = path_of(grant["uploadUrl"].as_str().unwrap());
    // The URL is the credential: no key needed, once.
    let put = f.send(
        "PUT",
        &upload_path,
        &[("content-type", "text/plain")],
        b"hello".to_vec(),
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    let again = f.send(
        "PUT",
        &upload_path,
        &[("content-type", "text/plain")],
        b"hello".to_vec(),
    );
    assert_eq!(again.status, 403);
    let got = f.send(
        "GET",
        &path_of(grant["url"].as_str().unwrap()),
        &[],
        Vec::new(),
    );
    assert_eq!(got.body, b"hello");
}

#[test]
fn admin_bucket_routes() {
    let f = fixture();
    let spec = json!({"rules": {"view": "public"}, "max_file_bytes": 10});
    let created = f.admin_send(
        "PUT",
        "/api/admin/buckets/avatars",
        &[("content-type", "application/json")],
        spec.to_string().into_bytes(),
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let updated = f.admin_send(
        "PUT",
        "/api/admin/buckets/avatars",
        &[("content-type", "application/json")],
        spec.to_string().into_bytes(),
    );
    assert_eq!(updated.status, 200);
    let listed = f.admin_send("GET", "/api/admin/buckets", &[], Vec::new());
    assert_eq!(listed.json()[0]["name"], "avatars");
    let bad = f.admin_send(
        "PUT",
        "/api/admin/buckets/avatars",
        &[("content-type", "application/json")],
        json!({"rulez": {}}).to_string().into_bytes(),
    );
    assert_eq!(bad.status, 400);
    let cleanup = f.admin_send("POST", "/api/admin/files/cleanup", &[], Vec::new());
    assert_eq!(cleanup.json()["removed"], 0);
    assert_eq!(
        f.send("GET", "/api/admin/buckets", &[], Vec::new()).status,
        401
    );
    assert_eq!(
        f.admin_send("DELETE", "/api/admin/buckets/avatars", &[], Vec::new())
            .status,
        200
    );
}

#[test]
fn urbackend_storage_flow() {
    let f = fixture();
    let publishable =
        f.db.keys()
            .create(NewApiKey::new(KeyKind::Publishable, "web"))
            .unwrap()
            .secret;
    let json_headers = |key: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("content-type", "application/json".into()),
            ("x-api-key", key.into()),
        ]
    };
    let _ = json_headers;
    let post = |key: &str, path: &str, body: Value| {
        f.send(
            "POST",
            path,
            &[("content-type", "application/json"), ("x-api-key", key)],
            body.to_string().into_bytes(),
        )
    };
    let request = json!({"filename": "report 1.txt", "contentType": "text/plain", "size": 11});
    assert_eq!(
        post(&publishable, "/api/storage/upload-request", request.clone()).status,
        403
    );
    let answer = post(&f.admin, "/api/storage/upload-request", request);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let data = &answer.json()["data"];
    let signed = data["signedUrl"].as_str().unwrap().to_owned();
    let file_path = data["filePath"].as_str().unwrap().to_owned();
    assert!(
        signed.starts_with("http://") && file_path.starts_with("storage/"),
        "{data}"
    );
    assert!(file_path.ends_with("_report_1.txt"), "{file_path}");

    // Confirming before the upload: nothing there yet.
    let early = post(
        &f.admin,
        "/api/storage/upload-confirm",
        json!({"filePath": file_path, "size": 11}),
    );
    assert_eq!(early.status, 404);
    let put = f.send(
        "PUT",
        &path_of(&signed),
        &[("content-type", "text/plain")],
        b"hello world".to_vec(),
    );
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let wrong = post(
        &f.admin,
        "/api/storage/upload-confirm",
        json!({"filePath": file_path, "size": 12}),
    );
    assert_eq!(wrong.status, 400);
    let confirmed = post(
        &f.admin,
        "/api/storage/upload-confirm",
        json!({"filePath": format!("/{file_path}"), "size": 11}),
    );
    assert_eq!(
        confirmed.status,
        200,
        "{}",
        String::from_utf8_lossy(&confirmed.body)
    );
    let url = confirmed.json()["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(confirmed.json()["data"]["provider"], "internal");
    let got = f.send("GET", &path_of(&url), &[], Vec::new());
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello world");

    // Deleting: the path rules, then the file, then 404.
    let outside = f.send(
        "DELETE",
        "/api/storage/file",
        &[
            ("content-type", "application/json"),
            ("x-api-key", &f.admin),
        ],
        json!({"path": "other/x"}).to_string().into_bytes(),
    );
    assert_eq!(outside.status, 403);
    let delete = |path: &str| {
        f.send(
            "DELETE",
            "/api/storage/file",
            &[
                ("content-type", "application/json"),
                ("x-api-key", &f.admin),
            ],
            json!({"path": path}).to_string().into_bytes(),
        )
    };
    assert_eq!(delete("storage/../x").status, 400);
    let deleted = delete(&file_path);
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["data"]["deleted"], true);
    assert_eq!(delete(&file_path).status, 404);
    assert_eq!(f.send("GET", &path_of(&url), &[], Vec::new()).status, 404);

    // The direct multipart upload.
    let (kind, body) = multipart(&[("file", Some("direct.txt"), b"direct")]);
    let direct = f.send(
        "POST",
        "/api/storage/upload",
        &[("content-type", &kind), ("x-api-key", &f.admin)],
        body,
    );
    assert_eq!(
        direct.status,
        201,
        "{}",
        String::from_utf8_lossy(&direct.body)
    );
    let url = direct.json()["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(
        f.send("GET", &path_of(&url), &[], Vec::new()).body,
        b"direct"
    );
}

#[test]
fn cocobase_files() {
    let f = fixture();
    let signup = |email: &str| {
        let body = json!({"email": email, "password": "a long enough passphrase"});
        let answer = f.send(
            "POST",
            "/auth-collections/signup",
            &[
                ("content-type", "application/json"),
                ("x-api-key", &f.admin),
            ],
            body.to_string().into_bytes(),
        );
        assert_eq!(answer.status, 201);
        answer.json()["access_token"].as_str().unwrap().to_owned()
    };
    let alice = signup("alice@example.com");
    let bearer = format!("Bearer {alice}");

    // upload_file: the admin key, one part `file`.
    let (kind, body) = multipart(&[("file", Some("logo.png"), b"\x89PNG")]);
    let answer = f.send(
        "POST",
        "/collections/file",
        &[("content-type", &kind), ("x-api-key", &f.admin)],
        body,
    );
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["filename"], "logo.png");
    assert_eq!(answer.json()["size"], 4);
    let logo = answer.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(
        f.send("GET", &path_of(&logo), &[], Vec::new()).body,
        b"\x89PNG"
    );

    // A document with a file field, created by a user: the URL is in the field.
    f.db.collections()
        .put(
            "posts",
            larder::CollectionSpec::new()
                .rules(Rules {
                    list: Rule::Owner,
                    view: Rule::Owner,
                    create: Rule::Authenticated,
                    update: Rule::Owner,
                    delete: Rule::Owner,
                })
                .owner_field("owner_id"),
        )
        .unwrap();
    let data = json!({"title": "hi"}).to_string();
    let (kind, body) = multipart(&[
        ("data", None, data.as_bytes()),
        ("cover", Some("cover.jpg"), b"JPEG"),
    ]);
    let created = f.send(
        "POST",
        "/collections/documents?collection=posts",
        &[("content-type", &kind), ("authorization", &bearer)],
        body,
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let doc = created.json();
    assert_eq!(doc["data"]["title"], "hi");
    let cover = doc["data"]["cover"].as_str().unwrap().to_owned();
    assert_eq!(
        f.send("GET", &path_of(&cover), &[], Vec::new()).body,
        b"JPEG"
    );
    let id = doc["id"].as_str().unwrap().to_owned();

    // Updating with another file.
    let (kind, body) = multipart(&[("thumb", Some("t.png"), b"THUMB")]);
    let updated = f.send(
        "PATCH",
        &format!("/collections/posts/documents/{id}"),
        &[("content-type", &kind), ("authorization", &bearer)],
        body,
    );
    assert_eq!(
        updated.status,
        200,
        "{}",
        String::from_utf8_lossy(&updated.body)
    );
    let thumb = updated.json()["data"]["thumb"].as_str().unwrap().to_owned();
    assert_eq!(updated.json()["data"]["cover"], cover.as_str());

    // Another user cannot attach files to alice's document.
    let bob = signup("bob@example.com");
    let (kind, body) = multipart(&[("evil", Some("e.png"), b"E")]);
    let refused = f.send(
        "PATCH",
        &format!("/collections/posts/documents/{id}"),
        &[
            ("content-type", &kind),
            ("authorization", &format!("Bearer {bob}")),
        ],
        body,
    );
    assert_eq!(refused.status, 404);

    // Deleting the document deletes its files.
    let deleted = f.send(
        "DELETE",
        &format!("/collections/posts/documents/{id}"),
        &[("authorization", &bearer)],
        Vec::new(),
    );
    assert_eq!(deleted.status, 200);
    assert_eq!(f.send("GET", &path_of(&cover), &[], Vec::new()).status, 404);
    assert_eq!(f.send("GET", &path_of(&thumb), &[], Vec::new()).status, 404);
    // Only the logo (not attached to anything) is left.
    assert_eq!(f.db.buckets().info("uploads").unwrap().file_count, 1);

    // A failing create stores nothing: an unknown collection.
    let (kind, body) = multipart(&[("data", None, b"{}"), ("f", Some("x.png"), b"X")]);
    let failed = f.send(
        "POST",
        "/collections/documents?collection=nope",
        &[("content-type", &kind), ("authorization", &bearer)],
        body,
    );
    assert_eq!(failed.status, 404);
    assert_eq!(f.db.buckets().info("uploads").unwrap().file_count, 1);

    // Signup and profile update with files: the URLs go into the profile data.
    let data = json!({"email": "carol@example.com", "password": "a long enough passphrase", "data": {"name": "C"}, "roles": null}).to_string();
    let (kind, body) = multipart(&[
        ("data", None, data.as_bytes()),
        ("avatar", Some("avatar"), b"AV"),
    ]);
    let signed = f.send(
        "POST",
        "/auth-collections/signup",
        &[("content-type", &kind), ("x-api-key", &f.admin)],
        body,
    );
    assert_eq!(
        signed.status,
        201,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let user = &signed.json()["user"];
    assert_eq!(user["data"]["name"], "C");
    let avatar = user["data"]["avatar"].as_str().unwrap().to_owned();
    assert_eq!(
        f.send("GET", &path_of(&avatar), &[], Vec::new()).body,
        b"AV"
    );
    let carol = signed.json()["access_token"].as_str().unwrap().to_owned();
    let data = json!({"data": {"name": "Carol"}}).to_string();
    let (kind, body) = multipart(&[
        ("data", None, data.as_bytes()),
        ("banner", Some("b.png"), b"BN"),
    ]);
    let updated = f.send(
        "PATCH",
        "/auth-collections/user",
        &[
            ("content-type", &kind),
            ("authorization", &format!("Bearer {carol}")),
        ],
        body,
    );
    assert_eq!(
        updated.status,
        200,
        "{}",
        String::from_utf8_lossy(&updated.body)
    );
    assert_eq!(updated.json()["data"]["name"], "Carol");
    assert!(
        updated.json()["data"]["banner"]
            .as_str()
            .unwrap()
            .ends_with("_b.png")
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn multipart_uploads_of_several_megabytes_round_trip() {
    let f = fixture();
    f.public_bucket("big");
    // Past axum's own 2 MiB default: the bucket's 10 MiB limit is the one that holds.
    let bytes = payload(5 * 1024 * 1024 + 17);
    let (kind, body) = multipart(&[("file", Some("video.bin"), &bytes)]);
    let answer = f.admin_send("POST", "/api/files/big", &[("content-type", &kind)], body);
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let file = answer.json();
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    let got = f.send(
        "GET",
        &path_of(file["url"].as_str().unwrap()),
        &[],
        Vec::new(),
    );
    assert_eq!(got.status, 200);
    assert_eq!(sha256_hex(&got.body), sha256_hex(&bytes));

    // The same through urBackend's multipart route.
    let bytes = payload(3 * 1024 * 1024);
    let (kind, body) = multipart(&[("file", Some("scan.pdf"), &bytes)]);
    let answer = f.admin_send(
        "POST",
        "/api/storage/upload",
        &[("content-type", &kind)],
        body,
    );
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let url = answer.json()["data"]["url"].as_str().unwrap().to_owned();
    let got = f.send("GET", &path_of(&url), &[], Vec::new());
    assert_eq!(sha256_hex(&got.body), sha256_hex(&bytes));
}

/// A database on a manual clock, its admin key and its router.
fn clocked_router() -> (Db, larder::ManualClock, String, axum::Router) {
    let (db, clock) = common::memory_db();
    let admin = db
        .keys()
        .create(NewApiKey::new(KeyKind::Secret, "app"))
        .unwrap()
        .secret;
    let router = larder::router(db.clone(), &ServerConfig::default());
    (db, clock, admin, router)
}

#[test]
fn a_multipart_body_broken_after_its_file_part_stores_nothing() {
    let (db, clock, admin, router) = clocked_router();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    let bytes = payload(700_000);
    let (kind, mut body) = multipart(&[("file", Some("a.bin"), &bytes), ("note", None, b"x")]);
    // Cut off inside the part after the file: the closing boundary never comes.
    body.truncate(body.len() - 30);
    for path in ["/api/files/b", "/api/storage/upload"] {
        let answer = call_raw(
            &router,
            "POST",
            path,
            &[("content-type", &kind), ("x-api-key", &admin)],
            body.clone(),
        );
        assert_eq!(answer.status, 400, "{path}");
    }
    assert_eq!(db.buckets().info("b").unwrap().file_count, 0);
    assert!(
        db.bucket("storage")
            .list()
            .is_ok_and(|files| files.is_empty())
    );
    // Nothing staged was left behind either: an hour later there is nothing to clean.
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(db.buckets().cleanup().unwrap(), 0);
}

#[test]
fn a_failed_signed_upload_keeps_its_link_until_it_expires() {
    let (db, clock, admin, router) = clocked_router();
    db.buckets().create("b", BucketSpec::new()).unwrap();
    let grant = |router: &axum::Router| {
        let request =
            json!({"bucket": "b", "filename": "s.txt", "contentType": "text/plain", "size": 5});
        let answer = call_raw(
            router,
            "POST",
            "/api/uploads",
            &[("content-type", "application/json"), ("x-api-key", &admin)],
            request.to_string().into_bytes(),
        );
        assert_eq!(answer.status, 201);
        path_of(answer.json()["uploadUrl"].as_str().unwrap())
    };
    let put = |path: &str, kind: &str, body: &[u8]| {
        call_raw(
            &router,
            "PUT",
            path,
            &[("content-type", kind)],
            body.to_vec(),
        )
        .status
    };
    let link = grant(&router);
    assert_eq!(put(&link, "text/html", b"hello"), 400);
    assert_eq!(put(&link, "text/plain", b"hell"), 400);
    assert_eq!(put(&link, "text/plain", b"hello!"), 400);
    assert_eq!(db.buckets().info("b").unwrap().file_count, 0);
    assert_eq!(put(&link, "text/plain", b"hello"), 201);
    assert_eq!(put(&link, "text/plain", b"hello"), 403);
    // Ten minutes and a second later the link is dead.
    let link = grant(&router);
    clock.advance(std::time::Duration::from_secs(601));
    assert_eq!(put(&link, "text/plain", b"hello"), 403);
    assert_eq!(db.buckets().info("b").unwrap().file_count, 1);
}

#[test]
fn file_urls_use_the_public_url_setting() {
    let f = fixture();
    f.public_bucket("b");
    let before = f.upload("b", "a.txt", "text/plain", b"a".to_vec());
    assert!(
        before["url"].as_str().unwrap().starts_with("http://"),
        "{before}"
    );
    f.db.project()
        .update_settings(&json!({"PUBLIC_URL": "https://files.example.com/"}))
        .unwrap();
    let after = f.upload("b", "b.txt", "text/plain", b"b".to_vec());
    let url = after["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "https://files.example.com/api/files/b/{}",
            after["name"].as_str().unwrap()
        )
    );
    let request =
        json!({"bucket": "b", "filename": "s.txt", "contentType": "text/plain", "size": 5});
    let grant = f.admin_send(
        "POST",
        "/api/uploads",
        &[("content-type", "application/json")],
        request.to_string().into_bytes(),
    );
    assert!(
        grant.json()["uploadUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://files.example.com/api/uploads/")
    );
}
