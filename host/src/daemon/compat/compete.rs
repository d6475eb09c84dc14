//! Seed 001/004 (GPU manager console over the compete scheduler): rules (`/api/config`), numbered
//! command files (`/api/commands/...`), schedulers (`/api/scheduler/...`: a scheduler there is a
//! run here, and its `pid` is the run's id), log bindings (`/api/log/...`) and settings
//! (`/api/settings`). Each handler reshapes one service call.

use crate::command_files::mode_name;
use crate::daemon::api::{self, ApiError, ApiResult, PathParam};
use crate::daemon::auth::Access::{Admin, Operate, Read};
use crate::daemon::editing::CommandConfig;
use crate::daemon::routes::Routes;
use crate::daemon::service::Service;
use crate::auth::Principal;
use crate::log_access::Binding;
use crate::scheduler::{JobFilter, JobState, RunMode, RunState, RunStatus};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type Shared = State<Arc<Service>>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.auth.clone(), "seed 001/004")
        .get("/api/config", Read, "The scheduling rules (seed 004's keys)", api::rules)
        .put("/api/config", Admin, "Change rules; written keeping comments, applied to the next pass", put_config)
        .get("/api/commands/{mode}/list", Read, "The command files of a mode", list_commands)
        .get("/api/commands/{mode}/all", Read, "Every command file of a mode with its data", all_commands)
        .get("/api/commands/{mode}", Read, "One command file (`?config_index=N`) as queues and processes", get_commands)
        .put("/api/commands/{mode}", Operate, "Replace a command file (`?config_index=N`), written through the parser plugin", put_commands)
        .post("/api/commands/{mode}/new", Operate, "A new command file after the last", new_commands)
        .delete("/api/commands/{mode}/{config_index}", Operate, "Delete a command file (its backup stays)", delete_commands)
        .post("/api/commands/{mode}/reset", Operate, "Put a command file (`?config_index=N`) back as it was before its last change", reset_commands)
        .post("/api/scheduler/{mode}/start", Operate, "Run a command file (`?config_index=N`)", start)
        .post("/api/scheduler/{mode}/stop", Operate, "Stop the run of a command file (`?config_index=N`)", stop)
        .get("/api/scheduler/{mode}/state", Read, "Whether a command file (`?config_index=N`) is running", state)
        .get("/api/scheduler/state", Read, "Whether each command file is running", all_states)
        .get("/api/scheduler/running", Read, "Running schedulers with per-queue progress", running)
        .post("/api/scheduler/stop/{pid}", Operate, "Stop a scheduler (a run) by its pid (the run id)", stop_pid)
        .post("/api/log/bind", Admin, "Bind a log file to a process of a command file", bind)
        .delete("/api/log/bind", Admin, "Remove a log binding", unbind)
        .get("/api/log/bindings", Read, "Every log binding", bindings)
        .get("/api/log/content", Read, "The end of a bound log (`mode, config_index, queue_id, process_index, lines`)", content)
        .get("/api/log/read", Read, "The end of a log file inside the log roots or bound (`path, lines`)", read)
        .get("/api/settings", Read, "Settings with requires_restart, warning and description", api::settings)
        .put("/api/settings", Admin, "Change settings; they apply at the next start", api::put_settings)
        .with_state(service)
}

async fn put_config(State(service): Shared, body: Result<Json<Map<String, Value>>, JsonRejection>) -> ApiResult<Json<Value>> {
    let Json(changes) = body?;
    let config = service.put_rules(changes).await?;
    Ok(Json(json!({ "success": true, "message": "rules saved and applied", "config": config })))
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    config_index: u32,
}

async fn list_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "configs": service.list_command_files(mode).await?, "mode": mode })))
}

async fn all_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>) -> ApiResult<Json<Value>> {
    let mut configs = Vec::new();
    for entry in service.list_command_files(mode).await? {
        let (data, error) = match entry.exists {
            true => match service.command_file(mode, entry.index).await {
                Ok(view) => (json!(view.data), Value::Null),
                Err(e) => (Value::Null, json!(ApiError::from(e).detail_text())),
            },
            false => (Value::Null, Value::Null),
        };
        configs.push(json!({ "index": entry.index, "name": entry.name, "file_name": entry.file_name, "exists": entry.exists, "data": data, "error": error }));
    }
    Ok(Json(json!({ "configs": configs, "mode": mode })))
}

async fn get_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(Index { config_index }) = query?;
    let view = service.command_file(mode, config_index).await?;
    Ok(Json(json!({ "queues": view.data.queues, "config_index": config_index, "file": view.path })))
}

async fn put_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>, body: Result<Json<CommandConfig>, JsonRejection>) -> ApiResult<Json<Value>> {
    let (Query(Index { config_index }), Json(data)) = (query?, body?);
    let path = service.put_command_config(mode, config_index, &data).await?;
    Ok(Json(json!({ "success": true, "message": "configuration saved", "file": path })))
}

async fn new_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, body: Option<Json<CommandConfig>>) -> ApiResult<Json<Value>> {
    let data = body.map(|Json(d)| d);
    let index = service.new_command_file(mode, data.as_ref()).await?;
    let entry = service.list_command_files(mode).await?.into_iter().find(|e| e.index == index);
    Ok(Json(json!({ "success": true, "message": "configuration created", "index": index, "config": entry })))
}

async fn delete_commands(State(service): Shared, PathParam((mode, index)): PathParam<(RunMode, u32)>) -> ApiResult<Json<Value>> {
    service.delete_command_file(mode, index).await?;
    Ok(Json(json!({ "success": true, "message": "configuration deleted" })))
}

async fn reset_commands(State(service): Shared, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(Index { config_index }) = query?;
    service.reset_command_file(mode, config_index).await?;
    Ok(Json(json!({ "success": true, "message": "configuration reset to its backup" })))
}

/// The latest run of a command file that is still going.
async fn active_run(service: &Service, mode: RunMode, index: u32) -> ApiResult<Option<RunStatus>> {
    let path = service.config.read().command_files.path(mode, index);
    Ok(running_of(&service.scheduler.runs().await?, &path).cloned())
}

/// The latest run of this file still going.
fn running_of<'a>(runs: &'a [RunStatus], path: &std::path::Path) -> Option<&'a RunStatus> {
    runs.iter().rev().find(|r| r.run.file == path && r.run.state == RunState::Running)
}

async fn start(State(service): Shared, Extension(who): Extension<Principal>, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>) -> ApiResult<(StatusCode, Json<Value>)> {
    let Query(Index { config_index }) = query?;
    if let Some(run) = active_run(&service, mode, config_index).await? {
        let message = format!("{} configuration {config_index} is running already (pid {})", mode_name(mode), run.run.id);
        return Ok((StatusCode::CONFLICT, Json(json!({ "success": false, "message": message, "pid": run.run.id, "error": "conflict", "detail": message }))));
    }
    let path = service.config.read().command_files.path(mode, config_index);
    let run = service.start_run(path.clone(), Some(mode), Some(&who)).await?;
    let log_file = service.run_log_path(run.run.id);
    Ok((StatusCode::OK, Json(json!({ "success": true, "message": "scheduler started", "pid": run.run.id, "log_file": log_file, "config_file": path }))))
}

async fn stop(State(service): Shared, Extension(who): Extension<Principal>, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(Index { config_index }) = query?;
    let run = active_run(&service, mode, config_index).await?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{} configuration {config_index} is not running", mode_name(mode)))
    })?;
    service.stop_run(run.run.id, &who).await?;
    Ok(Json(json!({ "success": true, "message": "scheduler stopped", "pid": run.run.id })))
}

async fn state(State(service): Shared, PathParam(mode): PathParam<RunMode>, query: Result<Query<Index>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(Index { config_index }) = query?;
    let run = active_run(&service, mode, config_index).await?;
    Ok(Json(json!({ "running": run.is_some(), "pid": run.map(|r| r.run.id) })))
}

async fn all_states(State(service): Shared) -> ApiResult<Json<Value>> {
    let (runs, files) = (service.scheduler.runs().await?, service.config.read().command_files.clone());
    let mut out = Map::new();
    for mode in [RunMode::Single, RunMode::Multi] {
        for entry in service.list_command_files(mode).await? {
            let run = running_of(&runs, &files.path(mode, entry.index));
            out.insert(
                format!("{}_{}", mode_name(mode), entry.index),
                json!({ "mode": mode, "config_index": entry.index, "running": run.is_some(), "pid": run.map(|r| r.run.id) }),
            );
        }
    }
    Ok(Json(Value::Object(out)))
}

fn iso(ms: u64) -> String {
    super::iso_time(ms)
}

/// Seed 001's detailed state of each running run: totals, GPUs, and each queue's progress.
async fn running(State(service): Shared) -> ApiResult<Json<Value>> {
    let files = service.config.read().command_files.clone();
    let queue_errors: BTreeMap<String, Option<String>> = service.scheduler.queues().await?.into_iter().map(|q| (q.name, q.last_error)).collect();
    let mut schedulers = Vec::new();
    for run in service.scheduler.runs().await?.into_iter().filter(|r| r.run.state == RunState::Running) {
        let jobs = service.scheduler.jobs(JobFilter { run: Some(run.run.id), ..JobFilter::default() }).await?;
        let located = files.locate(&run.run.file);
        let prefix = format!("run{}/", run.run.id);
        let mut queues: BTreeMap<String, Vec<&crate::scheduler::Job>> = BTreeMap::new();
        for job in &jobs {
            queues.entry(job.queue.strip_prefix(&prefix).unwrap_or(&job.queue).to_string()).or_default().push(job);
        }
        let count = |jobs: &[&crate::scheduler::Job], states: &[JobState]| jobs.iter().filter(|j| states.contains(&j.state)).count();
        let gpus_of = |job: &crate::scheduler::Job| job.current_attempt().filter(|_| job.state == JobState::Running).map(|a| a.gpus.clone()).unwrap_or_default();
        let mut gpus_used: Vec<u32> = jobs.iter().flat_map(&gpus_of).collect();
        gpus_used.sort_unstable();
        gpus_used.dedup();
        let mut assignments = Map::new();
        let mut queue_rows = Map::new();
        for (id, members) in &queues {
            let current = members.iter().position(|j| j.state == JobState::Running);
            let current_gpu = current.and_then(|i| gpus_of(members[i]).first().copied());
            if let Some(gpu) = current_gpu {
                assignments.insert(id.clone(), json!(gpu));
            }
            let current_task = current.map(|i| {
                let command: String = members[i].spec.commands.first().map(|c| c.chars().take(60).collect()).unwrap_or_default();
                format!("task {}/{}: {command}", i + 1, members.len())
            });
            let state = if current.is_some() {
                "running"
            } else if members.iter().all(|j| j.state.is_final()) {
                "finished"
            } else {
                "waiting"
            };
            let full_name = format!("{prefix}{id}");
            queue_rows.insert(
                id.clone(),
                json!({
                    "id": id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)),
                    "state": state,
                    "total_tasks": members.len(),
                    "pending_tasks": count(members, &[JobState::Waiting, JobState::Held]),
                    "running_tasks": count(members, &[JobState::Running]),
                    "completed_tasks": count(members, &[JobState::Succeeded]),
                    "failed_tasks": count(members, &[JobState::Failed, JobState::Cancelled]),
                    "current_task": current_task,
                    "current_gpu": current_gpu,
                    "last_error": queue_errors.get(&full_name).cloned().flatten(),
                }),
            );
        }
        let all: Vec<&crate::scheduler::Job> = jobs.iter().collect();
        schedulers.push(json!({
            "pid": run.run.id,
            "mode": run.run.mode,
            "config_index": located.map(|(_, i)| i),
            "config_file": run.run.file,
            "state": "running",
            "started_at": iso(run.run.created_ms),
            "total_tasks": jobs.len(),
            "pending_tasks": count(&all, &[JobState::Waiting, JobState::Held]),
            "running_tasks": count(&all, &[JobState::Running]),
            "completed_tasks": count(&all, &[JobState::Succeeded]),
            "failed_tasks": count(&all, &[JobState::Failed, JobState::Cancelled]),
            "gpus_used": gpus_used,
            "gpu_assignments": assignments,
            "queues": queue_rows,
        }));
    }
    Ok(Json(json!({ "schedulers": schedulers })))
}

async fn stop_pid(State(service): Shared, Extension(who): Extension<Principal>, PathParam(pid): PathParam<u64>) -> ApiResult<Json<Value>> {
    service.stop_run(pid, &who).await?;
    Ok(Json(json!({ "success": true, "message": "scheduler stopped", "pid": pid })))
}

/// Seed 001 passes these as query parameters; a JSON body is taken too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindParams {
    mode: RunMode,
    config_index: u32,
    queue_id: u32,
    process_index: u32,
    log_path: Option<std::path::PathBuf>,
    lines: Option<usize>,
}

fn bind_params(query: Result<Query<BindParams>, QueryRejection>, body: Option<Json<BindParams>>) -> ApiResult<BindParams> {
    match (query, body) {
        (_, Some(Json(params))) => Ok(params),
        (Ok(Query(params)), None) => Ok(params),
        (Err(e), None) => Err(e.into()),
    }
}

async fn bind(State(service): Shared, query: Result<Query<BindParams>, QueryRejection>, body: Option<Json<BindParams>>) -> ApiResult<Json<Value>> {
    let params = bind_params(query, body)?;
    let log_path = params.log_path.ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "`log_path`: the log file to bind is missing"))?;
    let binding = Binding { mode: mode_name(params.mode).into(), config_index: params.config_index, queue_id: params.queue_id, process_index: params.process_index, log_path, bound_at: iso(crate::auth::now_ms()) };
    let bound = service.bind_log(binding).await?;
    Ok(Json(json!({ "success": true, "message": "log bound", "binding": bound })))
}

async fn unbind(State(service): Shared, query: Result<Query<BindParams>, QueryRejection>, body: Option<Json<BindParams>>) -> ApiResult<Json<Value>> {
    let params = bind_params(query, body)?;
    let key = Binding::key(mode_name(params.mode), params.config_index, params.queue_id, params.process_index);
    service.unbind_log(key).await?;
    Ok(Json(json!({ "success": true, "message": "log unbound" })))
}

async fn bindings(State(service): Shared) -> Json<BTreeMap<String, Binding>> {
    Json(service.logs.bindings())
}

/// Lines returned when a request names none.
const DEFAULT_LINES: usize = 200;

async fn content(State(service): Shared, query: Result<Query<BindParams>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(params) = query?;
    let key = Binding::key(mode_name(params.mode), params.config_index, params.queue_id, params.process_index);
    let path = service.logs.bound(&key).map_err(crate::daemon::service::ServiceError::from)?;
    let content = service.read_log_file(path.clone(), params.lines.unwrap_or(DEFAULT_LINES)).await?;
    Ok(Json(json!({ "success": true, "log_path": path, "content": content })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    path: std::path::PathBuf,
    lines: Option<usize>,
}

async fn read(State(service): Shared, query: Result<Query<ReadParams>, QueryRejection>) -> ApiResult<Json<Value>> {
    let Query(params) = query?;
    let content = service.read_log_file(params.path.clone(), params.lines.unwrap_or(DEFAULT_LINES)).await?;
    Ok(Json(json!({ "success": true, "path": params.path, "content": content })))
}
