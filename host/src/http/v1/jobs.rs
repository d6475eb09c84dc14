//! Jobs, their attempts and logs, queues, runs and the scheduler's status.

use super::paging::page;
use crate::http::error::{from_value, ApiError, ApiResult, Body, Params, PathParam};
use crate::http::gate::Access::{Admin, Operate, Read};
use crate::http::routes::Routes;
use crate::model::{Attempt, Batch, Job, JobFilter, JobId, JobSpec, JobState, Principal, QueueState, RunId, RunMode, RunState, RunStatus, Status};
use crate::service::{LogUpdate, Service};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

type Shared = State<Arc<Service>>;
type Caller = Extension<Principal>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "native")
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
        .with_state(service)
}

async fn status(State(service): Shared, Extension(who): Caller) -> ApiResult<Json<Status>> {
    Ok(Json(service.status(&who).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    run: Option<RunId>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn queues(State(service): Shared, Params(query): Params<QueueQuery>) -> ApiResult<Response> {
    Ok(page(service.queues(query.run).await?, query.offset, query.limit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    parallelism: u32,
}

async fn set_queue(State(service): Shared, PathParam(name): PathParam<String>, Body(body): Body<QueueBody>) -> ApiResult<Json<QueueState>> {
    Ok(Json(service.set_parallelism(name, body.parallelism).await?))
}

/// `{"jobs": [...]}`: a batch whose members may depend on each other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    jobs: Vec<JobSpec>,
}

/// One job, or a batch: told apart by a `jobs` key, so an error names the field at fault rather
/// than saying that neither shape matched.
async fn submit(State(service): Shared, Extension(who): Caller, Body(body): Body<serde_json::Value>) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let specs = match body.get("jobs") {
        Some(_) => from_value::<BatchBody>(body)?.jobs,
        None => vec![from_value::<JobSpec>(body)?],
    };
    let batch = Batch::new(specs)?;
    let ids = service.submit(&who, batch).await?;
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

async fn list_jobs(State(service): Shared, Extension(who): Caller, Params(query): Params<JobQuery>) -> ApiResult<Json<serde_json::Value>> {
    let state = match query.state.as_deref() {
        Some(s) => Some(s.parse::<JobState>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", format!("state: {e}")))?),
        None => None,
    };
    let jobs = service.jobs(&who, JobFilter { state, queue: query.queue, run: query.run, owner: query.owner }).await?;
    let total = jobs.len();
    let page: Vec<Job> = jobs.into_iter().skip(query.offset).take(query.limit.unwrap_or(usize::MAX)).collect();
    Ok(Json(json!({ "total": total, "offset": query.offset, "jobs": page })))
}

async fn job(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.job(&who, id).await?))
}

async fn attempts(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Vec<Attempt>>> {
    Ok(Json(service.job(&who, id).await?.attempts))
}

async fn cancel(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.cancel(&who, id).await?))
}

async fn hold(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.hold(&who, id).await?))
}

async fn release(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.release(&who, id).await?))
}

async fn retry(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.retry(&who, id).await?))
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

/// The log as JSON, or with `?follow=true` as server-sent `log` events (each a chunk) as it
/// grows, then one `end` event once the attempt is over and everything it wrote was sent.
async fn log(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>, Params(query): Params<LogQuery>) -> ApiResult<Response> {
    if !query.follow {
        return Ok(Json(service.log(&who, id, query.attempt, query.offset).await?).into_response());
    }
    let updates = service.follow_log(&who, id, query.attempt, query.offset).await?;
    let events = updates.map(|update| {
        Ok::<_, std::convert::Infallible>(match update {
            LogUpdate::Chunk(chunk) => SseEvent::default().event("log").json_data(&chunk).unwrap_or_else(|_| SseEvent::default().event("log")),
            LogUpdate::End(job) => SseEvent::default().event("end").data(job.to_string()),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// A command file on the daemon's machine.
    file: PathBuf,
    mode: Option<RunMode>,
}

async fn start_run(State(service): Shared, Extension(who): Caller, Body(body): Body<RunBody>) -> ApiResult<(StatusCode, Json<RunStatus>)> {
    Ok((StatusCode::CREATED, Json(service.start_run(&who, body.file, body.mode).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    state: Option<RunState>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn runs(State(service): Shared, Params(query): Params<RunQuery>) -> ApiResult<Response> {
    let runs: Vec<RunStatus> = service.runs().await?.into_iter().filter(|r| query.state.is_none_or(|s| r.run.state == s)).collect();
    Ok(page(runs, query.offset, query.limit))
}

async fn run(State(service): Shared, PathParam(id): PathParam<RunId>) -> ApiResult<Json<RunStatus>> {
    Ok(Json(service.run(id).await?))
}

async fn stop_run(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<RunId>) -> ApiResult<Json<RunStatus>> {
    Ok(Json(service.stop_run(&who, id).await?))
}
