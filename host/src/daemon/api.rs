//! The HTTP routes of `/api/v1`: each turns a request into one service call and its answer into
//! JSON. Errors are `{error, detail}` with the status that fits.

use super::service::{Service, ServiceError};
use crate::scheduler::{JobFilter, JobId, JobSpec, JobState, RunId, RunMode, SchedulerError};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, detail: impl Into<serde_json::Value>) -> Self {
        ApiError { status, error, detail: detail.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.error, "detail": self.detail }))).into_response()
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        let detail = e.to_string();
        match e {
            SchedulerError::NoSuchJob(_) | SchedulerError::NoSuchRun(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            SchedulerError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            SchedulerError::Invalid { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            SchedulerError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", detail),
            SchedulerError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state", detail),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let detail = e.to_string();
        match e {
            ServiceError::Scheduler(e) => e.into(),
            ServiceError::File { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "file", detail),
            ServiceError::Parse { path, diagnostics } => {
                let lines: Vec<String> = diagnostics.iter().map(|d| format!("{}:{}:{}: {}", path.display(), d.line, d.column, d.message)).collect();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "parse", lines)
            }
            ServiceError::NoAttempt { .. } | ServiceError::NoSuchGpu(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            ServiceError::NoParser(_) | ServiceError::Plugin(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "plugin", detail),
        }
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

type ApiResult<T> = Result<T, ApiError>;

/// A path parameter whose rejection is answered in the API's JSON error shape.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParam(value))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "path", e.body_text()))
    }
}

/// The answer to a path no route serves.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}
type Shared = State<Arc<Service>>;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/shutdown", post(shutdown))
        .route("/api/v1/node", get(node))
        .route("/api/v1/events", get(events))
        .route("/api/v1/gpus/{index}", get(gpu))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/plugins/reload", post(reload_plugins))
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/jobs/{id}/retry", post(retry))
        .route("/api/v1/jobs/{id}/attempts", get(attempts))
        .route("/api/v1/status", get(status))
        .route("/api/v1/jobs", post(submit).get(list_jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
        .route("/api/v1/jobs/{id}/hold", post(hold))
        .route("/api/v1/jobs/{id}/release", post(release))
        .route("/api/v1/jobs/{id}/log", get(log))
        .route("/api/v1/runs", post(start_run).get(runs))
        .route("/api/v1/runs/{id}/stop", post(stop_run))
        .route("/api/v1/queues/{name}", put(set_queue))
        .with_state(service)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Stops the daemon after answering; running jobs carry on under their shims.
async fn shutdown(State(service): Shared) -> Json<serde_json::Value> {
    service.shutdown.notify_one();
    Json(json!({ "status": "stopping", "pid": std::process::id() }))
}

async fn metrics(State(service): Shared) -> ApiResult<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    let text = service.metrics().await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// Server-sent events: `job` and `run` changes as the scheduler makes them, `gpus` (the GPU
/// summaries) whenever a sample changes what placement sees, `lagged` if this client fell behind.
async fn events(State(service): Shared) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let state = (service.scheduler.subscribe(), service.gpus.subscribe(), service);
    let stream = futures_util::stream::unfold(state, |(mut jobs, mut gpus, service)| async move {
        let event = tokio::select! {
            received = jobs.recv() => match received {
                Ok(event) => {
                    let kind = match &event {
                        crate::scheduler::Event::Job { .. } => "job",
                        crate::scheduler::Event::Run(_) => "run",
                    };
                    SseEvent::default().event(kind).json_data(&event).ok()?
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => SseEvent::default().event("lagged").data(missed.to_string()),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            },
            changed = gpus.changed() => {
                changed.ok()?;
                SseEvent::default().event("gpus").json_data(service.gpus.summaries()).ok()?
            }
        };
        Some((Ok(event), (jobs, gpus, service)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn node(State(service): Shared) -> Json<super::service::Node> {
    Json(service.node())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Milliseconds since the Unix epoch.
    since: Option<u64>,
}

async fn gpu(State(service): Shared, PathParam(index): PathParam<u32>, query: Result<Query<HistoryQuery>, QueryRejection>) -> ApiResult<Json<super::service::GpuDetail>> {
    let Query(query) = query?;
    Ok(Json(service.gpu(index, query.since)?))
}

async fn plugins(State(service): Shared) -> Json<Vec<crate::plugin::PluginStatus>> {
    Json(service.plugins.list())
}

async fn reload_plugins(State(service): Shared) -> ApiResult<Json<Vec<crate::plugin::PluginStatus>>> {
    Ok(Json(service.reload_plugins().await?))
}

async fn queues(State(service): Shared) -> ApiResult<Json<Vec<crate::scheduler::QueueStatus>>> {
    Ok(Json(service.scheduler.queues().await?))
}

async fn retry(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<crate::scheduler::Job>> {
    Ok(Json(service.scheduler.retry(id).await?))
}

async fn attempts(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Vec<crate::scheduler::Attempt>>> {
    Ok(Json(service.scheduler.job(id).await?.attempts))
}

async fn status(State(service): Shared) -> ApiResult<Json<crate::scheduler::Status>> {
    Ok(Json(service.scheduler.status().await?))
}

/// One job, or `{"jobs": [...]}` for a batch whose members may depend on each other.
#[derive(Deserialize)]
#[serde(untagged)]
enum Submission {
    Batch { jobs: Vec<JobSpec> },
    One(Box<JobSpec>),
}

async fn submit(State(service): Shared, body: Result<Json<Submission>, JsonRejection>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let specs = match body?.0 {
        Submission::Batch { jobs } => jobs,
        Submission::One(spec) => vec![*spec],
    };
    let ids = service.scheduler.submit(specs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    state: Option<String>,
    queue: Option<String>,
    run: Option<RunId>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn list_jobs(State(service): Shared, query: Result<Query<JobQuery>, QueryRejection>) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let state = match query.state.as_deref() {
        Some(s) => Some(s.parse::<JobState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", format!("state: {e}")))?),
        None => None,
    };
    let jobs = service.scheduler.jobs(JobFilter { state, queue: query.queue, run: query.run }).await?;
    let total = jobs.len();
    let page: Vec<_> = jobs.into_iter().skip(query.offset).take(query.limit.unwrap_or(usize::MAX)).collect();
    Ok(Json(json!({ "total": total, "offset": query.offset, "jobs": page })))
}

async fn job(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<crate::scheduler::Job>> {
    Ok(Json(service.scheduler.job(id).await?))
}

async fn cancel(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<crate::scheduler::Job>> {
    Ok(Json(service.scheduler.cancel(id).await?))
}

async fn hold(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<crate::scheduler::Job>> {
    Ok(Json(service.scheduler.hold(id).await?))
}

async fn release(State(service): Shared, PathParam(id): PathParam<JobId>) -> ApiResult<Json<crate::scheduler::Job>> {
    Ok(Json(service.scheduler.release(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    attempt: Option<u32>,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    follow: bool,
}

async fn log(State(service): Shared, PathParam(id): PathParam<JobId>, query: Result<Query<LogQuery>, QueryRejection>) -> ApiResult<Response> {
    let Query(query) = query?;
    if query.follow {
        return Ok(follow_log(service, id, query.attempt, query.offset).await?.into_response());
    }
    Ok(Json(service.log(id, query.attempt, query.offset).await?).into_response())
}

/// How often a followed log is looked at for more output.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// `?follow=true`: the log as server-sent `log` events (each a [`super::service::LogChunk`]) as it
/// grows, then one `end` event once the attempt is over and everything it wrote was sent.
async fn follow_log(
    service: Arc<Service>,
    id: JobId,
    attempt: Option<u32>,
    offset: u64,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    // Fails now, as a plain JSON error, for a job that does not exist.
    service.log(id, attempt, offset).await?;
    let stream = futures_util::stream::unfold(Some((service, attempt, offset)), move |state| async move {
        let (service, mut attempt, mut offset) = state?;
        loop {
            let Ok(chunk) = service.log(id, attempt, offset).await else { return None };
            if chunk.attempt > 0 {
                // Stay with the attempt being printed, even if a retry starts meanwhile.
                attempt = Some(chunk.attempt);
            }
            if !chunk.data.is_empty() {
                offset = chunk.next_offset;
                let event = SseEvent::default().event("log").json_data(&chunk).ok()?;
                return Some((Ok(event), Some((service, attempt, offset))));
            }
            if chunk.complete {
                return Some((Ok(SseEvent::default().event("end").data(id.to_string())), None));
            }
            tokio::time::sleep(FOLLOW_INTERVAL).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// A command file on the daemon's machine.
    file: PathBuf,
    mode: Option<RunMode>,
}

async fn start_run(State(service): Shared, body: Result<Json<RunBody>, JsonRejection>) -> ApiResult<(StatusCode, Json<crate::scheduler::RunStatus>)> {
    let Json(body) = body?;
    Ok((StatusCode::CREATED, Json(service.start_run(body.file, body.mode).await?)))
}

async fn runs(State(service): Shared) -> ApiResult<Json<Vec<crate::scheduler::RunStatus>>> {
    Ok(Json(service.scheduler.runs().await?))
}

async fn stop_run(State(service): Shared, PathParam(id): PathParam<RunId>) -> ApiResult<Json<crate::scheduler::RunStatus>> {
    Ok(Json(service.scheduler.stop_run(id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    parallelism: u32,
}

async fn set_queue(State(service): Shared, PathParam(name): PathParam<String>, body: Result<Json<QueueBody>, JsonRejection>) -> ApiResult<Json<crate::scheduler::QueueState>> {
    let Json(body) = body?;
    Ok(Json(service.scheduler.set_parallelism(name, body.parallelism).await?))
}
