//! Jobs, their attempts and logs, queues, runs and the scheduler's status.

use super::paging::{page, window, MAX_PAGE};
use crate::http::error::{from_value, ApiResult, Body, Params, PathParam};
use crate::http::gate::Access::{Admin, Operate, Read};
use crate::http::routes::{AnyOf, Routes};
use crate::model::{ArraySpec, Attempt, Batch, Job, JobFilter, JobId, JobSpec, JobState, Principal, QueueState, QueueStatus, RunId, RunMode, RunState, RunStatus, Status};
use crate::service::{ArrayAction, ArrayView, LogChunk, LogUpdate, Service};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

type Shared = State<Arc<Service>>;
type Caller = Extension<Principal>;

/// The routes of one job, which a submission's answer leads to.
const JOB_ROUTES: [(Method, &str); 8] = [
    (Method::GET, "/api/v1/jobs/{id}"),
    (Method::PATCH, "/api/v1/jobs/{id}"),
    (Method::GET, "/api/v1/jobs/{id}/attempts"),
    (Method::GET, "/api/v1/jobs/{id}/log"),
    (Method::POST, "/api/v1/jobs/{id}/cancel"),
    (Method::POST, "/api/v1/jobs/{id}/hold"),
    (Method::POST, "/api/v1/jobs/{id}/release"),
    (Method::POST, "/api/v1/jobs/{id}/retry"),
];

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "native")
        .get("/api/v1/queues", Read, "Queues with their counts, parallelism and backoff", queues)
        .query::<QueueQuery>()
        .answers::<Vec<QueueStatus>>(200)
        .put("/api/v1/queues/{name}", Admin, "Set a queue's parallelism", set_queue)
        .path::<String>()
        .body::<QueueBody>()
        .answers::<QueueState>(200)
        .get("/api/v1/status", Read, "The scheduler at a glance", status)
        .answers::<Status>(200)
        .post("/api/v1/jobs", Operate, "Submit one job, `{jobs: [...]}` (a batch whose members may depend on each other), a job with `array`, or seed 002's `JobConfig` for a provider", submit)
        .body::<SubmitBody>()
        .answers::<Submitted>(201)
        .links(&JOB_ROUTES, "id", "$response.body#/ids/0")
        .fails(&[404, 409, 429])
        .get("/api/v1/jobs", Read, "Jobs, filtered by `state`, `queue`, `run`, `owner`, `array`; paginated by `offset` and `limit`", list_jobs)
        .query::<JobQuery>()
        .answers::<JobPage>(200)
        .get("/api/v1/arrays/{id}", Read, "An array (or sweep) by its first element's id: its elements with their states, counts and how many may run at once", array)
        .path::<JobId>()
        .answers::<ArrayView>(200)
        .fails(&[404])
        .post("/api/v1/arrays/{id}/{action}", Operate, "Cancel, hold or release every element of an array it applies to", act_on_array)
        .path::<(JobId, ArrayAction)>()
        .answers::<ArrayView>(200)
        .fails(&[403, 404, 409])
        .get("/api/v1/jobs/{id}", Read, "One job with its attempts", job)
        .path::<JobId>()
        .answers::<Job>(200)
        .fails(&[404])
        .patch("/api/v1/jobs/{id}", Operate, "Change a waiting or held job's priority (`{priority}`): its place among the waiting jobs", change_job)
        .path::<JobId>()
        .body::<JobChange>()
        .answers::<Job>(200)
        .fails(&[404, 409])
        .post("/api/v1/jobs/{id}/cancel", Operate, "Cancel a job, stopping it if it runs", cancel)
        .path::<JobId>()
        .answers::<Job>(200)
        .fails(&[404, 409])
        .post("/api/v1/jobs/{id}/hold", Operate, "Hold a waiting job", hold)
        .path::<JobId>()
        .answers::<Job>(200)
        .fails(&[404, 409])
        .post("/api/v1/jobs/{id}/release", Operate, "Release a held job", release)
        .path::<JobId>()
        .answers::<Job>(200)
        .fails(&[404, 409])
        .post("/api/v1/jobs/{id}/retry", Operate, "Run a failed or cancelled job again", retry)
        .path::<JobId>()
        .answers::<Job>(200)
        .fails(&[404, 409])
        .get("/api/v1/jobs/{id}/attempts", Read, "A job's attempts", attempts)
        .path::<JobId>()
        .answers::<Vec<Attempt>>(200)
        .fails(&[404])
        .get("/api/v1/jobs/{id}/log", Read, "A job's log (`?follow=true` streams it as server-sent `log` events, then one `end`)", log)
        .path::<JobId>()
        .query::<LogQuery>()
        .answers::<LogChunk>(200)
        .answers_raw(200, Some("text/event-stream"))
        .fails(&[404])
        .post("/api/v1/runs", Operate, "Start a run from a command file", start_run)
        .body::<RunBody>()
        .answers::<RunStatus>(201)
        .links(&[(Method::GET, "/api/v1/runs/{id}"), (Method::POST, "/api/v1/runs/{id}/stop")], "id", "$response.body#/id")
        .fails(&[404, 409, 503])
        .get("/api/v1/runs", Read, "Runs with their counts", runs)
        .query::<RunQuery>()
        .answers::<Vec<RunStatus>>(200)
        .get("/api/v1/runs/{id}", Read, "One run: its file, mode, state and job counts", run)
        .path::<RunId>()
        .answers::<RunStatus>(200)
        .fails(&[404])
        .post("/api/v1/runs/{id}/stop", Operate, "Stop a run: its waiting jobs are cancelled, its running ones stopped", stop_run)
        .path::<RunId>()
        .answers::<RunStatus>(200)
        .fails(&[404, 409])
        .with_state(service)
}

async fn status(State(service): Shared, Extension(who): Caller) -> ApiResult<Json<Status>> {
    Ok(Json(service.status(&who).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    /// Only the queues of this run.
    run: Option<RunId>,
    #[serde(default)]
    offset: usize,
    #[schemars(range(max = MAX_PAGE))]
    limit: Option<usize>,
}

async fn queues(State(service): Shared, Params(query): Params<QueueQuery>) -> ApiResult<Response> {
    page(service.queues(query.run).await?, query.offset, query.limit)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    parallelism: u32,
}

async fn set_queue(State(service): Shared, PathParam(name): PathParam<String>, Body(body): Body<QueueBody>) -> ApiResult<Json<QueueState>> {
    Ok(Json(service.set_parallelism(name, body.parallelism).await?))
}

/// What a submission is: one job, a batch, or an array (see [`batch_of`]).
pub(super) type SubmitBody = AnyOf<JobSpec, AnyOf<BatchBody, AnyOf<ArrayBody, super::job_config::JobConfig>>>;

/// `{"jobs": [...]}`: a batch whose members may depend on each other.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchBody {
    jobs: Vec<JobSpec>,
}

#[derive(Deserialize)]
struct ArrayField {
    array: ArraySpec,
}

/// A job template with `array`: one job per element, `{}` and `{NAME}` in its commands filled.
pub(super) struct ArrayBody;

impl JsonSchema for ArrayBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ArrayBody".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = JobSpec::json_schema(generator);
        let array = generator.subschema_for::<ArraySpec>();
        if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            properties.insert("array".into(), array.to_value());
        }
        if let Some(required) = schema.get_mut("required").and_then(|r| r.as_array_mut()) {
            required.push("array".into());
        }
        schema
    }
}

/// The ids of the jobs submitted, in the order they came.
#[derive(Serialize, JsonSchema)]
struct Submitted {
    ids: Vec<JobId>,
    /// The array's id, if the submission was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    array: Option<JobId>,
}

/// One job, or a batch: told apart by a `jobs` key, so an error names the field at fault rather
/// than saying that neither shape matched.
pub(super) fn batch_of(mut body: serde_json::Value) -> ApiResult<Batch> {
    if let Some(array) = body.as_object_mut().and_then(|fields| fields.remove("array")) {
        // Read within its field, so an error names `array.…`.
        let array = from_value::<ArrayField>(serde_json::json!({ "array": array }))?.array;
        return Ok(crate::model::array::batch(from_value::<JobSpec>(body)?, &array)?);
    }
    // Seed 002's JobConfig: an argv `command`, where gantry's own body has `commands`.
    if body.get("command").is_some() {
        return Ok(Batch::new(vec![from_value::<super::job_config::JobConfig>(body)?.into_spec()])?);
    }
    let specs = match body.get("jobs") {
        Some(_) => from_value::<BatchBody>(body)?.jobs,
        None => vec![from_value::<JobSpec>(body)?],
    };
    Ok(Batch::new(specs)?)
}

async fn submit(State(service): Shared, Extension(who): Caller, Body(body): Body<serde_json::Value>) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let batch = batch_of(body)?;
    let array = batch.array_batch().is_some();
    let ids = service.submit(&who, batch).await?;
    let array = ids.first().copied().filter(|_| array);
    Ok((StatusCode::CREATED, Json(Submitted { ids, array })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    state: Option<JobState>,
    queue: Option<String>,
    run: Option<RunId>,
    /// The account or Unix user that submitted them.
    owner: Option<String>,
    /// The elements of this array.
    array: Option<JobId>,
    #[serde(default)]
    offset: usize,
    #[schemars(range(max = MAX_PAGE))]
    limit: Option<usize>,
}

/// A page of jobs, and how many matched.
#[derive(Serialize, JsonSchema)]
struct JobPage {
    total: usize,
    offset: usize,
    jobs: Vec<Job>,
}

async fn list_jobs(State(service): Shared, Extension(who): Caller, Params(query): Params<JobQuery>) -> ApiResult<Json<JobPage>> {
    let jobs = service.jobs(&who, JobFilter { state: query.state, queue: query.queue, run: query.run, owner: query.owner, array: query.array }).await?;
    let (total, jobs) = window(jobs, query.offset, query.limit)?;
    Ok(Json(JobPage { total, offset: query.offset, jobs }))
}

async fn array(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<ArrayView>> {
    Ok(Json(service.array(&who, id).await?))
}

async fn act_on_array(State(service): Shared, Extension(who): Caller, PathParam((id, action)): PathParam<(JobId, ArrayAction)>) -> ApiResult<Json<ArrayView>> {
    Ok(Json(service.act_on_array(&who, id, action).await?))
}

async fn job(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>) -> ApiResult<Json<Job>> {
    Ok(Json(service.job(&who, id).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobChange {
    /// Higher starts first.
    priority: i32,
}

async fn change_job(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<JobId>, Body(change): Body<JobChange>) -> ApiResult<Json<Job>> {
    Ok(Json(service.set_priority(&who, id, change.priority).await?))
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

#[derive(Deserialize, JsonSchema)]
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// A command file on the daemon's machine.
    file: PathBuf,
    mode: Option<RunMode>,
}

async fn start_run(State(service): Shared, Extension(who): Caller, Body(body): Body<RunBody>) -> ApiResult<(StatusCode, Json<RunStatus>)> {
    Ok((StatusCode::CREATED, Json(service.start_run(&who, body.file, body.mode).await?)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    state: Option<RunState>,
    #[serde(default)]
    offset: usize,
    #[schemars(range(max = MAX_PAGE))]
    limit: Option<usize>,
}

async fn runs(State(service): Shared, Params(query): Params<RunQuery>) -> ApiResult<Response> {
    let runs: Vec<RunStatus> = service.runs().await?.into_iter().filter(|r| query.state.is_none_or(|s| r.run.state == s)).collect();
    page(runs, query.offset, query.limit)
}

async fn run(State(service): Shared, PathParam(id): PathParam<RunId>) -> ApiResult<Json<RunStatus>> {
    Ok(Json(service.run(id).await?))
}

async fn stop_run(State(service): Shared, Extension(who): Caller, PathParam(id): PathParam<RunId>) -> ApiResult<Json<RunStatus>> {
    Ok(Json(service.stop_run(&who, id).await?))
}
