//! Files over HTTP: the native routes under `/api/files` and `/api/uploads`, and the pieces
//! every dialect's storage routes share — streaming a request body into an upload, serving a
//! file with ranges and safe headers, and the absolute URL of a file.
//!
//! Routes (credentials as everywhere: `x-api-key` and/or `Authorization: Bearer`; none is the
//! anonymous caller, which a bucket's `public` rules admit):
//! - `GET /api/files/{bucket}` lists files; `POST` uploads one (multipart field `file`, or the
//!   raw body with `?filename=` and its `Content-Type`).
//! - `GET /api/files/{bucket}/{name}` downloads (ranges, `ETag`); `DELETE` deletes.
//! - `POST /api/uploads` `{bucket, filename, contentType, size}` makes a one-time signed upload
//!   URL; `PUT /api/uploads/{token}` with the bytes redeems it (the token is the credential).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Presented, Shape, blocking, json_response};
use crate::access::principal::Principal;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::files::{Bucket, FileInfo, FileReader, Upload};

/// How long a signed upload URL stays valid.
pub(crate) const UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(600);
/// Bytes handed to the blocking writer at a time (four stored chunks).
const WRITE_BATCH: usize = 1024 * 1024;

type Answer = std::result::Result<Response, ApiError>;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::Native)
}

/// The principal of a request's credentials (none: the anonymous caller), off the async workers.
pub(crate) async fn principal(state: &AppState, presented: Presented) -> Result<Principal> {
    let db = state.db.clone();
    blocking(move || presented.principal(&db)).await
}

/// The address clients reach this server by: the `PUBLIC_URL` setting, else the request's
/// `Host` when it is a plain `host[:port]`, else the address the server listens on.
pub(crate) fn base_url(db: &Db, headers: &HeaderMap) -> String {
    if let Some(url) = db.project().settings().ok().and_then(|s| s.public_url) {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}"),
        None => db
            .store()
            .served_url()
            .unwrap_or_else(|| "http://127.0.0.1".to_owned()),
    }
}

/// Where a file is served.
pub(crate) fn file_url(base: &str, info: &FileInfo) -> String {
    format!("{base}/api/files/{}/{}", info.bucket, info.name)
}

/// A file's metadata as the native routes show it.
fn file_view(base: &str, info: &FileInfo) -> Value {
    let mut view = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
    if let Some(map) = view.as_object_mut() {
        map.insert("url".into(), Value::String(file_url(base, info)));
    }
    view
}

/// Feeds bytes from an async source into an upload and stores the file (see [`feed`]).
pub(crate) async fn store(
    upload: Upload,
    source: impl Source,
    body_limit: u64,
) -> Result<FileInfo> {
    let upload = feed(upload, source, body_limit).await?;
    finish(upload).await
}

/// Feeds every byte of an async source into an upload, unfinished: nothing is stored until
/// [`finish`]. The bytes reach the database in batches on the blocking pool; the upload's size
/// limit stops the source early. `body_limit` is the limit the request body was held to (see
/// [`body_limit`]). On failure the upload is abandoned, which removes what it staged.
pub(crate) async fn feed(
    upload: Upload,
    mut source: impl Source,
    body_limit: u64,
) -> Result<Upload> {
    let mut upload = Some(upload);
    let mut batch = Vec::new();
    loop {
        let piece = match source.next_piece().await {
            Ok(piece) => piece,
            Err(cut) => {
                abandon(upload).await;
                return Err(cut.into_error(body_limit));
            }
        };
        let last = piece.is_none();
        if let Some(piece) = piece {
            batch.extend_from_slice(&piece);
        }
        if batch.len() >= WRITE_BATCH || (last && !batch.is_empty()) {
            let bytes = std::mem::take(&mut batch);
            let mut current = upload.take().ok_or_else(lost)?;
            // A refused write drops the upload on the blocking pool, where its cleanup belongs.
            upload = Some(
                blocking(move || {
                    current.write(&bytes)?;
                    Ok(current)
                })
                .await?,
            );
        }
        if last {
            return upload.ok_or_else(lost);
        }
    }
}

/// Stores a fed upload, on the blocking pool.
pub(crate) async fn finish(upload: Upload) -> Result<FileInfo> {
    blocking(move || upload.finish()).await
}

/// Drops an unfinished upload on the blocking pool: removing its staged chunks is a write.
async fn abandon(upload: Option<Upload>) {
    if let Some(upload) = upload {
        let _ = blocking(move || {
            drop(upload);
            Ok(())
        })
        .await;
    }
}

fn lost() -> Error {
    Error::internal(std::io::Error::other("an upload was lost"))
}

/// The limit a request's body is held to, as the body-limit layer set it.
pub(crate) fn body_limit(request: &Request) -> u64 {
    request
        .extensions()
        .get::<super::BodyLimit>()
        .map_or(u64::MAX, |limit| limit.0)
}

/// Why a request body stopped early.
pub(crate) enum Cut {
    /// It passed the body limit (413).
    TooLarge,
    /// It was malformed or cut off (400).
    Broken(String),
}

impl Cut {
    fn of_body(error: &(dyn std::error::Error + 'static)) -> Cut {
        let mut source = Some(error);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return Cut::TooLarge;
            }
            source = e.source();
        }
        Cut::Broken("the request body was cut off".into())
    }

    pub(crate) fn of_multipart(error: &axum::extract::multipart::MultipartError) -> Cut {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Cut::TooLarge
        } else {
            Cut::Broken(format!("malformed multipart body: {}", error.body_text()))
        }
    }

    pub(crate) fn into_error(self, body_limit: u64) -> Error {
        match self {
            Cut::TooLarge => Error::too_large("request body", body_limit),
            Cut::Broken(message) => Error::invalid(message),
        }
    }
}

/// Where the bytes of an upload come from: a request body or a multipart part.
pub(crate) trait Source: Send {
    /// The next bytes, or `None` at the end.
    fn next_piece(
        &mut self,
    ) -> impl Future<Output = std::result::Result<Option<Bytes>, Cut>> + Send;
}

impl Source for Body {
    async fn next_piece(&mut self) -> std::result::Result<Option<Bytes>, Cut> {
        loop {
            match self.frame().await {
                None => return Ok(None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(error)) => return Err(Cut::of_body(&error)),
            }
        }
    }
}

impl Source for axum::extract::multipart::Field<'_> {
    async fn next_piece(&mut self) -> std::result::Result<Option<Bytes>, Cut> {
        self.chunk().await.map_err(|e| Cut::of_multipart(&e))
    }
}

/// Serves a file (or the requested range of it) with safe headers: the stored type, `nosniff`
/// (set for every answer), a sandboxing CSP, `attachment` for every type a browser could run,
/// an `ETag` (the SHA-256) with `If-None-Match`, and single byte ranges.
pub(crate) async fn serve(
    db: &Db,
    principal: Principal,
    bucket: &str,
    name: &str,
    request_headers: &HeaderMap,
) -> Result<Response> {
    let bucket = db.bucket_as(bucket, principal);
    let name = name.to_owned();
    let mut reader = blocking(move || bucket.open(&name)).await?;
    let info = reader.info().clone();
    let etag = format!("\"{}\"", info.sha256);
    let mut response = Response::builder();
    let headers = response
        .headers_mut()
        .ok_or_else(|| Error::internal(std::io::Error::other("response builder")))?;
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&info.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&disposition(&info)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let matches_etag = |value: &HeaderValue| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    };
    if request_headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(matches_etag)
    {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(Error::internal);
    }
    // `If-Range` with another validator: the file changed, send it whole.
    let range_applies = request_headers
        .get(header::IF_RANGE)
        .is_none_or(matches_etag);
    let range = request_headers
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, info.size));
    let status = match range {
        Some(Some(RangeAnswer::Unsatisfiable)) => {
            let value = format!("bytes */{}", info.size);
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, value)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"error": {"code": "invalid_input", "message": "the range is outside the file"}})
                        .to_string(),
                ))
                .map_err(Error::internal);
        }
        Some(Some(RangeAnswer::Bytes(start, end))) => {
            reader.set_range(start, end)?;
            response = response.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{}", end - 1, info.size),
            );
            StatusCode::PARTIAL_CONTENT
        }
        // No range, or one we do not serve (several ranges, other units): the whole file.
        _ => StatusCode::OK,
    };
    response
        .status(status)
        .header(header::CONTENT_LENGTH, reader.remaining())
        .body(stream(reader))
        .map_err(Error::internal)
}

enum RangeAnswer {
    Bytes(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range as `start..end` (end exclusive). `None`: ignore the header (several
/// ranges or a malformed one, which RFC 9110 lets a server answer with the whole file).
fn parse_range(value: &str, size: u64) -> Option<RangeAnswer> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return Some(RangeAnswer::Unsatisfiable);
        }
        (size.saturating_sub(suffix), size)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            let last: u64 = last.parse().ok()?;
            if last < start {
                return None;
            }
            last.saturating_add(1).min(size)
        };
        (start, end)
    };
    if start >= size {
        return Some(RangeAnswer::Unsatisfiable);
    }
    Some(RangeAnswer::Bytes(start, end))
}

/// Types a browser shows without running anything; every other type is downloaded.
fn is_inline_safe(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "image/bmp"
            | "text/plain"
            | "application/pdf"
            | "application/json"
    ) || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

fn disposition(info: &FileInfo) -> String {
    let kind = if is_inline_safe(&info.content_type) {
        "inline"
    } else {
        "attachment"
    };
    // RFC 6266: an ASCII fallback and the exact name in RFC 8187 encoding.
    let ascii: String = info
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(&info.filename, RFC8187_ESCAPED).to_string();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Every byte outside RFC 8187's `attr-char` is percent-encoded.
const RFC8187_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// How long a download may wait for its client to take the next piece before it is cut off
/// (its snapshot of the database is released then, so freed pages can be reused).
const DOWNLOAD_IDLE: Duration = Duration::from_secs(60);

/// A response body read piece by piece on the blocking pool: the file is never whole in
/// memory, no thread waits on a slow client between pieces, a client that goes away stops the
/// reading and one that takes nothing for [`DOWNLOAD_IDLE`] is cut off.
fn stream(reader: FileReader) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut reader = reader;
        loop {
            let read = tokio::task::spawn_blocking(move || {
                let piece = reader.next_piece();
                (reader, piece)
            })
            .await;
            let Ok((returned, piece)) = read else {
                let _ = sender
                    .send(Err(std::io::Error::other("the file could not be read")))
                    .await;
                return;
            };
            reader = returned;
            let piece = match piece {
                Ok(Some(piece)) => Ok(Bytes::from(piece)),
                Ok(None) => return,
                Err(error) => Err(std::io::Error::other(error)),
            };
            let failed = piece.is_err();
            if sender.send_timeout(piece, DOWNLOAD_IDLE).await.is_err() || failed {
                return;
            }
        }
    });
    Body::new(super::toolkit::ChannelBody::new(receiver))
}

/// A multipart request body with the limit it is held to, so that every error names it.
pub(crate) struct Parts {
    multipart: Multipart,
    limit: u64,
}

impl Parts {
    /// Reads `request` as multipart/form-data.
    pub(crate) async fn of(request: Request, db: &Db) -> Result<Parts> {
        let limit = body_limit(&request);
        let state = AppState { db: db.clone() };
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| Error::invalid(e.body_text()))?;
        Ok(Parts { multipart, limit })
    }

    /// The next part, or `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<axum::extract::multipart::Field<'_>>> {
        let limit = self.limit;
        self.multipart
            .next_field()
            .await
            .map_err(|e| Cut::of_multipart(&e).into_error(limit))
    }

    /// The limit the body is held to.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The part named `file`, stored in `bucket` (other parts are skipped). The file is stored
    /// only once the whole body has arrived intact: a body broken after the file part leaves
    /// nothing behind.
    pub(crate) async fn store_file_part(mut self, bucket: &Bucket) -> Result<FileInfo> {
        let limit = self.limit;
        let mut fed = None;
        loop {
            let field = match self.next().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(error) => {
                    abandon(fed).await;
                    return Err(error);
                }
            };
            if field.name() == Some("file") && fed.is_none() {
                fed = Some(feed_field(|name, kind| bucket.upload(name, kind), field, limit).await?);
            }
        }
        let upload = fed.ok_or_else(|| Error::invalid("send the file in a part named `file`"))?;
        finish(upload).await
    }
}

/// The file part of a multipart upload, stored: its filename and content type, then its bytes.
pub(crate) async fn store_field(
    upload: impl FnOnce(&str, &str) -> Result<Upload>,
    field: axum::extract::multipart::Field<'_>,
    body_limit: u64,
) -> Result<FileInfo> {
    finish(feed_field(upload, field, body_limit).await?).await
}

/// The file part of a multipart upload, fed but not yet stored (see [`feed`]).
async fn feed_field(
    upload: impl FnOnce(&str, &str) -> Result<Upload>,
    field: axum::extract::multipart::Field<'_>,
    body_limit: u64,
) -> Result<Upload> {
    let filename = field
        .file_name()
        .or(field.name())
        .unwrap_or("file")
        .to_owned();
    let guessed = mime_of(&filename);
    let content_type = field.content_type().unwrap_or(guessed).to_owned();
    let upload = upload(&filename, &content_type)?;
    feed(upload, field, body_limit).await
}

/// The content type of a file part sent without one, from its extension.
fn mime_of(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------------------------------------
// The native routes.

pub(super) async fn list(
    State(state): State<AppState>,
    presented: Presented,
    Path(bucket): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let principal = principal(&state, presented).await.map_err(fail)?;
    let db = state.db.clone();
    let files = blocking(move || db.bucket_as(&bucket, principal).list())
        .await
        .map_err(fail)?;
    let base = base_url(&state.db, &headers);
    let views: Vec<Value> = files.iter().map(|f| file_view(&base, f)).collect();
    Ok(json_response(StatusCode::OK, json!({ "files": views })))
}

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    filename: Option<String>,
}

pub(super) async fn upload(
    State(state): State<AppState>,
    presented: Presented,
    Path(bucket): Path<String>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Answer {
    let principal = principal(&state, presented).await.map_err(fail)?;
    let base = base_url(&state.db, request.headers());
    let bucket = state.db.bucket_as(&bucket, principal);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let info = if content_type.starts_with("multipart/form-data") {
        let parts = Parts::of(request, &state.db).await.map_err(fail)?;
        parts.store_file_part(&bucket).await.map_err(fail)?
    } else {
        let filename = query.filename.unwrap_or_else(|| "file".to_owned());
        let upload = bucket.upload(&filename, &content_type).map_err(fail)?;
        let limit = body_limit(&request);
        store(upload, request.into_body(), limit)
            .await
            .map_err(fail)?
    };
    Ok(json_response(StatusCode::CREATED, file_view(&base, &info)))
}

pub(super) async fn download(
    State(state): State<AppState>,
    presented: Presented,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let principal = principal(&state, presented).await.map_err(fail)?;
    serve(&state.db, principal, &bucket, &name, &headers)
        .await
        .map_err(fail)
}

pub(super) async fn remove(
    State(state): State<AppState>,
    presented: Presented,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let principal = principal(&state, presented).await.map_err(fail)?;
    let db = state.db.clone();
    let info = blocking(move || db.bucket_as(&bucket, principal).delete(&name))
        .await
        .map_err(fail)?;
    let base = base_url(&state.db, &headers);
    Ok(json_response(StatusCode::OK, file_view(&base, &info)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GrantRequest {
    bucket: String,
    filename: String,
    content_type: String,
    size: u64,
}

pub(super) async fn grant(
    State(state): State<AppState>,
    presented: Presented,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let principal = principal(&state, presented).await.map_err(fail)?;
    let request: GrantRequest = serde_json::from_slice(&body)
        .map_err(|e| fail(Error::invalid(format!("invalid request body: {e}"))))?;
    let bucket = state.db.bucket_as(&request.bucket, principal);
    let grant = signed_upload(bucket, request.filename, request.content_type, request.size)
        .await
        .map_err(fail)?;
    let base = base_url(&state.db, &headers);
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "uploadUrl": format!("{base}/api/uploads/{}", grant.token),
            "bucket": grant.bucket,
            "name": grant.name,
            "url": format!("{base}/api/files/{}/{}", grant.bucket, grant.name),
            "expiresAt": grant.expires_at,
        }),
    ))
}

/// Redeems a signed upload URL: the bytes of the body, of the declared type and size.
pub(crate) async fn redeem_upload(db: &Db, token: String, request: Request) -> Result<FileInfo> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let grant_db = db.clone();
    let upload = blocking(move || grant_db.buckets().redeem_grant(&token, &content_type)).await?;
    let limit = body_limit(&request);
    store(upload, request.into_body(), limit).await
}

pub(super) async fn redeem(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Answer {
    let base = base_url(&state.db, request.headers());
    let info = redeem_upload(&state.db, token, request)
        .await
        .map_err(fail)?;
    Ok(json_response(StatusCode::CREATED, file_view(&base, &info)))
}

/// A signed upload link for one file of a declared name, type and size in `bucket`, as its
/// handle's principal may (the native route and urBackend's upload request).
pub(crate) async fn signed_upload(
    bucket: Bucket,
    filename: String,
    content_type: String,
    size: u64,
) -> Result<crate::files::UploadGrant> {
    blocking(move || bucket.grant_upload(&filename, &content_type, size, UPLOAD_URL_LIFETIME)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Option<(u64, u64)> {
        match parse_range(value, size) {
            Some(RangeAnswer::Bytes(start, end)) => Some((start, end)),
            Some(RangeAnswer::Unsatisfiable) => Some((u64::MAX, u64::MAX)),
            None => None,
        }
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=0-0", 10), Some((0, 1)));
        assert_eq!(range("bytes=2-", 10), Some((2, 10)));
        assert_eq!(range("bytes=-3", 10), Some((7, 10)));
        assert_eq!(range("bytes=-30", 10), Some((0, 10)));
        assert_eq!(range("bytes=5-100", 10), Some((5, 10)));
        assert_eq!(range("bytes=10-", 10), Some((u64::MAX, u64::MAX)));
        assert_eq!(range("bytes=-0", 10), Some((u64::MAX, u64::MAX)));
        assert_eq!(range("bytes=0-1,4-5", 10), None);
        assert_eq!(range("bytes=5-2", 10), None);
        assert_eq!(range("items=0-1", 10), None);
        assert_eq!(range("bytes=x-1", 10), None);
    }

    #[test]
    fn risky_types_are_downloaded_not_shown() {
        for risky in [
            "text/html",
            "image/svg+xml",
            "application/xml",
            "text/javascript",
            "application/octet-stream",
        ] {
            assert!(!is_inline_safe(risky), "{risky}");
        }
        for safe in [
            "image/png",
            "text/plain; charset=utf-8",
            "video/mp4",
            "IMAGE/JPEG",
        ] {
            assert!(is_inline_safe(safe), "{safe}");
        }
    }
}
