//! The in-process HTTP front (feature `http`): one axum `Router` per dialect, merged by
//! [`router`], served by our own hyper accept loop ([`Server`]). Handlers decode a request, make
//! one library call and encode the answer: no rules live here.

mod admin;
mod cobru;
mod cocobase;
mod ekodb;
mod error;
pub(crate) mod files;
mod pages;
mod realtime;
mod routes;
mod server;
mod toolkit;
mod urbackend;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::db::Db;

pub(crate) use error::{ApiError, Shape};
pub use server::{Server, ServerConfig, ServerHandle, Stopper};
pub(crate) use toolkit::{AppState, Presented, blocking, json_response, no_store};

/// The whole HTTP surface of `db` as one axum router (no socket: tests drive it with
/// `tower::ServiceExt::oneshot`).
pub fn router(db: Db, config: &ServerConfig) -> Router {
    let state = AppState { db: db.clone() };
    let routes = Router::new()
        .merge(routes::all())
        .merge(admin::routes())
        .route("/api/health", get(health))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(not_found)
        .with_state(state);
    protect(routes, db, config)
}

/// The protections every route gets, innermost first.
fn protect(routes: Router, db: Db, config: &ServerConfig) -> Router {
    let cors = cors(db);
    let router = routes
        // Our own limits below are the real ones; axum's extractors would otherwise cut
        // multipart bodies off at their own 2 MiB default.
        .layer(DefaultBodyLimit::disable())
        // The body limit and the deadlines, so chunked bodies over the limit are cut off too.
        .layer(axum::middleware::from_fn_with_state(
            RequestLimits {
                body: config.max_body_bytes,
                upload: config.max_upload_bytes,
                timeout: config.request_timeout,
            },
            limit_request,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .layer(cors)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                generic_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            },
        ))
        .layer(axum::middleware::from_fn(dialect_errors));
    if config.log_requests {
        router.layer(axum::middleware::from_fn(log_request))
    } else {
        router
    }
}

/// The body limits and the request timeout of [`ServerConfig`].
#[derive(Clone, Copy)]
struct RequestLimits {
    body: usize,
    upload: usize,
    timeout: Duration,
}

/// The limit the body of a request is held to (a request extension, for error messages).
#[derive(Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) u64);

/// Uploads (multipart bodies and the file routes) get the upload ceiling, everything else the
/// body limit. A declared length over it is refused at once; a chunked or lying body is cut off
/// when it passes it (413 either way).
///
/// Deadlines: a request must be answered within the request timeout (408), except an upload,
/// which may take as long as its bytes keep coming — a large file on a slow link is not an
/// attack — but is cut off (408) once its body has been idle for the request timeout.
async fn limit_request(
    State(limits): State<RequestLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_upload = is_upload(&request);
    let limit = if is_upload {
        limits.upload
    } else {
        limits.body
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return generic_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(BodyLimit(limit as u64));
    let limited = http_body_util::Limited::new(body, limit);
    let timed_out = || generic_error(StatusCode::REQUEST_TIMEOUT, "the request timed out");
    if !is_upload {
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::new(limited));
        return tokio::time::timeout(limits.timeout, next.run(request))
            .await
            .unwrap_or_else(|_| timed_out());
    }
    let progress = std::sync::Arc::new(Progress::new());
    let body = axum::body::Body::new(ProgressBody {
        inner: limited,
        progress: progress.clone(),
    });
    let answer = next.run(axum::extract::Request::from_parts(parts, body));
    tokio::pin!(answer);
    loop {
        if progress.body_done() {
            // The bytes are in: storing them gets the ordinary deadline.
            return tokio::time::timeout(limits.timeout, answer)
                .await
                .unwrap_or_else(|_| timed_out());
        }
        let idle = progress.idle();
        if idle >= limits.timeout {
            // Dropping the handler drops its unfinished upload, which removes what it staged.
            return timed_out();
        }
        tokio::select! {
            response = &mut answer => return response,
            () = tokio::time::sleep(limits.timeout - idle) => {}
        }
    }
}

/// Multipart bodies and the bodies of the file routes.
fn is_upload(request: &axum::extract::Request) -> bool {
    let path = request.uri().path();
    ["/api/files/", "/api/uploads/", "/api/storage/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
        || request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            })
}

/// When an upload's body last delivered bytes, and whether it has ended.
struct Progress {
    started: std::time::Instant,
    last_millis: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: std::time::Instant::now(),
            last_millis: std::sync::atomic::AtomicU64::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        let now = self.now_millis();
        self.last_millis
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = self.last_millis.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(self.now_millis().saturating_sub(last))
    }

    fn body_done(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A request body that reports its progress (see [`limit_request`]).
struct ProgressBody<B> {
    inner: B,
    progress: std::sync::Arc<Progress>,
}

impl<B> http_body::Body for ProgressBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(_))) => self.progress.moved(),
            std::task::Poll::Ready(None) => {
                self.progress.moved();
                self.progress
                    .done
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One line per request: method, path (no query string: it may carry a key), status, time.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    eprintln!(
        "{method} {path} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

/// A path for the log, with no credential in it: a segment shaped like a key secret (a client
/// that names a key by its secret, e.g. ekoDB's `DELETE /api/auth/keys/{key}`) is replaced, and
/// so is the token of a signed upload URL, which is a credential until it is used.
fn loggable_path(path: &str) -> String {
    const TOKEN_ROUTES: [&str; 2] = ["/api/uploads/", "/api/storage/blob/"];
    if let Some(prefix) = TOKEN_ROUTES.iter().find(|p| path.starts_with(**p)) {
        return format!("{prefix}<token>");
    }
    path.split('/')
        .map(|segment| {
            // Anywhere in the segment, and percent-encoded too: `key=sk%5Flive_…` is a key.
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            let carries_key = decoded
                .char_indices()
                .any(|(at, _)| crate::identity::api_keys::looks_like_secret(&decoded[at..]));
            if carries_key { "<key>" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// CORS: the exact origin list of the settings, read per request.
fn cors(db: Db) -> CorsLayer {
    let cors_db = db;
    CorsLayer::new()
        // The exact list from the settings, read per request: no `*`, no reflection of
        // arbitrary origins, never `null`.
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            origin != "null"
                && cors_db
                    .project()
                    .settings()
                    .is_ok_and(|s| s.allowed_origins.iter().any(|o| o == origin))
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-refresh-token"),
            HeaderName::from_static("x-refresh-token-mode"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600))
}

/// The ekoDB server version whose protocol the ekoDB routes follow.
const EKODB_PROTOCOL_VERSION: &str = "0.80.0";

/// The storage's state (see [`Db::health`]): `ok` (200), or `degraded` (503) once a fatal
/// storage error means the file must be reopened — the process still answers what it can, and
/// the 503 tells a supervisor to restart it. `integrity_ok` (the field ekoDB's client reads)
/// says the file passed redb's integrity check on open and nothing has failed since.
async fn health(State(state): State<AppState>) -> Response {
    let db = state.db.clone();
    let health = blocking(move || Ok(db.health())).await.ok();
    let readable = health.is_some_and(|h| h.readable);
    let writable = health.is_some_and(|h| h.writable);
    let (status, state) = if readable && writable {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    let integrity_ok = readable && writable && health.is_some_and(|h| h.verified_on_open);
    let body = json!({
        "status": state,
        "service": "larder",
        "readable": readable,
        "writable": writable,
        "integrity_ok": integrity_ok,
        // The ekoDB protocol larder speaks: its clients gate some calls on the server version
        // (the Python client's legacy permission edit needs 0.79.2 or later).
        "version": EKODB_PROTOCOL_VERSION,
        "larder_version": env!("CARGO_PKG_VERSION"),
    });
    (status, axum::Json(body)).into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
    match state.db.signing_keys().jwks() {
        Ok(jwks) => axum::Json(jwks).into_response(),
        Err(error) => error::ApiError::new(error, error::Shape::Native).into_response(),
    }
}

async fn not_found() -> Response {
    generic_error(StatusCode::NOT_FOUND, "no such route")
}

/// An error body every SDK can read: urBackend reads `error` (a string), Cocobase `detail`,
/// our own clients `error` and `code`.
fn generic_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "success": false,
        "error": message,
        "message": message,
        "detail": message,
        "code": status.as_u16(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .extensions_mut()
        .insert(FrameworkError(message.to_owned()));
    response
}

/// Marks an error no handler made (a rejection, a limit, a timeout, a panic, an unknown
/// route), so [`dialect_errors`] can give it the body of the door it came through.
#[derive(Clone)]
struct FrameworkError(String);

/// The errors no handler made answer in the shape of the dialect whose route was called (the
/// status stays): an SDK reads every error of its routes the same way.
async fn dialect_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let shape = error::Shape::for_path(request.uri().path());
    let response = next.run(request).await;
    let (Some(shape), Some(FrameworkError(message))) = (
        shape,
        response.extensions().get::<FrameworkError>().cloned(),
    ) else {
        return response;
    };
    let status = response.status();
    let body = shape.body(status, error::code_of_status(status), &message);
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// Every JSON answer says its charset; error answers made by the framework itself (405, 413,
/// 408, bad JSON) get a JSON body instead of plain text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let mut response = if status.as_u16() >= 400 && !is_json && !is_page {
        let message = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "request body too large",
            StatusCode::REQUEST_TIMEOUT => "request timed out",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "send a JSON body with Content-Type: application/json"
            }
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => "malformed request body",
            _ => status.canonical_reason().unwrap_or("error"),
        };
        let mut replaced = generic_error(status, message);
        for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
            if let Some(value) = response.headers().get(&name) {
                replaced.headers_mut().insert(name, value.clone());
            }
        }
        replaced
    } else {
        response
    };
    if is_json || status.as_u16() >= 400 {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[test]
    fn logged_paths_never_carry_a_key() {
        assert_eq!(
            loggable_path("/api/auth/keys/rk_live_abcdef"),
            "/api/auth/keys/<key>"
        );
        assert_eq!(
            loggable_path("/api/key=sk_live_abcdef/x"),
            "/api/<key>/x",
            "a key inside a segment"
        );
        assert_eq!(
            loggable_path("/api/sk%5Flive%5Fabcdef"),
            "/api/<key>",
            "a percent-encoded key"
        );
        assert_eq!(
            loggable_path("/api/find/notes/0192"),
            "/api/find/notes/0192"
        );
        assert_eq!(
            loggable_path("/api/uploads/Zm9vYmFyYmF6"),
            "/api/uploads/<token>"
        );
        assert_eq!(
            loggable_path("/api/storage/blob/Zm9vYmFyYmF6"),
            "/api/storage/blob/<token>"
        );
    }

    async fn boom() -> &'static str {
        panic!("secret detail")
    }

    #[test]
    fn a_panicking_handler_is_a_generic_500_and_the_router_lives() {
        let db = Db::in_memory().unwrap();
        let routes = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }));
        let router = protect(routes, db, &ServerConfig::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let request = |path: &str| {
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap()
            };
            let response = router.clone().oneshot(request("/boom")).await.unwrap();
            assert_eq!(response.status(), 500);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                text.contains("internal error") && !text.contains("secret detail"),
                "{text}"
            );
            let response = router.oneshot(request("/ok")).await.unwrap();
            assert_eq!(response.status(), 200);
        });
    }
}
