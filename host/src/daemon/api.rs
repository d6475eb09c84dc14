//! The HTTP routes of `/api/v1`: each turns a request into one service call and its answer into
//! JSON. Errors are `{error, detail}` with the status that fits.

use super::auth::Access;
use super::routes::Routes;
use super::service::{Service, ServiceError};
use crate::auth::{Principal, Role};
use crate::scheduler::{Job, JobFilter, JobId, JobSpec, JobState, RunId, RunMode, SchedulerError};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
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
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<serde_json::Value>) -> Self {
        ApiError { status, error, detail: detail.into() }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn detail_text(&self) -> String {
        match &self.detail {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
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
            ServiceError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            ServiceError::Invalid { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            ServiceError::CommandFile(e) => match e {
                crate::command_files::CommandFileError::Missing { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
                crate::command_files::CommandFileError::NoBackup { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
                crate::command_files::CommandFileError::Io { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "file", detail),
            },
            ServiceError::Edit(e) => match e {
                crate::config::edit::EditError::File { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "file", detail),
                _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            },
            ServiceError::LogAccess(e) => match e {
                crate::log_access::LogAccessError::Outside(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
                crate::log_access::LogAccessError::Unbound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
                crate::log_access::LogAccessError::Invalid { .. } => ApiError::new(StatusCode::BAD_REQUEST, "path", detail),
                crate::log_access::LogAccessError::Io { .. } => ApiError::new(StatusCode::NOT_FOUND, "file", detail),
            },
            ServiceError::Auth(e) => e.into(),
            ServiceError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail),
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

pub type ApiResult<T> = Result<T, ApiError>;

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
type Caller = Extension<Principal>;

/// The job, if the caller may see or change it.
async fn owned(service: &Service, who: &Principal, id: JobId) -> ApiResult<Job> {
    let job = service.scheduler.job(id).await?;
    Service::may_touch(who, &job)?;
    Ok(job)
}

pub fn routes(service: Arc<Service>) -> Routes {
    use Access::{Admin, Operate, Public, Read};
    Routes::new(service.auth.clone(), "native")
        .get("/api/v1/health", Public, "Liveness and version", health)
        .get("/metrics", Public, "Prometheus metrics: GPUs with DCGM names, jobs, queues, scheduling, plugins", metrics)
        .post("/api/v1/shutdown", Admin, "Stop the daemon; running jobs carry on under their shims", shutdown)
        .get("/api/v1/node", Read, "This machine: GPUs, host, driver, versions, whether simulated", node)
        .get("/api/v1/events", Read, "Server-sent events: job, run and GPU changes", events)
        .get("/api/v1/gpus/{index}", Read, "One GPU with its history (`?since=` ms since the epoch)", gpu)
        .get("/api/v1/plugins", Read, "Loaded plugins: kind, version, WIT version, state, last error, calls, failures (`?kind=&offset=&limit=`)", plugins)
        .post("/api/v1/plugins/reload", Admin, "Re-read the plugin directory now", reload_plugins)
        .get("/api/v1/queues", Read, "Queues with their counts, parallelism and backoff (`?run=&offset=&limit=`)", queues)
        .put("/api/v1/queues/{name}", Admin, "Set a queue's parallelism", set_queue)
        .get("/api/v1/status", Read, "The scheduler at a glance", status)
        .post("/api/v1/jobs", Operate, "Submit one job or `{jobs: [...]}`, a batch whose members may depend on each other", submit)
        .get("/api/v1/jobs", Read, "Jobs, filtered by `state`, `queue`, `run`, `owner`; paginated by `offset` and `limit`", list_jobs)
        .get("/api/v1/jobs/{id}", Read, "One job with its attempts", job)
        .post("/api/v1/jobs/{id}/cancel", Operate, "Cancel a job, stopping it if it runs", cancel)
        .post("/api/v1/jobs/{id}/hold", Operate, "Hold a waiting job", hold)
        .post("/api/v1/jobs/{id}/release", Operate, "Release a held job", release)
        .post("/api/v1/jobs/{id}/retry", Operate, "Run a failed or cancelled job again", retry)
        .get("/api/v1/jobs/{id}/attempts", Read, "A job's attempts", attempts)
        .get("/api/v1/jobs/{id}/log", Read, "A job's log (`?attempt=&offset=`; `?follow=true` streams it as server-sent events)", log)
        .post("/api/v1/runs", Operate, "Start a run from a command file", start_run)
        .get("/api/v1/runs", Read, "Runs with their counts (`?state=&offset=&limit=`)", runs)
        .get("/api/v1/runs/{id}", Read, "One run: its file, mode, state and job counts", run)
        .post("/api/v1/runs/{id}/stop", Operate, "Stop a run: its waiting jobs are cancelled, its running ones stopped", stop_run)
        .get("/api/v1/command-files", Read, "The numbered command files of both modes", command_files)
        .post("/api/v1/command-files/{mode}", Operate, "A new command file after the last (`{queues}` or `{text}`, or empty)", create_command_file)
        .get("/api/v1/command-files/{mode}/{index}", Read, "A command file: its text, and its queues and processes", command_file)
        .put("/api/v1/command-files/{mode}/{index}", Operate, "Replace a command file with `{queues}` (rendered by the parser plugin) or `{text}` (kept if it parses)", put_command_file)
        .delete("/api/v1/command-files/{mode}/{index}", Operate, "Delete a command file (its backup stays)", delete_command_file)
        .post("/api/v1/command-files/{mode}/{index}/reset", Operate, "Put a command file back as it was before its last change", reset_command_file)
        .get("/api/v1/rules", Read, "The scheduling rules", rules)
        .put("/api/v1/rules", Admin, "Change rules: written keeping the file's comments, applied to the next scheduling pass", put_rules)
        .get("/api/v1/settings", Read, "Settings, each with requires_restart, warning and description", settings)
        .put("/api/v1/settings", Admin, "Change settings; they apply at the next start", put_settings)
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

/// `?offset=&limit=` on a list, and what it filters by. The answer stays the plain array older
/// clients read; `X-Total-Count` says how many matched before the page was cut.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    /// Plugins: `kind`; runs: `state`; queues: `run`.
    kind: Option<String>,
    state: Option<String>,
    run: Option<RunId>,
}

fn page<T: serde::Serialize>(items: Vec<T>, query: &ListQuery) -> Response {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(query.offset).take(query.limit.unwrap_or(usize::MAX)).collect();
    ([("x-total-count", total.to_string())], Json(page)).into_response()
}

/// Whether a value's JSON form is the wanted string (enums serialise as their snake_case names).
fn named<T: serde::Serialize>(value: &T, wanted: Option<&str>) -> bool {
    wanted.is_none_or(|w| serde_json::to_value(value).ok().and_then(|v| v.as_str().map(|s| s == w)).unwrap_or(false))
}

async fn plugins(State(service): Shared, query: Result<Query<ListQuery>, QueryRejection>) -> ApiResult<Response> {
    let Query(query) = query?;
    let list: Vec<_> = service.plugins.list().into_iter().filter(|p| named(&p.kind, query.kind.as_deref())).collect();
    Ok(page(list, &query))
}

async fn reload_plugins(State(service): Shared) -> ApiResult<Json<Vec<crate::plugin::PluginStatus>>> {
    Ok(Json(service.reload_plugins().await?))
}

async fn queues(State(service): Shared, query: Result<Query<ListQuery>, QueryRejection>) -> ApiResult<Response> {
    let Query(query) = query?;
    let list: Vec<_> = service.scheduler.queues().await?.into_iter().filter(|q| query.run.is_none_or(|r| q.run == Some(r))).collect();
    Ok(page(list, &query))
}

async fn retry(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    service.check_owner(&who, id).await?;
    Ok(Json(service.scheduler.retry(id).await?))
}

async fn attempts(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Vec<crate::scheduler::Attempt>>> {
    Ok(Json(owned(&service, &who, id).await?.attempts))
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

async fn submit(State(service): Shared, Extension(who): Caller, body: Result<Json<Submission>, JsonRejection>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let mut specs = match body?.0 {
        Submission::Batch { jobs } => jobs,
        Submission::One(spec) => vec![*spec],
    };
    specs.iter_mut().for_each(|spec| service.stamp_owner(&who, spec));
    let ids = service.scheduler.submit(specs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    state: Option<String>,
    queue: Option<String>,
    run: Option<RunId>,
    owner: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn list_jobs(State(service): Shared, Extension(who): Caller, query: Result<Query<JobQuery>, QueryRejection>) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let state = match query.state.as_deref() {
        Some(s) => Some(s.parse::<JobState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", format!("state: {e}")))?),
        None => None,
    };
    let owner = if who.role == Role::User { Some(who.name) } else { query.owner };
    let jobs = service.scheduler.jobs(JobFilter { state, queue: query.queue, run: query.run, owner }).await?;
    let total = jobs.len();
    let page: Vec<_> = jobs.into_iter().skip(query.offset).take(query.limit.unwrap_or(usize::MAX)).collect();
    Ok(Json(json!({ "total": total, "offset": query.offset, "jobs": page })))
}

async fn job(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(owned(&service, &who, id).await?))
}

async fn cancel(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    service.check_owner(&who, id).await?;
    Ok(Json(service.scheduler.cancel(id).await?))
}

async fn hold(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    service.check_owner(&who, id).await?;
    Ok(Json(service.scheduler.hold(id).await?))
}

async fn release(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    service.check_owner(&who, id).await?;
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

async fn log(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>, query: Result<Query<LogQuery>, QueryRejection>) -> ApiResult<Response> {
    let Query(query) = query?;
    service.check_owner(&who, id).await?;
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

async fn start_run(State(service): Shared, Extension(who): Caller, body: Result<Json<RunBody>, JsonRejection>) -> ApiResult<(StatusCode, Json<crate::scheduler::RunStatus>)> {
    let Json(body) = body?;
    Ok((StatusCode::CREATED, Json(service.start_run(body.file, body.mode, Some(&who)).await?)))
}

async fn runs(State(service): Shared, query: Result<Query<ListQuery>, QueryRejection>) -> ApiResult<Response> {
    let Query(query) = query?;
    let list: Vec<_> = service.scheduler.runs().await?.into_iter().filter(|r| named(&r.run.state, query.state.as_deref())).collect();
    Ok(page(list, &query))
}

async fn run(State(service): Shared, PathParam(id): PathParam<RunId>) -> ApiResult<Json<crate::scheduler::RunStatus>> {
    let runs = service.scheduler.runs().await?;
    Ok(Json(runs.into_iter().find(|r| r.run.id == id).ok_or(SchedulerError::NoSuchRun(id))?))
}

async fn stop_run(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<RunId>) -> ApiResult<Json<crate::scheduler::RunStatus>> {
    Ok(Json(service.stop_run(id, &who).await?))
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

async fn command_files(State(service): Shared) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!({
        "single": service.list_command_files(RunMode::Single).await?,
        "multi": service.list_command_files(RunMode::Multi).await?,
    })))
}

async fn command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<super::editing::CommandFileView>> {
    Ok(Json(service.command_file(mode, index).await?))
}

/// A command file's new content: structured, or the text itself.
#[derive(Deserialize)]
#[serde(untagged)]
enum CommandFileBody {
    Text { text: String },
    Data(super::editing::CommandConfig),
}

async fn put_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>, body: Result<Json<CommandFileBody>, JsonRejection>) -> ApiResult<Json<super::editing::CommandFileView>> {
    match body?.0 {
        CommandFileBody::Text { text } => service.put_command_text(mode, index, text, None).await?,
        CommandFileBody::Data(data) => service.put_command_config(mode, index, &data).await?,
    };
    Ok(Json(service.command_file(mode, index).await?))
}

async fn create_command_file(State(service): Shared, PathParam(mode): PathParam<RunMode>, body: Option<Json<CommandFileBody>>) -> ApiResult<(StatusCode, Json<super::editing::CommandFileView>)> {
    let index = match body.map(|Json(b)| b) {
        None => service.new_command_file(mode, None).await?,
        Some(CommandFileBody::Data(data)) => service.new_command_file(mode, Some(&data)).await?,
        Some(CommandFileBody::Text { text }) => {
            let index = service.new_command_file(mode, None).await?;
            service.put_command_text(mode, index, text, None).await?;
            index
        }
    };
    Ok((StatusCode::CREATED, Json(service.command_file(mode, index).await?)))
}

async fn delete_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<StatusCode> {
    service.delete_command_file(mode, index).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_command_file(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<super::editing::CommandFileView>> {
    service.reset_command_file(mode, index).await?;
    Ok(Json(service.command_file(mode, index).await?))
}

pub async fn rules(State(service): Shared) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(service.rules().await?))
}

async fn put_rules(State(service): Shared, body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(service.put_rules(body?.0).await?))
}

pub async fn settings(State(service): Shared) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(service.settings().await?))
}

pub async fn put_settings(State(service): Shared, body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>) -> ApiResult<Json<crate::config::edit::SettingsChange>> {
    Ok(Json(service.put_settings(body?.0).await?))
}
