//! `gantry serve`: the composition root. It starts every part in order (GPUs, plugins, store,
//! accounts, scheduler, host monitor), hands them to the service, and serves the HTTP API over
//! it until asked to stop. Jobs run under shims and outlive the daemon: stopping or killing it
//! leaves them running, and the next daemon on the same state directory adopts them.

use crate::auth::{AuthMode, Authority};
use crate::config::Config;
use crate::gpu::{open_gpus, GpuMode, GpuMonitor};
use crate::http::{ConnectionLimits, Peer};
use crate::host_info::HostMonitor;
use crate::metrics::SchedulerMetrics;
use crate::plugin::{PluginRuntime, RuntimeOptions};
use crate::policy::PolicyService;
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::service::{run_log, Parts, Service};
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
    #[error("log access: {0}")]
    LogAccess(#[from] crate::log_access::LogAccessError),
    #[error(transparent)]
    Federation(#[from] crate::federation::RegistryError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("refusing to listen on {0} without authentication: anyone who reaches it could run commands here. Set [auth] mode = \"secret\" or \"users\", listen on 127.0.0.1, or set auth.allow_open_network = true to accept the risk")]
    OpenNetwork(std::net::SocketAddr),
    #[error("starting {what}: {source}")]
    Start { what: &'static str, source: std::io::Error },
    #[error("{} is missing: it is installed with gantry and runs every job", .0.display())]
    NoShim(PathBuf),
    #[error(transparent)]
    Providers(#[from] crate::providers::ProvidersError),
    #[error("[prices] file: {0}")]
    Prices(#[from] crate::providers::catalog::CatalogError),
    #[error("a start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Where a running daemon can be reached; written to `<state>/daemon.json` for the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub url: String,
    pub pid: u32,
    /// Its Unix socket, where the CLI is known by its uid and needs no token.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

pub const INFO_FILE: &str = "daemon.json";

/// How often CPU, memory and load are read for the API.
const HOST_INTERVAL: Duration = Duration::from_secs(2);

/// How the daemon was asked to run, beyond the configuration.
pub struct ServeOptions {
    pub gpu_mode: GpuMode,
    /// Where `gantry-shim` is installed; beside the `gantry` binary unless given.
    pub shim_program: Option<PathBuf>,
    /// The program that compiles plugins apart from the daemon (`gantryd plugin precompile`);
    /// none: the daemon compiles them itself.
    pub compiler: Option<PathBuf>,
    /// What to tell the user (one line each), e.g. that GPUs are simulated.
    pub notices: Arc<dyn Fn(&str) + Send + Sync>,
    /// The Unix socket to serve besides TCP.
    pub socket: Option<SocketOptions>,
}

pub struct SocketOptions {
    pub path: PathBuf,
    /// A system daemon's: open to every local user (0666), each known by uid, whose jobs run as
    /// them. Otherwise the daemon's user's alone (0600).
    pub shared: bool,
}

/// Every part of a daemon, started, and what must live as long as they do.
pub struct Started {
    pub service: Arc<Service>,
    _lock: File,
    _plugin_watcher: Option<DirWatcher>,
    _rules_watcher: Option<DirWatcher>,
    /// The federation slaves this daemon pulls, if it is configured with any.
    _pulling: Option<crate::federation::Running>,
    /// Reports to the federation master and pulls of slaves go through it.
    federation_client: ureq::Agent,
    _foreign_use: crate::replay::foreign::Recorder,
}

/// Starts every part on `config`'s state directory and hands them to a [`Service`]. Must be
/// called within a tokio runtime. Serving is [`serve`]'s; tests call this and route requests
/// into [`crate::http::router`] without a socket.
pub async fn start(config: Config, options: &ServeOptions) -> Result<Started, DaemonError> {
    let state_dir = config.state_dir.clone();
    let job_umask = private_files();
    large_allocations_return();
    private_dir(&state_dir, &options.notices)?;
    // Two daemons on one state directory would both start its jobs.
    let lock = lock_state_dir(&state_dir).await?;

    let (mode, library, sim_dir) = (options.gpu_mode.clone(), config.gpu.nvml_library.clone(), config.sim_dir());
    let (reader, notice) = tokio::task::spawn_blocking(move || open_gpus(&mode, &library, &sim_dir)).await??;
    if let Some(notice) = notice {
        (options.notices)(&notice);
    }
    let simulated = reader.simulated();
    let sampler = config.gpu.sampler.clone();
    let gpus = Arc::new(tokio::task::spawn_blocking(move || GpuMonitor::start(reader, sampler)).await?.map_err(|source| DaemonError::Start { what: "the GPU sampler", source })?);

    let plugin_options = RuntimeOptions { compiler: options.compiler.clone(), ..config.plugins.runtime_options() };
    let plugins = tokio::task::spawn_blocking(move || PluginRuntime::new(plugin_options)).await??;
    let plugin_watcher = plugins.watch()?;
    let policy = PolicyService::new(plugins.clone(), config.plugins.policy.clone());
    let providers = {
        let (runtime, configs, node) = (plugins.clone(), config.providers.clone(), config.federation.node_name.clone());
        Arc::new(tokio::task::spawn_blocking(move || crate::providers::Providers::new(runtime, &configs, &node)).await??)
    };
    // Checked at start, as the daemon reads it: the CLI of a user who can't read it still works.
    if let Some(file) = config.prices_file.clone() {
        tokio::task::spawn_blocking(move || crate::providers::catalog::Catalog::load(Some(&file))).await??;
    }

    let db = state_dir.join("gantry.db");
    let store = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || Store::open(&db)).await??
    };
    let foreign_log = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || crate::replay::foreign::ForeignLog::open(&db)).await??
    };
    let (auth, notice) = {
        let (auth, dir) = (config.auth.clone(), state_dir.clone());
        let system = options.socket.as_ref().is_some_and(|s| s.shared);
        tokio::task::spawn_blocking(move || Authority::open(auth, owner(), system, &dir, &db)).await??
    };
    if let Some(notice) = notice {
        (options.notices)(&notice);
    }
    let auth = Arc::new(auth);
    let job_token: crate::scheduler::JobToken = {
        let (auth, daemon_uid) = (auth.clone(), auth.owner().uid);
        Arc::new(move |owner: &str, run_as: Option<u32>| auth.job_token(owner, run_as.or(daemon_uid)))
    };
    let metrics = Arc::new(SchedulerMetrics::default());
    let scheduler = Scheduler::start(
        SchedulerOptions {
            rules: config.scheduler.clone(),
            state_dir: state_dir.clone(),
            shim_program: shim_program(options.shim_program.clone())?,
            simulation: simulated.then(|| {
                let config = config.sim_dir().join("nvml-sim.json");
                std::fs::canonicalize(&config).unwrap_or(config).to_string_lossy().into_owned()
            }),
            work_dir: config.work_dir.clone(),
            job_umask,
            job_token: Some(job_token),
            metrics: metrics.clone(),
            clock: crate::model::Clock::System,
            providers: Some(providers.clone()),
        },
        store,
        gpus.clone(),
        policy,
    )?;
    // After the scheduler, which tells the sampler which processes are its jobs'.
    let foreign_use = crate::replay::foreign::Recorder::start(gpus.clone(), foreign_log).map_err(|source| DaemonError::Start { what: "the recorder of other people's GPU use", source })?;
    let config_source = config.source.clone();
    run_log::start(&scheduler, config.server.log_dir.clone()).map_err(|e| DaemonError::StateDir { path: config.server.log_dir.clone(), message: e.to_string() })?;

    let host = HostMonitor::start(HOST_INTERVAL).map_err(|source| DaemonError::Start { what: "the host monitor", source })?;
    let logs = {
        let roots: Vec<PathBuf> = [state_dir.join("jobs"), config.server.log_dir.clone()].into_iter().chain(config.server.log_roots.iter().cloned()).collect();
        let bindings = state_dir.join("log_bindings.json");
        tokio::task::spawn_blocking(move || crate::log_access::LogAccess::open(&roots, bindings)).await??
    };
    let nodes = {
        let (dir, federation) = (state_dir.clone(), config.federation.clone());
        Arc::new(tokio::task::spawn_blocking(move || crate::federation::Registry::open(&dir, federation.offline_after, &federation.slaves)).await??)
    };
    let federation_client = {
        let federation = config.federation.clone();
        tokio::task::spawn_blocking(move || crate::federation::client(&federation)).await??
    };
    let puller = Arc::new(crate::federation::Puller::new(&config.federation, federation_client.clone(), nodes.clone()));
    let pulling = puller.start();
    let service = Arc::new(Service::new(Parts { scheduler, gpus, host, plugins, providers, auth, metrics, logs, config, nodes, puller, fleet: federation_client.clone() }));
    let rules_watcher = watch_rules(config_source, service.clone(), options.notices.clone());
    Ok(Started { service, _lock: lock, _plugin_watcher: plugin_watcher, _rules_watcher: rules_watcher, _pulling: pulling, federation_client, _foreign_use: foreign_use })
}

/// Runs the daemon on `listener` until `shutdown` resolves or `POST /api/v1/shutdown` asks.
pub async fn serve(
    config: Config,
    options: ServeOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let addr = listener.local_addr().map_err(DaemonError::Http)?;
    if !addr.ip().is_loopback() && config.auth.mode == AuthMode::None && !config.auth.allow_open_network {
        return Err(DaemonError::OpenNetwork(addr));
    }
    let (state_dir, log_dir) = (config.state_dir.clone(), config.server.log_dir.clone());
    let tls = match config.server.tls.clone() {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(tokio::task::spawn_blocking(move || crate::tls::server_config(&files.cert, &files.key)).await??)),
        None => None,
    };
    let started = start(config, &options).await?;
    let service = started.service.clone();
    let socket = options.socket.as_ref().map(bind_socket).transpose()?;

    let scheme = if tls.is_some() { "https" } else { "http" };
    let info = DaemonInfo { url: format!("{scheme}://{addr}"), pid: std::process::id(), socket: options.socket.as_ref().map(|s| s.path.clone()) };
    let info_path = state_dir.join(INFO_FILE);
    let text = serde_json::to_vec_pretty(&info).map_err(|e| DaemonError::StateDir { path: info_path.clone(), message: e.to_string() })?;
    // `daemon.json` last, whole: a client that finds it finds `logs/pid.json` too.
    let pid_file = run_log::write_pid_file(&log_dir, &info.url).map_err(|e| DaemonError::StateDir { path: log_dir.clone(), message: e.to_string() })?;
    crate::unix::write_atomically(&info_path, &text).map_err(|e| DaemonError::StateDir { path: info_path.clone(), message: e.to_string() })?;
    tracing::info!(url = %info.url, state = %state_dir.display(), "gantry is serving");

    let asked = service.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            () = asked.shutdown_requested() => {}
        }
        let _ = stop_tx.send(true);
    });
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let _reporter = federation_reporter(&service, started.federation_client.clone(), &info.url);
    let mapping = service.gpu_config().hpc_job_mapping_dir.map(|dir| job_mapping(&service, dir));
    let router = crate::http::router(service.clone());
    // The start's working memory (configuration, migrations, the plugins' loads) is freed by now.
    let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
    let server = service.server_config();
    let limits = ConnectionLimits { max_connections: server.max_connections, header_timeout: server.header_timeout };
    let tcp = crate::http::serve(listener, router.clone(), Peer::of_tcp, limits, tls, stop());
    match socket {
        Some(unix) => {
            tokio::join!(tcp, crate::http::serve(unix, router, Peer::of_unix, limits, None, stop()));
        }
        None => tcp.await,
    }
    if let Some(mapping) = mapping {
        mapping.abort();
    }
    service.stop_scheduler();
    if let Some(socket) = &options.socket {
        let _ = std::fs::remove_file(&socket.path);
    }
    let _ = std::fs::remove_file(&info_path);
    let _ = std::fs::remove_file(&pid_file);
    drop(started);
    Ok(())
}

/// Reports this node to its federation master, if `[federation]` names one.
fn federation_reporter(service: &Arc<Service>, client: ureq::Agent, url: &str) -> Option<crate::federation::Running> {
    let config = service.federation_config();
    let snapshot: crate::federation::reporter::Snapshot = {
        let service = service.clone();
        Arc::new(move || {
            let service = service.clone();
            Box::pin(async move {
                let (counts, running) = service.job_summary().await;
                (service.node(), counts, running)
            })
        })
    };
    let contact = crate::federation::reporter::Contact { url: Some(url.to_string()), master_key: service.master_key().map(str::to_string) };
    crate::federation::reporter::start(&config, client, contact, snapshot, service.job_events())
}

/// Keeps DCGM's HPC job mapping in `dir` saying which running job is on which GPU: at start
/// (jobs adopted from the last run included) and soon after every job change.
fn job_mapping(service: &Arc<Service>, dir: std::path::PathBuf) -> tokio::task::JoinHandle<()> {
    let service = service.clone();
    let mut changes = service.job_events();
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let (_, running) = service.job_summary().await;
            let running: Vec<_> = running.into_iter().map(|job| (job.id, job.gpus)).collect();
            let at = dir.clone();
            let written = tokio::task::spawn_blocking(move || crate::gpu::job_map::write(&at, &running)).await;
            match written {
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(dir = %dir.display(), error = %e, "the HPC job mapping files (gpu.hpc_job_mapping_dir) can't be written");
                }
                Ok(Ok(())) => failing = false,
                _ => {}
            }
            if matches!(changes.recv().await, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                return;
            }
            // A burst of changes (a pass starting several jobs) is one rewrite.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            while changes.try_recv().is_ok() {}
        }
    })
}

/// Allocations of a few MiB and more (argon2 takes 19 MiB per password hash) are given back to
/// the system when freed. glibc otherwise raises its mmap threshold after the first such free and
/// serves the next from arenas, which kept about 19 MiB more after every login (measured: 80 → 200
/// MiB over three registrations and five logins, and growing). Setting the threshold fixes it.
fn large_allocations_return() {
    // SAFETY: mallopt only changes glibc's allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// The daemon's own Unix user: an admin, and whose rights its jobs have unless they run as
/// their submitter.
fn owner() -> crate::model::Principal {
    let uid = crate::unix::euid();
    let name = crate::unix::Account::by_uid(uid).map_or_else(|_| format!("uid{uid}"), |a| a.name);
    crate::model::Principal::unix(uid, name, crate::model::Role::Admin)
}

/// From here on everything the daemon creates (its database, keys, job records and logs) is
/// readable by its own user alone. Returns the mask it was started with, which jobs get back.
fn private_files() -> u32 {
    static STARTED_WITH: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: umask swaps the process's file-creation mask and cannot fail.
    *STARTED_WITH.get_or_init(|| unsafe { libc::umask(0o077) })
}

/// The state directory, made if missing, and closed to other users (0700) if it was open:
/// it holds the signing key, password hashes and every job's environment.
fn private_dir(dir: &Path, notices: &Arc<dyn Fn(&str) + Send + Sync>) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let err = |e: std::io::Error| DaemonError::StateDir { path: dir.to_path_buf(), message: e.to_string() };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    let meta = std::fs::metadata(dir).map_err(err)?;
    if meta.mode() & 0o077 != 0 && meta.uid() == crate::unix::euid() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        notices(&format!("{}: closed to other users (was {:o}, now 700)", dir.display(), meta.mode() & 0o777));
    }
    Ok(())
}

/// Listens on the Unix socket. A socket file left by a daemon that is gone is replaced; one a
/// live daemon answers on is not taken from it.
fn bind_socket(options: &SocketOptions) -> Result<tokio::net::UnixListener, DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    let path = &options.path;
    let err = |e: std::io::Error| DaemonError::StateDir { path: path.clone(), message: e.to_string() };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).create(dir).map_err(err)?;
        // Set, not asked of mkdir: the daemon's umask (077) would close it to the users it serves.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(if options.shared { 0o755 } else { 0o700 })).map_err(err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::StateDir { path: path.clone(), message: "another daemon is serving on this socket".into() });
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(if options.shared { 0o666 } else { 0o600 })).map_err(err)?;
    Ok(listener)
}

/// `gantry-shim`: where the options say, else beside `gantry`.
fn shim_program(given: Option<PathBuf>) -> Result<PathBuf, DaemonError> {
    let shim = match given {
        Some(shim) => shim,
        None => std::env::current_exe().map_err(|source| DaemonError::Start { what: "finding the gantry binary", source })?.with_file_name("gantry-shim"),
    };
    if shim.is_file() { Ok(shim) } else { Err(DaemonError::NoShim(shim)) }
}

/// Holds `<state>/daemon.lock` for the daemon's life. A lock held while no live daemon is
/// recorded is waited for a moment: a daemon killed while it was starting a shim leaves that
/// child holding a copy of the lock until it execs, and a restart at once (a crash, systemd's
/// `Restart=`) must not fail on it.
async fn lock_state_dir(dir: &Path) -> Result<File, DaemonError> {
    let path = dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DaemonError::StateDir { path: path.clone(), message: e.to_string() })?;
    let mut waited = Duration::ZERO;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let recorded = std::fs::read_to_string(dir.join(INFO_FILE)).ok().and_then(|t| serde_json::from_str::<DaemonInfo>(&t).ok()).map(|i| i.pid);
        let alive = recorded.is_some_and(|pid| crate::procfs::start_ticks(pid).is_some());
        if alive || waited >= LOCK_PATIENCE {
            let pid = recorded.map_or_else(|| "unknown".into(), |pid| pid.to_string());
            return Err(DaemonError::AlreadyRunning { path: dir.to_path_buf(), pid });
        }
        tokio::time::sleep(LOCK_RETRY).await;
        waited += LOCK_RETRY;
    }
}

/// How long a lock held by no recorded live daemon is waited for, and how often it is tried.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Re-reads the configuration file when it changes and applies its hot part (rules, policy). An
/// edit that does not validate is reported (file and key) and what is in force stays.
fn watch_rules(source: Option<PathBuf>, service: Arc<Service>, notices: Arc<dyn Fn(&str) + Send + Sync>) -> Option<DirWatcher> {
    let path = source?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path.file_name()?.to_os_string();
    let watched = path.clone();
    let result = watch_dir(&dir, Duration::from_millis(50), "gantry-config-reload", move |paths| {
        if paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) {
            match Config::load(&watched) {
                Ok(new) => {
                    let policy = new.plugins.policy.clone();
                    // Applied before it is said: whoever reads the notice finds it in force.
                    if service.apply_hot(new).is_err() {
                        return false;
                    }
                    notices(&format!("{}: scheduling rules reloaded, policy {policy}", watched.display()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(dir: &Path) -> File {
        let file = File::create(dir.join("daemon.lock")).expect("lock file");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        file
    }

    #[tokio::test]
    async fn a_lock_left_by_a_dead_daemons_child_is_waited_for_and_a_live_daemons_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        // Held, as by a shim the killed daemon was starting, with no live daemon recorded.
        let held = hold(dir.path());
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        assert!(lock_state_dir(dir.path()).await.is_ok(), "the restart waited for the lock");
        release.join().expect("thread");

        // Held by a daemon that is alive (this process stands in for it): refused at once.
        let other = tempfile::tempdir().expect("dir");
        let _held = hold(other.path());
        let info = DaemonInfo { url: "http://127.0.0.1:1".into(), pid: std::process::id(), socket: None };
        std::fs::write(other.path().join(INFO_FILE), serde_json::to_vec(&info).expect("json")).expect("info");
        let started = std::time::Instant::now();
        let err = lock_state_dir(other.path()).await.expect_err("refused");
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        assert!(started.elapsed() < LOCK_PATIENCE, "a live daemon's lock is not waited for");
    }
}
