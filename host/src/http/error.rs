//! The API's one error shape, `{error, detail}`, and the extractors whose rejections answer in
//! it (axum's own answer in plain text). An internal error is logged with its cause and
//! answers only a reference to that log line: paths, SQL and messages of the parts below stay in
//! the daemon's log.

use crate::model::FieldError;
use crate::service::{ErrorKind, ServiceError};
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: Value,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<Value>) -> Self {
        ApiError { status, error, detail: detail.into() }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.error
    }

    /// The detail as one line of text, for the seed envelopes that carry a message.
    pub fn detail_text(&self) -> String {
        match &self.detail {
            Value::String(s) => s.clone(),
            Value::Array(lines) => lines.iter().map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string)).collect::<Vec<_>>().join("\n"),
            other => other.to_string(),
        }
    }

    /// Logs `cause` and answers 500 with a reference to the log line instead of the cause.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        static REFERENCES: AtomicU64 = AtomicU64::new(1);
        let reference = REFERENCES.fetch_add(1, Ordering::Relaxed);
        tracing::error!(reference, error = %cause, "internal error answered with 500");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("internal error {reference}: the daemon's log says what went wrong"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.error, "detail": self.detail }))).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (kind, code) = e.kind();
        let status = match kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => return ApiError::internal(&e),
        };
        let detail = match &e {
            ServiceError::Parse { .. } => json!(e.detail_lines()),
            _ => json!(e.to_string()),
        };
        ApiError::new(status, code, detail)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::from(ServiceError::from(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::new(e.status(), "body", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "path", e.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(e: FormRejection) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "body", e.body_text())
    }
}

/// A body read as a [`Value`] first (to tell its shape apart) and then as `T`, with the path of a
/// mistyped or unknown field in the answer: `jobs[1].commands: invalid type …`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "body", e.to_string()))
}

/// A JSON body; a missing, malformed or mistyped one is answered in the API's error shape.
/// `Option<Body<T>>` takes a request without a body as `None`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = <axum::Json<T> as FromRequest<S>>::from_request(req, state).await?;
        Ok(Body(value))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let value = <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?;
        Ok(value.map(|axum::Json(value)| Body(value)))
    }
}

/// A form body (seed 002's login), rejections in the API's error shape.
pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Form(value) = <axum::Form<T> as FromRequest<S>>::from_request(req, state).await?;
        Ok(FormBody(value))
    }
}

/// The query string, rejections in the API's error shape.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(value))
    }
}

/// Path parameters, rejections in the API's error shape.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

/// A request that takes longer than this is answered 408 (event streams are not affected: their
/// response starts at once).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers 408, in the API's error shape, to a request not answered within [`REQUEST_TIMEOUT`].
pub async fn deadline(request: Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())).into_response(),
    }
}

/// The answer to a path no route serves.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}

/// The answer to a method a path does not serve.
pub async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method", format!("{} does not serve {method}", uri.path()))
}
