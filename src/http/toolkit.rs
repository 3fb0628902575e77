//! The toolkit every dialect is built with: the state handlers get, the credentials a request
//! presents, the one caller extractor (credentials → principal through the authentication
//! edge, errors in the dialect's shape), the one JSON body parser, and answers.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::access::principal::Principal;
use crate::actor::Actor;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::error::{ApiError, Shape};
use crate::identity::users::Client;

/// What every handler gets: the database.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Db,
}

/// The server's stop signal, added to every request it serves: long-lived answers (event
/// streams) end when it turns true, so a graceful stop does not wait for them.
#[derive(Debug, Clone)]
pub(crate) struct Stopping(pub(crate) tokio::sync::watch::Receiver<bool>);

/// A response body fed piece by piece through a channel by a task of its own.
pub(crate) struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl ChannelBody {
    pub(crate) fn new(receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        ChannelBody { receiver }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| piece.map(http_body::Frame::data)))
    }
}

/// The client's address, added to every request of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// Runs a library call off the async workers (argon2 and fsync must not stall them).
pub(crate) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|_| Error::internal(std::io::Error::other("a request handler failed")))?
}

/// The credentials a request presents, read once at the edge: `x-api-key` and
/// `Authorization: Bearer`. Two different `x-api-key` headers, or a malformed
/// `Authorization`, are refused rather than guessed at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Presented {
    pub(crate) api_key: Option<String>,
    pub(crate) bearer: Option<String>,
    pub(crate) client: Client,
}

impl Presented {
    pub(crate) fn from_headers(headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Presented> {
        let mut keys = headers.get_all("x-api-key").iter();
        let api_key = match (keys.next(), keys.next()) {
            (None, _) => None,
            (Some(key), None) => Some(
                key.to_str()
                    .map_err(|_| Error::unauthenticated("invalid API key"))?
                    .to_owned(),
            ),
            (Some(_), Some(_)) => return Err(Error::invalid("send one x-api-key header")),
        };
        let bearer = match headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let value = value
                    .to_str()
                    .map_err(|_| Error::unauthenticated("invalid or expired token"))?;
                match value.split_once(' ') {
                    Some((scheme, token))
                        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                    {
                        Some(token.trim().to_owned())
                    }
                    _ => return Err(Error::unauthenticated("invalid or expired token")),
                }
            }
        };
        let client = peer.map(Client::at).unwrap_or_default();
        Ok(Presented {
            api_key,
            bearer,
            client,
        })
    }
}

impl Presented {
    /// The principal these credentials prove (see [`Db::authenticate_request`]).
    pub(crate) fn principal(&self, db: &Db) -> Result<crate::access::principal::Principal> {
        db.authenticate_request(crate::access::auth::Credentials {
            api_key: self.api_key.as_deref(),
            bearer: self.bearer.as_deref(),
        })
    }
}

impl Presented {
    /// The principal of a request that must present a key or a token; `missing` is the message
    /// when it presents neither.
    pub(crate) fn required_principal(
        &self,
        db: &Db,
        missing: &str,
    ) -> Result<crate::access::principal::Principal> {
        if self.api_key.is_none() && self.bearer.is_none() {
            return Err(Error::unauthenticated(missing));
        }
        self.principal(db)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Presented {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        Presented::from_headers(&parts.headers, peer).map_err(|e| ApiError::new(e, Shape::Native))
    }
}

/// A JSON answer with a status.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Marks a response as not to be cached (every auth answer).
pub(crate) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A dialect: how its SDK reads errors, and what it tells a caller who presented nothing.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The shape of its error bodies.
    const SHAPE: Shape;
    /// The message of the 401 for a request with neither a key nor a token.
    const CREDENTIALS_REQUIRED: &'static str;

    /// An error on its way out, in this dialect's shape.
    fn fail(error: Error) -> ApiError {
        ApiError::new(error, Self::SHAPE)
    }
}

/// The credentials a request presents to dialect `D`, a malformed one refused in its shape.
async fn presented_to<D: Dialect>(
    parts: &mut Parts,
    state: &AppState,
) -> std::result::Result<Presented, ApiError> {
    Presented::from_request_parts(parts, state)
        .await
        .map_err(|e| D::fail(e.error))
}

/// A caller whose credentials the authentication edge checked (a key or a token is required):
/// its principal and the database. Every door's handlers act through
/// [`Caller::actor`], so the policy decides what they may do.
pub(crate) struct Caller<D> {
    pub(crate) db: Db,
    pub(crate) principal: Principal,
    dialect: PhantomData<D>,
}

impl<D: Dialect> FromRequestParts<AppState> for Caller<D> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, ApiError> {
        let presented = presented_to::<D>(parts, state).await?;
        let principal = presented
            .required_principal(&state.db, D::CREDENTIALS_REQUIRED)
            .map_err(D::fail)?;
        Ok(Caller {
            db: state.db.clone(),
            principal,
            dialect: PhantomData,
        })
    }
}

impl<D> Caller<D> {
    /// Acts as this caller: every handle it gives asks the policy.
    pub(crate) fn actor(&self) -> Actor {
        self.db.acting_as(self.principal.clone())
    }
}

/// A caller of the public account routes (signup, login, account flows): nothing is required,
/// and a key, when presented, is checked on arrival. A secret key's requests are the server's
/// own (exempt from per-address signup limits).
pub(crate) struct Visitor<D> {
    pub(crate) db: Db,
    pub(crate) presented: Presented,
    /// Whether it presented a valid key.
    pub(crate) has_key: bool,
    client: Client,
    dialect: PhantomData<D>,
}

impl<D: Dialect> FromRequestParts<AppState> for Visitor<D> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, ApiError> {
        let presented = presented_to::<D>(parts, state).await?;
        let mut client = presented.client.clone();
        let mut has_key = false;
        if let Some(secret) = &presented.api_key {
            let key = state.db.keys().authenticate(secret).map_err(D::fail)?;
            has_key = true;
            if key.kind == crate::identity::api_keys::KeyKind::Secret {
                client = client.server_trusted();
            }
        }
        Ok(Visitor {
            db: state.db.clone(),
            presented,
            has_key,
            client,
            dialect: PhantomData,
        })
    }
}

impl<D: Dialect> Visitor<D> {
    /// Who signs up or in: the client's address, server-trusted behind a secret key.
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Acts as whoever these credentials prove (a key or a token is required here), through
    /// the one authentication edge: a valid Bearer decides, then the key.
    pub(crate) fn actor(&self) -> Result<Actor> {
        let principal = self
            .presented
            .required_principal(&self.db, D::CREDENTIALS_REQUIRED)?;
        Ok(self.db.acting_as(principal))
    }
}

/// A query string as its `(name, value)` pairs, in order, repeated names kept.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = axum::extract::rejection::QueryRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let axum::extract::Query(pairs) = axum::extract::Query::try_from_uri(&parts.uri)?;
        Ok(Params(pairs))
    }
}

/// A query parameter that must be a whole number (`limit`, `offset`, `page`, …).
pub(crate) fn whole_number(name: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| Error::invalid(format!("`{name}` must be a whole number")))
}

impl<D> Caller<D> {
    /// Runs `call` off the async workers on the whole database, once the policy lets this
    /// caller do `action` as an administrator.
    pub(crate) async fn as_administrator<T: Send + 'static>(
        &self,
        action: crate::access::policy::Action,
        call: impl FnOnce(Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.actor().administrator(action)?;
        blocking(move || call(db)).await
    }
}

impl<D> Caller<D> {
    /// Deletes a collection with its documents, indexes and attached files, for an
    /// administrator (every dialect's delete-collection route).
    pub(crate) async fn delete_collection(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.as_administrator(
            crate::access::policy::Action::ManageCollections,
            move |db| db.collections().delete(&name),
        )
        .await
    }
}

/// The one JSON body parser for bodies that are objects: an empty body is an empty object.
pub(crate) fn json_object(body: &Bytes) -> Result<Map<String, Value>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::invalid("the body must be a JSON object")),
        Err(_) => Err(Error::invalid("the body is not valid JSON")),
    }
}

/// A document's body: a JSON object, never nothing (a create or update without a body is a
/// client's mistake, not an empty document).
pub(crate) fn json_document(body: &Bytes) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid(
            "the body is empty: send the document as a JSON object",
        ));
    }
    json_object(body)
}

/// A JSON body as `T` (an empty body is `{}`); the error names what is wrong with it.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| Error::invalid(format!("invalid request body: {e}")))
}
