//! The federation as a master serves it: nodes issued by an admin, the reports agents push with
//! their node token, and the nodes with their latest reports and freshness.

use crate::federation::forward::Answer;
use crate::federation::{NodeView, Report};
use crate::http::error::{ApiError, ApiResult, Body, Params, PathParam};
use crate::http::gate::Access::{Admin, Operate, Public, Read};
use crate::http::routes::Routes;
use crate::http::Peer;
use crate::model::{JobId, Principal, RunningJob};
use crate::service::GpuSummary;
use crate::service::Service;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Shared = State<Arc<Service>>;
type Caller = Extension<Principal>;

/// What the routes that act on a node answer: the node's own answer, passed on, with `node`
/// added to a JSON object.
const RELAYED: Option<&str> = Some("application/json");

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "federation")
        .get("/api/v1/nodes", Read, "The nodes reporting to this daemon, each `online`, `stale` or `offline`, with its latest report", nodes)
        .answers::<Vec<NodeView>>(200)
        .post("/api/v1/nodes", Admin, "Issue a node: its token (shown once) goes in the agent's `[federation] token`", add)
        .body::<NewNode>()
        .answers::<IssuedNode>(201)
        .links(&[(Method::GET, "/api/v1/nodes/{name}"), (Method::GET, "/api/v1/nodes/{name}/jobs"), (Method::GET, "/api/v1/nodes/{name}/gpus"), (Method::POST, "/api/v1/nodes/{name}/jobs"), (Method::DELETE, "/api/v1/nodes/{name}")], "name", "$response.body#/name")
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
        .post("/api/v1/nodes/{name}/jobs", Operate, "Submit on a node (or on `any` that has room, as the policy judges its GPUs), as the caller's own Unix user there: the node's answer to `POST /api/v1/jobs`, with `node`", submit_on)
        .path::<String>()
        .body::<super::jobs::SubmitBody>()
        .answers_raw(201, RELAYED)
        .fails(&[403, 404, 409, 502])
        .get("/api/v1/nodes/{name}/jobs/{id}", Read, "A job on a node, as the node shows it to the caller", job_on)
        .path::<(String, JobId)>()
        .answers_raw(200, RELAYED)
        .fails(&[403, 404, 409, 502])
        .get("/api/v1/nodes/{name}/jobs/{id}/log", Read, "A job's log on a node, from `offset`, as the node shows it to the caller", log_on)
        .path::<(String, JobId)>()
        .query::<LogPage>()
        .answers_raw(200, RELAYED)
        .fails(&[403, 404, 409, 502])
        .post("/api/v1/nodes/{name}/jobs/{id}/{action}", Operate, "Cancel, hold, release or retry a job on a node, as the caller's own Unix user there", act_on)
        .path::<(String, JobId, JobAction)>()
        .answers_raw(200, RELAYED)
        .fails(&[403, 404, 409, 502])
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

/// A node's answer as it came; a JSON object also names the node.
fn relayed(node: &str, answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    match serde_json::from_slice::<serde_json::Value>(&answer.body) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.insert("node".into(), node.into());
            (status, Json(fields)).into_response()
        }
        _ => (status, [(header::CONTENT_TYPE, answer.content_type)], answer.body).into_response(),
    }
}

async fn submit_on(State(service): Shared, Extension(who): Caller, PathParam(name): PathParam<String>, Body(body): Body<serde_json::Value>) -> ApiResult<Response> {
    let batch = super::jobs::batch_of(body.clone())?;
    let (node, answer) = service.submit_on(&who, &name, &batch, body).await?;
    Ok(relayed(&node, answer))
}

async fn job_on(State(service): Shared, Extension(who): Caller, PathParam((name, id)): PathParam<(String, JobId)>) -> ApiResult<Response> {
    Ok(relayed(&name, service.on_node(&who, &name, "GET", format!("/api/v1/jobs/{id}"), None).await?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LogPage {
    /// An earlier attempt (default: the latest).
    attempt: Option<u32>,
    #[serde(default)]
    offset: u64,
}

async fn log_on(State(service): Shared, Extension(who): Caller, PathParam((name, id)): PathParam<(String, JobId)>, Params(page): Params<LogPage>) -> ApiResult<Response> {
    let attempt = page.attempt.map(|n| format!("&attempt={n}")).unwrap_or_default();
    Ok(relayed(&name, service.on_node(&who, &name, "GET", format!("/api/v1/jobs/{id}/log?offset={}{attempt}", page.offset), None).await?))
}

#[derive(Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum JobAction {
    Cancel,
    Hold,
    Release,
    Retry,
}

async fn act_on(State(service): Shared, Extension(who): Caller, PathParam((name, id, action)): PathParam<(String, JobId, JobAction)>) -> ApiResult<Response> {
    let verb = match action {
        JobAction::Cancel => "cancel",
        JobAction::Hold => "hold",
        JobAction::Release => "release",
        JobAction::Retry => "retry",
    };
    Ok(relayed(&name, service.on_node(&who, &name, "POST", format!("/api/v1/jobs/{id}/{verb}"), Some(serde_json::json!({}))).await?))
}
