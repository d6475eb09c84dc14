//! Route-level tests: the real router over a real service (simulated GPUs, the bundled plugins,
//! SQLite in a temporary state directory), called with `oneshot`, no socket. They pin the error
//! shape of every way a request can be refused before a handler runs, and that an internal
//! failure answers without its internals.

use super::router;
use crate::config::Config;
use crate::daemon::{start, ServeOptions, Started};
use crate::gpu::GpuMode;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    state: tempfile::TempDir,
    _started: Started,
}

async fn app(extra: &str) -> App {
    app_with(extra, &[]).await
}

/// A daemon whose plugin directory holds `plugins` (file name, built component).
async fn app_with(extra: &str, plugins: &[(&str, &str)]) -> App {
    let state = tempfile::tempdir().expect("state dir");
    std::fs::create_dir_all(state.path().join("plugins")).expect("plugin dir");
    for (name, from) in plugins {
        std::fs::copy(from, state.path().join("plugins").join(name)).expect("plugin");
    }
    let path = state.path().join("gantry.toml");
    let text = format!("state_dir = {:?}\n{extra}", state.path());
    std::fs::write(&path, &text).expect("config");
    let mut config = Config::parse(&path, &text).expect("valid config");
    config.plugins.cache_dir = crate::testing::shared_cache();
    // No job runs in these tests: any existing file stands in for the shim, but not this test
    // binary, which a job would start as its spawner and so run every test again, and again.
    let shim = std::path::PathBuf::from("/bin/true");
    let options = ServeOptions { gpu_mode: GpuMode::Simulate("2".parse().expect("spec")), shim_program: Some(shim), compiler: None, notices: Arc::new(|_: &str| {}), socket: None };
    let started = start(config, &options).await.expect("the daemon's parts start");
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let router = router(started.service.clone()).layer(axum::extract::connect_info::MockConnectInfo(crate::http::Peer::Tcp(addr)));
    App { router, state, _started: started }
}

impl App {
    async fn call(&self, method: Method, uri: &str, content_type: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        // Mode `none` over TCP: the daemon's own user, by its local token.
        if let Ok(token) = std::fs::read_to_string(self.state.path().join(crate::auth::LOCAL_TOKEN_FILE)) {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = self.router.clone().oneshot(request.body(Body::from(body.to_string())).expect("request")).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn json(&self, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call(method, uri, Some("application/json"), body).await
    }
}

/// `{error, detail}` with this status and code.
fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!((answer.0, answer.1["error"].as_str()), (status, Some(code)), "{answer:?}");
    assert!(answer.1["detail"].is_string() || answer.1["detail"].is_array(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_extractor_rejection_answers_in_the_api_error_shape() {
    let app = app("").await;
    use Method as M;
    use StatusCode as S;
    // Bodies: malformed JSON, wrong type, unknown field, no JSON content type, not an object.
    refused(&app.json(M::POST, "/api/v1/jobs", "{\"commands\": [").await, S::BAD_REQUEST, "body");
    let wrong_type = app.json(M::POST, "/api/v1/jobs", r#"{"commands": 5}"#).await;
    refused(&wrong_type, S::UNPROCESSABLE_ENTITY, "body");
    assert!(wrong_type.1["detail"].as_str().is_some_and(|d| d.contains("commands")), "the field is named: {wrong_type:?}");
    let unknown = app.json(M::POST, "/api/v1/jobs", r#"{"commands": ["true"], "memory": 1}"#).await;
    refused(&unknown, S::UNPROCESSABLE_ENTITY, "body");
    assert!(unknown.1["detail"].as_str().is_some_and(|d| d.contains("memory")), "{unknown:?}");
    let in_batch = app.json(M::POST, "/api/v1/jobs", r#"{"jobs": [{"commands": ["true"]}, {"commands": "x"}]}"#).await;
    refused(&in_batch, S::UNPROCESSABLE_ENTITY, "body");
    assert!(in_batch.1["detail"].as_str().is_some_and(|d| d.contains("jobs[1].commands")), "{in_batch:?}");
    refused(&app.call(M::POST, "/api/v1/jobs", Some("text/plain"), r#"{"commands": ["true"]}"#).await, S::UNSUPPORTED_MEDIA_TYPE, "body");
    refused(&app.json(M::PUT, "/api/v1/rules", "[1, 2]").await, S::UNPROCESSABLE_ENTITY, "body");
    refused(&app.json(M::PUT, "/api/v1/queues/q", r#"{"parallelism": "two"}"#).await, S::UNPROCESSABLE_ENTITY, "body");
    refused(&app.json(M::PUT, "/api/v1/command-files/single/0", r#"{"queues": 1}"#).await, S::UNPROCESSABLE_ENTITY, "body");
    refused(&app.json(M::POST, "/api/v1/command-files/single", "{").await, S::BAD_REQUEST, "body");
    refused(&app.call(M::POST, "/auth/jwt/login", Some("application/x-www-form-urlencoded"), "username=a").await, S::UNPROCESSABLE_ENTITY, "body");
    // Checked fields of a well-formed submission.
    let field = app.json(M::POST, "/api/v1/jobs", r#"{"jobs": [{"commands": ["true"]}, {"commands": ["true"], "gpus": {"min": 3, "max": 1}}]}"#).await;
    refused(&field, S::UNPROCESSABLE_ENTITY, "invalid");
    assert!(field.1["detail"].as_str().is_some_and(|d| d.starts_with("jobs[1].gpus")), "{field:?}");
    // Queries: wrong type, unknown key, a value out of its set.
    refused(&app.json(M::GET, "/api/v1/jobs?limit=many", "").await, S::BAD_REQUEST, "query");
    refused(&app.json(M::GET, "/api/v1/jobs?colour=red", "").await, S::BAD_REQUEST, "query");
    refused(&app.json(M::GET, "/api/v1/jobs?state=sleeping", "").await, S::BAD_REQUEST, "query");
    refused(&app.json(M::GET, "/api/v1/runs?state=sleeping", "").await, S::BAD_REQUEST, "query");
    refused(&app.json(M::GET, "/api/v1/plugins?kind=theme", "").await, S::BAD_REQUEST, "query");
    refused(&app.json(M::GET, "/api/commands/single?config_index=-1", "").await, S::BAD_REQUEST, "query");
    // Paths: not a number, not a mode.
    refused(&app.json(M::GET, "/api/v1/jobs/seven", "").await, S::BAD_REQUEST, "path");
    refused(&app.json(M::GET, "/api/v1/command-files/double/0", "").await, S::BAD_REQUEST, "path");
    refused(&app.json(M::POST, "/api/scheduler/stop/x", "").await, S::BAD_REQUEST, "path");
    // No such route, no such method.
    refused(&app.json(M::GET, "/api/v1/nothing", "").await, S::NOT_FOUND, "not_found");
    refused(&app.json(M::DELETE, "/api/v1/jobs", "").await, S::METHOD_NOT_ALLOWED, "method");
    // Seed 000's routes keep their envelope and carry the same two fields.
    let seed = app.json(M::POST, "/api/v1/tasks", "{").await;
    refused(&seed, S::BAD_REQUEST, "body");
    assert_eq!((seed.1["code"].as_u64(), seed.1["data"].is_null()), (Some(400), true), "{seed:?}");
    refused(&app.json(M::GET, "/api/v1/gpu/x/details", "").await, S::BAD_REQUEST, "path");
    refused(&app.json(M::GET, "/api/v1/tasks/9", "").await, S::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_error_names_file_line_and_column() {
    let app = app("").await;
    let (status, body) = app.json(Method::PUT, "/api/v1/command-files/single/0", r#"{"text": "1\npython a.py\n"}"#).await;
    refused(&(status, body.clone()), StatusCode::UNPROCESSABLE_ENTITY, "parse");
    let first = body["detail"][0].as_str().unwrap_or_default();
    assert!(first.contains("command_gpu.txt:1:"), "{body}");
    let (status, _) = app.json(Method::GET, "/api/v1/command-files/single/0", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_failure_answers_a_reference_not_its_cause() {
    // The command files' directory is a file: writing one fails inside the service.
    let app = app("[scheduler]\ngpu_command_file = \"blocked/command_gpu.txt\"\n").await;
    std::fs::write(app.state.path().join("blocked"), "not a directory").expect("block");
    let (status, body) = app.json(Method::PUT, "/api/v1/command-files/single/0", r#"{"text": ""}"#).await;
    refused(&(status, body.clone()), StatusCode::INTERNAL_SERVER_ERROR, "internal");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("internal error "), "{detail}");
    assert!(!detail.contains("blocked") && !detail.contains(&app.state.path().display().to_string()), "a path leaked: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_is_committed_and_listed() {
    let app = app("").await;
    let (status, body) = app.json(Method::POST, "/api/v1/jobs", &json!({ "commands": ["true"], "hold": true }).to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["ids"][0].as_u64().expect("an id");
    let (status, job) = app.json(Method::GET, &format!("/api/v1/jobs/{id}"), "").await;
    assert_eq!((status, job["state"].as_str()), (StatusCode::OK, Some("held")), "{job}");
    let (_, list) = app.json(Method::GET, "/api/v1/jobs?state=held", "").await;
    assert_eq!(list["total"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_does_not_parse_back_is_never_written() {
    // A parser whose `render` slips in a command of its own.
    let app = app_with("[plugins]\nparser = \"parser-hostile\"\n", &[("hostile.wasm", env!("GANTRY_WASM_PARSER_HOSTILE"))]).await;
    let queues = r#"{"queues": [{"id": 1, "processes": [{"commands": ["echo a"], "memory": 1}]}]}"#;
    for (method, uri) in [
        (Method::POST, "/api/v1/command-files/single"),
        (Method::PUT, "/api/v1/command-files/single/0"),
        (Method::PUT, "/api/commands/single?config_index=0"),
        (Method::POST, "/api/commands/single/new"),
    ] {
        let answer = app.json(method.clone(), uri, queues).await;
        refused(&answer, StatusCode::SERVICE_UNAVAILABLE, "plugin");
        assert!(answer.1["detail"].as_str().is_some_and(|d| d.contains("does not parse back")), "{method} {uri}: {answer:?}");
    }
    let written: Vec<_> = std::fs::read_dir(app.state.path().join("command")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(written.is_empty(), "nothing was written: {written:?}");
}
