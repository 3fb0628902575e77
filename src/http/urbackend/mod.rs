//! The urBackend dialect (seed 004; the `urbackend` Python SDK): `/api/userAuth/*` and
//! `/api/data/*`, in the `{success, data, message}` envelope.
//!
//! Identity, decided once here at the edge: every route needs a valid `pk_live_` or `sk_live_`
//! key (401 otherwise). A secret key is server-trusted: on data routes it acts as itself and a
//! Bearer is ignored. A publishable key with a valid Bearer acts as that user; with no Bearer,
//! as an anonymous client of the project; with an invalid Bearer, 401.

pub(super) mod storage;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::toolkit::{self, Dialect, Params, json_document, json_object, whole_number};
use super::{ApiError, Shape, blocking, no_store};
use crate::data::documents::{Collection, Doc};
use crate::data::query::{Filter, Op, Order, Query, Sort};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::identity::sessions::SignedIn;
use crate::identity::users::{NewUser, User};

/// Query parameters that are never filters.
const RESERVED_PARAMS: &[&str] = &[
    "sort", "limit", "page", "skip", "populate", "expand", "count", "fields", "meta", "cursor",
];
/// Default and largest page size.
const PAGE_LIMIT: usize = 100;
/// The refresh cookie's name and path.
const COOKIE: &str = "refreshToken";

type Answer = std::result::Result<Response, ApiError>;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::UrBackend)
}

/// `{success: true, data, message}`.
fn ok(status: StatusCode, data: Value, message: &str) -> Response {
    super::json_response(
        status,
        json!({"success": true, "data": data, "message": message}),
    )
}

/// urBackend's door: `{success: false, error, message, code}` errors.
pub(crate) struct UrBackend;

impl Dialect for UrBackend {
    const SHAPE: Shape = Shape::UrBackend;
    const CREDENTIALS_REQUIRED: &'static str = "an x-api-key header or a Bearer token is required";
}

/// The caller of an urBackend route: what it presented (a key, if any, checked on arrival).
/// The data, mail and storage routes act through [`toolkit::Visitor::actor`], so every
/// credential opens them within its rights.
type Caller = toolkit::Visitor<UrBackend>;

impl toolkit::Visitor<UrBackend> {
    /// The account routes name the project by its key, as the hosted service does.
    fn require_project_key(&self) -> Result<()> {
        if self.has_key {
            Ok(())
        } else {
            Err(Error::unauthenticated("an x-api-key header is required"))
        }
    }
}

/// `x-refresh-token-mode: header`: the refresh token travels in the body, not in a cookie.
fn refresh_in_body(headers: &HeaderMap) -> bool {
    headers
        .get("x-refresh-token-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"header"))
}

fn text_field(map: &Map<String, Value>, name: &str) -> Result<String> {
    match map.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(Error::invalid(format!("`{name}` is required"))),
    }
}

/// `2025-11-04T10:00:00.123456+00:00` → `2025-11-04T10:00:00.123Z`.
fn iso_millis(timestamp: &str) -> String {
    match timestamp.get(..23) {
        Some(head) => format!("{head}Z"),
        None => timestamp.to_owned(),
    }
}

fn user_view(user: &User) -> Value {
    let mut view = match &user.data {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    view.insert("_id".into(), json!(user.id));
    view.insert("email".into(), json!(user.email));
    view.insert("username".into(), json!(user.username));
    view.insert("roles".into(), json!(user.roles));
    view.insert("emailVerified".into(), json!(user.email_verified));
    view.insert("createdAt".into(), json!(iso_millis(&user.created_at)));
    view.insert("updatedAt".into(), json!(iso_millis(&user.updated_at)));
    Value::Object(view)
}

fn doc_view(doc: Doc) -> Value {
    let mut view = match doc.data {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    view.insert("_id".into(), json!(doc.id));
    view.insert("createdAt".into(), json!(iso_millis(&doc.created_at)));
    view.insert("updatedAt".into(), json!(iso_millis(&doc.updated_at)));
    Value::Object(view)
}

/// The tokens of a sign-in, plus the refresh cookie; the refresh token is in the body only in
/// header mode.
fn signed_in_answer(
    status: StatusCode,
    signed_in: &SignedIn,
    header_mode: bool,
    extra: Map<String, Value>,
) -> Response {
    let mut data = extra;
    data.insert("accessToken".into(), json!(signed_in.access_token));
    data.insert("token".into(), json!(signed_in.access_token));
    data.insert("expiresIn".into(), json!(signed_in.expires_in));
    data.insert("user".into(), user_view(&signed_in.user));
    if header_mode {
        data.insert("refreshToken".into(), json!(signed_in.refresh_token));
    }
    let mut response = ok(status, Value::Object(data), "");
    set_refresh_cookie(&mut response, Some(&signed_in.refresh_token));
    no_store(response)
}

fn set_refresh_cookie(response: &mut Response, token: Option<&str>) {
    let cookie = match token {
        Some(token) => format!(
            "{COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/api/userAuth; Max-Age={}",
            crate::identity::sessions::DEFAULT_SESSION_LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/api/userAuth; Max-Age=0"),
    };
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The refresh token presented: `x-refresh-token` first, then the cookie.
fn presented_refresh_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("x-refresh-token").and_then(|v| v.to_str().ok()) {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// A signup body: `email`, `password`, an optional `username`, and the rest as the profile
/// (server-managed fields among the extras are ignored, the study's policy).
fn new_user(body: &Bytes) -> Result<NewUser> {
    let mut fields = json_object(body)?;
    let email = text_field(&fields, "email")?;
    let password = text_field(&fields, "password")?;
    let username = match fields.remove("username") {
        Some(Value::String(name)) => Some(name),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Error::invalid("`username` must be a string")),
    };
    for managed in [
        "email",
        "password",
        "_id",
        "passwordHash",
        "emailVerified",
        "createdAt",
        "updatedAt",
    ] {
        fields.remove(managed);
    }
    let mut new = NewUser::new(email, password);
    new.username = username;
    new.data = fields;
    Ok(new)
}

pub(super) async fn signup(caller: Caller, headers: HeaderMap, body: Bytes) -> Answer {
    let header_mode = refresh_in_body(&headers);
    caller.require_project_key().map_err(fail)?;
    let new = new_user(&body).map_err(fail)?;
    let (client, db) = (caller.client(), caller.db.clone());
    let signed_in = blocking(move || db.users().signup(new, &client))
        .await
        .map_err(fail)?;
    let mut extra = match user_view(&signed_in.user) {
        Value::Object(view) => view,
        _ => Map::new(),
    };
    extra.insert("userId".into(), json!(signed_in.user.id));
    Ok(signed_in_answer(
        StatusCode::CREATED,
        &signed_in,
        header_mode,
        extra,
    ))
}

pub(super) async fn login(caller: Caller, headers: HeaderMap, body: Bytes) -> Answer {
    let header_mode = refresh_in_body(&headers);
    caller.require_project_key().map_err(fail)?;
    let fields = json_object(&body).map_err(fail)?;
    let email = text_field(&fields, "email").map_err(fail)?;
    let password = text_field(&fields, "password").map_err(fail)?;
    let client = caller.client();
    let db = caller.db.clone();
    let signed_in = blocking(move || db.users().login(&email, &password, &client))
        .await
        .map_err(fail)?;
    Ok(signed_in_answer(
        StatusCode::OK,
        &signed_in,
        header_mode,
        Map::new(),
    ))
}

pub(super) async fn refresh(caller: Caller, headers: HeaderMap) -> Answer {
    caller.require_project_key().map_err(fail)?;
    let token = presented_refresh_token(&headers)
        .ok_or_else(|| fail(Error::unauthenticated("a refresh token is required")))?;
    let header_mode = refresh_in_body(&headers) || headers.contains_key("x-refresh-token");
    let db = caller.db.clone();
    let signed_in = blocking(move || db.sessions().refresh(&token))
        .await
        .map_err(fail)?;
    Ok(signed_in_answer(
        StatusCode::OK,
        &signed_in,
        header_mode,
        Map::new(),
    ))
}

pub(super) async fn logout(caller: Caller, headers: HeaderMap) -> Answer {
    caller.require_project_key().map_err(fail)?;
    let db = caller.db.clone();
    let bearer = caller.presented.bearer.clone();
    let refresh_token = presented_refresh_token(&headers);
    blocking(move || {
        // Idempotent: whatever can be ended is ended, nothing to end is fine.
        if let Some(session) = bearer.and_then(|token| db.sessions().authenticate(&token).ok()) {
            db.sessions().logout(&session)?;
        }
        if let Some(token) = refresh_token {
            db.sessions().logout_refresh_token(&token)?;
        }
        Ok(())
    })
    .await
    .map_err(fail)?;
    let mut response = super::json_response(
        StatusCode::OK,
        json!({"success": true, "message": "Logged out"}),
    );
    set_refresh_cookie(&mut response, None);
    Ok(no_store(response))
}

/// The caller's own session, from the Bearer.
fn session(caller: &Caller) -> Result<crate::identity::sessions::UserSession> {
    caller.require_project_key()?;
    let token = caller
        .presented
        .bearer
        .as_deref()
        .ok_or_else(|| Error::unauthenticated("a Bearer token is required"))?;
    caller.db.sessions().authenticate(token)
}

pub(super) async fn me(caller: Caller) -> Answer {
    let session = session(&caller).map_err(fail)?;
    Ok(no_store(ok(StatusCode::OK, user_view(session.user()), "")))
}

pub(super) async fn public_profile(caller: Caller, Path(username): Path<String>) -> Answer {
    caller.require_project_key().map_err(fail)?;
    let profile = caller.db.users().public_profile(&username).map_err(fail)?;
    let mut view = profile.fields;
    view.insert("_id".into(), json!(profile.id));
    view.insert("username".into(), json!(profile.username));
    view.insert("createdAt".into(), json!(iso_millis(&profile.created_at)));
    Ok(ok(StatusCode::OK, Value::Object(view), ""))
}

pub(super) async fn update_profile(caller: Caller, body: Bytes) -> Answer {
    let session = session(&caller).map_err(fail)?;
    let changes = Value::Object(json_object(&body).map_err(fail)?);
    let db = caller.db.clone();
    let user = blocking(move || db.users().update_profile(&session, &changes))
        .await
        .map_err(fail)?;
    Ok(no_store(ok(
        StatusCode::OK,
        json!({"message": "Profile updated", "user": user_view(&user)}),
        "Profile updated",
    )))
}

pub(super) async fn change_password(caller: Caller, body: Bytes) -> Answer {
    let session = session(&caller).map_err(fail)?;
    let fields = json_object(&body).map_err(fail)?;
    let current = text_field(&fields, "currentPassword").map_err(fail)?;
    let new = text_field(&fields, "newPassword").map_err(fail)?;
    let db = caller.db.clone();
    blocking(move || db.users().change_password(&session, &current, &new))
        .await
        .map_err(fail)?;
    Ok(no_store(ok(
        StatusCode::OK,
        json!({"message": "Password changed"}),
        "Password changed",
    )))
}

/// Runs an account-flow call with the body's fields, answering `{message}`.
async fn account_flow(
    caller: Caller,
    body: Bytes,
    message: &'static str,
    call: impl FnOnce(&Db, &Map<String, Value>) -> Result<()> + Send + 'static,
) -> Answer {
    caller.require_project_key().map_err(fail)?;
    let fields = json_object(&body).map_err(fail)?;
    let db = caller.db.clone();
    blocking(move || call(&db, &fields)).await.map_err(fail)?;
    Ok(no_store(ok(
        StatusCode::OK,
        json!({"message": message}),
        message,
    )))
}

pub(super) async fn verify_email(caller: Caller, body: Bytes) -> Answer {
    account_flow(caller, body, "Email verified", |db, fields| {
        db.users()
            .verify_email(&text_field(fields, "email")?, &text_field(fields, "otp")?)
    })
    .await
}

pub(super) async fn resend_verification(caller: Caller, body: Bytes) -> Answer {
    account_flow(
        caller,
        body,
        "If the address needs verifying, a code is on its way",
        |db, fields| {
            db.users()
                .request_email_verification(&text_field(fields, "email")?)
        },
    )
    .await
}

pub(super) async fn request_reset(caller: Caller, body: Bytes) -> Answer {
    account_flow(
        caller,
        body,
        "If the address is registered, a reset code is on its way",
        |db, fields| {
            db.users()
                .request_password_reset(&text_field(fields, "email")?)
        },
    )
    .await
}

pub(super) async fn reset_password(caller: Caller, body: Bytes) -> Answer {
    account_flow(caller, body, "Password reset", |db, fields| {
        db.users().reset_password(
            &text_field(fields, "email")?,
            &text_field(fields, "otp")?,
            &text_field(fields, "newPassword")?,
        )
    })
    .await
}

pub(super) async fn social_exchange(_caller: Caller) -> Answer {
    Err(fail(Error::invalid(
        "social login is not available on this server: no exchange code was issued",
    )))
}

pub(super) async fn social_start(_caller: Caller) -> Answer {
    Err(fail(Error::unsupported(
        "social login needs the network and is not available",
    )))
}

/// A string or a list of strings.
fn addresses(value: Option<&Value>) -> Result<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) => many
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::invalid("recipients must be strings"))
            })
            .collect(),
        Some(_) => Err(Error::invalid("recipients must be a string or a list")),
    }
}

pub(super) async fn send_mail(caller: Caller, body: Bytes) -> Answer {
    let actor = caller.actor().map_err(fail)?;
    actor.mail().map_err(fail)?;
    let fields = json_object(&body).map_err(fail)?;
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    let message = crate::project::mail::MailMessage {
        to: addresses(fields.get("to")).map_err(fail)?,
        cc: addresses(fields.get("cc")).map_err(fail)?,
        bcc: addresses(fields.get("bcc")).map_err(fail)?,
        from: text("from"),
        subject: text("subject"),
        text: text("text"),
        html: text("html"),
        template: text("templateName").or_else(|| text("templateId")),
        variables: fields
            .get("variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    let (id, sent) = blocking(move || {
        let mail = actor.mail()?;
        let id = mail.send(message)?;
        Ok((id, mail.outbox()?.len()))
    })
    .await
    .map_err(fail)?;
    Ok(ok(
        StatusCode::OK,
        json!({"id": id, "provider": "outbox", "monthlyUsage": sent, "monthlyLimit": null}),
        "Mail queued",
    ))
}

/// `users` is never reachable through data routes, in any spelling.
fn data_collection(name: &str) -> Result<String> {
    if name.eq_ignore_ascii_case("users") {
        return Err(Error::forbidden(
            "the users collection is not reachable here",
        ));
    }
    Ok(name.to_owned())
}

/// A document body: `_id`, `createdAt`, `updatedAt` are ignored; `$` operators refused.
fn document_body(body: &Bytes) -> Result<Value> {
    let mut fields = json_document(body)?;
    for managed in ["_id", "createdAt", "updatedAt"] {
        fields.remove(managed);
    }
    if fields.keys().any(|k| k.starts_with('$')) {
        return Err(Error::invalid("keys starting with $ are not allowed"));
    }
    Ok(Value::Object(fields))
}

fn field_name(name: &str) -> &str {
    match name {
        "_id" => "id",
        "createdAt" => "created_at",
        "updatedAt" => "updated_at",
        other => other,
    }
}

/// The list query: `f=v`, `f_gt|gte|lt|lte|ne|in|exists=v`, `sort`, `page`, `limit`, `skip`,
/// `count`.
pub(super) struct ListRequest {
    query: Query,
    page: usize,
    limit: usize,
    count_only: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> std::result::Result<Self, ApiError> {
        let Params(params) = Params::from_request_parts(parts, state)
            .await
            .map_err(|rejection| fail(Error::invalid(rejection.body_text())))?;
        list_request(&params).map_err(fail)
    }
}

/// The filter of a list query's parameters (sorting and paging parameters are ignored): the
/// change feed's `filter` syntax.
pub(crate) fn list_filter(params: &[(String, String)]) -> Result<Filter> {
    Ok(list_request(params)?.query.filter)
}

fn list_request(params: &[(String, String)]) -> Result<ListRequest> {
    let mut conditions = Vec::new();
    let mut in_lists: Vec<(String, Vec<Value>)> = Vec::new();
    let mut sort = Vec::new();
    let (mut page, mut limit, mut skip, mut count_only) = (1usize, PAGE_LIMIT, None, false);
    for (key, value) in params {
        match key.as_str() {
            "sort" => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (field, order) = match part.split_once(':') {
                        Some((field, "desc" | "-1")) => (field, Order::Desc),
                        Some((field, "asc" | "1")) => (field, Order::Asc),
                        Some(_) => return Err(Error::invalid("sort order must be asc or desc")),
                        None => match part.strip_prefix('-') {
                            Some(field) => (field, Order::Desc),
                            None => (part, Order::Asc),
                        },
                    };
                    sort.push(Sort {
                        path: field_name(field).to_owned(),
                        order,
                    });
                }
            }
            "page" => page = whole_number(key, value)?.max(1),
            "limit" => limit = whole_number(key, value)?.clamp(1, PAGE_LIMIT),
            "skip" => skip = Some(whole_number(key, value)?),
            "count" => count_only = value == "true" || value == "1",
            k if RESERVED_PARAMS.contains(&k) => {}
            _ => {
                let (field, op) = match key.rsplit_once('_') {
                    Some((field, op @ ("gt" | "gte" | "lt" | "lte" | "ne" | "in" | "exists")))
                        if !field.is_empty() =>
                    {
                        (field, op)
                    }
                    _ => (key.as_str(), "eq"),
                };
                let path = field_name(field).to_owned();
                let text = Value::String(value.clone());
                let condition = match op {
                    "exists" => match value.as_str() {
                        "true" | "True" | "1" => !Filter::is_null(path),
                        _ => Filter::is_null(path),
                    },
                    "in" => {
                        let values = value.split(',').map(|v| Value::String(v.to_owned()));
                        match in_lists.iter_mut().find(|(p, _)| *p == path) {
                            Some((_, list)) => list.extend(values),
                            None => in_lists.push((path, values.collect())),
                        }
                        continue;
                    }
                    // eq, ne, gt, gte, lt, lte: one mapping for every dialect.
                    _ => Filter::Compare {
                        path,
                        op: Op::from_suffix(op).unwrap_or(Op::Eq),
                        value: text,
                    },
                };
                conditions.push(condition);
            }
        }
    }
    for (path, values) in in_lists {
        conditions.push(Filter::is_in(path, values));
    }
    if sort.is_empty() {
        sort.push(Sort {
            path: "created_at".into(),
            order: Order::Desc,
        });
    }
    let offset = skip.unwrap_or((page - 1).saturating_mul(limit));
    let filter = conditions.into_iter().fold(Filter::All, Filter::and);
    Ok(ListRequest {
        query: Query {
            filter,
            sort,
            offset,
            limit: Some(limit),
        },
        page,
        limit,
        count_only,
    })
}

/// Runs one call on a collection's documents as the caller, off the async workers.
async fn on_documents<T: Send + 'static>(
    caller: &Caller,
    collection: &str,
    call: impl FnOnce(Collection<Value>) -> Result<T> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let documents = documents_of(caller, collection)?;
    blocking(move || call(documents)).await.map_err(fail)
}

/// A collection's documents as the caller sees them.
fn documents_of(
    caller: &Caller,
    collection: &str,
) -> std::result::Result<Collection<Value>, ApiError> {
    let collection = data_collection(collection).map_err(fail)?;
    Ok(caller.actor().map_err(fail)?.collection(&collection))
}

/// `GET /api/schemas/{collection}`: the TypeScript SDK's `schema.getSchema`. larder's
/// collections are schemaless, so the model lists what the collection declares that the caller
/// may see: its owner field and its indexed fields. A collection the caller may not list is
/// as missing as one that does not exist.
pub(super) async fn schema(caller: Caller, Path(collection): Path<String>) -> Answer {
    let name = data_collection(&collection).map_err(fail)?;
    let actor = caller.actor().map_err(fail)?;
    let info = blocking(move || {
        actor
            .listable_collections()?
            .into_iter()
            .find(|info| info.name == name)
            .ok_or_else(|| Error::not_found(format!("collection `{name}`")))
    })
    .await
    .map_err(fail)?;
    let spec = &info.spec;
    let visible = |path: &String| !spec.hidden_fields.contains(path);
    let mut model: Vec<Value> = Vec::new();
    if let Some(owner) = spec.owner_field.as_ref().filter(|path| visible(path)) {
        model.push(json!({"key": owner, "type": "String", "required": false}));
    }
    for path in spec.indexes.iter().filter(|path| visible(path)) {
        if spec.owner_field.as_ref() != Some(path) {
            model.push(json!({"key": path, "type": "Mixed", "required": false}));
        }
    }
    let message = "Schema fetched successfully";
    let data = json!({"message": message, "collection": {"name": info.name, "model": model}});
    Ok(ok(StatusCode::OK, data, message))
}

pub(super) async fn list(
    caller: Caller,
    Path(collection): Path<String>,
    request: ListRequest,
) -> Answer {
    let data = on_documents(&caller, &collection, move |docs| {
        if request.count_only {
            return Ok(json!({"count": docs.count(&request.query.filter)?}));
        }
        let (page, total) = docs.find_page(&request.query)?;
        let items: Vec<Value> = page.into_iter().map(doc_view).collect();
        Ok(json!({"items": items, "total": total, "page": request.page, "limit": request.limit}))
    })
    .await?;
    Ok(ok(StatusCode::OK, data, ""))
}

pub(super) async fn insert(caller: Caller, Path(collection): Path<String>, body: Bytes) -> Answer {
    let document = document_body(&body).map_err(fail)?;
    let doc = on_documents(&caller, &collection, move |docs| docs.insert(&document)).await?;
    Ok(ok(StatusCode::CREATED, doc_view(doc), "Document created"))
}

pub(super) async fn get_one(
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Answer {
    // A point read costs microseconds: less than the trip to the blocking pool and back, which
    // was most of a GET's cost, so it runs right here.
    let doc = documents_of(&caller, &collection)?
        .get(&id)
        .map_err(fail)?
        .ok_or_else(|| fail(Error::not_found("document")))?;
    Ok(ok(StatusCode::OK, doc_view(doc), ""))
}

pub(super) async fn replace(
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    // The hosted service's PUT is MongoDB's `$set`, a merge like its PATCH, although its docs
    // say "replace": larder does what the service does.
    let document = document_body(&body).map_err(fail)?;
    let doc = on_documents(&caller, &collection, move |docs| {
        docs.set_fields(&id, &document)
    })
    .await?;
    Ok(ok(StatusCode::OK, doc_view(doc), "Document updated"))
}

pub(super) async fn patch(
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let changes = document_body(&body).map_err(fail)?;
    let doc = on_documents(&caller, &collection, move |docs| docs.patch(&id, &changes)).await?;
    Ok(ok(StatusCode::OK, doc_view(doc), "Document updated"))
}

pub(super) async fn delete(
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Answer {
    let doc = on_documents(&caller, &collection, move |docs| docs.delete(&id)).await?;
    Ok(ok(
        StatusCode::OK,
        // The TypeScript SDK's delete() reads `data.id` (or `data.message`) to report
        // `deleted: true`; the Python SDK reads `_id` and `deleted`.
        json!({"_id": doc.id, "id": doc.id, "deleted": true, "message": "Document deleted"}),
        "Document deleted",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn the_sdk_query_grammar() {
        let request = list_request(&params("published=True&price_gt=50&tags_in=p&tags_in=q&sort=-price,createdAt:asc&limit=500&page=3")).unwrap();
        assert_eq!(request.limit, 100, "limit is capped");
        assert_eq!(request.query.offset, 200);
        assert_eq!(
            request.query.sort[0],
            Sort {
                path: "price".into(),
                order: Order::Desc
            }
        );
        assert_eq!(
            request.query.sort[1],
            Sort {
                path: "created_at".into(),
                order: Order::Asc
            }
        );
        let skip = list_request(&params("skip=7&page=3")).unwrap();
        assert_eq!(skip.query.offset, 7, "skip overrides page");
        let default = list_request(&[]).unwrap();
        assert_eq!(
            default.query.sort[0],
            Sort {
                path: "created_at".into(),
                order: Order::Desc
            }
        );
        assert!(list_request(&params("limit=x")).is_err());
        assert!(list_request(&params("count=true")).unwrap().count_only);
    }

    #[test]
    fn timestamps_become_iso_millis() {
        assert_eq!(
            iso_millis("2025-11-04T10:00:00.123456+00:00"),
            "2025-11-04T10:00:00.123Z"
        );
    }
}
