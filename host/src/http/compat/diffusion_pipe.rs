//! Seed 000 (Diffusion-Pipe training API): GPU status, availability, details and summary, and
//! training tasks with their progress, in its `{code, message, data}` envelope and field names.
//! Errors carry the API's `error` and `detail` too, so every route answers a failure alike.

use crate::model::units::gb;
use crate::http::error::ApiError;
use crate::http::gate::Access;
use crate::http::routes::Routes;
use crate::model::{JobId, Principal};
use crate::service::{GpuReading, GpuSnapshot, GpusWithTasks, Registration, Report, Service};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "seed 000")
        .get("/api/v1/gpu/status", Access::Read, "Every GPU in seed 000's envelope", status)
        .answers::<Envelope>(200)
        .fails(&[503])
        .get("/api/v1/gpu/available", Access::Read, "GPUs with at least `min_memory` MiB free (`task_type` accepted)", available)
        .query::<AvailableQuery>()
        .answers::<Envelope>(200)
        .fails(&[503])
        .get("/api/v1/gpu/{id}/details", Access::Read, "One GPU in seed 000's envelope", details)
        .path::<u32>()
        .answers::<Envelope>(200)
        .fails(&[404, 503])
        .get("/api/v1/gpu/summary", Access::Read, "Counts of GPUs by state and memory totals", summary)
        .answers::<Envelope>(200)
        .fails(&[503])
        .post("/api/v1/tasks", Access::Operate, "Register a training task (`job_id`, or `pid` of a process of a job, or `gpu_ids`)", register_task)
        .body::<Registration>()
        .answers::<Envelope>(201)
        .links(&[(Method::GET, "/api/v1/tasks/{id}"), (Method::POST, "/api/v1/tasks/{id}/progress")], "id", "$response.body#/data/id")
        .fails(&[404, 409])
        .get("/api/v1/tasks", Access::Read, "Registered training tasks with their progress", tasks)
        .answers::<Envelope>(200)
        .get("/api/v1/tasks/{id}", Access::Read, "One training task", task)
        .path::<u64>()
        .answers::<Envelope>(200)
        .fails(&[404])
        .post("/api/v1/tasks/{id}/progress", Access::Operate, "Report a task's progress: `progress` % or `step`/`total_steps`, `epoch`, `loss`, `message`, `metrics`", report_progress)
        .path::<u64>()
        .body::<Report>()
        .answers::<Envelope>(200)
        .fails(&[404])
        .with_state(service)
}

type Shared = State<Arc<Service>>;

/// Seed 000's answer: `code` the HTTP status, `message` "success" (or what failed), `data` what
/// was asked for.
#[derive(Serialize, JsonSchema)]
struct Envelope {
    code: u16,
    message: &'static str,
    data: Value,
}

fn success(code: StatusCode, data: Value) -> Response {
    (code, Json(Envelope { code: code.as_u16(), message: "success", data })).into_response()
}

/// A failure in seed 000's envelope, with the API's `error` and `detail` beside it.
fn failure(error: ApiError) -> Response {
    let (status, message) = (error.status(), error.detail_text());
    (status, Json(json!({ "code": status.as_u16(), "message": message, "data": null, "error": error.code(), "detail": message }))).into_response()
}

fn bad_request(message: String) -> Response {
    failure(ApiError::new(StatusCode::BAD_REQUEST, "query", message))
}

/// Each GPU in seed 000's shape, with the gantry job running on it as its current task and
/// that task's reported progress.
fn gpus(view: &GpusWithTasks) -> Vec<Value> {
    view.gpus
        .gpus
        .iter()
        .map(|reading| {
            let task = view.jobs.get(&reading.index()).copied();
            let mut value = gpu(reading, task);
            value["task_progress"] = json!(task.and_then(|t| view.progress.get(&t)));
            value
        })
        .collect()
}

fn gpu(reading: &GpuReading, task: Option<JobId>) -> Value {
    let Some(g) = reading.snapshot() else {
        return json!({ "gpu_id": reading.index(), "status": "unavailable", "current_task": task });
    };
    json!({
        "gpu_id": g.index,
        "name": g.name,
        "uuid": g.uuid,
        "memory": {
            "total": g.memory_total_mib,
            "used": g.memory_used_mib,
            "free": g.memory_free_mib,
            "utilization": percent(g.memory_used_mib, g.memory_total_mib),
            "total_gb": gb(g.memory_total_mib),
            "free_gb": gb(g.memory_free_mib),
        },
        "utilization_gpu": g.utilization_gpu,
        "temperature": { "gpu": g.temperature_c, "memory": g.memory_temperature_c },
        "power_usage": g.power_draw_w,
        "power_limit": g.power_limit_w,
        "status": status_of(g, task),
        "current_task": task,
    })
}

fn percent(used: u64, total: u64) -> u64 {
    (used * 100 + total / 2).checked_div(total).unwrap_or(0)
}

/// Available: no gantry job and no other process on it.
fn status_of(g: &GpuSnapshot, task: Option<JobId>) -> &'static str {
    if task.is_none() && g.processes.is_empty() { "available" } else { "busy" }
}

fn summary_of(gpus: &[Value]) -> Value {
    let count = |status: &str| gpus.iter().filter(|g| g["status"] == status).count();
    let sum = |field: &str| gpus.iter().filter_map(|g| g["memory"][field].as_u64()).sum::<u64>();
    json!({
        "total_gpus": gpus.len(),
        "available_gpus": count("available"),
        "busy_gpus": count("busy"),
        "unavailable_gpus": count("unavailable"),
        "total_memory": sum("total"),
        "available_memory": sum("free"),
    })
}

async fn status(State(service): Shared) -> Response {
    match service.gpus_with_tasks().await {
        Ok(view) => {
            let gpus = gpus(&view);
            let summary = summary_of(&gpus);
            success(StatusCode::OK, json!({ "gpus": gpus, "summary": summary }))
        }
        Err(e) => failure(e.into()),
    }
}

#[derive(Deserialize, JsonSchema)]
struct AvailableQuery {
    /// MiB of free memory at least.
    min_memory: Option<u64>,
    /// Accepted for compatibility; every available GPU suits every task type.
    task_type: Option<String>,
}

async fn available(State(service): Shared, query: Result<Query<AvailableQuery>, QueryRejection>) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("min_memory must be a whole number of MiB".into());
    };
    let min = query.min_memory.unwrap_or(0);
    match service.gpus_with_tasks().await {
        Ok(view) => {
            let gpus: Vec<Value> = gpus(&view).into_iter().filter(|g| g["status"] == "available" && g["memory"]["free"].as_u64().is_some_and(|free| free >= min)).collect();
            success(StatusCode::OK, json!({ "gpus": gpus, "count": gpus.len(), "min_memory": min, "task_type": query.task_type }))
        }
        Err(e) => failure(e.into()),
    }
}

async fn details(State(service): Shared, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u32>() else {
        return failure(ApiError::new(StatusCode::BAD_REQUEST, "path", format!("gpu_id '{id}' is not a number")));
    };
    let view = match service.gpus_with_tasks().await {
        Ok(view) => view,
        Err(e) => return failure(e.into()),
    };
    let Some(mut found) = gpus(&view).into_iter().find(|g| g["gpu_id"] == id) else {
        return failure(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("GPU {id} does not exist")));
    };
    if let Some(snapshot) = view.gpus.gpus.iter().find(|r| r.index() == id).and_then(GpuReading::snapshot) {
        found["processes"] = json!(snapshot.processes);
        found["pci_bus_id"] = json!(snapshot.pci_bus_id);
        found["fan_speed"] = json!(snapshot.fan_percent);
    }
    success(StatusCode::OK, found)
}

async fn summary(State(service): Shared) -> Response {
    match service.gpus_with_tasks().await {
        Ok(view) => success(StatusCode::OK, summary_of(&gpus(&view))),
        Err(e) => failure(e.into()),
    }
}

async fn register_task(State(service): Shared, Extension(who): Extension<Principal>, body: Result<Json<Registration>, JsonRejection>) -> Response {
    let registration = match body {
        Ok(Json(registration)) => registration,
        Err(e) => return failure(e.into()),
    };
    match service.register_task(&who, registration).await {
        Ok(task) => success(StatusCode::CREATED, json!(task)),
        Err(e) => failure(e.into()),
    }
}

async fn tasks(State(service): Shared) -> Response {
    let tasks = service.tasks();
    success(StatusCode::OK, json!({ "tasks": tasks, "count": tasks.len() }))
}

fn task_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>().map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "path", format!("task id '{id}' is not a number")))
}

async fn task(State(service): Shared, Path(id): Path<String>) -> Response {
    match task_id(&id).and_then(|id| service.task(id).map_err(ApiError::from)) {
        Ok(task) => success(StatusCode::OK, json!(task)),
        Err(e) => failure(e),
    }
}

async fn report_progress(State(service): Shared, Extension(who): Extension<Principal>, Path(id): Path<String>, body: Result<Json<Report>, JsonRejection>) -> Response {
    let id = match task_id(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    match body {
        Ok(Json(report)) => service.report_task(&who, id, report).map_or_else(|e| failure(e.into()), |t| success(StatusCode::OK, json!(t))),
        Err(e) => failure(e.into()),
    }
}
