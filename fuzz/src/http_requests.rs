//! Any request through the real router: a method, a route of any dialect or the admin API with
//! fuzzed path segments, query string, content type and body (JSON composed from meaningful
//! pieces, MessagePack, multipart or raw bytes), from every kind of caller. Each input runs on a
//! fresh copy of the same site, so inputs replay alike.
//!
//! Oracles: [`check_answer`]'s (never a 5xx for client input, no hidden field and no other
//! user's document in any answer), and the database passes redb's integrity check afterwards.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::Request;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::site::{Caller, HIDDEN_MARK, Keys, PRIVATE_MARK, Site, check_answer};
use super::{Piece, Word};

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE",
];
/// `{c}` is a collection, `{id}` a document, user or key id, `{x}` any segment.
const ROUTES: &[&str] = &[
    "/collections/{c}/documents",
    "/collections/{c}/documents/{id}",
    "/collections/documents",
    "/collections/{c}/batch/documents/create",
    "/collections/{c}/batch/documents/update",
    "/collections/{c}/batch/documents/delete",
    "/collections/{c}/query/documents/aggregate",
    "/collections/",
    "/collections/{c}",
    "/collections/file",
    "/auth-collections/signup",
    "/auth-collections/login",
    "/auth-collections/user",
    "/auth-collections/users/{id}",
    "/auth-collections/2fa/verify",
    "/auth-collections/verify-email/verify",
    "/api/data/{c}",
    "/api/data/{c}/{id}",
    "/api/userAuth/signup",
    "/api/userAuth/login",
    "/api/userAuth/refresh-token",
    "/api/userAuth/update-profile",
    "/api/userAuth/change-password",
    "/api/userAuth/public/{x}",
    "/api/userAuth/reset-password",
    "/api/mail/send",
    "/api/storage/upload-request",
    "/api/storage/upload-confirm",
    "/api/storage/upload",
    "/api/storage/blob/{x}",
    "/api/storage/public/{x}",
    "/api/storage/file",
    "/api/auth/token",
    "/api/auth/register",
    "/api/auth/keys/{id}",
    "/api/auth/permissions",
    "/api/auth/keys/{id}/permissions/collections/{c}",
    "/api/insert/{c}",
    "/api/find/{c}/{id}",
    "/api/update/{c}/{id}",
    "/api/delete/{c}/{id}",
    "/api/batch/insert/{c}",
    "/api/batch/update/{c}",
    "/api/batch/delete/{c}",
    "/api/collections/{c}",
    "/token/refresh/",
    "/api/admin/collections/{c}",
    "/api/admin/users/{id}",
    "/api/admin/keys/{id}",
    "/api/admin/settings",
    "/api/admin/env/{x}",
    "/api/admin/buckets/{x}",
    "/api/files/{x}",
    "/api/files/{x}/{id}",
    "/api/uploads",
    "/api/uploads/{x}",
    "/auth/reset-password",
    "/.well-known/jwks.json",
];
const COLLECTIONS: &[&str] = &["notes", "pub", "fresh", "users", "_x", "Notes", "a.b", ""];
const IDS: &[&str] = &[
    "note1", "other1", "pub1", "missing", "me", "..", "%2e%2e", "a b", "",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/msgpack",
    "application/x-msgpack",
    "multipart/form-data; boundary=B",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/json; charset=utf-16",
];
const KEYS: &[&str] = &[
    "data",
    "id",
    "_id",
    "owner",
    "secret",
    "n",
    "s",
    "tags",
    "stats",
    "email",
    "password",
    "username",
    "name",
    "created_at",
    "updated_at",
    "filter",
    "ids",
    "updates",
    "documents",
    "api_key",
    "refresh",
    "collection",
    "filename",
    "contentType",
    "size",
    "fileId",
    "path",
    "role",
    "roles",
    "read",
    "write",
    "select_fields",
    "writable_fields",
    "expires_at",
];

#[derive(Debug, Arbitrary)]
pub struct Input {
    caller: Caller,
    method: Word,
    route: Word,
    segments: Vec<Word>,
    query: String,
    content_type: Option<Word>,
    body: BodyInput,
}

#[derive(Debug, Arbitrary)]
enum BodyInput {
    Empty,
    Json(Piece),
    MessagePack(Piece),
    /// Parts of a multipart body with boundary `B`: name, filename, content.
    Multipart(Vec<(Word, Option<String>, Vec<u8>)>),
    Raw(Vec<u8>),
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some(input) = super::decode::<Input>(data) else {
        return;
    };
    static IMAGE: OnceLock<(Vec<u8>, Keys)> = OnceLock::new();
    let (image, keys) = IMAGE.get_or_init(Site::image);

    let mut segments = input.segments.iter();
    let mut next = |words: &[&str]| {
        let text = segments
            .next()
            .map_or_else(|| words[0].to_owned(), |w| w.pick(words));
        utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string()
    };
    let mut path = input.route.pick(ROUTES);
    for (slot, words) in [("{c}", COLLECTIONS), ("{id}", IDS), ("{x}", IDS)] {
        while path.contains(slot) {
            path = path.replacen(slot, &next(words), 1);
        }
    }
    let uri = if input.query.is_empty() {
        path
    } else {
        format!("{path}?{}", input.query)
    };
    let body = match &input.body {
        BodyInput::Empty => Vec::new(),
        BodyInput::Json(piece) => piece.json(KEYS, IDS).to_string().into_bytes(),
        BodyInput::MessagePack(piece) => rmp_serde::to_vec_named(&piece.json(KEYS, IDS)).unwrap(),
        BodyInput::Multipart(parts) => multipart(parts),
        BodyInput::Raw(bytes) => bytes.clone(),
    };
    let sent = [uri.as_bytes(), &body].concat();
    // The marks stand for data the caller must never see: a request may not plant them.
    if [HIDDEN_MARK, PRIVATE_MARK].iter().any(|mark| {
        let tail = &mark.as_bytes()[mark.len() - 6..];
        sent.windows(tail.len()).any(|w| w == tail)
    }) {
        return;
    }
    let mut request = Request::builder()
        .method(input.method.pick(METHODS).as_str())
        .uri(&uri);
    if let Some(content_type) = &input.content_type {
        request = request.header("content-type", content_type.pick(CONTENT_TYPES));
    }
    // A method or URI that does not parse never reaches a server.
    let Ok(mut request) = request.body(Body::from(body)) else {
        return;
    };
    let site = Site::from_image(image, keys);
    site.authorize(input.caller, &mut request);
    let (status, answer) = site.send(request);
    check_answer(input.caller, &sent, status, &answer);
    assert!(
        site.into_db().check_integrity().unwrap(),
        "integrity after {uri}"
    );
}

fn multipart(parts: &[(Word, Option<String>, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(b"--B\r\nContent-Disposition: form-data; name=\"");
        body.extend_from_slice(name.pick(KEYS).as_bytes());
        body.push(b'"');
        if let Some(filename) = filename {
            body.extend_from_slice(b"; filename=\"");
            body.extend_from_slice(filename.as_bytes());
            body.push(b'"');
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--B--\r\n");
    body
}
