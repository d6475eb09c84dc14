//! The daemon and its machine: health, metrics, shutdown, the node and its GPUs, the event
//! stream, the plugins.

use super::paging::{page, MAX_PAGE};
use crate::http::error::{ApiResult, Params, PathParam};
use crate::http::gate::Access::{Admin, Public, Read};
use crate::http::routes::Routes;
use crate::model::Event;
use crate::service::{GpuDetail, Node, Offers, PluginKind, PluginStatus, Service, Update};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Shared = State<Arc<Service>>;

pub fn routes(service: Arc<Service>) -> Routes {
    Routes::new(service.clone(), "native")
        .get("/api/v1/health", Public, "Liveness and version", health)
        .answers::<Health>(200)
        .get("/metrics", Public, "Prometheus metrics: GPUs with DCGM names, jobs, queues, scheduling, plugins", metrics)
        .answers_raw(200, Some("text/plain"))
        .post("/api/v1/shutdown", Admin, "Stop the daemon; running jobs carry on under their shims", shutdown)
        .answers::<Stopping>(200)
        .get("/api/v1/node", Read, "This machine: GPUs, host, driver, versions, whether simulated", node)
        .answers::<Node>(200)
        .get("/api/v1/events", Read, "Server-sent events: `job`, `run` and `gpus` changes, `node` reports (a federation master), `lagged` if the client fell behind", events)
        .answers_raw(200, Some("text/event-stream"))
        .get("/api/v1/gpus/{index}", Read, "One GPU with its history", gpu)
        .path::<u32>()
        .query::<HistoryQuery>()
        .answers::<GpuDetail>(200)
        .fails(&[404, 503])
        .get("/api/v1/plugins", Read, "Loaded plugins: kind, version, WIT version, state, last error, calls, failures", plugins)
        .query::<PluginQuery>()
        .answers::<Vec<PluginStatus>>(200)
        .post("/api/v1/plugins/reload", Admin, "Re-read the plugin directory now", reload_plugins)
        .answers::<Vec<PluginStatus>>(200)
        .get("/api/v1/providers", Read, "Configured providers ([providers.NAME]): plugin, base URL, state, calls, failures, last error", providers)
        .answers::<Vec<crate::providers::ProviderStatus>>(200)
        .get("/api/v1/offers", Read, "Wait here or pay there: how long GPUs would wait on this node, beside each provider's offers for them now, cheapest first", offers)
        .query::<OffersQuery>()
        .answers::<Offers>(200)
        .fails(&[422])
        .with_state(service)
}

#[derive(Serialize, JsonSchema)]
struct Health {
    /// Always `ok`: an answer at all is the news.
    status: &'static str,
    version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

#[derive(Serialize, JsonSchema)]
struct Stopping {
    /// Always `stopping`.
    status: &'static str,
    /// The daemon's process, to wait for.
    pid: u32,
}

/// Stops the daemon after answering; running jobs carry on under their shims.
async fn shutdown(State(service): Shared) -> Json<Stopping> {
    service.shutdown();
    Json(Stopping { status: "stopping", pid: std::process::id() })
}

async fn metrics(State(service): Shared) -> ApiResult<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    let text = service.metrics().await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// Server-sent events: `job` and `run` changes as the scheduler makes them, `gpus` (the GPU
/// summaries) whenever a sample changes what placement sees, `lagged` if this client fell behind.
async fn events(State(service): Shared) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let events = service.updates().filter_map(|update| async move {
        let event = match update {
            Update::Scheduler(event) => {
                let kind = match &event {
                    Event::Job { .. } => "job",
                    Event::Run(_) => "run",
                };
                SseEvent::default().event(kind).json_data(&event).ok()?
            }
            Update::Gpus(summaries) => SseEvent::default().event("gpus").json_data(&summaries).ok()?,
            Update::Lagged(missed) => SseEvent::default().event("lagged").data(missed.to_string()),
            Update::Node(view) => SseEvent::default().event("node").json_data(&view).ok()?,
        };
        Some(Ok(event))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn node(State(service): Shared) -> Json<Node> {
    Json(service.node())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Milliseconds since the Unix epoch.
    since: Option<u64>,
}

async fn gpu(State(service): Shared, PathParam(index): PathParam<u32>, Params(query): Params<HistoryQuery>) -> ApiResult<Json<GpuDetail>> {
    Ok(Json(service.gpu(index, query.since)?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PluginQuery {
    kind: Option<PluginKind>,
    #[serde(default)]
    offset: usize,
    #[schemars(range(max = MAX_PAGE))]
    limit: Option<usize>,
}

async fn plugins(State(service): Shared, Params(query): Params<PluginQuery>) -> ApiResult<Response> {
    page(service.plugins(query.kind), query.offset, query.limit)
}

async fn providers(State(service): Shared) -> ApiResult<Json<Vec<crate::providers::ProviderStatus>>> {
    Ok(Json(service.providers()))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OffersQuery {
    /// Part of a GPU type name (`A100`); any type if absent.
    #[serde(default)]
    #[schemars(length(max = 128))]
    gpu: String,
    /// GPUs wanted (default 1).
    #[schemars(range(min = 1, max = 64))]
    count: Option<u32>,
    /// Memory wanted on each GPU.
    #[serde(default)]
    memory_mib: u64,
    /// Also every fitting row of the offline price catalog, for clouds not configured here too.
    #[serde(default)]
    catalog: bool,
}

async fn offers(State(service): Shared, Params(query): Params<OffersQuery>) -> ApiResult<Json<Offers>> {
    Ok(Json(service.offers(query.gpu, query.count.unwrap_or(1), query.memory_mib, query.catalog).await?))
}

async fn reload_plugins(State(service): Shared) -> ApiResult<Json<Vec<PluginStatus>>> {
    Ok(Json(service.reload_plugins().await?))
}
