//! The one mapping from error kinds to HTTP statuses, and the error bodies of each dialect.
//! The status always comes from [`status_of`]; a dialect only chooses the body's shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Error, ErrorKind};

/// The status of an error kind. Exhaustive on purpose: a new kind must be placed here.
pub(crate) fn status_of(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        ErrorKind::VerificationRequired => StatusCode::ACCEPTED,
        ErrorKind::Unauthenticated { .. } | ErrorKind::SecondFactorRequired => {
            StatusCode::UNAUTHORIZED
        }
        ErrorKind::Forbidden { .. } => StatusCode::FORBIDDEN,
        ErrorKind::NotFound { .. } => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists { .. } => StatusCode::CONFLICT,
        ErrorKind::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Storage { fatal: true } => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Storage { fatal: false }
        | ErrorKind::Corrupted
        | ErrorKind::Internal
        | ErrorKind::AlreadyOpen
        | ErrorKind::NotALarderFile
        | ErrorKind::UnsupportedFormat { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A stable machine-readable code per kind (the admin API's `error.code`).
pub(crate) fn code_of(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput { .. } => "invalid_input",
        ErrorKind::VerificationRequired => "verification_required",
        ErrorKind::Unauthenticated { .. } => "unauthenticated",
        ErrorKind::SecondFactorRequired => "second_factor_required",
        ErrorKind::Forbidden { .. } => "forbidden",
        ErrorKind::NotFound { .. } => "not_found",
        ErrorKind::AlreadyExists { .. } => "already_exists",
        ErrorKind::TooLarge { .. } => "too_large",
        ErrorKind::RateLimited { .. } => "rate_limited",
        ErrorKind::Storage { fatal: true } => "unavailable",
        ErrorKind::StorageFull => "insufficient_storage",
        ErrorKind::Unsupported { .. } => "not_implemented",
        ErrorKind::Storage { fatal: false }
        | ErrorKind::Corrupted
        | ErrorKind::Internal
        | ErrorKind::AlreadyOpen
        | ErrorKind::NotALarderFile
        | ErrorKind::UnsupportedFormat { .. } => "internal",
    }
}

/// The code of an error the framework or the protections made, from its status alone.
pub(crate) fn code_of_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    }
}

/// The message a client may see: the error's own words for its mistakes and for what larder
/// does not offer, a generic phrase for the server's failures (never storage internals).
pub(crate) fn public_message(error: &Error) -> String {
    match status_of(error.kind()) {
        StatusCode::NOT_IMPLEMENTED => error.to_string(),
        StatusCode::SERVICE_UNAVAILABLE => "the service is unavailable; retry later".into(),
        StatusCode::INSUFFICIENT_STORAGE => "the server is out of storage space".into(),
        status if status.is_server_error() => "internal error".into(),
        _ => error.to_string(),
    }
}

/// How a dialect shapes error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `{"error": {"code", "message"}}` (admin API, health, JWKS).
    Native,
    /// `{"success": false, "error", "message", "code"}` (urBackend).
    UrBackend,
    /// `{"detail": …}` (Cocobase, Cobru).
    Detail,
    /// `{"code": <status>, "message", "error"}` (ekoDB: its client reads `code` and `message`,
    /// the seed shows `error`).
    EkoDb,
}

impl Shape {
    /// The door a path belongs to, for the errors no handler made (bad JSON, a wrong content
    /// type or method, an unknown route, a body over the limit, a timeout): they answer in the
    /// shape of the dialect whose route it is. `None` for paths of no dialect.
    pub(crate) fn for_path(path: &str) -> Option<Shape> {
        const DOORS: &[(&str, Shape)] = &[
            ("/api/admin", Shape::Native),
            ("/api/files", Shape::Native),
            ("/api/uploads", Shape::Native),
            ("/api/openapi.json", Shape::Native),
            ("/api/health", Shape::Native),
            ("/.well-known/", Shape::Native),
            ("/api/userAuth/", Shape::UrBackend),
            ("/api/data/", Shape::UrBackend),
            ("/api/storage/", Shape::UrBackend),
            ("/api/mail/", Shape::UrBackend),
            ("/auth-collections/", Shape::Detail),
            ("/collections", Shape::Detail),
            ("/token/refresh", Shape::Detail),
            ("/api/auth/", Shape::EkoDb),
            ("/api/insert/", Shape::EkoDb),
            ("/api/find/", Shape::EkoDb),
            ("/api/update/", Shape::EkoDb),
            ("/api/delete/", Shape::EkoDb),
            ("/api/batch/", Shape::EkoDb),
            ("/api/collections", Shape::EkoDb),
        ];
        DOORS
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, shape)| *shape)
    }

    /// An error body in this shape.
    pub(crate) fn body(self, status: StatusCode, code: &str, message: &str) -> serde_json::Value {
        match self {
            Shape::Native => json!({"error": {"code": code, "message": message}}),
            Shape::UrBackend => json!({
                "success": false,
                "error": message,
                "message": message,
                "code": status.as_u16(),
            }),
            Shape::Detail => json!({"detail": message}),
            Shape::EkoDb => json!({
                "code": status.as_u16(),
                "message": message,
                "error": message,
            }),
        }
    }
}

/// An error on its way out, in a dialect's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) error: Error,
    pub(crate) shape: Shape,
}

impl ApiError {
    pub(crate) fn new(error: Error, shape: Shape) -> Self {
        ApiError { error, shape }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.error.kind());
        let message = public_message(&self.error);
        let body = self
            .shape
            .body(status, code_of(self.error.kind()), &message);
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self.error.kind() {
            ErrorKind::Unauthenticated { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ErrorKind::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind. `ordinal` names each kind with no catch-all, so a new kind does
    /// not compile until it is placed there, and the test below fails until it is listed here.
    fn one_of_every_kind() -> Vec<ErrorKind> {
        let message = || "m".to_owned();
        vec![
            ErrorKind::InvalidInput { message: message() },
            ErrorKind::NotFound { what: "w".into() },
            ErrorKind::AlreadyExists { what: "w".into() },
            ErrorKind::TooLarge {
                what: "w".into(),
                limit: 1,
            },
            ErrorKind::AlreadyOpen,
            ErrorKind::Unauthenticated { message: message() },
            ErrorKind::Forbidden { message: message() },
            ErrorKind::SecondFactorRequired,
            ErrorKind::VerificationRequired,
            ErrorKind::RateLimited {
                retry_after_secs: 3,
            },
            ErrorKind::NotALarderFile,
            ErrorKind::UnsupportedFormat {
                found: 9,
                supported: 1,
            },
            ErrorKind::StorageFull,
            ErrorKind::Corrupted,
            ErrorKind::Storage { fatal: true },
            ErrorKind::Storage { fatal: false },
            ErrorKind::Unsupported { message: message() },
            ErrorKind::Internal,
        ]
    }

    fn ordinal(kind: &ErrorKind) -> usize {
        match kind {
            ErrorKind::InvalidInput { .. } => 0,
            ErrorKind::NotFound { .. } => 1,
            ErrorKind::AlreadyExists { .. } => 2,
            ErrorKind::TooLarge { .. } => 3,
            ErrorKind::AlreadyOpen => 4,
            ErrorKind::Unauthenticated { .. } => 5,
            ErrorKind::Forbidden { .. } => 6,
            ErrorKind::SecondFactorRequired => 7,
            ErrorKind::VerificationRequired => 8,
            ErrorKind::RateLimited { .. } => 9,
            ErrorKind::NotALarderFile => 10,
            ErrorKind::UnsupportedFormat { .. } => 11,
            ErrorKind::StorageFull => 12,
            ErrorKind::Corrupted => 13,
            ErrorKind::Storage { .. } => 14,
            ErrorKind::Unsupported { .. } => 15,
            ErrorKind::Internal => 16,
        }
    }

    const KINDS: usize = 17;

    #[test]
    fn every_kind_through_every_dialect_keeps_its_status_and_the_dialects_shape() {
        let kinds = one_of_every_kind();
        let mut seen: Vec<usize> = kinds.iter().map(ordinal).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..KINDS).collect::<Vec<_>>(), "every kind is listed");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for kind in kinds {
            for shape in [Shape::Native, Shape::UrBackend, Shape::Detail, Shape::EkoDb] {
                let response = ApiError::new(Error::from(kind.clone()), shape).into_response();
                let status = response.status();
                assert_eq!(status, status_of(&kind), "{kind:?} as {shape:?}");
                let bytes = runtime
                    .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                    .unwrap();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let message = match shape {
                    Shape::Native => {
                        assert_eq!(body["error"]["code"], code_of(&kind), "{kind:?}");
                        &body["error"]["message"]
                    }
                    Shape::UrBackend => {
                        assert_eq!(body["success"], false);
                        assert_eq!(body["code"], status.as_u16());
                        &body["error"]
                    }
                    Shape::Detail => &body["detail"],
                    Shape::EkoDb => {
                        assert_eq!(body["code"], status.as_u16());
                        &body["message"]
                    }
                };
                let message = message
                    .as_str()
                    .unwrap_or_else(|| panic!("{kind:?} as {shape:?} has no message: {body}"));
                if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
                    let generic = [
                        "internal error",
                        "the service is unavailable; retry later",
                        "the server is out of storage space",
                    ];
                    assert!(generic.contains(&message), "{kind:?} leaks: {message}");
                }
            }
        }
    }

    #[test]
    fn every_kind_has_its_status_and_code() {
        let cases = [
            (
                ErrorKind::InvalidInput {
                    message: "m".into(),
                },
                400,
                "invalid_input",
            ),
            (
                ErrorKind::Unauthenticated {
                    message: "m".into(),
                },
                401,
                "unauthenticated",
            ),
            (
                ErrorKind::Forbidden {
                    message: "m".into(),
                },
                403,
                "forbidden",
            ),
            (ErrorKind::NotFound { what: "w".into() }, 404, "not_found"),
            (
                ErrorKind::AlreadyExists { what: "w".into() },
                409,
                "already_exists",
            ),
            (
                ErrorKind::TooLarge {
                    what: "w".into(),
                    limit: 1,
                },
                413,
                "too_large",
            ),
            (
                ErrorKind::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (ErrorKind::Storage { fatal: true }, 503, "unavailable"),
            (ErrorKind::Storage { fatal: false }, 500, "internal"),
            (ErrorKind::Corrupted, 500, "internal"),
            (ErrorKind::StorageFull, 507, "insufficient_storage"),
            (
                ErrorKind::Unsupported {
                    message: "m".into(),
                },
                501,
                "not_implemented",
            ),
            (ErrorKind::Internal, 500, "internal"),
        ];
        for (kind, status, code) in cases {
            assert_eq!(status_of(&kind).as_u16(), status, "{kind:?}");
            assert_eq!(code_of(&kind), code, "{kind:?}");
        }
    }

    #[test]
    fn server_errors_never_leak_their_cause() {
        let error = Error::storage(std::io::Error::other("/secret/path: disk on fire"));
        assert_eq!(public_message(&error), "internal error");
        let response = ApiError::new(error, Shape::UrBackend).into_response();
        assert_eq!(response.status(), 500);
    }

    #[test]
    fn rate_limits_carry_an_integer_retry_after() {
        let response = ApiError::new(Error::rate_limited(7), Shape::Detail).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
