//! The federation as a master serves it: nodes issued by an admin, the reports agents push with
//! their node token, and the nodes with their latest reports and freshness.

use crate::federation::{NodeView, Report};
use crate::http::error::{ApiError, ApiResult, Body, PathParam};
use crate::http::gate::Access::{Admin, Public, Read};
use crate::http::routes::Routes;
use crate::http::Peer;
use crate::model::RunningJob;
use crate::service::GpuSummary;
use crate::service::Service;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Shared = State<Arc<Service>>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "federation")
        .get("/api/v1/nodes", Read, "The nodes reporting to this daemon, each `online`, `stale` or `offline`, with its latest report", nodes)
        .answers::<Vec<NodeView>>(200)
        .post("/api/v1/nodes", Admin, "Issue a node: its token (shown once) goes in the agent's `[federation] token`", add)
        .body::<NewNode>()
        .answers::<IssuedNode>(201)
        .links(&[(Method::GET, "/api/v1/nodes/{name}"), (Method::GET, "/api/v1/nodes/{name}/jobs"), (Method::GET, "/api/v1/nodes/{name}/gpus"), (Method::DELETE, "/api/v1/nodes/{name}")], "name", "$response.body#/name")
        .fails(&[409])
        .get("/api/v1/nodes/{name}", Read, "One node by name, or by the address it reports from", node)
        .path::<String>()
        .answers::<NodeView>(200)
        .fails(&[404])
        .get("/api/v1/nodes/{name}/jobs", Read, "The jobs running on a node, as its last report has them (without their commands)", node_jobs)
        .path::<String>()
        .answers::<Vec<RunningJob>>(200)
        .fails(&[404])
        .get("/api/v1/nodes/{name}/gpus", Read, "A node's GPUs with their processes, as its last report has them", node_gpus)
        .path::<String>()
        .answers::<Vec<GpuSummary>>(200)
        .fails(&[404])
        .delete("/api/v1/nodes/{name}", Admin, "Revoke a node's token: its reports are refused from now on", revoke)
        .path::<String>()
        .answers_raw(204, None)
        .fails(&[404])
        .post("/api/v1/nodes/{name}/report", Public, "An agent's report, with its node token as `Authorization: Bearer gtn_…`", report)
        .path::<String>()
        .body::<Report>()
        .answers_raw(204, None)
        .fails(&[401, 409])
        .with_state(service)
}

async fn nodes(State(service): Shared) -> Json<Vec<NodeView>> {
    Json(service.nodes())
}

async fn node_jobs(State(service): Shared, PathParam(name): PathParam<String>) -> ApiResult<Json<Vec<RunningJob>>> {
    Ok(Json(service.federation_node(&name)?.report.map(|r| r.running).unwrap_or_default()))
}

async fn node_gpus(State(service): Shared, PathParam(name): PathParam<String>) -> ApiResult<Json<Vec<GpuSummary>>> {
    Ok(Json(service.federation_node(&name)?.report.map(|r| r.node.gpus).unwrap_or_default()))
}

async fn node(State(service): Shared, PathParam(name): PathParam<String>) -> ApiResult<Json<NodeView>> {
    Ok(Json(service.federation_node(&name)?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewNode {
    /// Letters, digits, `-`, `_`, `.`; at most 64.
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct IssuedNode {
    name: String,
    /// Shown this once; the master keeps only its digest.
    token: String,
}

async fn add(State(service): Shared, Body(new): Body<NewNode>) -> ApiResult<(StatusCode, Json<IssuedNode>)> {
    let token = service.add_node(new.name.clone()).await?;
    Ok((StatusCode::CREATED, Json(IssuedNode { name: new.name, token })))
}

async fn revoke(State(service): Shared, PathParam(name): PathParam<String>) -> ApiResult<StatusCode> {
    service.revoke_node(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report(State(service): Shared, ConnectInfo(peer): ConnectInfo<Peer>, headers: HeaderMap, PathParam(name): PathParam<String>, Body(report): Body<Report>) -> ApiResult<StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a report carries its node's token as `Authorization: Bearer gtn_…`"))?;
    service.node_report(&name, token, peer.ip(), report)?;
    Ok(StatusCode::NO_CONTENT)
}
