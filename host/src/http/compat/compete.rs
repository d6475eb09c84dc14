//! Seed 001/004 (GPU manager console over the compete scheduler): rules (`/api/config`), numbered
//! command files (`/api/commands/...`), schedulers (`/api/scheduler/...`: a scheduler there is a
//! run here, and its `pid` is the run's id), log bindings (`/api/log/...`) and settings
//! (`/api/settings`). Each handler reshapes one service call.

use crate::http::error::{ApiError, ApiResult, Body, Params, PathParam};
use crate::http::gate::Access::{Admin, Operate, Read};
use crate::http::routes::Routes;
use crate::http::v1::files::{put_settings, rules, settings};
use crate::model::{iso_time, Principal, QueueProgress, RunId, RunMode, RunProgress};
use crate::service::{Binding, CommandConfig, Content, SchedulerError, Service, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

type Shared = State<Arc<Service>>;
type Caller = Extension<Principal>;
/// The seed consoles' answers: JSON objects whose fields the seed documents give.
type Object = Map<String, Value>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "seed 001/004")
        .get("/api/config", Read, "The scheduling rules (seed 004's keys)", rules)
        .answers::<Object>(200)
        .put("/api/config", Admin, "Change rules; written keeping comments, applied to the next pass", put_config)
        .body::<Object>()
        .answers::<Object>(200)
        .get("/api/commands/{mode}/list", Read, "The command files of a mode", list_commands)
        .path::<RunMode>()
        .answers::<Object>(200)
        .get("/api/commands/{mode}/all", Read, "Every command file of a mode with its data", all_commands)
        .path::<RunMode>()
        .answers::<Object>(200)
        .get("/api/commands/{mode}", Read, "One command file (`?config_index=N`) as queues and processes", get_commands)
        .path::<RunMode>()
        .query::<Index>()
        .answers::<Object>(200)
        .fails(&[404, 503])
        .put("/api/commands/{mode}", Operate, "Replace a command file (`?config_index=N`), written through the parser plugin", put_commands)
        .path::<RunMode>()
        .query::<Index>()
        .body::<CommandConfig>()
        .answers::<Object>(200)
        .fails(&[404, 503])
        .post("/api/commands/{mode}/new", Operate, "A new command file after the last", new_commands)
        .path::<RunMode>()
        .optional_body::<CommandConfig>()
        .answers::<Object>(200)
        .fails(&[409, 503])
        .delete("/api/commands/{mode}/{config_index}", Operate, "Delete a command file (its backup stays)", delete_commands)
        .path::<(RunMode, u32)>()
        .answers::<Object>(200)
        .fails(&[404])
        .post("/api/commands/{mode}/reset", Operate, "Put a command file (`?config_index=N`) back as it was before its last change", reset_commands)
        .path::<RunMode>()
        .query::<Index>()
        .answers::<Object>(200)
        .fails(&[404, 409])
        .post("/api/scheduler/{mode}/start", Operate, "Run a command file (`?config_index=N`)", start)
        .path::<RunMode>()
        .query::<Index>()
        .answers::<Object>(200)
        .fails(&[404, 409, 422, 503])
        .post("/api/scheduler/{mode}/stop", Operate, "Stop the run of a command file (`?config_index=N`)", stop)
        .path::<RunMode>()
        .query::<Index>()
        .answers::<Object>(200)
        .fails(&[404, 409])
        .get("/api/scheduler/{mode}/state", Read, "Whether a command file (`?config_index=N`) is running", state)
        .path::<RunMode>()
        .query::<Index>()
        .answers::<Object>(200)
        .get("/api/scheduler/state", Read, "Whether each command file is running", all_states)
        .answers::<Object>(200)
        .get("/api/scheduler/running", Read, "Running schedulers with per-queue progress", running)
        .answers::<Object>(200)
        .post("/api/scheduler/stop/{pid}", Operate, "Stop a scheduler (a run) by its pid (the run id)", stop_pid)
        .path::<u64>()
        .answers::<Object>(200)
        .fails(&[404, 409])
        .post("/api/log/bind", Admin, "Bind a log file to a process of a command file (parameters in the query or a JSON body)", bind)
        .query::<BindParams>()
        .optional_body::<BindParams>()
        .answers::<Object>(200)
        .fails(&[404, 409])
        .delete("/api/log/bind", Admin, "Remove a log binding (parameters in the query or a JSON body)", unbind)
        .query::<BindParams>()
        .optional_body::<BindParams>()
        .answers::<Object>(200)
        .fails(&[404])
        .get("/api/log/bindings", Read, "Every log binding", bindings)
        .answers::<BTreeMap<String, Binding>>(200)
        .get("/api/log/content", Read, "The end of a bound log", content)
        .query::<BindParams>()
        .answers::<Object>(200)
        .fails(&[404, 413])
        .get("/api/log/read", Read, "The end of a log file inside the log roots or bound", read)
        .query::<ReadParams>()
        .answers::<Object>(200)
        .fails(&[404, 413])
        .get("/api/settings", Read, "Settings with requires_restart, warning and description", settings)
        .answers::<Object>(200)
        .put("/api/settings", Admin, "Change settings; the policy applies at once, the rest at the next start", put_settings)
        .body::<Object>()
        .answers::<crate::service::SettingsChange>(200)
        .with_state(service)
}

async fn put_config(State(service): Shared, Body(changes): Body<Map<String, Value>>) -> ApiResult<Json<Value>> {
    let config = service.put_rules(changes).await?;
    Ok(Json(json!({ "success": true, "message": "rules saved and applied", "config": config })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Index {
    #[serde(default)]
    config_index: u32,
}

async fn list_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "configs": service.list_command_files(mode).await?, "mode": mode })))
}

async fn all_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "configs": service.all_command_files(mode).await?, "mode": mode })))
}

async fn get_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>) -> ApiResult<Json<Value>> {
    let view = service.command_file(mode, config_index).await?;
    Ok(Json(json!({ "queues": view.data.queues, "config_index": config_index, "file": view.path })))
}

async fn put_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>, Body(data): Body<CommandConfig>) -> ApiResult<Json<Value>> {
    let view = service.put_command_file(mode, config_index, Content::Config(data)).await?;
    Ok(Json(json!({ "success": true, "message": "configuration saved", "file": view.path })))
}

async fn new_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, body: Option<Body<CommandConfig>>) -> ApiResult<Json<Value>> {
    let content = body.map_or(Content::Empty, |Body(data)| Content::Config(data));
    let (entry, _) = service.new_command_file(mode, content).await?;
    Ok(Json(json!({ "success": true, "message": "configuration created", "index": entry.index, "config": entry })))
}

async fn delete_commands(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<Value>> {
    service.delete_command_file(mode, index).await?;
    Ok(Json(json!({ "success": true, "message": "configuration deleted" })))
}

async fn reset_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>) -> ApiResult<Json<Value>> {
    service.reset_command_file(mode, config_index).await?;
    Ok(Json(json!({ "success": true, "message": "configuration reset to its backup" })))
}

/// Seed 001's answer to starting a file that runs already: `success: false` and the running pid.
async fn start(State(service): Shared, Extension(who): Caller, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>) -> ApiResult<(StatusCode, Json<Value>)> {
    match service.start_command_file(&who, mode, config_index).await {
        Ok(started) => Ok((
            StatusCode::OK,
            Json(json!({ "success": true, "message": "scheduler started", "pid": started.status.run.id, "log_file": started.log_file, "config_file": started.config_file })),
        )),
        Err(ServiceError::Scheduler(SchedulerError::AlreadyRunning { run, .. })) => {
            let message = format!("{} configuration {config_index} is running already (pid {run})", mode.as_str());
            Ok((StatusCode::CONFLICT, Json(json!({ "success": false, "message": message, "pid": run, "error": "conflict", "detail": message }))))
        }
        Err(e) => Err(e.into()),
    }
}

async fn stop(State(service): Shared, Extension(who): Caller, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>) -> ApiResult<Json<Value>> {
    let run = service.stop_command_file(&who, mode, config_index).await?;
    Ok(Json(json!({ "success": true, "message": "scheduler stopped", "pid": run })))
}

async fn state(State(service): Shared, PathParam(mode): PathParam<RunMode>, Params(Index { config_index }): Params<Index>) -> ApiResult<Json<Value>> {
    let run = service.command_file_run(mode, config_index).await?;
    Ok(Json(json!({ "running": run.is_some(), "pid": run })))
}

async fn all_states(State(service): Shared) -> ApiResult<Json<Value>> {
    let mut out = Map::new();
    for file in service.command_file_runs().await? {
        out.insert(
            format!("{}_{}", file.mode.as_str(), file.index),
            json!({ "mode": file.mode, "config_index": file.index, "running": file.run.is_some(), "pid": file.run }),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// A queue of a running scheduler in seed 001's fields.
fn queue_row(queue: &QueueProgress) -> Value {
    let c = &queue.counts;
    let state = if queue.current.is_some() {
        "running"
    } else if c.unfinished() == 0 {
        "finished"
    } else {
        "waiting"
    };
    let current_task = queue.current.as_ref().map(|current| {
        let command: String = current.first_command.chars().take(60).collect();
        format!("task {}/{}: {command}", current.position, c.total)
    });
    json!({
        "id": queue.id.parse::<u64>().map_or_else(|_| json!(queue.id), |n| json!(n)),
        "state": state,
        "total_tasks": c.total,
        "pending_tasks": c.waiting + c.held,
        "running_tasks": c.running,
        "completed_tasks": c.succeeded,
        "failed_tasks": c.failed + c.cancelled,
        "current_task": current_task,
        "current_gpu": queue.current.as_ref().and_then(|j| j.gpus.first()),
        "last_error": queue.last_error,
    })
}

/// Seed 001's detailed state of each running scheduler: totals, GPUs, and each queue's progress.
fn scheduler_row(progress: &RunProgress, config_index: Option<u32>) -> Value {
    let run = &progress.status.run;
    let c = &progress.status.counts;
    let assignments: Map<String, Value> = progress.queues.iter().filter_map(|q| Some((q.id.clone(), json!(q.current.as_ref()?.gpus.first()?)))).collect();
    let queues: Map<String, Value> = progress.queues.iter().map(|q| (q.id.clone(), queue_row(q))).collect();
    json!({
        "pid": run.id,
        "mode": run.mode,
        "config_index": config_index,
        "config_file": run.file,
        "state": "running",
        "started_at": iso_time(run.created_ms),
        "total_tasks": c.total,
        "pending_tasks": c.waiting + c.held,
        "running_tasks": c.running,
        "completed_tasks": c.succeeded,
        "failed_tasks": c.failed + c.cancelled,
        "gpus_used": progress.gpus_used,
        "gpu_assignments": assignments,
        "queues": queues,
    })
}

async fn running(State(service): Shared, Extension(who): Extension<Principal>) -> ApiResult<Json<Value>> {
    let schedulers: Vec<Value> = service.run_progress(&who).await?.iter().map(|(progress, located)| scheduler_row(progress, located.map(|(_, i)| i))).collect();
    Ok(Json(json!({ "schedulers": schedulers })))
}

async fn stop_pid(State(service): Shared, Extension(who): Caller, PathParam(pid): PathParam<u64>) -> ApiResult<Json<Value>> {
    service.stop_run(&who, RunId(pid)).await?;
    Ok(Json(json!({ "success": true, "message": "scheduler stopped", "pid": pid })))
}

/// Seed 001 passes these as query parameters; a JSON body is taken too.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BindParams {
    mode: RunMode,
    config_index: u32,
    queue_id: u32,
    process_index: u32,
    log_path: Option<PathBuf>,
    lines: Option<usize>,
}

/// The body's parameters if it has any, else the query's.
async fn bind_params(request: axum::extract::Request) -> ApiResult<BindParams> {
    use axum::extract::{FromRequest, FromRequestParts};
    let (mut parts, body) = request.into_parts();
    let query = Params::<BindParams>::from_request_parts(&mut parts, &()).await;
    let body = <Option<Body<BindParams>> as FromRequest<()>>::from_request(axum::extract::Request::from_parts(parts, body), &()).await?;
    match body {
        Some(Body(params)) => Ok(params),
        None => query.map(|Params(params)| params),
    }
}

async fn bind(State(service): Shared, Extension(who): Extension<Principal>, request: axum::extract::Request) -> ApiResult<Json<Value>> {
    let params = bind_params(request).await?;
    let log_path = params.log_path.ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "`log_path`: the log file to bind is missing"))?;
    let bound = service.bind_log(&who, params.mode, params.config_index, params.queue_id, params.process_index, log_path).await?;
    Ok(Json(json!({ "success": true, "message": "log bound", "binding": bound })))
}

async fn unbind(State(service): Shared, request: axum::extract::Request) -> ApiResult<Json<Value>> {
    let params = bind_params(request).await?;
    service.unbind_log(params.mode, params.config_index, params.queue_id, params.process_index).await?;
    Ok(Json(json!({ "success": true, "message": "log unbound" })))
}

async fn bindings(State(service): Shared) -> Json<BTreeMap<String, Binding>> {
    Json(service.log_bindings())
}

async fn content(State(service): Shared, Extension(who): Extension<Principal>, Params(params): Params<BindParams>) -> ApiResult<Json<Value>> {
    let (path, content) = service.bound_log(&who, params.mode, params.config_index, params.queue_id, params.process_index, params.lines).await?;
    Ok(Json(json!({ "success": true, "log_path": path, "content": content })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    path: PathBuf,
    lines: Option<usize>,
}

async fn read(State(service): Shared, Extension(who): Extension<Principal>, Params(params): Params<ReadParams>) -> ApiResult<Json<Value>> {
    let content = service.read_log_file(&who, params.path.clone(), params.lines).await?;
    Ok(Json(json!({ "success": true, "path": params.path, "content": content })))
}
