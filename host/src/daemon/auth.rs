//! Authentication over HTTP: the check every route passes (its [`Access`] level comes from the
//! route table), and the login endpoints of seed 001 (`/api/auth/...`, one secret) and seed 002
//! (`/auth/...`, accounts with JWTs), plus API tokens and account administration.
//!
//! Credentials: `Authorization: Bearer <token>` (a JWT, or an API token `gty_…`), or the
//! `gantry_session` cookie a login sets (HttpOnly, SameSite=Strict). A request that changes
//! something on the strength of the cookie must also prove it comes from a page of this server:
//! an `Origin` equal to the server's own host, or the session's `X-CSRF-Token`.

use super::api::{ApiError, ApiResult};
use super::routes::Routes;
use crate::auth::{AuthError, AuthMode, Authority, NewUser, Principal, Profile, Role, TokenKind};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone: health, login, the API description.
    Public,
    /// Any authenticated caller, viewers included.
    Read,
    /// Users and admins: submitting and changing one's own jobs and runs.
    Operate,
    /// Admins: configuration, plugins, other users' work, the daemon itself.
    Admin,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Read => true,
            Access::Operate => role >= Role::User,
            Access::Admin => role == Role::Admin,
        }
    }
}

/// The authority, shared by the gate and the login routes.
pub type Sessions = Authority;

pub const COOKIE: &str = "gantry_session";
const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Clone)]
pub struct Gate {
    pub sessions: Arc<Sessions>,
    pub access: Access,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let detail = e.to_string();
        match e {
            AuthError::BadCredentials | AuthError::BadSecret | AuthError::BadToken => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail),
            AuthError::Inactive | AuthError::RegistrationClosed => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            AuthError::NoSuchUser => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            AuthError::Invalid { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            AuthError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            AuthError::WrongMode(_) => ApiError::new(StatusCode::NOT_FOUND, "auth_mode", detail),
            AuthError::RateLimited(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail),
            AuthError::Store(_) | AuthError::File { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "auth", detail),
        }
    }
}

/// Runs account lookups and password hashing off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, AuthError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "auth", e.to_string()))?
        .map_err(ApiError::from)
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A cookie-authenticated change must come from this server's own pages.
fn same_origin(headers: &HeaderMap, csrf: &str) -> bool {
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| !csrf.is_empty() && v == csrf) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin.split_once("://").is_some_and(|(_, authority)| authority == host),
        _ => false,
    }
}

/// The caller of a request, or why there is none.
pub async fn authenticate(sessions: &Arc<Sessions>, method: &Method, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if sessions.mode() == AuthMode::None {
        return Ok(Principal::local());
    }
    let unauthorized = |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_string());
    let claims = if let Some(token) = bearer(headers) {
        if token.starts_with("gty_") {
            let (sessions, token) = (sessions.clone(), token.to_string());
            return blocking(move || sessions.api_token(&token)).await;
        }
        sessions.verify(token)?
    } else if let Some(token) = cookie_value(headers, COOKIE) {
        let claims = sessions.verify(token)?;
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !same_origin(headers, &claims.csrf) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "a change made with the session cookie needs this server's Origin or the X-CSRF-Token header"));
        }
        claims
    } else {
        return Err(unauthorized("log in first: send `Authorization: Bearer <token>` or the session cookie"));
    };
    if sessions.mode() == AuthMode::Users {
        let sessions = sessions.clone();
        return blocking(move || sessions.current(&claims)).await;
    }
    sessions.current(&claims).map_err(ApiError::from)
}

/// Every route's check: authenticates the caller, refuses a role below the route's access
/// level, and hands the [`Principal`] to the handler.
pub async fn gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if gate.access == Access::Public {
        return next.run(request).await;
    }
    let principal = match authenticate(&gate.sessions, request.method(), request.headers()).await {
        Ok(p) => p,
        Err(e) => {
            let mut response = e.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };
    if !gate.access.allows(principal.role) {
        let detail = format!("{} has the role {}; this needs {:?}", principal.name, principal.role.as_str(), gate.access).to_lowercase();
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn session_cookie(token: &str, max_age_s: u64) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}")
}

/// A login's answer: the body, and the session cookie.
fn with_cookie(issued: &crate::auth::Issued, body: serde_json::Value) -> Response {
    ([(header::SET_COOKIE, session_cookie(&issued.token, issued.expires_s))], Json(body)).into_response()
}

fn logged_out(status: StatusCode) -> Response {
    (status, [(header::SET_COOKIE, session_cookie("", 0))]).into_response()
}

type Shared = State<Arc<super::service::Service>>;

pub fn routes(service: Arc<super::service::Service>) -> Routes {
    Routes::new(service.auth.clone(), "auth")
        .get("/api/auth/check", Access::Public, "Whether this server needs a login (seed 001)", check)
        .post("/api/auth/login", Access::Public, "Log in with the secret (seed 001) or an account; sets the session cookie", login)
        .post("/api/auth/logout", Access::Public, "End the browser session", logout)
        .post("/auth/register", Access::Public, "Create an account (seed 002; can be disabled)", register)
        .post("/auth/jwt/login", Access::Public, "Log in with username (e-mail) and password as a form (seed 002)", jwt_login)
        .post("/auth/jwt/refresh", Access::Public, "Trade a refresh token for new tokens", jwt_refresh)
        .post("/auth/jwt/logout", Access::Read, "Revoke a refresh token and end the browser session (seed 002)", jwt_logout)
        .get("/auth/users/me", Access::Read, "The caller's profile and usage (seed 002)", me)
        .patch("/auth/users/me", Access::Read, "Change the caller's profile or password (seed 002)", update_me)
        .get("/api/protected-route", Access::Read, "Seed 002's example of a route that needs a login", protected)
        .get("/api/admin-only", Access::Admin, "Seed 002's example of a route for admins", protected)
        .get("/api/v1/tokens", Access::Read, "The caller's API tokens (not the tokens themselves)", list_tokens)
        .post("/api/v1/tokens", Access::Read, "A new long-lived API token for scripts; shown once", create_token)
        .delete("/api/v1/tokens/{id}", Access::Read, "Revoke one of the caller's API tokens", delete_token)
        .get("/api/v1/users", Access::Admin, "Every account", list_users)
        .post("/api/v1/users", Access::Admin, "Create an account with a role", create_user)
        .patch("/api/v1/users/{id}", Access::Admin, "Change an account's role or deactivate it", update_user)
        .with_state(service)
}

async fn check(State(service): Shared) -> Json<serde_json::Value> {
    let sessions = service.auth.clone();
    Json(json!({ "requires_auth": sessions.mode() != AuthMode::None, "mode": sessions.mode() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The secret (secret mode) or the account's password (users mode).
    password: String,
    /// Users mode: the account's e-mail.
    #[serde(default, alias = "email")]
    username: Option<String>,
}

/// Counts a failed login against the caller's address, and refuses one over the limit before
/// anything is checked.
async fn limited<T>(sessions: &Arc<Sessions>, addr: SocketAddr, attempt: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
    sessions.limiter.check(addr.ip()).map_err(|wait| ApiError::from(AuthError::RateLimited(wait)))?;
    let result = attempt.await;
    if result.as_ref().is_err_and(|e| e.status() == StatusCode::UNAUTHORIZED) {
        sessions.limiter.failed(addr.ip());
    }
    result
}

async fn login(State(service): Shared, ConnectInfo(addr): ConnectInfo<SocketAddr>, body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>) -> ApiResult<Response> {
    let sessions = service.auth.clone();
    let Json(body) = body?;
    let issued = limited(&sessions, addr, async {
        match sessions.mode() {
            AuthMode::None => Ok(sessions.issue(&Principal::local(), TokenKind::Session)),
            AuthMode::Secret => Ok(sessions.issue(&sessions.check_secret(&body.password)?, TokenKind::Session)),
            AuthMode::Users => {
                let email = body.username.clone().ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "`username`: this server has accounts; give the e-mail"))?;
                let (s, password) = (sessions.clone(), body.password.clone());
                let user = blocking(move || s.login(&email, &password)).await?;
                Ok(sessions.issue(&Principal { id: user.id.clone(), name: user.email.clone(), role: user.role }, TokenKind::Session))
            }
        }
    })
    .await;
    match issued {
        Ok(issued) => Ok(with_cookie(&issued, json!({ "success": true, "message": "logged in", "token": issued.token, "csrf_token": issued.csrf }))),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            Ok((StatusCode::UNAUTHORIZED, Json(json!({ "success": false, "message": e.detail_text(), "error": "unauthorized", "detail": e.detail_text() }))).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn logout() -> Response {
    logged_out(StatusCode::NO_CONTENT)
}

async fn register(State(service): Shared, body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>) -> ApiResult<(StatusCode, Json<crate::auth::User>)> {
    let sessions = service.auth.clone();
    let Json(new) = body?;
    let user = blocking(move || sessions.register(new)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
struct FormLogin {
    username: String,
    password: String,
}

async fn jwt_login(State(service): Shared, ConnectInfo(addr): ConnectInfo<SocketAddr>, form: Result<axum::Form<FormLogin>, axum::extract::rejection::FormRejection>) -> ApiResult<Response> {
    let sessions = service.auth.clone();
    let axum::Form(form) = form.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "body", e.body_text()))?;
    let s = sessions.clone();
    let (user, access, refresh) = limited(&sessions, addr, async move {
        let (user, (access, refresh)) = blocking(move || {
            let user = s.login(&form.username, &form.password)?;
            let pair = s.tokens_for(&user)?;
            Ok((user, pair))
        })
        .await?;
        Ok((user, access, refresh))
    })
    .await?;
    let session = sessions.issue(&Principal { id: user.id, name: user.email, role: user.role }, TokenKind::Session);
    Ok(with_cookie(&session, tokens_body(&access, &refresh)))
}

fn tokens_body(access: &crate::auth::Issued, refresh: &str) -> serde_json::Value {
    json!({ "access_token": access.token, "token_type": "bearer", "expires_in": access.expires_s, "refresh_token": refresh, "csrf_token": access.csrf })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn jwt_refresh(State(service): Shared, body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>) -> ApiResult<Json<serde_json::Value>> {
    let sessions = service.auth.clone();
    let Json(body) = body?;
    let (_, access, refresh) = blocking(move || sessions.refresh(&body.refresh_token)).await?;
    Ok(Json(tokens_body(&access, &refresh)))
}

async fn jwt_logout(State(service): Shared, body: Option<Json<RefreshBody>>) -> ApiResult<Response> {
    let sessions = service.auth.clone();
    if let Some(Json(body)) = body {
        blocking(move || sessions.users()?.revoke(&body.refresh_token)).await?;
    }
    Ok(logged_out(StatusCode::NO_CONTENT))
}

/// Seed 002's profile, with what the account has used here.
#[derive(Serialize)]
struct Me {
    #[serde(flatten)]
    user: crate::auth::User,
    usage: super::service::Usage,
}

async fn me(State(service): Shared, Extension(who): Extension<Principal>) -> ApiResult<Json<serde_json::Value>> {
    let sessions = service.auth.clone();
    let usage = service.usage(&who.name).await?;
    if sessions.mode() != AuthMode::Users {
        return Ok(Json(json!({ "id": who.id, "email": who.name, "role": who.role, "is_superuser": who.role == Role::Admin, "usage": usage })));
    }
    let user = blocking(move || sessions.users()?.get(&who.id)).await?;
    Ok(Json(serde_json::to_value(Me { user, usage }).unwrap_or_default()))
}

async fn update_me(State(service): Shared, Extension(who): Extension<Principal>, body: Result<Json<Profile>, axum::extract::rejection::JsonRejection>) -> ApiResult<Json<crate::auth::User>> {
    let sessions = service.auth.clone();
    let Json(profile) = body?;
    Ok(Json(blocking(move || sessions.users()?.update(&who.id, profile)).await?))
}

async fn protected(Extension(who): Extension<Principal>) -> Json<serde_json::Value> {
    Json(json!({ "message": "这是一个受保护的路由", "user": who.name }))
}

async fn list_tokens(State(service): Shared, Extension(who): Extension<Principal>) -> ApiResult<Json<Vec<crate::auth::TokenInfo>>> {
    let sessions = service.auth.clone();
    Ok(Json(blocking(move || sessions.users()?.tokens(&who.id, "api")).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
}

async fn create_token(State(service): Shared, Extension(who): Extension<Principal>, body: Result<Json<TokenBody>, axum::extract::rejection::JsonRejection>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let sessions = service.auth.clone();
    let Json(body) = body?;
    let (token, info) = blocking(move || sessions.users()?.issue_token(&who.id, "api", &body.name, None)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "id": info.id, "name": info.name, "created_ms": info.created_ms }))))
}

async fn delete_token(State(service): Shared, Extension(who): Extension<Principal>, super::api::PathParam(id): super::api::PathParam<String>) -> ApiResult<StatusCode> {
    let sessions = service.auth.clone();
    let shown = id.clone();
    match blocking(move || sessions.users()?.delete_token(&who.id, &id)).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no token {shown} of yours"))),
    }
}

async fn list_users(State(service): Shared) -> ApiResult<Json<Vec<crate::auth::User>>> {
    let sessions = service.auth.clone();
    Ok(Json(blocking(move || sessions.users()?.list()).await?))
}

async fn create_user(State(service): Shared, body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>) -> ApiResult<(StatusCode, Json<crate::auth::User>)> {
    let sessions = service.auth.clone();
    let Json(new) = body?;
    Ok((StatusCode::CREATED, Json(blocking(move || sessions.users()?.create(new, true)).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Role,
    is_active: Option<bool>,
}

async fn update_user(State(service): Shared, super::api::PathParam(id): super::api::PathParam<String>, body: Result<Json<UserChange>, axum::extract::rejection::JsonRejection>) -> ApiResult<Json<crate::auth::User>> {
    let sessions = service.auth.clone();
    let Json(change) = body?;
    Ok(Json(blocking(move || sessions.users()?.set_role(&id, change.role, change.is_active)).await?))
}
