//! Seed 003 (FlowLine): the agent's `/api/info` (system and GPUs, memory in GB for the system,
//! MiB for GPUs, as documented) and `/api/health`, and the master's `/api/slaves[/<ip>]`,
//! their refreshes and `/api/system/uptime`, over the federation's nodes. A refresh pulls the
//! slaves this master is configured to pull (`[[federation.slaves]]`, seed 003's `slaves`); a
//! node that pushes its reports answers its latest.

use crate::federation::flowline::info_of;
use crate::federation::{NodeStatus, NodeView, Via};
use crate::http::error::{ApiResult, PathParam};
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
        .answers::<Object>(200)
        .get("/api/health", Access::Public, "Seed 003's health check", health)
        .answers::<Object>(200)
        .get("/api/slaves", Access::Read, "Seed 003's master: every node, each as its `/api/info` with name, ip, status and last report", slaves)
        .answers::<Object>(200)
        .get("/api/slaves/{ip}", Access::Read, "One node, by the address it reports from or by name", slave)
        .path::<String>()
        .answers::<Object>(200)
        .fails(&[404])
        .post("/api/slaves/{ip}/refresh", Access::Operate, "Pull a configured slave's `/api/info` now and answer it; a node that pushes answers its latest report", refresh_slave)
        .path::<String>()
        .answers::<Object>(200)
        .fails(&[404])
        .post("/api/refresh", Access::Operate, "Pull every configured slave now, and answer every node", refresh)
        .answers::<Object>(200)
        .get("/api/system/uptime", Access::Read, "How long this daemon has served", uptime)
        .answers::<Object>(200)
        .with_state(service)
}

/// The seed's answers: JSON objects whose fields its document gives.
type Object = serde_json::Map<String, Value>;

async fn info(State(service): State<Arc<Service>>) -> Json<Value> {
    Json(info_of(&service.node()))
}

/// A federation node as seed 003's master lists a slave: its `/api/info`, and who and how fresh.
fn slave_of(node: &NodeView) -> Value {
    let mut entry = node.report.as_ref().map(|r| info_of(&r.node)).unwrap_or_else(|| json!({}));
    entry["name"] = json!(node.name);
    entry["ip"] = json!(node.address);
    entry["status"] = json!(node.status);
    entry["online"] = json!(node.status == NodeStatus::Online);
    entry["last_update"] = json!(node.last_seen_ms.map(|ms| ms as f64 / 1000.0));
    entry["jobs"] = json!(node.report.as_ref().filter(|_| node.via == Via::Push).map(|r| &r.jobs));
    entry["via"] = json!(node.via);
    entry["error"] = json!(node.error);
    entry
}

fn listing(nodes: &[NodeView]) -> Value {
    let slaves: Vec<Value> = nodes.iter().map(slave_of).collect();
    json!({ "slaves": slaves, "count": slaves.len() })
}

async fn slaves(State(service): State<Arc<Service>>) -> Json<Value> {
    Json(listing(&service.nodes()))
}

async fn refresh(State(service): State<Arc<Service>>) -> Json<Value> {
    Json(listing(&service.refresh_nodes().await))
}

async fn refresh_slave(State(service): State<Arc<Service>>, PathParam(key): PathParam<String>) -> ApiResult<Json<Value>> {
    Ok(Json(slave_of(&service.refresh_node(&key).await?)))
}

async fn slave(State(service): State<Arc<Service>>, PathParam(key): PathParam<String>) -> ApiResult<Json<Value>> {
    Ok(Json(slave_of(&service.federation_node(&key)?)))
}

async fn uptime(State(service): State<Arc<Service>>) -> Json<Value> {
    let seconds = service.uptime().as_secs_f64();
    Json(json!({ "uptime": seconds, "uptime_seconds": seconds.floor() }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "healthy", "service": "gantry", "version": env!("CARGO_PKG_VERSION") }))
}
