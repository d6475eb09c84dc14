//! Seed 003 (FlowLine) agent endpoints: `/api/info` (system and GPUs, memory in GB for the
//! system, MiB for GPUs, as documented) and `/api/health`. The master's endpoints come with
//! federation.

use super::gb;
use crate::http::gate::Access;
use crate::http::routes::Routes;
use crate::service::Service;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "seed 003")
        .get("/api/info", Access::Read, "Seed 003's agent report: timestamp, system block, GPUs", info)
        .answers::<serde_json::Map<String, Value>>(200)
        .get("/api/health", Access::Public, "Seed 003's health check", health)
        .answers::<serde_json::Map<String, Value>>(200)
        .with_state(service)
}

async fn info(State(service): State<Arc<Service>>) -> Json<Value> {
    let machine = service.machine();
    let (host, node) = (machine.host, machine.gpus);
    let gpus: Vec<Value> = node
        .gpus
        .iter()
        .filter_map(|r| r.snapshot())
        .map(|g| {
            json!({
                "id": g.index,
                "name": g.name,
                "memory": { "total": g.memory_total_mib, "used": g.memory_used_mib, "free": g.memory_free_mib },
                "utilization": g.utilization_gpu,
                "temperature": g.temperature_c,
                "power": { "current": g.power_draw_w, "max": g.power_limit_w },
                "processes": g.processes,
            })
        })
        .collect();
    Json(json!({
        "timestamp": node.sampled_at_ms as f64 / 1000.0,
        "system": {
            "hostname": host.hostname,
            "cpu_model": host.cpu_model,
            "cpu_cores": host.cpu_cores,
            "memory": { "total": gb(host.memory_total_mib), "used": gb(host.memory_used_mib), "percent": host.memory_percent },
            "swap": { "total": gb(host.swap_total_mib), "used": gb(host.swap_used_mib), "percent": host.swap_percent },
        },
        "gpus": gpus,
        "simulated": node.simulated,
    }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy", "service": "gantry", "version": env!("CARGO_PKG_VERSION") }))
}
