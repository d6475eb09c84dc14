//! `gantry serve`: the daemon. It owns the GPUs (sampler), the plugins, the scheduler and the
//! store, and serves the HTTP API. Jobs run under shims and outlive it: stopping or killing the
//! daemon leaves them running, and the next daemon on the same state directory adopts them.
//!
//! - `service`: what routes call beyond the scheduler itself (runs from command files, logs);
//! - `routes`: the route table every route is added to, with its access level;
//! - `api`: the HTTP routes of `/api/v1`;
//! - `compat`: the seed systems' own endpoints over the same services;
//! - `auth`: the access check of every route, logins, tokens and accounts;
//! - `openapi`: the API's description, made from the route table.

mod api;
mod auth;
mod compat;
mod editing;
mod openapi;
mod routes;
mod run_log;
mod service;

pub use service::{LogChunk, Service, ServiceError};

use crate::auth::{AuthMode, Authority};
use crate::config::Config;
use crate::gpu::{open_gpus, GpuMode, GpuMonitor};
use crate::host_info::HostMonitor;
use crate::metrics::SchedulerMetrics;
use crate::plugin::PluginRuntime;
use crate::policy::PolicyService;
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::store::Store;
use crate::watch::{watch_dir, DirWatcher};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{path}: {message}")]
    StateDir { path: PathBuf, message: String },
    #[error("another gantry daemon (pid {pid}) is using {path}")]
    AlreadyRunning { path: PathBuf, pid: String },
    #[error("opening GPUs: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("plugins: {0}")]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Scheduler(#[from] crate::scheduler::SchedulerError),
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("refusing to listen on {0} without authentication: anyone who reaches it could run commands here. Set [auth] mode = \"secret\" or \"users\", listen on 127.0.0.1, or set auth.allow_open_network = true to accept the risk")]
    OpenNetwork(std::net::SocketAddr),
    #[error("{0}")]
    Internal(String),
}

/// Where a running daemon can be reached; written to `<state>/daemon.json` for the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub url: String,
    pub pid: u32,
}

pub const INFO_FILE: &str = "daemon.json";

/// How often CPU, memory and load are read for the API.
const HOST_INTERVAL: Duration = Duration::from_secs(2);

/// How the daemon was asked to run, beyond the configuration.
pub struct ServeOptions {
    pub gpu_mode: GpuMode,
    /// What to tell the user (one line each), e.g. that GPUs are simulated.
    pub notices: Box<dyn Fn(&str) + Send + Sync>,
}

/// Runs the daemon on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    options: ServeOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let state_dir = config.state_dir.clone();
    let state_error = |message: String| DaemonError::StateDir { path: state_dir.clone(), message };
    let addr = listener.local_addr().map_err(DaemonError::Http)?;
    if !addr.ip().is_loopback() && config.auth.mode == AuthMode::None && !config.auth.allow_open_network {
        return Err(DaemonError::OpenNetwork(addr));
    }
    std::fs::create_dir_all(&state_dir).map_err(|e| state_error(e.to_string()))?;
    // Two daemons on one state directory would both start its jobs.
    let _lock = lock_state_dir(&state_dir)?;

    let (monitor, simulated) = {
        let (mode, library, sim_dir) = (options.gpu_mode.clone(), config.gpu.nvml_library.clone(), config.sim_dir());
        let (reader, notice) = blocking(move || open_gpus(&mode, &library, &sim_dir)).await??;
        if let Some(notice) = notice {
            (options.notices)(&notice);
        }
        let simulated = reader.simulated();
        let sampler = config.gpu.sampler.clone();
        let monitor = blocking(move || GpuMonitor::start(reader, sampler)).await?.map_err(|e| DaemonError::Internal(format!("starting the GPU sampler: {e}")))?;
        (Arc::new(monitor), simulated)
    };

    let plugin_options = config.plugins.runtime_options();
    let plugins = blocking(move || PluginRuntime::new(plugin_options)).await??;
    let _plugin_watcher = plugins.watch()?;
    let policy = PolicyService::new(plugins.clone(), config.plugins.policy.clone());

    let db = state_dir.join("gantry.db");
    let store = {
        let db = db.clone();
        blocking(move || Store::open(&db)).await??
    };
    let (auth, notice) = {
        let (auth, dir) = (config.auth.clone(), state_dir.clone());
        blocking(move || Authority::open(auth, &dir, &db)).await??
    };
    if let Some(notice) = notice {
        (options.notices)(&notice);
    }
    let shim_program = shim_program()?;
    let metrics = Arc::new(SchedulerMetrics::default());
    let scheduler = Scheduler::start(
        SchedulerOptions {
            rules: config.scheduler.clone(),
            state_dir: state_dir.clone(),
            shim_program,
            simulation: simulated.then(|| {
                let config = config.sim_dir().join("nvml-sim.json");
                std::fs::canonicalize(&config).unwrap_or(config).to_string_lossy().into_owned()
            }),
            work_dir: config.work_dir.clone(),
            metrics: metrics.clone(),
        },
        store,
        monitor.clone(),
        policy,
    )?;
    let _rules_watcher = watch_rules(&config, scheduler.clone(), options.notices);

    let host = HostMonitor::start(HOST_INTERVAL).map_err(|e| DaemonError::Internal(format!("starting the host monitor: {e}")))?;
    let logs = {
        let roots: Vec<PathBuf> = [state_dir.join("jobs"), config.server.log_dir.clone()].into_iter().chain(config.server.log_roots.iter().cloned()).collect();
        let bindings = state_dir.join("log_bindings.json");
        blocking(move || crate::log_access::LogAccess::open(&roots, bindings)).await?.map_err(|e| DaemonError::Internal(e.to_string()))?
    };
    let service = Arc::new(Service {
        scheduler: scheduler.clone(),
        gpus: monitor,
        host,
        plugins,
        parser: config.plugins.parser.clone(),
        metrics,
        auth: Arc::new(auth),
        config_file: Arc::new(crate::config::edit::ConfigFile::new(config.path())),
        config: parking_lot::RwLock::new(config.clone()),
        logs: Arc::new(logs),
        tasks: crate::tasks::Tasks::default(),
        shutdown: Arc::new(tokio::sync::Notify::new()),
    });
    let info = DaemonInfo { url: format!("http://{addr}"), pid: std::process::id() };
    let info_path = state_dir.join(INFO_FILE);
    let text = serde_json::to_vec_pretty(&info).map_err(|e| DaemonError::Internal(e.to_string()))?;
    std::fs::write(&info_path, text).map_err(|e| state_error(e.to_string()))?;
    let log_dir = config.server.log_dir.clone();
    let log_error = |e: std::io::Error| DaemonError::StateDir { path: log_dir.clone(), message: e.to_string() };
    run_log::start(&scheduler, log_dir.clone()).map_err(log_error)?;
    let pid_file = run_log::write_pid_file(&log_dir, &info.url).map_err(log_error)?;
    tracing::info!(url = %info.url, state = %state_dir.display(), "gantry is serving");

    // Either the caller's signal or `POST /api/v1/shutdown` ends the serving.
    let asked = service.shutdown.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            () = asked.notified() => {}
        }
    };
    let app = app(service, &config.server).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(stop).await;
    scheduler.shutdown();
    let _ = std::fs::remove_file(&info_path);
    let _ = std::fs::remove_file(&pid_file);
    served.map_err(DaemonError::Http)
}

/// Every route, with the layers every request passes: size limit, CORS as configured, a timeout,
/// compression (not of event streams, which must not wait for a buffer to fill), tracing.
fn app(service: Arc<Service>, server: &crate::config::ServerConfig) -> axum::Router {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let (router, mut operations) = api::routes(service.clone()).merge(compat::routes(service.clone())).merge(auth::routes(service)).into_parts();
    operations.push(routes::Operation {
        method: http::Method::GET,
        path: openapi::PATH,
        tag: "meta",
        summary: "This API's OpenAPI 3 document",
        access: auth::Access::Public,
    });
    let document = bytes::Bytes::from(serde_json::to_vec(&openapi::document(&operations)).unwrap_or_default());
    let describe = axum::routing::get(move || async move { ([(http::header::CONTENT_TYPE, "application/json")], document) });
    let mut app = router
        .route(openapi::PATH, describe)
        .fallback(api::no_route)
        .layer(axum::extract::DefaultBodyLimit::max(server.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(http::StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(
            tower_http::compression::CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(NotForContentType::new("text/event-stream"))),
        )
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

/// A request that takes longer than this is answered 408 (event streams are not affected: their
/// response starts at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `gantry-shim`, installed beside `gantry`.
fn shim_program() -> Result<PathBuf, DaemonError> {
    let exe = std::env::current_exe().map_err(|e| DaemonError::Internal(format!("finding the gantry binary: {e}")))?;
    let shim = exe.with_file_name("gantry-shim");
    if shim.is_file() {
        Ok(shim)
    } else {
        Err(DaemonError::Internal(format!("{} is missing: it is installed with gantry and runs every job", shim.display())))
    }
}

/// Runs blocking work (NVML, SQLite, wasm compilation) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| DaemonError::Internal(e.to_string()))
}

/// Holds `<state>/daemon.lock` for the daemon's life.
fn lock_state_dir(dir: &Path) -> Result<File, DaemonError> {
    let path = dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DaemonError::StateDir { path: path.clone(), message: e.to_string() })?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let pid = std::fs::read_to_string(dir.join(INFO_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<DaemonInfo>(&t).ok())
            .map_or_else(|| "unknown".into(), |i| i.pid.to_string());
        return Err(DaemonError::AlreadyRunning { path: dir.to_path_buf(), pid });
    }
    Ok(file)
}

/// Re-reads the configuration file when it changes and hands the scheduler its new rules. An
/// edit that does not validate is reported (file and key) and the rules in force stay.
fn watch_rules(config: &Config, scheduler: Scheduler, notices: Box<dyn Fn(&str) + Send + Sync>) -> Option<DirWatcher> {
    let path = config.source.clone()?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path.file_name()?.to_os_string();
    let watched = path.clone();
    let result = watch_dir(&dir, Duration::from_millis(50), "gantry-config-reload", move |paths| {
        if paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) {
            match Config::load(&watched) {
                Ok(new) => {
                    notices(&format!("{}: scheduling rules reloaded", watched.display()));
                    if scheduler.set_rules(new.scheduler).is_err() {
                        return false;
                    }
                }
                Err(e) => notices(&format!("{e}; the previous rules stay in force")),
            }
        }
        true
    });
    match result {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot watch the configuration; rules will not hot-reload");
            None
        }
    }
}
