//! larder's own pages, the last fallback of the mailed links when no app URL is configured:
//! confirming an email, and a form to choose a new password. Plain HTML, no script, a strict
//! content security policy, and no referrer (the token is in the URL).

use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, blocking};

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub(super) struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// Escapes text for HTML (attribute values included).
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}\
         input,button{{font-size:1rem;padding:.5rem;margin:.25rem 0;width:100%}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

pub(super) async fn verify_email(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let db = state.db.clone();
    let token = query.token;
    let verified = blocking(move || db.users().verify_email_token(&token)).await;
    match verified {
        Ok(()) => match state
            .db
            .project()
            .settings()
            .ok()
            .and_then(|s| s.verification_success_url)
        {
            Some(url) => match HeaderValue::from_str(&url) {
                Ok(location) => {
                    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
                }
                Err(_) => page(
                    StatusCode::OK,
                    "Email confirmed",
                    "<p>Your email address is confirmed. You can sign in now.</p>",
                ),
            },
            None => page(
                StatusCode::OK,
                "Email confirmed",
                "<p>Your email address is confirmed. You can sign in now.</p>",
            ),
        },
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            "Link expired",
            "<p>This link is invalid, already used or expired. Ask for a new one from the app.</p>",
        ),
    }
}

fn reset_form_page(token: &str, message: Option<&str>) -> String {
    let notice = message.map_or_else(String::new, |m| {
        format!("<p><strong>{}</strong></p>", escape(m))
    });
    format!(
        "{notice}<form method=\"post\" action=\"/auth/reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label>New password<input type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" required></label>\
         <button type=\"submit\">Change password</button></form>",
        escape(token)
    )
}

pub(super) async fn reset_form(Query(query): Query<TokenQuery>) -> Response {
    // Showing the form spends nothing: the token is only used when the form is sent.
    page(
        StatusCode::OK,
        "Choose a new password",
        &reset_form_page(&query.token, None),
    )
}

pub(super) async fn reset_password(
    State(state): State<AppState>,
    Form(form): Form<ResetForm>,
) -> Response {
    let db = state.db.clone();
    let (token, password) = (form.token.clone(), form.password);
    match blocking(move || db.users().reset_password_with_token(&token, &password)).await {
        Ok(()) => {
            let login = state
                .db
                .project()
                .settings()
                .ok()
                .and_then(|s| s.login_url.or(s.frontend_url))
                .map(|url| format!("<p><a href=\"{}\">Sign in</a></p>", escape(&url)))
                .unwrap_or_default();
            page(
                StatusCode::OK,
                "Password changed",
                &format!(
                    "<p>Your password was changed, and every session was signed out.</p>{login}"
                ),
            )
        }
        Err(error) => {
            let message = match error.kind() {
                crate::error::ErrorKind::InvalidInput { message } => message.clone(),
                _ => "something went wrong; try again".to_owned(),
            };
            page(
                StatusCode::BAD_REQUEST,
                "Choose a new password",
                &reset_form_page(&form.token, Some(&message)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
