//! The login routes of seed 001 (`/api/auth/...`, one secret) and seed 002 (`/auth/...`,
//! accounts with JWTs), API tokens, and account administration. A login sets the session cookie
//! (HttpOnly, SameSite=Strict) beside the tokens it answers.

use crate::http::error::{ApiError, ApiResult, Body, FormBody, Params, PathParam};
use crate::http::gate::Access::{Admin, Public, Read};
use crate::http::gate::COOKIE;
use crate::http::Peer;
use crate::http::routes::Routes;
use crate::auth::AuthMode;
use crate::model::{Principal, Role};
use crate::service::{Issued, NewUser, Profile, Service, TokenInfo, User};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

type Shared = State<Arc<Service>>;
type Caller = Extension<Principal>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "auth")
        .get("/api/auth/check", Public, "Whether this server needs a login (seed 001)", check)
        .answers::<AuthCheck>(200)
        .post("/api/auth/login", Public, "Log in with the secret (seed 001) or an account; sets the session cookie", login)
        .body::<LoginBody>()
        .answers::<LoggedIn>(200)
        .fails(&[401, 429])
        .post("/api/auth/logout", Public, "End the session: every token issued to the same login before now stops working", logout)
        .answers_raw(204, None)
        .fails(&[401])
        .post("/auth/register", Public, "Create an account (seed 002; off unless `auth.allow_register`)", register)
        .body::<NewUser>()
        .answers::<User>(201)
        .fails(&[403, 404, 409, 429])
        .post("/auth/jwt/login", Public, "Log in with username (e-mail) and password as a form (seed 002)", jwt_login)
        .form::<FormLogin>()
        .answers::<Tokens>(200)
        .fails(&[401, 404, 429])
        .post("/auth/jwt/refresh", Public, "Trade a refresh token for new tokens", jwt_refresh)
        .body::<RefreshBody>()
        .answers::<Tokens>(200)
        .fails(&[401, 404])
        .post("/auth/jwt/logout", Read, "Revoke a refresh token and end the browser session (seed 002)", jwt_logout)
        .optional_body::<RefreshBody>()
        .answers_raw(204, None)
        .fails(&[404])
        .get("/auth/users/me", Read, "The caller's profile and usage (seed 002)", me)
        .answers::<Map<String, Value>>(200)
        .patch("/auth/users/me", Read, "Change the caller's profile or password (seed 002)", update_me)
        .body::<Profile>()
        .answers::<User>(200)
        .fails(&[404, 409])
        .get("/api/v1/quota", Read, "The caller's GPU quota, what they hold and their recent use (`?user=` for admins)", quota)
        .query::<QuotaQuery>()
        .answers::<crate::model::QuotaStatus>(200)
        .fails(&[404])
        .get("/api/protected-route", Read, "Seed 002's example of a route that needs a login", protected)
        .answers::<Protected>(200)
        .get("/api/admin-only", Admin, "Seed 002's example of a route for admins", protected)
        .answers::<Protected>(200)
        .get("/api/v1/tokens", Read, "The caller's API tokens (not the tokens themselves)", list_tokens)
        .answers::<Vec<TokenInfo>>(200)
        .fails(&[404])
        .post("/api/v1/tokens", Read, "A new long-lived API token for scripts; shown once", create_token)
        .body::<TokenBody>()
        .answers::<NewToken>(201)
        .links(&[(Method::DELETE, "/api/v1/tokens/{id}")], "id", "$response.body#/id")
        .fails(&[404, 409])
        .delete("/api/v1/tokens/{id}", Read, "Revoke one of the caller's API tokens", delete_token)
        .path::<String>()
        .answers_raw(204, None)
        .fails(&[404])
        .get("/api/v1/users", Admin, "Every account", list_users)
        .answers::<Vec<User>>(200)
        .fails(&[404])
        .post("/api/v1/users", Admin, "Create an account with a role", create_user)
        .body::<NewUser>()
        .answers::<User>(201)
        .links(&[(Method::PATCH, "/api/v1/users/{id}")], "id", "$response.body#/id")
        .fails(&[404, 409])
        .patch("/api/v1/users/{id}", Admin, "Change an account's role, deactivate it, or bind it to a Unix user (`unix_user`)", update_user)
        .path::<String>()
        .body::<UserChange>()
        .answers::<User>(200)
        .fails(&[404, 409])
        .with_state(service)
}

/// The session cookie; over HTTPS it is `Secure`, so a browser never sends it in clear.
fn session_cookie(service: &Service, token: &str, max_age_s: u64) -> String {
    let secure = if service.server_config().tls.is_some() { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}")
}

/// A login's answer: the body, and the session cookie.
fn with_cookie(service: &Service, session: &Issued, body: impl Serialize) -> Response {
    ([(header::SET_COOKIE, session_cookie(service, &session.token, session.expires_s))], Json(body)).into_response()
}

fn logged_out(service: &Service, status: StatusCode) -> Response {
    (status, [(header::SET_COOKIE, session_cookie(service, "", 0))]).into_response()
}

#[derive(Serialize, JsonSchema)]
struct AuthCheck {
    /// Always true: every mode needs a credential over TCP (in mode `none`, the local token).
    requires_auth: bool,
    mode: AuthMode,
}

async fn check(State(service): Shared) -> Json<AuthCheck> {
    Json(AuthCheck { requires_auth: true, mode: service.auth_mode() })
}

/// Seed 001's answer to a login, with the session's token and the CSRF token its cookie needs.
#[derive(Serialize, JsonSchema)]
struct LoggedIn {
    success: bool,
    message: &'static str,
    token: String,
    csrf_token: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The secret (secret mode) or the account's password (users mode).
    password: String,
    /// Users mode: the account's e-mail.
    #[serde(default, alias = "email")]
    username: Option<String>,
}

/// Seed 001's answer: `{success, message}`, also for a refused login.
async fn login(State(service): Shared, ConnectInfo(peer): ConnectInfo<Peer>, Body(body): Body<LoginBody>) -> ApiResult<Response> {
    match service.login(peer.ip(), body.password, body.username).await.map_err(ApiError::from) {
        Ok(session) => Ok(with_cookie(&service, &session, LoggedIn { success: true, message: "logged in", token: session.token.clone(), csrf_token: session.csrf.clone() })),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            let message = e.detail_text();
            Ok((StatusCode::UNAUTHORIZED, Json(json!({ "success": false, "message": message, "error": e.code(), "detail": message }))).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Ends the session server-side (every token issued to the same identity before now), not
/// only the cookie.
async fn logout(State(service): Shared, headers: axum::http::HeaderMap) -> ApiResult<Response> {
    service.sign_out(crate::http::gate::credential(&headers)).await?;
    Ok(logged_out(&service, StatusCode::NO_CONTENT))
}

async fn register(State(service): Shared, Body(new): Body<NewUser>) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(service.register(new).await?)))
}

#[derive(Deserialize, JsonSchema)]
struct FormLogin {
    username: String,
    password: String,
}

/// Seed 002's tokens (OAuth2's shape), with the CSRF token the session cookie needs.
#[derive(Serialize, JsonSchema)]
struct Tokens {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds.
    expires_in: u64,
    refresh_token: String,
    csrf_token: String,
}

fn tokens_body(access: &Issued, refresh: &str) -> Tokens {
    Tokens { access_token: access.token.clone(), token_type: "bearer", expires_in: access.expires_s, refresh_token: refresh.to_string(), csrf_token: access.csrf.clone() }
}

async fn jwt_login(State(service): Shared, ConnectInfo(peer): ConnectInfo<Peer>, FormBody(form): FormBody<FormLogin>) -> ApiResult<Response> {
    let reply = service.jwt_login(peer.ip(), form.username, form.password).await?;
    Ok(with_cookie(&service, &reply.session, tokens_body(&reply.access, &reply.refresh)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn jwt_refresh(State(service): Shared, Body(body): Body<RefreshBody>) -> ApiResult<Json<Tokens>> {
    let (access, refresh) = service.refresh(body.refresh_token).await?;
    Ok(Json(tokens_body(&access, &refresh)))
}

async fn jwt_logout(State(service): Shared, headers: axum::http::HeaderMap, body: Option<Body<RefreshBody>>) -> ApiResult<Response> {
    if let Some(Body(body)) = body {
        service.revoke_refresh(body.refresh_token).await?;
    }
    service.sign_out(crate::http::gate::credential(&headers)).await?;
    Ok(logged_out(&service, StatusCode::NO_CONTENT))
}

/// Seed 002's profile, with what the account has used here.
async fn me(State(service): Shared, Extension(who): Caller) -> ApiResult<Json<serde_json::Value>> {
    let (user, usage) = service.me(&who).await?;
    let mut body = match user {
        Some(user) => serde_json::to_value(user).map_err(|e| ApiError::internal(&e))?,
        None => json!({ "id": who.id, "email": who.name, "role": who.role, "is_superuser": who.role == Role::Admin }),
    };
    body["usage"] = serde_json::to_value(usage).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(body))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QuotaQuery {
    user: Option<String>,
}

async fn quota(State(service): Shared, Extension(who): Caller, Params(query): Params<QuotaQuery>) -> ApiResult<Json<crate::model::QuotaStatus>> {
    Ok(Json(service.quota(&who, query.user).await?))
}

async fn update_me(State(service): Shared, Extension(who): Caller, Body(profile): Body<Profile>) -> ApiResult<Json<User>> {
    Ok(Json(service.update_me(&who, profile).await?))
}

#[derive(Serialize, JsonSchema)]
struct Protected {
    message: &'static str,
    user: String,
}

async fn protected(Extension(who): Caller) -> Json<Protected> {
    Json(Protected { message: "这是一个受保护的路由", user: who.name })
}

async fn list_tokens(State(service): Shared, Extension(who): Caller) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(service.tokens(&who).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
}

/// A new API token: the token itself (shown this once) and its record.
#[derive(Serialize, JsonSchema)]
struct NewToken {
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

async fn create_token(State(service): Shared, Extension(who): Caller, Body(body): Body<TokenBody>) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let (token, info) = service.create_token(&who, body.name).await?;
    Ok((StatusCode::CREATED, Json(NewToken { token, info })))
}

async fn delete_token(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<String>) -> ApiResult<StatusCode> {
    service.delete_token(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(State(service): Shared) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(service.users().await?))
}

async fn create_user(State(service): Shared, Body(new): Body<NewUser>) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(service.create_user(new).await?)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<Role>,
    is_active: Option<bool>,
    /// The Unix user the account acts as; `""` unbinds it.
    unix_user: Option<String>,
}

async fn update_user(State(service): Shared, PathParam(id): PathParam<String>, Body(change): Body<UserChange>) -> ApiResult<Json<User>> {
    Ok(Json(service.update_user(id, change.role, change.is_active, change.unix_user).await?))
}
