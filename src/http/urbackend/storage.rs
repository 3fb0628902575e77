//! urBackend storage (`/api/storage/*`), kept in the database file: a signed one-time upload
//! URL served by larder itself, the blob `PUT`, the confirmation, public downloads, deletes,
//! and the direct multipart upload. Files live in the bucket `storage` (made on first use:
//! downloads public — the generated name makes each URL unguessable — everything else for the
//! secret key; change its rules through the admin API to close downloads too).

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Answer, Caller, fail, ok};
use crate::access::rules::{Rule, Rules};
use crate::error::{Error, Result};
use crate::files::{Bucket, BucketSpec, FileInfo};
use crate::http::files::{self as http_files, UPLOAD_URL_LIFETIME, base_url};
use crate::http::toolkit::json_object;
use crate::http::{AppState, Presented, blocking};

/// The bucket urBackend files live in; paths are `storage/<name>`.
const BUCKET: &str = "storage";

/// The `storage` bucket as the caller, made on first use. Storage calls are server-side (the
/// policy's `ServerStorage`): a secret key, or a scoped key within its `files/storage` grant; a
/// publishable key is refused (403, as the hosted service does) rather than treated as an
/// anonymous caller.
async fn bucket(caller: &Caller) -> Result<Bucket> {
    let bucket = caller.actor()?.server_bucket(BUCKET)?;
    let db = caller.db.clone();
    blocking(move || {
        db.buckets().ensure_exists(
            BUCKET,
            BucketSpec::new().rules(Rules {
                view: Rule::Public,
                ..Rules::default()
            }),
        )?;
        Ok(bucket)
    })
    .await
}

/// A storage path as the SDK sends it: percent-decoded once, leading `/` dropped; it must be
/// `storage/<name>` (anything else, `..` included, is refused without being looked at).
fn file_name(path: &str) -> Result<String> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Error::invalid("the path is not valid UTF-8"))?;
    let path = decoded.trim_start_matches('/');
    match path.split_once('/') {
        Some((BUCKET, name)) => {
            crate::files::validate_file_name(name)?;
            Ok(name.to_owned())
        }
        _ => Err(Error::forbidden(
            "this path is outside the project's storage",
        )),
    }
}

fn public_url(base: &str, info: &FileInfo) -> String {
    format!("{base}/api/storage/public/{}", info.path())
}

fn text(fields: &serde_json::Map<String, Value>, name: &str) -> Result<String> {
    match fields.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(Error::invalid(format!("`{name}` is required"))),
    }
}

fn size(fields: &serde_json::Map<String, Value>) -> Result<u64> {
    fields
        .get("size")
        .and_then(Value::as_u64)
        .filter(|size| *size > 0)
        .ok_or_else(|| Error::invalid("`size` must be a positive number of bytes"))
}

pub(in crate::http) async fn upload_request(
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let filename = text(&fields, "filename").map_err(fail)?;
    let content_type = text(&fields, "contentType").map_err(fail)?;
    let size = size(&fields).map_err(fail)?;
    let bucket = bucket(&caller).await.map_err(fail)?;
    let grant = http_files::signed_upload(bucket, filename, content_type, size)
        .await
        .map_err(fail)?;
    let base = base_url(&caller.db, &headers);
    Ok(ok(
        StatusCode::OK,
        json!({
            "signedUrl": format!("{base}/api/storage/blob/{}", grant.token),
            "token": null,
            "filePath": format!("{BUCKET}/{}", grant.name),
            "expiresIn": UPLOAD_URL_LIFETIME.as_secs(),
        }),
        "Upload URL created",
    ))
}

/// The signed-URL `PUT`: no key, the token is the credential.
pub(in crate::http) async fn blob(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Answer {
    let info = http_files::redeem_upload(&state.db, token, request)
        .await
        .map_err(fail)?;
    Ok(ok(
        StatusCode::OK,
        json!({"path": info.path(), "size": info.size}),
        "Uploaded",
    ))
}

pub(in crate::http) async fn upload_confirm(
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let name = file_name(&text(&fields, "filePath").map_err(fail)?).map_err(fail)?;
    let declared = size(&fields).map_err(fail)?;
    let bucket = bucket(&caller).await.map_err(fail)?;
    let info = blocking(move || bucket.info(&name))
        .await
        .map_err(|e| match e.kind() {
            crate::ErrorKind::NotFound { .. } => fail(Error::not_found(
                "an uploaded file at this path (upload it first)",
            )),
            _ => fail(e),
        })?;
    if info.size != declared {
        return Err(fail(Error::invalid(format!(
            "the uploaded file has {} bytes, not {declared}",
            info.size
        ))));
    }
    let base = base_url(&caller.db, &headers);
    Ok(ok(
        StatusCode::OK,
        json!({
            "message": "Upload confirmed",
            "path": info.path(),
            "provider": "internal",
            "url": public_url(&base, &info),
        }),
        "Upload confirmed",
    ))
}

/// The direct multipart upload (field `file`).
pub(in crate::http) async fn upload(
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> Answer {
    let bucket = bucket(&caller).await.map_err(fail)?;
    let parts = http_files::Parts::of(request, &caller.db)
        .await
        .map_err(fail)?;
    let info = parts.store_file_part(&bucket).await.map_err(fail)?;
    let base = base_url(&caller.db, &headers);
    Ok(ok(
        StatusCode::CREATED,
        json!({"url": public_url(&base, &info), "path": info.path(), "provider": "internal"}),
        "File uploaded",
    ))
}

/// Public downloads: no key needed while the bucket's `view` rule is public.
pub(in crate::http) async fn download(
    State(state): State<AppState>,
    presented: Presented,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let name = file_name(&path).map_err(fail)?;
    let principal = http_files::principal(&state, presented)
        .await
        .map_err(fail)?;
    http_files::serve(&state.db, principal, BUCKET, &name, &headers)
        .await
        .map_err(fail)
}

pub(in crate::http) async fn delete_file(caller: Caller, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let path = text(&fields, "path").map_err(fail)?;
    let name = file_name(&path).map_err(fail)?;
    let bucket = bucket(&caller).await.map_err(fail)?;
    let info = blocking(move || bucket.delete(&name)).await.map_err(fail)?;
    Ok(ok(
        StatusCode::OK,
        json!({"deleted": true, "path": info.path()}),
        "File deleted",
    ))
}
