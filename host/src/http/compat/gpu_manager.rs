//! Seed 001/004 (GPU manager) GPU monitoring: `/api/gpu` with its host block, active users and
//! `*_human` fields, `/api/gpu/processes`, `/api/gpu/state`.

use crate::http::gate::Access;
use crate::http::routes::Routes;
use crate::model::iso_time;
use crate::service::{GpuReading, GpuSnapshot, Service};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The routes' state: the service, and `/api/gpu`'s last answer with the sample it was made from.
/// Dashboards poll it from every open tab; between two samples the answer can't change, so it is
/// built once per sample.
pub struct GpuManager {
    service: Arc<Service>,
    rendered: parking_lot::Mutex<Option<(u64, bytes::Bytes)>>,
}

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "seed 001/004")
        .get("/api/gpu", Access::Read, "GPU monitoring with host block, active users and *_human fields", gpu)
        .answers::<serde_json::Map<String, Value>>(200)
        .get("/api/gpu/processes", Access::Read, "Processes on every GPU with their users", processes)
        .answers::<serde_json::Map<String, Value>>(200)
        .get("/api/gpu/state", Access::Read, "The monitor's state", state)
        .answers::<serde_json::Map<String, Value>>(200)
        .with_state(Arc::new(GpuManager { service, rendered: parking_lot::Mutex::new(None) }))
}

/// `64GB`, `1.5GB`, `512MB`: what seed 001 shows people.
fn human_mib(mib: u64) -> String {
    if mib < 1024 {
        return format!("{mib}MB");
    }
    let gb = mib as f64 / 1024.0;
    if (gb - gb.round()).abs() < 0.05 { format!("{}GB", gb.round()) } else { format!("{gb:.1}GB") }
}

/// Whole watts, cut as gpustat and `nvidia-smi` cut them: 251.5 W is `251W`.
fn human_watts(w: Option<f64>) -> Option<String> {
    w.map(|w| format!("{}W", w.floor()))
}

fn process_rows(g: &GpuSnapshot) -> Vec<Value> {
    g.processes
        .iter()
        .map(|p| {
            json!({
                "gpu_index": g.index,
                "pid": p.pid,
                "username": p.user,
                "gpu_memory": p.used_memory_mib,
                "gpu_memory_human": p.used_memory_mib.map(human_mib),
                "command": p.command,
            })
        })
        .collect()
}

async fn gpu(State(manager): State<Arc<GpuManager>>) -> impl IntoResponse {
    let sampled = manager.service.sampled_at_ms();
    let cached = manager.rendered.lock().as_ref().filter(|(at, _)| *at == sampled).map(|(_, body)| body.clone());
    let body = match cached {
        Some(body) => body,
        None => {
            let (at, value) = render_gpu(&manager.service);
            let body = bytes::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
            *manager.rendered.lock() = Some((at, body.clone()));
            body
        }
    };
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
}

/// The answer and the sample it describes.
fn render_gpu(service: &Service) -> (u64, Value) {
    let machine = service.machine();
    let (node, host) = (machine.gpus, machine.host);
    let gpus: Vec<&GpuSnapshot> = node.gpus.iter().filter_map(|r| r.snapshot()).collect();
    let users: BTreeSet<String> = gpus.iter().flat_map(|g| g.processes.iter().filter_map(|p| p.user.clone())).collect();
    let (used, total) = gpus.iter().fold((0, 0), |(u, t), g| (u + g.memory_used_mib, t + g.memory_total_mib));
    let memory_percent = if total == 0 { 0.0 } else { (used as f64 * 1000.0 / total as f64).round() / 10.0 };
    let value = json!({
        "available": !gpus.is_empty(),
        "simulated": node.simulated,
        "timestamp": iso_time(node.sampled_at_ms),
        "gpu_count": node.gpus.len(),
        "total_processes": gpus.iter().map(|g| g.processes.len()).sum::<usize>(),
        "memory_percent": memory_percent,
        "active_user_count": users.len(),
        "active_users": users,
        "host": {
            "hostname": host.hostname,
            "cpu": { "percent": host.cpu_percent, "count": host.cpu_cores },
            "memory": {
                "used_human": human_mib(host.memory_used_mib),
                "total_human": human_mib(host.memory_total_mib),
                "percent": host.memory_percent,
            },
        },
        "gpus": node.gpus.iter().map(|reading| match reading {
            GpuReading::Available(g) => available_gpu(g),
            // A lost GPU stays in the list, so `gpus` and `gpu_count` agree.
            GpuReading::Unavailable { index, error } => json!({ "index": index, "status": "unavailable", "error": error }),
        }).collect::<Vec<_>>(),
    });
    (node.sampled_at_ms, value)
}

fn available_gpu(g: &GpuSnapshot) -> Value {
    json!({
        "index": g.index,
        "status": "available",
        "name": g.name,
        "uuid": g.uuid,
        "temperature": g.temperature_c,
        "utilization": { "gpu": g.utilization_gpu, "memory": g.utilization_memory },
        "memory": {
            "used": g.memory_used_mib,
            "total": g.memory_total_mib,
            "used_human": human_mib(g.memory_used_mib),
            "total_human": human_mib(g.memory_total_mib),
            "percent": (g.memory_used_mib * 100 + g.memory_total_mib / 2).checked_div(g.memory_total_mib).unwrap_or(0),
        },
        "power": {
            "draw": g.power_draw_w,
            "limit": g.power_limit_w,
            "draw_human": human_watts(g.power_draw_w),
            "limit_human": human_watts(g.power_limit_w),
        },
        "processes": process_rows(g),
    })
}

async fn processes(State(manager): State<Arc<GpuManager>>) -> Json<Value> {
    let node = manager.service.machine().gpus;
    let rows: Vec<Value> = node.gpus.iter().filter_map(|r| r.snapshot()).flat_map(process_rows).collect();
    Json(json!({ "timestamp": iso_time(node.sampled_at_ms), "count": rows.len(), "processes": rows }))
}

async fn state(State(manager): State<Arc<GpuManager>>) -> Json<Value> {
    let machine = manager.service.machine();
    let (node, config) = (machine.gpus, machine.sampler);
    Json(json!({
        "running": true,
        "simulated": node.simulated,
        "interval": config.interval.as_secs_f64(),
        "window": config.window.as_secs_f64(),
        "last_update": iso_time(node.sampled_at_ms),
        "gpu_count": node.gpus.len(),
        "unavailable_gpus": node.gpus.iter().filter(|r| r.snapshot().is_none()).map(|r| r.index()).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_mib(65_536), "64GB");
        assert_eq!(human_mib(1536), "1.5GB");
        assert_eq!(human_mib(512), "512MB");
        assert_eq!(human_watts(Some(149.6)).as_deref(), Some("149W"));
        assert_eq!(human_watts(Some(251.5)).as_deref(), Some("251W"));
    }
}
