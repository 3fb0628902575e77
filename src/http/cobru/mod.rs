//! Cobru's token refresh (seed 003): `POST /token/refresh/` with `{"refresh": …}` and an
//! `x-api-key`, answering `{"access": …}`. The refresh token is a backend-held credential
//! reused for every mint, so this route does not rotate it (see
//! [`Sessions::access_token_from_refresh`](crate::Sessions::access_token_from_refresh)).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ApiError, AppState, Presented, Shape, blocking, json_response, no_store};
use crate::error::Error;

fn fail(error: Error) -> ApiError {
    ApiError::new(error, Shape::Detail)
}

pub(super) async fn refresh(
    State(state): State<AppState>,
    presented: Presented,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret = presented
        .api_key
        .ok_or_else(|| fail(Error::unauthenticated("an x-api-key header is required")))?;
    state.db.keys().authenticate(&secret).map_err(fail)?;
    let refresh = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => match fields.get("refresh") {
            Some(Value::String(token)) => token.clone(),
            _ => return Err(fail(Error::invalid("`refresh` is required"))),
        },
        _ => return Err(fail(Error::invalid("the body must be a JSON object"))),
    };
    let db = state.db.clone();
    let (access, _) = blocking(move || db.sessions().access_token_from_refresh(&refresh))
        .await
        .map_err(fail)?;
    Ok(no_store(json_response(
        StatusCode::OK,
        json!({"access": access}),
    )))
}
