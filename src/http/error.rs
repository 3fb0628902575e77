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
        let body = match self.shape {
            Shape::Native => {
                json!({"error": {"code": code_of(self.error.kind()), "message": message}})
            }
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
        };
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
