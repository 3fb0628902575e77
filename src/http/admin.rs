//! The native admin API under `/api/admin` (secret keys only), and its OpenAPI 3.1 document at
//! `/api/openapi.json`, generated from the same route table the router is built from.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::toolkit::{self, Dialect, json_body};
use super::{ApiError, AppState, Shape, blocking, json_response, no_store};
use crate::access::policy::Action;
use crate::data::collections::CollectionSpec;
use crate::db::Db;
use crate::error::Error;
use crate::files::BucketSpec;
use crate::identity::api_keys::{Grant, KeyKind, NewApiKey};

/// Every admin route: method, path, summary. The router and the OpenAPI document both come
/// from this table, so they cannot drift apart.
const ROUTES: &[(&str, &str, &str)] = &[
    (
        "post",
        "/api/admin/keys",
        "Create an API key; its secret is in this answer only",
    ),
    (
        "get",
        "/api/admin/keys",
        "List API keys (never their secrets)",
    ),
    (
        "post",
        "/api/admin/keys/{id}/rotate",
        "Give a key a new secret, with an optional overlap",
    ),
    ("delete", "/api/admin/keys/{id}", "Revoke a key at once"),
    ("get", "/api/admin/collections", "List collections"),
    (
        "get",
        "/api/admin/collections/{name}",
        "Get a collection's configuration",
    ),
    (
        "put",
        "/api/admin/collections/{name}",
        "Create or update a collection (rules, owner field, hidden fields, indexes)",
    ),
    (
        "delete",
        "/api/admin/collections/{name}",
        "Delete a collection with its documents",
    ),
    (
        "get",
        "/api/admin/buckets",
        "List file buckets with their usage",
    ),
    (
        "put",
        "/api/admin/buckets/{name}",
        "Create or update a bucket (rules, max_file_bytes, keep_orphans)",
    ),
    (
        "delete",
        "/api/admin/buckets/{name}",
        "Delete a bucket with its files",
    ),
    (
        "post",
        "/api/admin/files/cleanup",
        "Remove abandoned uploads, expired upload links and files of deleted documents",
    ),
    ("get", "/api/admin/users", "List users"),
    ("get", "/api/admin/users/{id}", "Get a user"),
    (
        "post",
        "/api/admin/users/{id}/disable",
        "Disable a user and end their sessions",
    ),
    ("post", "/api/admin/users/{id}/enable", "Enable a user"),
    (
        "post",
        "/api/admin/users/{id}/end-sessions",
        "End every session of a user",
    ),
    (
        "delete",
        "/api/admin/users/{id}",
        "Delete a user and their sessions",
    ),
    ("get", "/api/admin/settings", "Read the settings"),
    (
        "put",
        "/api/admin/settings",
        "Change some settings (a JSON object of setting names)",
    ),
    (
        "post",
        "/api/admin/signing-keys/rotate",
        "Start signing tokens with a new key",
    ),
    (
        "get",
        "/api/admin/outbox",
        "Every mail message sent, oldest first",
    ),
    (
        "get",
        "/api/admin/env",
        "List environment variables (values masked)",
    ),
    (
        "get",
        "/api/admin/env/{name}",
        "Read one environment variable (unmasked)",
    ),
    (
        "put",
        "/api/admin/env/{name}",
        "Set an environment variable: {\"value\": …}",
    ),
    (
        "delete",
        "/api/admin/env/{name}",
        "Delete an environment variable",
    ),
];

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/api/openapi.json", get(openapi));
    for (method, path, _) in ROUTES {
        if let Some(handler) = handler(method, path) {
            router = router.route(path, handler);
        }
    }
    router
}

/// The handler of one row of [`ROUTES`] (a unit test checks every row has one).
fn handler(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("post", "/api/admin/keys") => post(create_key),
        ("get", "/api/admin/keys") => get(list_keys),
        ("post", "/api/admin/keys/{id}/rotate") => post(rotate_key),
        ("delete", "/api/admin/keys/{id}") => delete(revoke_key),
        ("get", "/api/admin/collections") => get(list_collections),
        ("get", "/api/admin/collections/{name}") => get(get_collection),
        ("put", "/api/admin/collections/{name}") => put(put_collection),
        ("delete", "/api/admin/collections/{name}") => delete(delete_collection),
        ("get", "/api/admin/buckets") => get(list_buckets),
        ("put", "/api/admin/buckets/{name}") => put(put_bucket),
        ("delete", "/api/admin/buckets/{name}") => delete(delete_bucket),
        ("post", "/api/admin/files/cleanup") => post(cleanup_files),
        ("get", "/api/admin/users") => get(list_users),
        ("get", "/api/admin/users/{id}") => get(get_user),
        ("post", "/api/admin/users/{id}/disable") => post(disable_user),
        ("post", "/api/admin/users/{id}/enable") => post(enable_user),
        ("post", "/api/admin/users/{id}/end-sessions") => post(end_sessions),
        ("delete", "/api/admin/users/{id}") => delete(delete_user),
        ("get", "/api/admin/settings") => get(get_settings),
        ("put", "/api/admin/settings") => put(put_settings),
        ("post", "/api/admin/signing-keys/rotate") => post(rotate_signing_key),
        ("get", "/api/admin/outbox") => get(outbox),
        ("get", "/api/admin/env") => get(list_env),
        ("get", "/api/admin/env/{name}") => get(get_env),
        ("put", "/api/admin/env/{name}") => put(put_env),
        ("delete", "/api/admin/env/{name}") => delete(delete_env),
        _ => return None,
    })
}

type Answer = std::result::Result<Response, ApiError>;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::Native)
}

fn answer(status: StatusCode, value: impl serde::Serialize) -> Answer {
    let body = serde_json::to_value(value).map_err(|e| fail(Error::internal(e)))?;
    Ok(no_store(json_response(status, body)))
}

/// The native API's door: `{"error": {"code", "message"}}` errors.
pub(crate) struct Native;

impl Dialect for Native {
    const SHAPE: Shape = Shape::Native;
    const CREDENTIALS_REQUIRED: &'static str = "an administrator's credential is required";
}

/// An administrator, proven at the edge: a secret key (or a JWT minted from one), as the
/// policy decides.
struct Admin(Db);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, ApiError> {
        let caller = toolkit::Caller::<Native>::from_request_parts(parts, state).await?;
        let db = caller
            .actor()
            .administrator(Action::ManageKeys)
            .map_err(fail)?;
        Ok(Admin(db))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyRequest {
    kind: KeyKind,
    label: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    permissions: BTreeMap<String, Grant>,
    #[serde(default)]
    expires_at: Option<String>,
}

async fn create_key(Admin(db): Admin, body: Bytes) -> Answer {
    let request: NewKeyRequest = json_body(&body).map_err(fail)?;
    let mut new = NewApiKey::new(request.kind, request.label);
    new.description = request.description;
    new.grants = request.permissions;
    if let Some(at) = request.expires_at {
        let micros = crate::store::clock::parse_rfc3339(&at)
            .ok_or_else(|| fail(Error::invalid("`expires_at` must be an RFC 3339 time")))?;
        new.expires_at = Some(crate::store::clock::from_micros(micros));
    }
    let key = blocking(move || db.keys().create(new))
        .await
        .map_err(fail)?;
    answer(StatusCode::CREATED, key)
}

async fn list_keys(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.keys().list().map_err(fail)?)
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RotateRequest {
    overlap_seconds: u64,
}

async fn rotate_key(Admin(db): Admin, Path(id): Path<String>, body: Bytes) -> Answer {
    let request: RotateRequest = json_body(&body).map_err(fail)?;
    let key = blocking(move || {
        db.keys()
            .rotate(&id, Duration::from_secs(request.overlap_seconds))
    })
    .await
    .map_err(fail)?;
    answer(StatusCode::OK, key)
}

async fn revoke_key(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    let revoked = id.clone();
    blocking(move || db.keys().revoke(&id))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"id": revoked, "revoked": true}))
}

async fn list_collections(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.collections().list().map_err(fail)?)
}

async fn get_collection(Admin(db): Admin, Path(name): Path<String>) -> Answer {
    answer(StatusCode::OK, db.collections().info(&name).map_err(fail)?)
}

async fn put_collection(Admin(db): Admin, Path(name): Path<String>, body: Bytes) -> Answer {
    let spec: CollectionSpec = json_body(&body).map_err(fail)?;
    let existed = db.collections().info(&name).is_ok();
    let info = blocking(move || db.collections().put(&name, spec))
        .await
        .map_err(fail)?;
    answer(
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        info,
    )
}

async fn delete_collection(Admin(db): Admin, Path(name): Path<String>) -> Answer {
    let deleted = name.clone();
    blocking(move || db.collections().delete(&name))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"name": deleted, "deleted": true}))
}

async fn list_buckets(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.buckets().list().map_err(fail)?)
}

async fn put_bucket(Admin(db): Admin, Path(name): Path<String>, body: Bytes) -> Answer {
    let spec: BucketSpec = json_body(&body).map_err(fail)?;
    let existed = db.buckets().info(&name).is_ok();
    let info = blocking(move || {
        if existed {
            db.buckets().update(&name, spec)
        } else {
            db.buckets().create(&name, spec)
        }
    })
    .await
    .map_err(fail)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    answer(status, info)
}

async fn delete_bucket(Admin(db): Admin, Path(name): Path<String>) -> Answer {
    let deleted = name.clone();
    blocking(move || db.buckets().delete(&name))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"name": deleted, "deleted": true}))
}

async fn cleanup_files(Admin(db): Admin) -> Answer {
    let removed = blocking(move || db.buckets().cleanup())
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"removed": removed}))
}

async fn list_users(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.users().list().map_err(fail)?)
}

async fn get_user(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    answer(StatusCode::OK, db.users().get(&id).map_err(fail)?)
}

async fn disable_user(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    let user = blocking(move || db.users().disable(&id))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, user)
}

async fn enable_user(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    let user = blocking(move || db.users().enable(&id))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, user)
}

async fn end_sessions(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    db.users().get(&id).map_err(fail)?;
    let user = id.clone();
    blocking(move || db.sessions().end_all(&id))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"id": user, "sessions_ended": true}))
}

async fn delete_user(Admin(db): Admin, Path(id): Path<String>) -> Answer {
    let deleted = id.clone();
    blocking(move || db.users().delete(&id))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"id": deleted, "deleted": true}))
}

async fn get_settings(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.project().settings().map_err(fail)?)
}

async fn put_settings(Admin(db): Admin, body: Bytes) -> Answer {
    let changes: Value = json_body(&body).map_err(fail)?;
    let settings = blocking(move || db.project().update_settings(&changes))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, settings)
}

async fn rotate_signing_key(Admin(db): Admin) -> Answer {
    let jwks = blocking(move || {
        db.signing_keys().rotate()?;
        db.signing_keys().jwks()
    })
    .await
    .map_err(fail)?;
    answer(StatusCode::OK, jwks)
}

async fn outbox(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.mail().outbox().map_err(fail)?)
}

async fn list_env(Admin(db): Admin) -> Answer {
    answer(StatusCode::OK, db.project().list_env_vars().map_err(fail)?)
}

async fn get_env(Admin(db): Admin, Path(name): Path<String>) -> Answer {
    let value = db.project().env_var(&name).map_err(fail)?;
    answer(
        StatusCode::OK,
        json!({"name": name.to_uppercase().replace(' ', "_"), "value": value}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvValue {
    value: String,
}

async fn put_env(Admin(db): Admin, Path(name): Path<String>, body: Bytes) -> Answer {
    let request: EnvValue = json_body(&body).map_err(fail)?;
    let name = blocking(move || db.project().set_env_var(&name, &request.value))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"name": name}))
}

async fn delete_env(Admin(db): Admin, Path(name): Path<String>) -> Answer {
    let deleted = name.clone();
    blocking(move || db.project().delete_env_var(&name))
        .await
        .map_err(fail)?;
    answer(StatusCode::OK, json!({"name": deleted, "deleted": true}))
}

/// The OpenAPI 3.1 document of the native routes.
pub(crate) fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[*method] = json!({
            "summary": summary,
            "security": [{"apiKey": []}],
            "parameters": parameters,
            "responses": {
                "200": {"description": "success"},
                "201": {"description": "created"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        });
    }
    paths.insert(
        "/.well-known/jwks.json".into(),
        json!({"get": {"summary": "Public keys that verify access tokens (JWKS)", "security": [], "responses": {"200": {"description": "a JWKS document"}}}}),
    );
    paths.insert(
        "/api/health".into(),
        json!({"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "larder native API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "responses": {"Error": {
                "description": "an error",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}}
                }}}
            }},
        },
    })
}

async fn openapi(State(_): State<AppState>) -> Response {
    json_response(StatusCode::OK, openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_has_a_handler_and_is_documented() {
        for (method, path, _) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path}");
        }
        let document = openapi_document();
        for (method, path, _) in ROUTES {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path}"
            );
        }
        assert_eq!(document["openapi"], "3.1.0");
    }
}
