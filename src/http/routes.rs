//! The route table of every door but the admin API (whose routes come from its documented
//! list, in `admin.rs`): each path with the methods it answers and the handler of each. The
//! dialect modules hold only handlers and their wire formats.

use axum::Router;
use axum::routing::{any, delete, get, post, put};

use super::toolkit::AppState;
use super::{cobru, cocobase, ekodb, files, pages, realtime, urbackend};

/// Every door's routes, merged.
pub(super) fn all() -> Router<AppState> {
    Router::new()
        .merge(urbackend())
        .merge(storage())
        .merge(cobru())
        .merge(cocobase())
        .merge(ekodb())
        .merge(files())
        .merge(pages())
        .route("/api/realtime/{collection}", get(realtime::stream))
}

/// urBackend: accounts, data, mail (and storage, below).
fn urbackend() -> Router<AppState> {
    Router::new()
        .route("/api/userAuth/signup", post(urbackend::signup))
        .route("/api/userAuth/login", post(urbackend::login))
        .route("/api/userAuth/refresh-token", post(urbackend::refresh))
        .route("/api/userAuth/logout", post(urbackend::logout))
        .route("/api/userAuth/me", get(urbackend::me))
        .route(
            "/api/userAuth/public/{username}",
            get(urbackend::public_profile),
        )
        .route(
            "/api/userAuth/update-profile",
            put(urbackend::update_profile),
        )
        .route(
            "/api/userAuth/change-password",
            put(urbackend::change_password),
        )
        .route("/api/userAuth/verify-email", post(urbackend::verify_email))
        .route(
            "/api/userAuth/resend-verification-otp",
            post(urbackend::resend_verification),
        )
        .route(
            "/api/userAuth/request-password-reset",
            post(urbackend::request_reset),
        )
        .route(
            "/api/userAuth/reset-password",
            post(urbackend::reset_password),
        )
        .route(
            "/api/userAuth/social/exchange",
            post(urbackend::social_exchange),
        )
        .route(
            "/api/userAuth/social/{provider}/start",
            get(urbackend::social_start),
        )
        .route("/api/mail/send", post(urbackend::send_mail))
        .route("/api/schemas/{collection}", get(urbackend::schema))
        .route(
            "/api/data/{collection}",
            get(urbackend::list).post(urbackend::insert),
        )
        .route(
            "/api/data/{collection}/{id}",
            get(urbackend::get_one)
                .put(urbackend::replace)
                .patch(urbackend::patch)
                .delete(urbackend::delete),
        )
}

/// UrBackend storage.
fn storage() -> Router<AppState> {
    Router::new()
        .route(
            "/api/storage/upload-request",
            post(urbackend::storage::upload_request),
        )
        .route("/api/storage/blob/{token}", put(urbackend::storage::blob))
        .route(
            "/api/storage/upload-confirm",
            post(urbackend::storage::upload_confirm),
        )
        .route("/api/storage/upload", post(urbackend::storage::upload))
        .route(
            "/api/storage/public/{*path}",
            get(urbackend::storage::download),
        )
        .route("/api/storage/file", delete(urbackend::storage::delete_file))
}

/// Cobru: the token refresh.
fn cobru() -> Router<AppState> {
    Router::new().route("/token/refresh/", post(cobru::refresh))
}

/// Cocobase: auth collections, collections and documents, files.
fn cocobase() -> Router<AppState> {
    Router::new()
        .route(
            "/realtime/collections/{name}",
            get(cocobase::realtime::watch),
        )
        .route("/realtime/broadcast", get(cocobase::realtime::messaging))
        .route("/realtime/rooms", get(cocobase::realtime::rooms))
        .route("/realtime/rooms/{id}", get(cocobase::realtime::messaging))
        .route("/auth-collections/signup", post(cocobase::signup))
        .route("/auth-collections/login", post(cocobase::login))
        .route(
            "/auth-collections/user",
            get(cocobase::current_user).patch(cocobase::update_user),
        )
        .route("/auth-collections/users", get(cocobase::list_users))
        .route("/auth-collections/users/{id}", get(cocobase::get_user))
        .route("/auth-collections/2fa/enable", post(cocobase::enable_2fa))
        .route("/auth-collections/2fa/disable", post(cocobase::disable_2fa))
        .route(
            "/auth-collections/2fa/send-code",
            post(cocobase::send_2fa_code),
        )
        .route("/auth-collections/2fa/verify", post(cocobase::verify_2fa))
        .route(
            "/auth-collections/verify-email/send",
            post(cocobase::send_verification),
        )
        .route(
            "/auth-collections/verify-email/resend",
            post(cocobase::send_verification),
        )
        .route(
            "/auth-collections/verify-email/verify",
            post(cocobase::verify_email),
        )
        .route("/auth-collections/google-verify", post(cocobase::oauth))
        .route("/auth-collections/github-verify", post(cocobase::oauth))
        .route("/collections/", post(cocobase::create_collection))
        .route(
            "/collections/{name}",
            axum::routing::patch(cocobase::update_collection).delete(cocobase::delete_collection),
        )
        .route("/collections/documents", post(cocobase::create_document))
        .route("/collections/file", post(cocobase::upload_file))
        .route(
            "/collections/{name}/documents",
            get(cocobase::list_documents),
        )
        .route(
            "/collections/{name}/documents/{id}",
            get(cocobase::get_document)
                .patch(cocobase::update_document)
                .delete(cocobase::delete_document),
        )
        .route(
            "/collections/{name}/batch/documents/create",
            post(cocobase::batch_create),
        )
        .route(
            "/collections/{name}/batch/documents/update",
            post(cocobase::batch_update),
        )
        .route(
            "/collections/{name}/batch/documents/delete",
            post(cocobase::batch_delete),
        )
        .route(
            "/collections/{name}/query/documents/count",
            get(cocobase::count),
        )
        .route(
            "/collections/{name}/query/documents/aggregate",
            get(cocobase::aggregate),
        )
}

/// EkoDB: tokens, keys and permissions, records, batches, collections.
fn ekodb() -> Router<AppState> {
    Router::new()
        .route("/api/auth/token", post(ekodb::token))
        .route("/api/ws", get(ekodb::realtime::socket))
        .route("/api/subscribe/{collection}", get(ekodb::realtime::events))
        .route("/api/auth/register", post(ekodb::register))
        .route("/api/auth/keys", get(ekodb::list_keys))
        .route("/api/auth/keys/{key}", delete(ekodb::revoke_key))
        .route(
            "/api/auth/permissions",
            get(ekodb::own_permissions)
                .post(ekodb::set_permissions)
                .put(ekodb::update_permissions),
        )
        .route(
            "/api/auth/keys/{key}/permissions",
            get(ekodb::key_permissions),
        )
        .route(
            "/api/auth/keys/{key}/permissions/collections",
            get(ekodb::list_grants),
        )
        .route(
            "/api/auth/keys/{key}/permissions/collections/{name}",
            get(ekodb::get_grant)
                .put(ekodb::put_grant)
                .patch(ekodb::patch_grant)
                .delete(ekodb::delete_grant),
        )
        .route(
            "/api/auth/keys/{key}/permissions/kv",
            get(ekodb::list_kv_grants),
        )
        .route(
            "/api/auth/keys/{key}/permissions/kv/{prefix}",
            any(ekodb::kv_grants_unsupported),
        )
        .route("/api/insert/{name}", post(ekodb::insert))
        .route("/api/find/{name}", post(ekodb::find))
        .route("/api/find/{name}/{id}", get(ekodb::find_by_id))
        .route("/api/update/{name}/{id}", put(ekodb::update))
        .route(
            "/api/update/{name}/{id}/action/{action}",
            any(ekodb::field_actions_unsupported),
        )
        .route(
            "/api/update/sequence/{name}/{id}",
            any(ekodb::field_actions_unsupported),
        )
        .route("/api/delete/{name}/{id}", delete(ekodb::remove))
        .route("/api/batch/insert/{name}", post(ekodb::batch_insert))
        .route("/api/batch/update/{name}", put(ekodb::batch_update))
        .route("/api/batch/delete/{name}", delete(ekodb::batch_delete))
        .route("/api/collections", get(ekodb::list_collections))
        .route("/api/collections/{name}", delete(ekodb::delete_collection))
}

/// larder's own file routes and signed uploads.
fn files() -> Router<AppState> {
    Router::new()
        .route("/api/files/{bucket}", get(files::list).post(files::upload))
        .route(
            "/api/files/{bucket}/{name}",
            get(files::download).delete(files::remove),
        )
        .route("/api/uploads", post(files::grant))
        .route("/api/uploads/{token}", put(files::redeem))
}

/// The account pages linked from mails.
fn pages() -> Router<AppState> {
    Router::new()
        .route("/auth/verify-email", get(pages::verify_email))
        .route(
            "/auth/reset-password",
            get(pages::reset_form).post(pages::reset_password),
        )
}
