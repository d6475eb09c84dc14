//! Seed 000 (Diffusion-Pipe training API): GPU status, availability, details and summary, in its
//! `{code, message, data}` envelope and field names.

use super::gb;
use crate::daemon::service::Service;
use crate::gpu::{GpuReading, GpuSnapshot};
use crate::auth::Principal;
use crate::tasks::{Registration, Report};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use crate::daemon::auth::Access;
use crate::daemon::routes::Routes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.auth.clone(), "seed 000")
        .get("/api/v1/gpu/status", Access::Read, "Every GPU in seed 000's envelope", status)
        .get("/api/v1/gpu/available", Access::Read, "GPUs with at least `min_memory` MiB free (`task_type` accepted)", available)
        .get("/api/v1/gpu/{id}/details", Access::Read, "One GPU in seed 000's envelope", details)
        .get("/api/v1/gpu/summary", Access::Read, "Counts of GPUs by state and memory totals", summary)
        .post("/api/v1/tasks", Access::Operate, "Register a training task (`job_id`, or `pid` of a process of a job, or `gpu_ids`)", register_task)
        .get("/api/v1/tasks", Access::Read, "Registered training tasks with their progress", tasks)
        .get("/api/v1/tasks/{id}", Access::Read, "One training task", task)
        .post("/api/v1/tasks/{id}/progress", Access::Operate, "Report a task's progress: `progress` % or `step`/`total_steps`, `epoch`, `loss`, `message`, `metrics`", report_progress)
        .with_state(service)
}

fn envelope(code: StatusCode, message: &str, data: Value) -> Response {
    (code, Json(json!({ "code": code.as_u16(), "message": message, "data": data }))).into_response()
}

fn success(data: Value) -> Response {
    envelope(StatusCode::OK, "success", data)
}

/// Each GPU in seed 000's shape, with the gantry job running on it as its current task and
/// that task's reported progress.
async fn gpus(service: &Service) -> Vec<Value> {
    let tasks: HashMap<u32, u64> = match service.scheduler.running().await {
        Ok(running) => running.iter().flat_map(|job| job.gpus.iter().map(move |&g| (g, job.id))).collect(),
        Err(_) => HashMap::new(),
    };
    service
        .gpus
        .latest()
        .gpus
        .iter()
        .map(|reading| {
            let task = tasks.get(&reading.index()).copied();
            let mut value = gpu(reading, task);
            value["task_progress"] = json!(task.and_then(|t| service.tasks.get(t).ok()).and_then(|t| t.progress));
            value
        })
        .collect()
}

fn gpu(reading: &GpuReading, task: Option<u64>) -> Value {
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
        "temperature": { "gpu": g.temperature_c, "memory": null },
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
fn status_of(g: &GpuSnapshot, task: Option<u64>) -> &'static str {
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

async fn status(State(service): State<Arc<Service>>) -> Response {
    let gpus = gpus(&service).await;
    let summary = summary_of(&gpus);
    success(json!({ "gpus": gpus, "summary": summary }))
}

#[derive(Deserialize)]
struct AvailableQuery {
    /// MiB of free memory at least.
    min_memory: Option<u64>,
    /// Accepted for compatibility; every available GPU suits every task type.
    task_type: Option<String>,
}

async fn available(State(service): State<Arc<Service>>, query: Result<Query<AvailableQuery>, QueryRejection>) -> Response {
    let Ok(Query(query)) = query else {
        return envelope(StatusCode::BAD_REQUEST, "min_memory must be a whole number of MiB", Value::Null);
    };
    let min = query.min_memory.unwrap_or(0);
    let gpus: Vec<Value> = gpus(&service)
        .await
        .into_iter()
        .filter(|g| g["status"] == "available" && g["memory"]["free"].as_u64().is_some_and(|free| free >= min))
        .collect();
    success(json!({ "gpus": gpus, "count": gpus.len(), "min_memory": min, "task_type": query.task_type }))
}

async fn details(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u32>() else {
        return envelope(StatusCode::BAD_REQUEST, &format!("gpu_id '{id}' is not a number"), Value::Null);
    };
    let all = gpus(&service).await;
    let Some(mut found) = all.into_iter().find(|g| g["gpu_id"] == id) else {
        return envelope(StatusCode::NOT_FOUND, &format!("GPU {id} does not exist"), Value::Null);
    };
    let latest = service.gpus.latest();
    if let Some(snapshot) = latest.gpus.iter().find(|r| r.index() == id).and_then(GpuReading::snapshot) {
        found["processes"] = json!(snapshot.processes);
        found["pci_bus_id"] = json!(snapshot.pci_bus_id);
        found["fan_speed"] = json!(snapshot.fan_percent);
    }
    success(found)
}

async fn summary(State(service): State<Arc<Service>>) -> Response {
    let gpus = gpus(&service).await;
    success(summary_of(&gpus))
}

fn task_error(e: crate::tasks::TaskError) -> Response {
    let code = match e {
        crate::tasks::TaskError::Unknown(_) => StatusCode::NOT_FOUND,
        crate::tasks::TaskError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    envelope(code, &e.to_string(), Value::Null)
}

fn service_error(e: crate::daemon::service::ServiceError) -> Response {
    let error = crate::daemon::api::ApiError::from(e);
    envelope(error.status(), &error.detail_text(), Value::Null)
}

async fn register_task(State(service): State<Arc<Service>>, Extension(who): Extension<Principal>, body: Result<Json<Registration>, JsonRejection>) -> Response {
    let registration = match body {
        Ok(Json(registration)) => registration,
        Err(e) => return envelope(StatusCode::BAD_REQUEST, &e.body_text(), Value::Null),
    };
    match service.register_task(registration, &who).await {
        Ok(task) => envelope(StatusCode::CREATED, "success", json!(task)),
        Err(e) => service_error(e),
    }
}

async fn tasks(State(service): State<Arc<Service>>) -> Response {
    let tasks = service.tasks.list();
    success(json!({ "tasks": tasks, "count": tasks.len() }))
}

async fn task(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) => service.tasks.get(id).map_or_else(task_error, |t| success(json!(t))),
        Err(_) => envelope(StatusCode::BAD_REQUEST, &format!("task id '{id}' is not a number"), Value::Null),
    }
}

async fn report_progress(State(service): State<Arc<Service>>, Path(id): Path<String>, body: Result<Json<Report>, JsonRejection>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return envelope(StatusCode::BAD_REQUEST, &format!("task id '{id}' is not a number"), Value::Null);
    };
    let report = match body {
        Ok(Json(report)) => report,
        Err(e) => return envelope(StatusCode::BAD_REQUEST, &e.body_text(), Value::Null),
    };
    service.tasks.report(id, report, crate::auth::now_ms()).map_or_else(task_error, |t| success(json!(t)))
}
