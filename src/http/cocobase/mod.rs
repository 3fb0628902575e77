//! The Cocobase dialect (seeds 000 and 001; the `cocobase` Python SDK): `/auth-collections/*`
//! and `/collections/*`, errors as `{"detail": …}`.
//!
//! Identity, decided once here at the edge: an `x-api-key`, if sent, must be valid; a valid
//! user token runs as that user even beside the admin key (apps ship both); an invalid token is
//! 401, never a fallback; with neither a key nor a token the request is refused. On signup,
//! login and the second-factor step the SDK sends stale tokens, so a Bearer is ignored there.

pub(super) mod realtime;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::toolkit::{self, Dialect, Params, json_document, json_object, whole_number};
use super::{ApiError, AppState, Shape, blocking, json_response, no_store};
use crate::access::policy::Action;
use crate::access::principal::Principal;
use crate::access::rules::{Rule, Rules};
use crate::data::collections::{CollectionInfo, CollectionSpec};
use crate::data::documents::{Collection, Doc};
use crate::data::query::{Aggregate, Filter, Op, Order, Query, Sort};
use crate::db::Db;
use crate::error::{Error, ErrorKind, Result};
use crate::files::{BucketSpec, FileInfo, Upload};
use crate::http::files::{self as http_files, base_url, file_url};
use crate::identity::sessions::SignedIn;
use crate::identity::users::{NewUser, User};

/// The owner field of collections made through these routes (shown outside `data`).
const OWNER: &str = "owner_id";
/// Query parameters that are never filters.
const RESERVED: &[&str] = &[
    "limit",
    "offset",
    "sort",
    "order",
    "sort_by",
    "sort_order",
    "populate",
    "select",
    "count",
    "field",
    "operation",
    "collection",
];

type Answer = std::result::Result<Response, ApiError>;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::Detail)
}

fn answer(status: StatusCode, body: Value) -> Answer {
    Ok(json_response(status, body))
}

/// Cocobase's door: `{"detail"}` errors.
pub(crate) struct Cocobase;

impl Dialect for Cocobase {
    const SHAPE: Shape = Shape::Detail;
    const CREDENTIALS_REQUIRED: &'static str = "Authentication required";
}

/// A caller of the data and user routes (a key or a token required).
type Caller = toolkit::Caller<Cocobase>;
/// A caller of the public auth routes: a key, when presented, is checked.
type PublicCaller = toolkit::Visitor<Cocobase>;

/// `body["data"]` when it is an object, else the body (the SDK wraps most payloads once).
fn unwrap_data(mut body: Map<String, Value>) -> Map<String, Value> {
    match body.remove("data") {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            body.insert("data".into(), other);
            body
        }
        None => body,
    }
}

/// Document bodies: unwrapped once, and once more when the result's only key is an object
/// named `data` (the 1.5.0 SDK wraps twice).
fn document_body(body: &Bytes) -> Result<Map<String, Value>> {
    let once = unwrap_data(json_document(body)?);
    if once.len() == 1 && matches!(once.get("data"), Some(Value::Object(_))) {
        return Ok(unwrap_data(once));
    }
    Ok(once)
}

fn text(map: &Map<String, Value>, name: &str) -> Result<String> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(format!("`{name}` is required")))
}

fn user_view(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "data": user.data,
        "roles": user.roles,
        "client_id": "larder",
        "created_at": user.created_at,
        "email_verified": user.email_verified,
        "two_factor_enabled": user.two_factor_enabled,
    })
}

fn token_answer(status: StatusCode, signed_in: &SignedIn) -> Answer {
    let body = json!({
        "access_token": signed_in.access_token,
        "token_type": "bearer",
        "expires_in": signed_in.expires_in,
        "refresh_token": signed_in.refresh_token,
        "user": user_view(&signed_in.user),
    });
    Ok(no_store(json_response(status, body)))
}

/// A sign-in outcome: tokens, or the second-factor step, or the verification step.
fn sign_in_answer(status: StatusCode, outcome: Result<SignedIn>) -> Answer {
    match outcome {
        Ok(signed_in) => token_answer(status, &signed_in),
        // The SDK reads the second-factor step from a 2xx body, not from an error status.
        Err(e) if matches!(e.kind(), ErrorKind::SecondFactorRequired) => {
            Ok(no_store(json_response(
                StatusCode::OK,
                json!({"requires_2fa": true, "message": "2FA code sent to your email"}),
            )))
        }
        Err(e) if matches!(e.kind(), ErrorKind::VerificationRequired) => {
            Ok(no_store(json_response(
                super::error::status_of(e.kind()),
                json!({"requires_verification": true, "message": e.to_string()}),
            )))
        }
        Err(e) => Err(fail(e)),
    }
}

/// A signup's fields: `email`, `password`, the profile under `data`, `roles` and
/// `phone_number`.
fn new_user(fields: &Map<String, Value>) -> Result<NewUser> {
    let mut new = NewUser::new(text(fields, "email")?, text(fields, "password")?);
    if let Some(Value::Object(data)) = fields.get("data") {
        new.data = data.clone();
    }
    if let Some(roles) = fields.get("roles").filter(|r| !r.is_null()) {
        new.roles = serde_json::from_value(roles.clone())
            .map_err(|_| Error::invalid("`roles` must be a list of strings"))?;
    }
    if let Some(Value::String(phone)) = fields.get("phone_number") {
        new.phone = Some(phone.clone());
    }
    Ok(new)
}

/// A signup; a multipart one's files are stored as the new user, into the profile.
pub(super) async fn signup(caller: PublicCaller, request: Request) -> Answer {
    let base = base_url(&caller.db, request.headers());
    let (fields, rest) = match form(request, &caller.db).await.map_err(fail)? {
        Form::Json(body) => (json_object(&body).map_err(fail)?, None),
        // The SDK sends the `data` part first; files are stored as the new user after signup.
        Form::Multipart(mut parts) => {
            let data = first_data_part(&mut parts, &caller.db)
                .await
                .map_err(fail)?;
            (data, Some(parts))
        }
    };
    let new = new_user(&fields).map_err(fail)?;
    let (db, client) = (caller.db.clone(), caller.client());
    let outcome = blocking(move || Ok(db.users().signup(new, &client)))
        .await
        .map_err(fail)?;
    let outcome = match (outcome, rest) {
        (Ok(signed_in), Some(parts)) => {
            let session = caller
                .db
                .sessions()
                .authenticate(&signed_in.access_token)
                .map_err(fail)?;
            let user = profile_files(&caller.db, session, signed_in.user.clone(), parts, &base)
                .await
                .map_err(fail)?;
            Ok(SignedIn { user, ..signed_in })
        }
        (outcome, _) => outcome,
    };
    sign_in_answer(StatusCode::CREATED, outcome)
}

pub(super) async fn login(caller: PublicCaller, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let (email, password) = (
        text(&fields, "email").map_err(fail)?,
        text(&fields, "password").map_err(fail)?,
    );
    let (client, db) = (caller.client(), caller.db);
    let outcome = blocking(move || Ok(db.users().login(&email, &password, &client)))
        .await
        .map_err(fail)?;
    sign_in_answer(StatusCode::OK, outcome)
}

fn session(caller: &Caller) -> Result<crate::identity::sessions::UserSession> {
    caller
        .principal
        .session()
        .cloned()
        .ok_or_else(|| Error::unauthenticated("a user token is required"))
}

pub(super) async fn current_user(caller: Caller) -> Answer {
    let session = session(&caller).map_err(fail)?;
    Ok(no_store(json_response(
        StatusCode::OK,
        user_view(session.user()),
    )))
}

pub(super) async fn update_user(caller: Caller, request: Request) -> Answer {
    let session = session(&caller).map_err(fail)?;
    let base = base_url(&caller.db, request.headers());
    let user = match form(request, &caller.db).await.map_err(fail)? {
        Form::Json(body) => {
            let fields = json_object(&body).map_err(fail)?;
            refuse_credential_changes(&fields, &session).map_err(fail)?;
            let db = caller.db.clone();
            blocking(move || {
                db.users()
                    .update_profile(&session, &profile_changes(&fields, Map::new()))
            })
            .await
            .map_err(fail)?
        }
        Form::Multipart(parts) => update_profile_with_files(&caller.db, session, parts, &base)
            .await
            .map_err(fail)?,
    };
    Ok(no_store(json_response(StatusCode::OK, user_view(&user))))
}

/// The email and password do not change through a profile update (the SDK offers both).
fn refuse_credential_changes(
    fields: &Map<String, Value>,
    session: &crate::identity::sessions::UserSession,
) -> Result<()> {
    if fields.get("password").is_some_and(|p| !p.is_null()) {
        return Err(Error::invalid(
            "changing the password needs the current one: use change-password or a reset",
        ));
    }
    if fields
        .get("email")
        .is_some_and(|e| !e.is_null() && e.as_str() != Some(session.user().email.as_str()))
    {
        return Err(Error::invalid("changing the email is not supported"));
    }
    Ok(())
}

/// The profile update a body asks for: its `data`, with the URLs of files sent beside it.
fn profile_changes(fields: &Map<String, Value>, urls: Map<String, Value>) -> Value {
    let mut data = match fields.get("data") {
        Some(Value::Object(data)) => data.clone(),
        _ => Map::new(),
    };
    data.extend(urls);
    json!({ "data": data })
}

/// A multipart profile update: the files are stored first, then the profile takes the `data`
/// part (wherever it comes, if it comes: the SDK sends none when only files change) and the
/// files' URLs in one update. Files the new ones replace are deleted afterwards; on a refusal,
/// the new ones are.
async fn update_profile_with_files(
    db: &Db,
    session: crate::identity::sessions::UserSession,
    parts: http_files::Parts,
    base: &str,
) -> Result<User> {
    let bucket = uploads_bucket(db, crate::access::auth::of_session(session.clone())).await?;
    let (fields, urls, files) = store_parts(db, parts, base, |filename, kind| {
        bucket.upload(filename, kind)
    })
    .await?;
    let file_fields: Vec<String> = urls.keys().cloned().collect();
    let before = session.user().data.clone();
    let writer = db.clone();
    let updated = blocking(move || {
        refuse_credential_changes(&fields, &session)?;
        writer
            .users()
            .update_profile(&session, &profile_changes(&fields, urls))
    })
    .await;
    let updated = match updated {
        Ok(user) => user,
        Err(error) => {
            discard(db, files).await;
            return Err(error);
        }
    };
    let replaced = replaced_urls(&before, &file_fields, &updated.data);
    let user_id = updated.id.clone();
    // The user's own uploads only, and none attached to a document (those go with it).
    delete_replaced(bucket, replaced, move |info| {
        info.owner.as_deref() == Some(user_id.as_str()) && info.attached_to.is_none()
    })
    .await;
    Ok(updated)
}

pub(super) async fn list_users(caller: Caller) -> Answer {
    let db = caller
        .actor()
        .administrator(Action::ManageUsers)
        .map_err(fail)?;
    let users: Vec<Value> = db
        .users()
        .list()
        .map_err(fail)?
        .iter()
        .map(user_view)
        .collect();
    answer(StatusCode::OK, Value::Array(users))
}

pub(super) async fn get_user(caller: Caller, Path(id): Path<String>) -> Answer {
    // Everyone may read their own record; anyone else's is an administrative read.
    let user = caller.actor().user_record(&id).map_err(fail)?;
    answer(StatusCode::OK, user_view(&user))
}

pub(super) async fn enable_2fa(caller: Caller) -> Answer {
    toggle_2fa(caller, true).await
}

pub(super) async fn disable_2fa(caller: Caller) -> Answer {
    toggle_2fa(caller, false).await
}

async fn toggle_2fa(caller: Caller, enabled: bool) -> Answer {
    let session = session(&caller).map_err(fail)?;
    let db = caller.db.clone();
    let user = blocking(move || db.users().set_second_factor(&session, enabled))
        .await
        .map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"message": "2FA updated", "user": user_view(&user)}),
    )
}

pub(super) async fn send_2fa_code(caller: PublicCaller, body: Bytes) -> Answer {
    let email = text(&json_object(&body).map_err(fail)?, "email").map_err(fail)?;
    let db = caller.db;
    blocking(move || db.users().resend_second_factor(&email))
        .await
        .map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"message": "If a sign-in is waiting, a code is on its way"}),
    )
}

pub(super) async fn verify_2fa(caller: PublicCaller, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let (email, code) = (
        text(&fields, "email").map_err(fail)?,
        text(&fields, "code").map_err(fail)?,
    );
    let (client, db) = (caller.client(), caller.db);
    let signed_in = blocking(move || db.users().complete_second_factor(&email, &code, &client))
        .await
        .map_err(fail)?;
    token_answer(StatusCode::OK, &signed_in)
}

pub(super) async fn send_verification(caller: Caller) -> Answer {
    let session = session(&caller).map_err(fail)?;
    let db = caller.db.clone();
    let email = session.user().email.clone();
    blocking(move || db.users().request_email_verification(&email))
        .await
        .map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"message": "If the address needs verifying, a code is on its way"}),
    )
}

pub(super) async fn verify_email(caller: PublicCaller, body: Bytes) -> Answer {
    let token = text(&json_object(&body).map_err(fail)?, "token").map_err(fail)?;
    let db = caller.db;
    blocking(move || db.users().verify_email_token(&token))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"message": "Email verified"}))
}

pub(super) async fn oauth(_caller: PublicCaller) -> Answer {
    Err(fail(Error::unsupported(
        "Google and GitHub sign-in need the network and are not available on this server",
    )))
}

fn collection_view(info: &CollectionInfo) -> Value {
    json!({"id": info.name, "name": info.name, "created_at": info.created_at, "document_count": info.document_count})
}

/// Collections made through these routes: owner-only documents, any signed-in user creates.
fn owner_only() -> CollectionSpec {
    CollectionSpec::new()
        .rules(Rules {
            list: Rule::Owner,
            view: Rule::Owner,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        })
        .owner_field(OWNER)
}

/// The whole database, once the policy lets this caller manage collections.
fn collection_manager(caller: &Caller) -> Result<Db> {
    caller.actor().administrator(Action::ManageCollections)
}

/// larder sends no webhooks: a collection asking for one is refused, not silently left
/// without it. A null `webhook_url` asks for none and passes.
fn refuse_webhook(fields: &Map<String, Value>) -> Result<()> {
    if fields.get("webhook_url").is_some_and(|url| !url.is_null()) {
        return Err(Error::invalid(
            "webhooks are not supported: send no `webhook_url`",
        ));
    }
    Ok(())
}

pub(super) async fn create_collection(caller: Caller, body: Bytes) -> Answer {
    let db = collection_manager(&caller).map_err(fail)?;
    let fields = unwrap_data(json_object(&body).map_err(fail)?);
    refuse_webhook(&fields).map_err(fail)?;
    let name = text(&fields, "name").map_err(fail)?;
    let info = blocking(move || db.collections().create(&name, owner_only()))
        .await
        .map_err(fail)?;
    answer(StatusCode::CREATED, collection_view(&info))
}

/// `PATCH /collections/{name}`: a new `name` renames the collection (its documents, files and
/// key grants follow); the same name or none changes nothing.
pub(super) async fn update_collection(
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let db = collection_manager(&caller).map_err(fail)?;
    let fields = unwrap_data(json_object(&body).map_err(fail)?);
    refuse_webhook(&fields).map_err(fail)?;
    let new_name = match fields.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(new_name)) => Some(new_name.clone()),
        Some(_) => return Err(fail(Error::invalid("`name` must be a string"))),
    };
    let info = blocking(move || match new_name {
        Some(to) if to != name => db.collections().rename(&name, &to),
        _ => db.collections().info(&name),
    })
    .await
    .map_err(fail)?;
    answer(StatusCode::OK, collection_view(&info))
}

pub(super) async fn delete_collection(caller: Caller, Path(name): Path<String>) -> Answer {
    caller.delete_collection(&name).await.map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"message": "Collection deleted", "id": name}),
    )
}

/// The document as the SDK reads it: `data` without the owner, which is shown beside it.
fn document_view(name: &str, collection_created: &str, doc: Doc) -> Value {
    let mut data = match doc.data {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let owner = data.remove(OWNER);
    json!({
        "id": doc.id,
        "collection_id": name,
        "collection": {"id": name, "name": name, "created_at": collection_created},
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "data": data,
        "owner_id": owner,
    })
}

/// Several documents as the SDK reads them.
fn documents_view(name: &str, collection_created: &str, docs: Vec<Doc>) -> Value {
    Value::Array(
        docs.into_iter()
            .map(|doc| document_view(name, collection_created, doc))
            .collect(),
    )
}

/// Runs one call on a collection's documents as the caller, off the async workers, and gives
/// back the collection's creation time for the answer.
async fn on_documents<T: Send + 'static>(
    caller: &Caller,
    name: &str,
    call: impl FnOnce(Collection<Value>) -> Result<T> + Send + 'static,
) -> std::result::Result<(T, String), ApiError> {
    let db = caller.db.clone();
    let principal = caller.principal.clone();
    let name = name.to_owned();
    blocking(move || {
        let created = db.collections().info(&name)?.created_at;
        Ok((call(db.acting_as(principal).collection(&name))?, created))
    })
    .await
    .map_err(fail)
}

/// The `collection` query parameter of the create route.
fn collection_param(params: &[(String, String)]) -> Result<String> {
    params
        .iter()
        .find(|(k, _)| k == "collection")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| Error::invalid("`collection` is required"))
}

/// An administrator's first document creates its collection (the hosted behaviour), owner-only.
async fn create_missing_collection(caller: &Caller, name: &str) -> Result<()> {
    let Ok(db) = caller.actor().administrator(Action::ManageCollections) else {
        return Ok(());
    };
    let name = name.to_owned();
    blocking(move || match db.collections().info(&name) {
        Ok(_) => Ok(()),
        Err(_) => db.collections().put(&name, owner_only()).map(|_| ()),
    })
    .await
}

pub(super) async fn create_document(
    caller: Caller,
    Params(params): Params,
    request: Request,
) -> Answer {
    let name = collection_param(&params).map_err(fail)?;
    let base = base_url(&caller.db, request.headers());
    // With files, the id is chosen first so each file is attached to its document.
    let id = caller.db.store().new_id();
    let DocumentParts { data, files } = match form(request, &caller.db).await.map_err(fail)? {
        Form::Json(body) => DocumentParts::json(document_body(&body).map_err(fail)?),
        Form::Multipart(parts) => document_files(&caller, parts, &base, &name, &id)
            .await
            .map_err(fail)?,
    };
    create_missing_collection(&caller, &name)
        .await
        .map_err(fail)?;
    let (data, with_files) = (Value::Object(data), !files.is_empty());
    let inserted = on_documents(&caller, &name, move |docs| match with_files {
        true => docs.insert_with_id(&id, &data),
        false => docs.insert(&data),
    })
    .await;
    if inserted.is_err() {
        discard(&caller.db, files).await;
    }
    let (doc, created) = inserted?;
    answer(StatusCode::CREATED, document_view(&name, &created, doc))
}

/// The bucket files sent to these routes are kept in: downloads public (the generated names make
/// URLs unguessable, as the hosted service's are), uploads for any signed-in user, deletes for
/// the uploader.
const FILES_BUCKET: &str = "uploads";

fn files_bucket_spec() -> BucketSpec {
    BucketSpec::new().rules(Rules {
        list: Rule::Owner,
        view: Rule::Public,
        create: Rule::Authenticated,
        update: Rule::Admin,
        delete: Rule::Owner,
    })
}

/// A request body: JSON, or multipart with a `data` part and file parts.
enum Form {
    Json(Bytes),
    Multipart(http_files::Parts),
}

async fn form(request: Request, db: &Db) -> Result<Form> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if multipart {
        return Ok(Form::Multipart(http_files::Parts::of(request, db).await?));
    }
    let limit = http_files::body_limit(&request);
    let state = AppState { db: db.clone() };
    let body = Bytes::from_request(request, &state)
        .await
        .map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::too_large("request body", limit),
            _ => Error::invalid(e.body_text()),
        })?;
    Ok(Form::Json(body))
}

/// The JSON object of a `data` part (at most the document size limit).
async fn data_part(
    mut field: axum::extract::multipart::Field<'_>,
    db: &Db,
    body_limit: u64,
) -> Result<Map<String, Value>> {
    let limit = db.store().limits().max_document_bytes;
    let mut text = Vec::new();
    while let Some(piece) = field
        .chunk()
        .await
        .map_err(|e| http_files::Cut::of_multipart(&e).into_error(body_limit))?
    {
        text.extend_from_slice(&piece);
        if text.len() > limit {
            return Err(Error::too_large("the `data` part", limit as u64));
        }
    }
    json_object(&Bytes::from(text))
}

/// The `data` part, which must come first (the SDK sends it first).
async fn first_data_part(parts: &mut http_files::Parts, db: &Db) -> Result<Map<String, Value>> {
    let limit = parts.limit();
    match parts.next().await? {
        Some(field) if field.name() == Some("data") => data_part(field, db, limit).await,
        Some(_) => Err(Error::invalid("send the `data` part before the files")),
        None => Ok(Map::new()),
    }
}

/// Stores every file part through `upload`, collecting each file's URL under its part's name
/// (a list when a name repeats), and the `data` part if it comes. On failure, the files already
/// stored are deleted.
async fn store_parts(
    db: &Db,
    mut parts: http_files::Parts,
    base: &str,
    upload: impl Fn(&str, &str) -> Result<Upload>,
) -> Result<(Map<String, Value>, Map<String, Value>, Vec<FileInfo>)> {
    let limit = parts.limit();
    let mut data = Map::new();
    let mut urls: Map<String, Value> = Map::new();
    let mut stored: Vec<FileInfo> = Vec::new();
    let outcome: Result<()> = async {
        while let Some(field) = parts.next().await? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "data" {
                data = data_part(field, db, limit).await?;
                continue;
            }
            crate::store::names::validate_field_path(&name)?;
            let info = http_files::store_field(&upload, field, limit).await?;
            let url = Value::String(file_url(base, &info));
            stored.push(info);
            match urls.get_mut(&name) {
                None => {
                    urls.insert(name, url);
                }
                Some(Value::Array(list)) => list.push(url),
                Some(first) => *first = Value::Array(vec![first.take(), url]),
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = outcome {
        discard(db, stored).await;
        return Err(error);
    }
    Ok((data, urls, stored))
}

/// The `uploads` bucket as `principal`, made on first use.
async fn uploads_bucket(db: &Db, principal: Principal) -> Result<crate::files::Bucket> {
    let db = db.clone();
    blocking(move || {
        db.buckets()
            .ensure_exists(FILES_BUCKET, files_bucket_spec())?;
        Ok(db.bucket_as(FILES_BUCKET, principal))
    })
    .await
}

/// Undoes the uploads of a request that then failed (see [`crate::files::Bucket::discard`]).
async fn discard(db: &Db, files: Vec<FileInfo>) {
    let bucket = db.bucket_as(FILES_BUCKET, crate::access::auth::anonymous());
    let _ = blocking(move || {
        bucket.discard(&files);
        Ok(())
    })
    .await;
}

/// A document's body with its files stored.
struct DocumentParts {
    /// The document's fields, each file's URL under its part's name.
    data: Map<String, Value>,
    /// The files stored for it, attached to it.
    files: Vec<FileInfo>,
}

impl DocumentParts {
    /// A JSON body: fields only.
    fn json(data: Map<String, Value>) -> Self {
        DocumentParts {
            data,
            files: Vec::new(),
        }
    }
}

/// A document's multipart body: its data (unwrapped as JSON bodies are) with each file's URL
/// under the file's field, the files attached to the document `id`.
async fn document_files(
    caller: &Caller,
    parts: http_files::Parts,
    base: &str,
    collection: &str,
    id: &str,
) -> Result<DocumentParts> {
    let bucket = uploads_bucket(&caller.db, caller.principal.clone()).await?;
    let (data, urls, files) = store_parts(&caller.db, parts, base, |filename, kind| {
        let mut upload = bucket.upload(filename, kind)?;
        upload.attach_to(collection, id);
        Ok(upload)
    })
    .await?;
    let mut data = unwrap_data(data);
    data.extend(urls);
    Ok(DocumentParts { data, files })
}

/// The name of the `uploads` file a URL made by [`file_url`] points at (any host: the one a
/// URL was made with depends on how its request reached us).
fn uploads_file_name(url: &str) -> Option<&str> {
    let (_, name) = url.split_once(&format!("/api/files/{FILES_BUCKET}/"))?;
    (!name.is_empty() && !name.contains(['/', '?', '#'])).then_some(name)
}

/// Whether `value` holds the string `url` anywhere.
fn mentions(value: &Value, url: &str) -> bool {
    match value {
        Value::String(text) => text == url,
        Value::Array(items) => items.iter().any(|item| mentions(item, url)),
        Value::Object(map) => map.values().any(|item| mentions(item, url)),
        _ => false,
    }
}

/// The file URLs `fields` of `before` held (a URL, or a list of them as multipart parts sharing
/// a name make) that `after` no longer mentions anywhere: the files new uploads replaced.
fn replaced_urls(before: &Value, fields: &[String], after: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for field in fields {
        let held = match before.get(field) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(value) => vec![value],
            None => Vec::new(),
        };
        for url in held.into_iter().filter_map(Value::as_str) {
            if uploads_file_name(url).is_some() && !mentions(after, url) && !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls.into_iter().map(str::to_owned).collect()
}

/// Deletes, with the caller's rights (its `bucket` handle), the replaced files of `urls` that
/// `belongs` accepts (the caller's own files, never anyone else's file whose URL was pasted
/// into a field). Runs after the update committed, so a failure here leaves a file behind
/// rather than failing an update that happened.
async fn delete_replaced(
    bucket: crate::files::Bucket,
    urls: Vec<String>,
    belongs: impl Fn(&FileInfo) -> bool + Send + 'static,
) {
    if urls.is_empty() {
        return;
    }
    let _ = blocking(move || {
        for name in urls.iter().filter_map(|url| uploads_file_name(url)) {
            if bucket.info(name).is_ok_and(|info| belongs(&info)) {
                let _ = bucket.delete(name);
            }
        }
        Ok(())
    })
    .await;
}

/// Stores a new account's file parts as the user and puts their URLs into the profile data.
async fn profile_files(
    db: &Db,
    session: crate::identity::sessions::UserSession,
    current: User,
    parts: http_files::Parts,
    base: &str,
) -> Result<User> {
    let bucket = uploads_bucket(db, crate::access::auth::of_session(session.clone())).await?;
    let (_, urls, _) = store_parts(db, parts, base, |filename, kind| {
        bucket.upload(filename, kind)
    })
    .await?;
    if urls.is_empty() {
        return Ok(current);
    }
    let db = db.clone();
    blocking(move || {
        let mut data = match &current.data {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        data.extend(urls);
        db.users()
            .update_profile(&session, &json!({ "data": data }))
    })
    .await
}

/// `POST /collections/file`: one file in the part `file`.
pub(super) async fn upload_file(caller: Caller, headers: HeaderMap, request: Request) -> Answer {
    let base = base_url(&caller.db, &headers);
    let Form::Multipart(parts) = form(request, &caller.db).await.map_err(fail)? else {
        return Err(fail(Error::invalid(
            "send the file as multipart/form-data in a part named `file`",
        )));
    };
    let bucket = uploads_bucket(&caller.db, caller.principal.clone())
        .await
        .map_err(fail)?;
    let info = parts.store_file_part(&bucket).await.map_err(fail)?;
    answer(
        StatusCode::CREATED,
        json!({
            "status": "success",
            "message": "File uploaded",
            "url": file_url(&base, &info),
            "filename": info.filename,
            "size": info.size,
        }),
    )
}

/// The query grammar: `f=v`, `f_<op>=v` (op after the last `_`, or after `__`), `in`/`notin`
/// comma lists, `isnull`, case-insensitive text operators, `sort`/`order` or
/// `sort_by`/`sort_order` (default `created_at` desc), `limit`, `offset`.
fn query_of(params: &[(String, String)]) -> Result<Query> {
    let mut filter = Filter::All;
    let (mut sort_field, mut order, mut limit, mut offset) = (None, Order::Desc, None, 0usize);
    for (key, value) in params {
        match key.as_str() {
            "sort" | "sort_by" => sort_field = Some(value.clone()),
            "order" | "sort_order" => {
                order = match value.to_ascii_lowercase().as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => return Err(Error::invalid("order must be asc or desc")),
                }
            }
            "limit" => limit = Some(whole_number(key, value)?.min(1000)),
            "offset" => offset = whole_number(key, value)?,
            k if RESERVED.contains(&k) => {}
            _ => {
                let (field, op) = split_operator(key)?;
                let path = field.to_owned();
                let text = Value::String(value.clone());
                let list = || {
                    value
                        .split(',')
                        .map(|v| Value::String(v.to_owned()))
                        .collect::<Vec<_>>()
                };
                let condition = match op {
                    "contains" => Filter::Compare {
                        path,
                        op: Op::ContainsIgnoreCase,
                        value: text,
                    },
                    "startswith" => Filter::Compare {
                        path,
                        op: Op::StartsWithIgnoreCase,
                        value: text,
                    },
                    "endswith" => Filter::Compare {
                        path,
                        op: Op::EndsWithIgnoreCase,
                        value: text,
                    },
                    "in" => Filter::In {
                        path,
                        values: list(),
                    },
                    "notin" => Filter::NotIn {
                        path,
                        values: list(),
                    },
                    "isnull" => match value.as_str() {
                        "true" | "True" | "1" => Filter::is_null(path),
                        _ => !Filter::is_null(path),
                    },
                    // eq, ne, gt, gte, lt, lte: one mapping for every dialect.
                    _ => Filter::Compare {
                        path,
                        op: Op::from_suffix(op).unwrap_or(Op::Eq),
                        value: text,
                    },
                };
                filter = filter.and(condition);
            }
        }
    }
    Ok(Query {
        filter,
        sort: vec![Sort {
            path: sort_field.unwrap_or_else(|| "created_at".into()),
            order,
        }],
        offset,
        limit,
    })
}

/// `price_gte` → (`price`, `gte`); `user_id` → (`user_id`, `eq`); `a__in` → (`a`, `in`).
///
/// After a double underscore comes an operator, so an unknown one there (`price__between`) is
/// refused rather than read as a field of that name matching nothing; a field whose name holds
/// `__` is spelled with its operator (`a__b__eq`).
fn split_operator(key: &str) -> Result<(&str, &str)> {
    const OPS: &[&str] = &[
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "startswith",
        "endswith",
        "in",
        "notin",
        "isnull",
    ];
    if let Some((field, op)) = key.rsplit_once("__")
        && !field.is_empty()
    {
        if OPS.contains(&op) {
            return Ok((field, op));
        }
        return Err(Error::invalid(format!(
            "`{}`: `{}` is not a query operator; after `__` use one of {}",
            key.escape_debug(),
            op.escape_debug(),
            OPS.join(", ")
        )));
    }
    Ok(match key.rsplit_once('_') {
        Some((field, op)) if OPS.contains(&op) && !field.is_empty() => (field, op),
        _ => (key, "eq"),
    })
}

pub(super) async fn list_documents(
    caller: Caller,
    Path(name): Path<String>,
    Params(params): Params,
) -> Answer {
    let query = query_of(&params).map_err(fail)?;
    let (docs, created) = on_documents(&caller, &name, move |docs| docs.find(&query)).await?;
    answer(StatusCode::OK, documents_view(&name, &created, docs))
}

pub(super) async fn get_document(
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Answer {
    let (doc, created) = on_documents(&caller, &name, move |docs| docs.get(&id)).await?;
    let doc = doc.ok_or_else(|| fail(Error::not_found("document")))?;
    answer(StatusCode::OK, document_view(&name, &created, doc))
}

pub(super) async fn update_document(
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    request: Request,
) -> Answer {
    let base = base_url(&caller.db, request.headers());
    let parts = match form(request, &caller.db).await.map_err(fail)? {
        Form::Json(body) => DocumentParts::json(unwrap_data(json_document(&body).map_err(fail)?)),
        Form::Multipart(parts) => document_files(&caller, parts, &base, &name, &id)
            .await
            .map_err(fail)?,
    };
    // The patch's own transaction deletes the attached files it stops mentioning.
    let patch = Value::Object(parts.data);
    let target = id.clone();
    let patched = on_documents(&caller, &name, move |docs| docs.patch(&target, &patch)).await;
    if patched.is_err() {
        // Refused (or no such document for this caller): the files stored for it go too.
        discard(&caller.db, parts.files).await;
    }
    let (doc, created) = patched?;
    answer(StatusCode::OK, document_view(&name, &created, doc))
}

pub(super) async fn delete_document(
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Answer {
    let (doc, _) = on_documents(&caller, &name, move |docs| docs.delete(&id)).await?;
    answer(
        StatusCode::OK,
        json!({"message": "Document deleted", "id": doc.id}),
    )
}

pub(super) async fn batch_create(caller: Caller, Path(name): Path<String>, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let documents: Vec<Value> = match fields.get("documents") {
        Some(Value::Array(items)) => items.clone(),
        _ => return Err(fail(Error::invalid("`documents` must be a list"))),
    };
    let (docs, created) =
        on_documents(&caller, &name, move |docs| docs.insert_many(&documents)).await?;
    answer(StatusCode::CREATED, documents_view(&name, &created, docs))
}

pub(super) async fn batch_update(caller: Caller, Path(name): Path<String>, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let updates: Vec<(String, Value)> = match fields.get("updates") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(id, patch)| (id.clone(), patch.clone()))
            .collect(),
        _ => {
            return Err(fail(Error::invalid(
                "`updates` must be an object of id → fields",
            )));
        }
    };
    let (docs, created) =
        on_documents(&caller, &name, move |docs| docs.patch_many(&updates)).await?;
    answer(StatusCode::OK, documents_view(&name, &created, docs))
}

pub(super) async fn batch_delete(caller: Caller, Path(name): Path<String>, body: Bytes) -> Answer {
    let fields = json_object(&body).map_err(fail)?;
    let ids: Vec<String> = match fields.get("document_ids") {
        Some(ids) => serde_json::from_value(ids.clone())
            .map_err(|_| fail(Error::invalid("`document_ids` must be a list of strings")))?,
        None => return Err(fail(Error::invalid("`document_ids` is required"))),
    };
    let (docs, _) = on_documents(&caller, &name, move |docs| docs.delete_many(&ids)).await?;
    answer(
        StatusCode::OK,
        json!({"status": "ok", "message": "Documents deleted", "count": docs.len()}),
    )
}

pub(super) async fn count(
    caller: Caller,
    Path(name): Path<String>,
    Params(params): Params,
) -> Answer {
    let filter = query_of(&params).map_err(fail)?.filter;
    let (count, _) = on_documents(&caller, &name, move |docs| docs.count(&filter)).await?;
    answer(StatusCode::OK, json!({"count": count}))
}

pub(super) async fn aggregate(
    caller: Caller,
    Path(name): Path<String>,
    Params(params): Params,
) -> Answer {
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let field = get("field").unwrap_or_default();
    let operation = get("operation").unwrap_or_else(|| "count".into());
    let aggregate = match operation.as_str() {
        "count" => Aggregate::Count,
        "sum" => Aggregate::Sum(field.clone()),
        "avg" => Aggregate::Avg(field.clone()),
        "min" => Aggregate::Min(field.clone()),
        "max" => Aggregate::Max(field.clone()),
        _ => {
            return Err(fail(Error::invalid(
                "operation must be count, sum, avg, min or max",
            )));
        }
    };
    let filter = query_of(&params).map_err(fail)?.filter;
    let (result, _) = on_documents(&caller, &name, move |docs| {
        docs.aggregate(&aggregate, &filter)
    })
    .await?;
    answer(
        StatusCode::OK,
        json!({"field": field, "operation": operation, "result": result, "collection": name}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_come_after_the_last_underscore_when_known() {
        let split = |key| split_operator(key).unwrap();
        assert_eq!(split("price_gte"), ("price", "gte"));
        assert_eq!(split("user_id"), ("user_id", "eq"));
        assert_eq!(split("title_contains"), ("title", "contains"));
        assert_eq!(split("tags__in"), ("tags", "in"));
        assert_eq!(split("_in"), ("_in", "eq"));
        assert_eq!(split("__v"), ("__v", "eq"));
        assert_eq!(split("a__b__eq"), ("a__b", "eq"));
    }

    #[test]
    fn an_unknown_operator_after_a_double_underscore_is_refused() {
        for key in ["price__between", "a__b", "a__or__b_contains"] {
            let error = split_operator(key).unwrap_err();
            assert!(
                error.to_string().contains("is not a query operator"),
                "{key}: {error}"
            );
        }
    }

    #[test]
    fn the_double_wrap_is_undone() {
        let twice = Bytes::from(r#"{"data": {"data": {"title": "t"}}}"#);
        assert_eq!(
            Value::Object(document_body(&twice).unwrap()),
            json!({"title": "t"})
        );
        let once = Bytes::from(r#"{"data": {"title": "t", "data": {"x": 1}}}"#);
        assert_eq!(
            Value::Object(document_body(&once).unwrap()),
            json!({"title": "t", "data": {"x": 1}})
        );
    }
}
