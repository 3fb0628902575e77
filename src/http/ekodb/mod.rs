//! The ekoDB dialect (seed 002; the `ekodb_client` 0.32 Rust crate): an API key exchanged for a
//! JWT, records under `/api/insert|find|update|delete`, batches, collections, and key and
//! permission management under `/api/auth/*`. Errors are `{"code", "message", "error"}`.
//!
//! Identity, decided once here at the edge: every route but the token exchange needs a
//! credential — the JWT from `/api/auth/token` as `Authorization: Bearer` (what the client
//! sends), or an `x-api-key` — and an invalid one is 401 (the client then fetches a new token
//! once, so a revoked key fails on its next call). `/api/auth/register` also takes the admin key
//! in its body, as the seed's example sends it.
//!
//! Wire: the client sends MessagePack on the write routes (insert, update, delete and their
//! batches) unless it was built for JSON, and decodes the answer by its own setting, not by
//! `Content-Type`. So those routes read the body by `Content-Type` and answer in the format of
//! `Accept`; everything else is JSON, and so are errors (the client reads error bodies as JSON
//! text on every route).
//!
//! Stricter than ekoDB: a listed key shows a prefix, never its secret; keys are named by their
//! id (32 lowercase hex characters), never by their secret in a URL; only administrators create
//! keys or change grants (a scoped key cannot escalate); `delete` is a grant of its own, given
//! only when named; only administrators create collections, which an insert does on the fly.
//!
//! Not served, and said so with a 501 rather than the generic 404 (which the client reports as
//! "record not found"): atomic field actions under `/api/update/…/action/…` and
//! `/api/update/sequence/…`, and per-prefix KV grants (larder has no key-value store).

mod query;
pub(super) mod realtime;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query as UrlQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::toolkit::{self, Dialect, json_body};
use super::{ApiError, AppState, Presented, Shape, blocking, json_response, no_store};
use crate::access::auth::Credentials;
use crate::access::policy::Action;
use crate::data::documents::{Collection, Doc};
use crate::db::Db;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::api_keys::{ApiKeyInfo, Grant, GrantChange, GrantPatch, KeyKind, NewApiKey};
use query::{FindBody, project};

type Answer = std::result::Result<Response, ApiError>;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::EkoDb)
}

fn answer(status: StatusCode, body: Value) -> Answer {
    Ok(json_response(status, body))
}

/// A route of ekoDB's that larder does not serve: 501 saying what is missing, in the dialect's
/// error shape. The generic 404 would mislead, since the client reports any 404 as "record not
/// found"; a 501 reaches the caller as `Error::Api` with this message.
fn not_implemented(message: &str) -> Answer {
    Err(fail(Error::unsupported(message)))
}

/// ekoDB's door: `{"code", "message", "error"}` errors.
pub(crate) struct EkoDb;

impl Dialect for EkoDb {
    const SHAPE: Shape = Shape::EkoDb;
    const CREDENTIALS_REQUIRED: &'static str =
        "missing token: exchange an API key at /api/auth/token";
}

/// A caller of the record, collection and key routes (a key or a token required).
type Caller = toolkit::Caller<EkoDb>;

impl toolkit::Caller<EkoDb> {
    /// The administrative decision for this caller, from the one policy.
    /// The whole database, once the policy lets this caller manage keys.
    fn key_manager(&self) -> Result<Db> {
        self.actor().administrator(Action::ManageKeys)
    }

    /// A key id from a path: `me` is the caller's own key.
    fn key_id(&self, key: &str) -> Result<String> {
        if key == "me" {
            return self
                .principal
                .key_id()
                .map(str::to_owned)
                .ok_or_else(|| Error::invalid("`me` names the calling API key; use a key"));
        }
        if is_key_id(key) {
            Ok(key.to_owned())
        } else {
            Err(Error::invalid(
                "name a key by its id (32 lowercase hex characters) or `me`, never by its secret",
            ))
        }
    }

    /// A key's metadata, for reading its permissions: one's own key, or any key for those who
    /// manage keys.
    fn readable_key(&self, key: &str) -> Result<ApiKeyInfo> {
        self.actor().key_record(&self.key_id(key)?)
    }
}

/// larder's key ids are already what the client demands: 32 lowercase hex characters.
fn is_key_id(key: &str) -> bool {
    key.len() == 32
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// MessagePack or JSON, for a write route's body and answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wire {
    body_is_msgpack: bool,
    answer_in_msgpack: bool,
}

const MSGPACK: &str = "application/msgpack";

fn names_msgpack(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .any(|v| {
            [
                "application/msgpack",
                "application/x-msgpack",
                "application/vnd.msgpack",
            ]
            .iter()
            .any(|m| v.eq_ignore_ascii_case(m))
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Wire {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(Wire {
            body_is_msgpack: names_msgpack(&parts.headers, header::CONTENT_TYPE),
            answer_in_msgpack: names_msgpack(&parts.headers, header::ACCEPT),
        })
    }
}

impl Wire {
    fn decode<T: DeserializeOwned>(self, body: &Bytes) -> Result<T> {
        // Every write route takes a body: none is a mistake, not an empty record.
        if body.is_empty() {
            return Err(Error::invalid("the body is empty: send the record"));
        }
        if self.body_is_msgpack {
            rmp_serde::from_slice(body)
                .map_err(|_| Error::invalid("the body is not the MessagePack expected here"))
        } else {
            json_body(body)
        }
    }

    fn answer(self, status: StatusCode, body: &Value) -> Answer {
        if !self.answer_in_msgpack {
            return answer(status, body.clone());
        }
        let bytes = rmp_serde::to_vec(body).map_err(|e| fail(Error::internal(e)))?;
        let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(MSGPACK))];
        Ok((status, content_type, bytes).into_response())
    }
}

// ----- token and keys -----

#[derive(Deserialize)]
struct TokenRequest {
    api_key: String,
}

pub(super) async fn token(State(state): State<AppState>, body: Bytes) -> Answer {
    let request: TokenRequest = json_body(&body).map_err(fail)?;
    let db = state.db.clone();
    let (token, expires_in) = blocking(move || db.keys().token(&request.api_key))
        .await
        .map_err(fail)?;
    Ok(no_store(json_response(
        StatusCode::OK,
        json!({"token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )))
}

/// A grant as ekoDB answers it: an object with the client's `read`/`write` and field lists,
/// plus larder's own `delete` (extra fields are allowed; an action array with `delete` would
/// not parse in the client).
fn grant_view(grant: &Grant) -> Value {
    json!({
        "read": grant.read,
        "write": grant.write,
        "delete": grant.delete,
        "select_fields": grant.select_fields,
        "exclude_fields": (!grant.exclude_fields.is_empty()).then_some(&grant.exclude_fields),
        "writable_fields": grant.writable_fields,
    })
}

fn grants_view(grants: &BTreeMap<String, Grant>) -> Value {
    Value::Object(
        grants
            .iter()
            .map(|(name, grant)| (name.clone(), grant_view(grant)))
            .collect(),
    )
}

/// A key as the client's `ApiKey` reads it. `key` is the secret only in the answer that
/// creates it; listings show its prefix.
fn key_view(info: &ApiKeyInfo, secret: Option<&str>) -> Value {
    let key = secret.map_or_else(|| format!("{}...", info.prefix), str::to_owned);
    json!({
        "id": info.id,
        "key": key,
        "is_admin": info.kind == KeyKind::Secret,
        "kind": info.kind,
        "label": info.label,
        "description": info.description,
        "collection_permissions": grants_view(&info.grants),
        "kv_permissions": [],
        "ripple_warning": null,
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "expires_at": info.expires_at,
    })
}

/// The modern permissions answer (`/api/auth/keys/{key}/permissions`).
fn permissions_view(info: &ApiKeyInfo) -> Value {
    json!({
        "key_id": info.id,
        "label": info.label,
        "admin": info.kind == KeyKind::Secret,
        "collections": grants_view(&info.grants),
        "kv": [],
    })
}

/// Optional-and-nullable: absent is `None` (keep), `null` is `Some(None)` (clear).
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to one collection's grant: what is left out is kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEdit {
    #[serde(default)]
    read: Option<bool>,
    #[serde(default)]
    write: Option<bool>,
    #[serde(default)]
    delete: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    select_fields: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    exclude_fields: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    writable_fields: Option<Option<Vec<String>>>,
}

impl From<GrantEdit> for GrantPatch {
    fn from(edit: GrantEdit) -> GrantPatch {
        GrantPatch {
            read: edit.read,
            write: edit.write,
            delete: edit.delete,
            select_fields: edit.select_fields,
            exclude_fields: edit.exclude_fields.map(Option::unwrap_or_default),
            writable_fields: edit.writable_fields,
        }
    }
}

/// A grant as ekoDB writes one: an action array (`["read", "write", "delete"]`) or an object.
fn grant_of(value: &Value) -> Result<Grant> {
    match value {
        Value::Array(actions) => {
            let mut grant = Grant::default();
            for action in actions {
                match action.as_str() {
                    Some("read") => grant.read = true,
                    Some("write") => grant.write = true,
                    Some("delete") => grant.delete = true,
                    _ => return Err(Error::invalid("grant actions are read, write and delete")),
                }
            }
            Ok(grant)
        }
        Value::Object(_) => serde_json::from_value::<GrantEdit>(value.clone())
            .map(|edit| GrantPatch::from(edit).apply(Grant::default()))
            .map_err(|e| Error::invalid(format!("invalid grant: {e}"))),
        _ => Err(Error::invalid(
            "a grant is a list of actions or an object {read, write, …}",
        )),
    }
}

fn grants_of(map: &Map<String, Value>) -> Result<BTreeMap<String, Grant>> {
    map.iter()
        .map(|(name, grant)| Ok((name.clone(), grant_of(grant)?)))
        .collect()
}

#[derive(Deserialize)]
struct RegisterRequest {
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    collection_permissions: Map<String, Value>,
}

pub(super) async fn register(
    State(state): State<AppState>,
    presented: std::result::Result<Presented, ApiError>,
    body: Bytes,
) -> Answer {
    let presented = presented.map_err(|e| fail(e.error))?;
    let request: RegisterRequest = json_body(&body).map_err(fail)?;
    // The admin key may come in the body (the seed) or as the client's Bearer token.
    let principal = state
        .db
        .authenticate_request(Credentials {
            api_key: request.api_key.as_deref().or(presented.api_key.as_deref()),
            bearer: presented.bearer.as_deref(),
        })
        .map_err(fail)?;
    let db = state
        .db
        .acting_as(principal)
        .administrator(Action::ManageKeys)
        .map_err(fail)?;
    let kind = if request.is_admin {
        KeyKind::Secret
    } else {
        KeyKind::Scoped
    };
    let mut new = NewApiKey::new(kind, request.label.unwrap_or_else(|| "ekoDB key".into()));
    new.description = request.description;
    new.grants = grants_of(&request.collection_permissions).map_err(fail)?;
    let issued = blocking(move || db.keys().create(new))
        .await
        .map_err(fail)?;
    Ok(no_store(json_response(
        StatusCode::CREATED,
        key_view(&issued.info, Some(&issued.secret)),
    )))
}

pub(super) async fn list_keys(caller: Caller) -> Answer {
    let keys = caller
        .key_manager()
        .map_err(fail)?
        .keys()
        .list()
        .map_err(fail)?;
    let keys = keys.iter().map(|info| key_view(info, None)).collect();
    Ok(no_store(json_response(StatusCode::OK, Value::Array(keys))))
}

/// Revokes a key named by its id, `me`, or (as the client's `revoke_api_key(key)` sends it)
/// by its secret.
pub(super) async fn revoke_key(caller: Caller, Path(key): Path<String>) -> Answer {
    let db = caller.key_manager().map_err(fail)?;
    let id = match crate::identity::api_keys::looks_like_secret(&key) {
        true => key_of_secret(&db, &key).map_err(fail)?,
        false => caller.key_id(&key).map_err(fail)?,
    };
    blocking(move || db.keys().revoke(&id))
        .await
        .map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"status": "success", "message": "Key revoked successfully"}),
    )
}

// ----- permissions: the seed's routes -----

/// `GET /api/auth/permissions`: the caller's own key, in the seed's shape with grant objects.
pub(super) async fn own_permissions(caller: Caller) -> Answer {
    let info = caller.readable_key("me").map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({
            "key_id": info.id,
            "label": info.label,
            "is_admin": info.kind == KeyKind::Secret,
            "collection_permissions": grants_view(&info.grants),
            "kv_permissions": [],
        }),
    )
}

/// A permissions request: the seed's `{key_id, collection_permissions}`, or the client's
/// legacy one-collection form `{api_key, collection, read, write, …}`.
#[derive(Deserialize)]
struct PermissionsRequest {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    collection_permissions: Option<Map<String, Value>>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(flatten)]
    grant: Map<String, Value>,
}

impl PermissionsRequest {
    /// The key named: by `key_id`, or by `api_key` as an id or (legacy) as the key's secret.
    fn key(&self, db: &Db) -> Result<String> {
        match (&self.key_id, &self.api_key) {
            (Some(id), _) => Ok(id.clone()),
            (None, Some(id)) if is_key_id(id) => Ok(id.clone()),
            (None, Some(secret)) => key_of_secret(db, secret),
            (None, None) => Err(Error::invalid("`key_id` is required")),
        }
    }
}

/// The id of the key a secret belongs to. Here the key is the subject, not the caller's
/// credential: an unknown or revoked one is 404.
fn key_of_secret(db: &Db, secret: &str) -> Result<String> {
    match db.keys().authenticate(secret) {
        Ok(identity) => Ok(identity.id.clone()),
        Err(e) if matches!(e.kind(), ErrorKind::Unauthenticated { .. }) => {
            Err(Error::not_found("API key"))
        }
        Err(e) => Err(e),
    }
}

fn changes_view(changes: &[GrantChange]) -> Value {
    let describe = |change: &GrantChange| match (&change.before, &change.after) {
        (None, _) => format!("Added grant on '{}'", change.collection),
        (_, None) => format!("Removed grant on '{}'", change.collection),
        _ => format!("Changed grant on '{}'", change.collection),
    };
    Value::Array(changes.iter().map(|c| Value::String(describe(c))).collect())
}

pub(super) async fn set_permissions(caller: Caller, body: Bytes) -> Answer {
    change_permissions(caller, body, true).await
}

pub(super) async fn update_permissions(caller: Caller, body: Bytes) -> Answer {
    change_permissions(caller, body, false).await
}

/// What a permissions request asks for.
enum PermissionsChange {
    /// POST: every grant of the key becomes these.
    Replace(BTreeMap<String, Grant>),
    /// PUT: the collections named get these grants, the others are kept.
    Merge(BTreeMap<String, Grant>),
    /// The client's legacy form: one collection's grant changes as patched.
    Single(String, GrantPatch),
}

impl PermissionsRequest {
    fn change(&self, replace: bool) -> Result<PermissionsChange> {
        match (&self.collection_permissions, &self.collection) {
            (Some(map), _) if replace => Ok(PermissionsChange::Replace(grants_of(map)?)),
            (Some(map), _) => Ok(PermissionsChange::Merge(grants_of(map)?)),
            (None, Some(collection)) if !replace => {
                let edit: GrantEdit = serde_json::from_value(Value::Object(self.grant.clone()))
                    .map_err(|e| Error::invalid(format!("invalid grant: {e}")))?;
                Ok(PermissionsChange::Single(collection.clone(), edit.into()))
            }
            _ => Err(Error::invalid("`collection_permissions` is required")),
        }
    }
}

/// POST replaces every grant of the key; PUT changes only the collections named.
async fn change_permissions(caller: Caller, body: Bytes, replace: bool) -> Answer {
    let manager = caller.key_manager().map_err(fail)?;
    let request: PermissionsRequest = json_body(&body).map_err(fail)?;
    let id = caller
        .key_id(&request.key(&manager).map_err(fail)?)
        .map_err(fail)?;
    let change = request.change(replace).map_err(fail)?;
    let (db, key) = (manager.clone(), id.clone());
    let (single, changes) = blocking(move || match change {
        PermissionsChange::Replace(grants) => Ok((false, db.keys().set_grants(&key, grants)?)),
        PermissionsChange::Merge(grants) => Ok((false, db.keys().merge_grants(&key, grants)?)),
        PermissionsChange::Single(collection, patch) => Ok((
            true,
            vec![db.keys().patch_grant(&key, &collection, Some(&patch))?],
        )),
    })
    .await
    .map_err(fail)?;
    let info = manager.keys().get(&id).map_err(fail)?;
    if single {
        // The client's legacy call reads an ApiKey back.
        return answer(StatusCode::OK, key_view(&info, None));
    }
    answer(
        StatusCode::OK,
        json!({
            "status": "updated",
            "key_id": info.id,
            "collection_permissions": grants_view(&info.grants),
            "changes": changes_view(&changes),
        }),
    )
}

// ----- permissions: the 0.32 per-key resources -----

pub(super) async fn key_permissions(caller: Caller, Path(key): Path<String>) -> Answer {
    let info = caller.readable_key(&key).map_err(fail)?;
    answer(StatusCode::OK, permissions_view(&info))
}

pub(super) async fn list_grants(caller: Caller, Path(key): Path<String>) -> Answer {
    let info = caller.readable_key(&key).map_err(fail)?;
    answer(StatusCode::OK, grants_view(&info.grants))
}

/// larder has no key-value store, so no key has a KV grant.
pub(super) async fn list_kv_grants(caller: Caller, Path(key): Path<String>) -> Answer {
    caller.readable_key(&key).map_err(fail)?;
    answer(StatusCode::OK, json!([]))
}

/// Credentials are still checked first: like every route but the token exchange, an
/// anonymous call is 401.
pub(super) async fn kv_grants_unsupported(_: Caller) -> Answer {
    not_implemented("KV grants are not supported: larder has no key-value store")
}

pub(super) async fn get_grant(caller: Caller, Path((key, name)): Path<(String, String)>) -> Answer {
    let info = caller.readable_key(&key).map_err(fail)?;
    let grant = info
        .grants
        .get(&name)
        .ok_or_else(|| fail(Error::not_found("grant")))?;
    answer(StatusCode::OK, grant_view(grant))
}

pub(super) async fn put_grant(
    caller: Caller,
    Path((key, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let edit: GrantEdit = json_body(&body).map_err(fail)?;
    if edit.read.is_none() || edit.write.is_none() {
        return Err(fail(Error::invalid("PUT needs `read` and `write`")));
    }
    edit_grant(caller, key, name, Some(edit)).await
}

pub(super) async fn patch_grant(
    caller: Caller,
    Path((key, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let edit: GrantEdit = json_body(&body).map_err(fail)?;
    edit_grant(caller, key, name, Some(edit)).await
}

pub(super) async fn delete_grant(
    caller: Caller,
    Path((key, name)): Path<(String, String)>,
) -> Answer {
    edit_grant(caller, key, name, None).await
}

/// Applies an edit (`None`: removal) to one collection's grant in one transaction and answers
/// `{"before", "after"}`. Removing a grant that does not exist is 404 and changes nothing.
async fn edit_grant(caller: Caller, key: String, name: String, edit: Option<GrantEdit>) -> Answer {
    let db = caller.key_manager().map_err(fail)?;
    let id = caller.key_id(&key).map_err(fail)?;
    let collection = name.clone();
    let patch = edit.map(GrantPatch::from);
    let change = blocking(move || db.keys().patch_grant(&id, &collection, patch.as_ref()))
        .await
        .map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({
            "collection": name,
            "before": change.before.as_ref().map(grant_view),
            "after": change.after.as_ref().map(grant_view),
        }),
    )
}

// ----- records -----

/// Runs one call on a collection's records as the caller, off the async workers.
async fn on_records<T: Send + 'static>(
    caller: &Caller,
    name: &str,
    call: impl FnOnce(Collection<Value>) -> Result<T> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let actor = caller.actor();
    let name = name.to_owned();
    blocking(move || call(actor.collection(&name)))
        .await
        .map_err(fail)
}

/// A write that commits at once. ekoDB's transactions (`?transaction_id=`) are not served, so a
/// write meant for one is refused rather than committed on its own.
pub(super) struct Immediate;

impl<S: Send + Sync> FromRequestParts<S> for Immediate {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, ApiError> {
        let staged = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .any(|pair| pair.split('=').next() == Some("transaction_id"));
        if staged {
            return Err(fail(Error::invalid("transactions are not supported")));
        }
        Ok(Immediate)
    }
}

/// The caller's own `select_fields`/`exclude_fields` (comma lists) on single-record routes.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Projection {
    #[serde(default)]
    select_fields: Option<String>,
    #[serde(default)]
    exclude_fields: Option<String>,
}

impl Projection {
    fn record(&self, doc: &Doc) -> Value {
        let list = |fields: &Option<String>| -> Vec<String> {
            fields
                .iter()
                .flat_map(|f| f.split(','))
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect()
        };
        record(doc, &list(&self.select_fields), &list(&self.exclude_fields))
    }
}

/// A record as the client reads it: flat, with `id`, plain values.
fn record(doc: &Doc, select: &[String], exclude: &[String]) -> Value {
    let mut map = match doc.to_json() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    project(&mut map, select, exclude);
    Value::Object(map)
}

fn ids_answer(docs: &[Doc]) -> Value {
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    json!({"successful": ids, "failed": []})
}

pub(super) async fn insert(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let data: Map<String, Value> = wire.decode(&body).map_err(fail)?;
    let docs = on_records(&caller, &name, move |records| {
        records.insert_many_creating(&[Value::Object(data)])
    })
    .await?;
    let doc = docs
        .first()
        .ok_or_else(|| fail(Error::internal(std::io::Error::other("nothing inserted"))))?;
    wire.answer(StatusCode::CREATED, &record(doc, &[], &[]))
}

pub(super) async fn find_by_id(
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    UrlQuery(projection): UrlQuery<Projection>,
) -> Answer {
    let doc = on_records(&caller, &name, move |records| records.get(&id)).await?;
    let doc = doc.ok_or_else(|| fail(Error::not_found("record")))?;
    answer(StatusCode::OK, projection.record(&doc))
}

pub(super) async fn find(caller: Caller, Path(name): Path<String>, body: Bytes) -> Answer {
    let request: FindBody = json_body(&body).map_err(fail)?;
    let query = request.query().map_err(fail)?;
    let docs = match on_records(&caller, &name, move |records| records.find(&query)).await {
        // A collection that was never written to has no records (the client counts with find).
        Err(e) if matches!(e.error.kind(), ErrorKind::NotFound { .. }) => Vec::new(),
        other => other?,
    };
    let (select, exclude) = (
        request.select_fields.unwrap_or_default(),
        request.exclude_fields.unwrap_or_default(),
    );
    let records = docs.iter().map(|d| record(d, &select, &exclude)).collect();
    answer(StatusCode::OK, Value::Array(records))
}

pub(super) async fn update(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path((name, id)): Path<(String, String)>,
    UrlQuery(projection): UrlQuery<Projection>,
    body: Bytes,
) -> Answer {
    let patch: Map<String, Value> = wire.decode(&body).map_err(fail)?;
    let doc = on_records(&caller, &name, move |records| {
        records.patch(&id, &Value::Object(patch))
    })
    .await?;
    wire.answer(StatusCode::OK, &projection.record(&doc))
}

/// ekoDB's atomic field actions (`update_with_action`, `update_with_action_sequence`) are not
/// served. Credentials are checked first, as everywhere.
pub(super) async fn field_actions_unsupported(_: Caller) -> Answer {
    not_implemented(
        "atomic field actions are not supported: read the record and send the new value with \
         PUT /api/update/{collection}/{id}",
    )
}

/// Answers the deleted record: the client refuses an empty answer.
pub(super) async fn remove(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path((name, id)): Path<(String, String)>,
) -> Answer {
    let doc = on_records(&caller, &name, move |records| records.delete(&id)).await?;
    wire.answer(StatusCode::OK, &record(&doc, &[], &[]))
}

// The batch bodies. MessagePack clients send these structs in rmp-serde's positional form
// (`[[[{…}, null]]]`); decoding into structs with the same fields, in the same order, accepts
// that and the map form. `bypass_ripple` is ekoDB's replication switch: read, and ignored.

#[derive(Deserialize)]
struct BatchInserts {
    inserts: Vec<InsertItem>,
}

#[derive(Deserialize)]
struct InsertItem {
    data: Map<String, Value>,
    #[serde(default, rename = "bypass_ripple")]
    _bypass_ripple: Option<bool>,
}

#[derive(Deserialize)]
struct BatchUpdates {
    updates: Vec<UpdateItem>,
}

#[derive(Deserialize)]
struct UpdateItem {
    id: String,
    data: Map<String, Value>,
    #[serde(default, rename = "bypass_ripple")]
    _bypass_ripple: Option<bool>,
}

#[derive(Deserialize)]
struct BatchDeletes {
    deletes: Vec<DeleteItem>,
}

#[derive(Deserialize)]
struct DeleteItem {
    id: String,
    #[serde(default, rename = "bypass_ripple")]
    _bypass_ripple: Option<bool>,
}

/// All or nothing: one refused record refuses the batch (the error names its position).
pub(super) async fn batch_insert(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let batch: BatchInserts = wire.decode(&body).map_err(fail)?;
    let data: Vec<Value> = batch
        .inserts
        .into_iter()
        .map(|i| Value::Object(i.data))
        .collect();
    let docs = on_records(&caller, &name, move |records| {
        records.insert_many_creating(&data)
    })
    .await?;
    wire.answer(StatusCode::OK, &ids_answer(&docs))
}

pub(super) async fn batch_update(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let batch: BatchUpdates = wire.decode(&body).map_err(fail)?;
    let patches: Vec<(String, Value)> = batch
        .updates
        .into_iter()
        .map(|u| (u.id, Value::Object(u.data)))
        .collect();
    let docs = on_records(&caller, &name, move |records| records.patch_many(&patches)).await?;
    wire.answer(StatusCode::OK, &ids_answer(&docs))
}

pub(super) async fn batch_delete(
    caller: Caller,
    _: Immediate,
    wire: Wire,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let batch: BatchDeletes = wire.decode(&body).map_err(fail)?;
    let ids: Vec<String> = batch.deletes.into_iter().map(|d| d.id).collect();
    let docs = on_records(&caller, &name, move |records| records.delete_many(&ids)).await?;
    wire.answer(StatusCode::OK, &ids_answer(&docs))
}

// ----- collections -----

/// The collections the caller may list, as decided by the one policy for each.
pub(super) async fn list_collections(caller: Caller) -> Answer {
    let listable = caller.actor().listable_collections().map_err(fail)?;
    let names: Vec<&str> = listable.iter().map(|c| c.name.as_str()).collect();
    answer(StatusCode::OK, json!({"collections": names}))
}

pub(super) async fn delete_collection(caller: Caller, Path(name): Path<String>) -> Answer {
    caller.delete_collection(&name).await.map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"status": "deleted", "collection": name}),
    )
}
