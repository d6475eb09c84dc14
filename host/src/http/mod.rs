//! The HTTP API over the service layer: gantry's own routes (`/api/v1`, accounts), the seed
//! systems' endpoints, and the OpenAPI document of both. Handlers parse the request, make one
//! service call and shape its answer; nothing here reads files, SQL, NVML or plugins.
//!
//! - `error`: the `{error, detail}` shape and extractors that answer in it;
//! - `serve`: a listener's connections, bounded in number and in time; `peer`: who a connection
//!   comes from;
//! - `gate`: the access check of every route; `host`: the `Host` check against DNS rebinding;
//! - `routes`: the route table the router, the gate and the OpenAPI document are made from;
//! - `openapi`: the API's description;
//! - `v1`: gantry's own routes; `compat`: the seed systems' routes; `ui`: the dashboard.

mod compat;
pub mod error;
mod gate;
mod host;
mod openapi;
mod peer;
mod routes;
mod serve;
mod ui;
mod v1;

pub use gate::{Access, COOKIE};
pub use peer::Peer;
pub use serve::{serve, ConnectionLimits};

use crate::service::Service;
use std::sync::Arc;

/// Every route, with the layers every request passes: size limit, CORS as configured, a timeout,
/// compression (not of event streams, which must not wait for a buffer to fill), tracing.
pub fn router(service: Arc<Service>) -> axum::Router {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let server = service.server_config();
    let (router, mut operations) = v1::routes(service.clone()).merge(compat::routes(service.clone())).merge(ui::routes(service)).into_parts();
    operations.push(routes::Operation {
        method: http::Method::GET,
        path: openapi::PATH,
        tag: "meta",
        summary: "This API's OpenAPI 3 document",
        access: Access::Public,
        request: None,
        query: None,
        path_params: None,
        answers: vec![routes::Answer { status: 200, media: Some("application/json"), schema: Some(routes::schema_of::<serde_json::Map<String, serde_json::Value>>), links: Vec::new() }],
        failures: Vec::new(),
    });
    let document = bytes::Bytes::from(serde_json::to_vec(&openapi::document(&operations)).unwrap_or_default());
    let describe = axum::routing::get(move || async move { ([(http::header::CONTENT_TYPE, "application/json")], document) });
    let mut app = router
        .route(openapi::PATH, describe)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(axum::extract::DefaultBodyLimit::max(server.max_body_bytes))
        .layer(axum::middleware::from_fn(error::deadline))
        .layer(tower_http::compression::CompressionLayer::new().compress_when(DefaultPredicate::new().and(NotForContentType::new("text/event-stream"))))
        .layer(axum::middleware::from_fn_with_state(Arc::new(host::Hosts::new(&server.allowed_hosts)), host::check))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    if !server.cors_origins.is_empty() {
        let origins = if server.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::from(Any)
        } else {
            AllowOrigin::list(server.cors_origins.iter().filter_map(|o| o.parse().ok()))
        };
        app = app.layer(CorsLayer::new().allow_origin(origins).allow_methods(Any).allow_headers(Any));
    }
    app
}

#[cfg(test)]
mod tests;
