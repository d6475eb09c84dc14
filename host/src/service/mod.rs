//! The service layer: everything a client may ask of the daemon, one method per question or
//! change, whatever the route it came by (gantry's own API, a seed system's endpoint, later the
//! dashboard and federation). It holds the parts the composition root started and is the only
//! thing the HTTP layer talks to. Blocking work (files, SQLite, argon2, plugin calls) runs off
//! the async threads here, through [`off_thread`].
//!
//! - `jobs`: submitting, listing, changing jobs; their logs; queues; the scheduler's status;
//! - `arrays`: arrays and sweeps as one thing: their summary, and changes to all elements;
//! - `runs`: command files as runs, and seed 001's schedulers over them;
//! - `command_files`: seed 004's numbered command files, read and written through the parser;
//! - `settings`: the rules and settings in `gantry.toml`;
//! - `logs`: log files outside jobs (bindings, the log directory), and the run logs;
//! - `node`: this machine (GPUs, host), metrics, plugins, seed 000's training tasks;
//! - `offers`: what a job would wait here beside what each provider charges for it;
//! - `nodes`: the federation: nodes reporting to this daemon as their master;
//! - `accounts`: who is calling: credentials, logins, tokens, accounts.

mod accounts;
mod arrays;
mod command_files;
mod jobs;
mod logs;
mod node;
mod nodes;
mod offers;
mod recent_accounts;
pub mod run_log;
mod runs;
mod settings;

pub use accounts::{Credential, LoginReply};
pub use arrays::{ArrayAction, ArrayElement, ArrayView};
pub use command_files::{CommandConfig, CommandFileSummary, CommandFileView, Content, Process, QueueBlock};
pub use jobs::{LogChunk, LogUpdate, Update};
pub use node::{GpuDetail, GpusWithTasks, Machine};
pub use offers::{OfferRow, Offers, Unanswered};
pub use crate::federation::{Node, Versions};
pub use runs::{CommandFileRun, StartedRun};

pub use crate::auth::{AuthMode, Issued, NewUser, Profile, TokenInfo, User};
pub use crate::command_files::Entry as CommandFileEntry;
pub use crate::config::edit::SettingsChange;
pub use crate::config::ServerConfig;
pub use crate::gpu::{GpuReading, GpuSnapshot, GpuSummary, NodeGpus};
pub use crate::log_access::Binding;
pub use crate::plugin::{PluginKind, PluginStatus};
pub use crate::scheduler::SchedulerError;
pub use crate::tasks::{Registration, Report, Task};

use crate::auth::Authority;
use crate::gpu::GpuMonitor;
use crate::host_info::HostMonitor;
use crate::metrics::SchedulerMetrics;
use crate::model::{FieldError, JobId};
use crate::plugin::{Diagnostic, PluginRuntime};
use crate::scheduler::Scheduler;
use std::path::PathBuf;
use std::sync::Arc;

/// What the composition root hands the service: every part already started.
pub struct Parts {
    pub scheduler: Scheduler,
    pub gpus: Arc<GpuMonitor>,
    pub host: HostMonitor,
    pub plugins: Arc<PluginRuntime>,
    pub providers: Arc<crate::providers::Providers>,
    pub auth: Arc<Authority>,
    pub metrics: Arc<SchedulerMetrics>,
    pub logs: crate::log_access::LogAccess,
    pub config: crate::config::Config,
    /// The nodes that may report to this daemon as their federation master.
    pub nodes: Arc<crate::federation::Registry>,
    /// The slaves this daemon pulls as their master.
    pub puller: Arc<crate::federation::Puller>,
    /// The HTTP client that reaches other daemons of the federation.
    pub fleet: ureq::Agent,
}

pub struct Service {
    scheduler: Scheduler,
    gpus: Arc<GpuMonitor>,
    host: HostMonitor,
    plugins: Arc<PluginRuntime>,
    providers: Arc<crate::providers::Providers>,
    metrics: Arc<SchedulerMetrics>,
    auth: Arc<Authority>,
    /// The configuration as last read or written (the rules in it may have changed since start).
    config: parking_lot::RwLock<crate::config::Config>,
    config_file: Arc<crate::config::edit::ConfigFile>,
    logs: Arc<crate::log_access::LogAccess>,
    nodes: Arc<crate::federation::Registry>,
    puller: Arc<crate::federation::Puller>,
    fleet: ureq::Agent,
    /// The key with which this daemon's federation master acts on it for its callers, if
    /// `federation.accept_from_master` lets it; new at every start.
    master_key: Option<String>,
    tasks: crate::tasks::Tasks,
    /// Notified to stop serving (`gantry shutdown`); jobs keep running under their shims.
    shutdown: Arc<tokio::sync::Notify>,
    /// The threads that hash passwords: one per core.
    hashing: Workers,
    started: std::time::Instant,
    accounts: recent_accounts::RecentAccounts,
}

impl Service {
    pub fn new(parts: Parts) -> Service {
        Service {
            scheduler: parts.scheduler,
            gpus: parts.gpus,
            host: parts.host,
            plugins: parts.plugins,
            providers: parts.providers,
            metrics: parts.metrics,
            auth: parts.auth,
            config_file: Arc::new(crate::config::edit::ConfigFile::new(parts.config.path())),
            master_key: parts.config.federation.accept_from_master.then(crate::federation::forward::new_key),
            config: parking_lot::RwLock::new(parts.config),
            logs: Arc::new(parts.logs),
            nodes: parts.nodes,
            puller: parts.puller,
            fleet: parts.fleet,
            tasks: crate::tasks::Tasks::default(),
            shutdown: Arc::new(tokio::sync::Notify::new()),
            hashing: Workers::new("gantry-hashing", std::thread::available_parallelism().map_or(2, |n| n.get())),
            started: std::time::Instant::now(),
            accounts: recent_accounts::RecentAccounts::default(),
        }
    }

    /// The GPU settings as the daemon started with them.
    pub fn gpu_config(&self) -> crate::config::GpuConfig {
        self.config.read().gpu.clone()
    }

    /// The HTTP server's settings as the daemon started with them.
    pub fn server_config(&self) -> ServerConfig {
        self.config.read().server.clone()
    }

    /// Asks the daemon to stop serving; running jobs carry on under their shims.
    pub fn shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Resolves once [`Service::shutdown`] was asked for.
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// Stops the scheduling thread, as the daemon ends.
    pub fn stop_scheduler(&self) {
        self.scheduler.shutdown();
    }
}

/// What went wrong, classified for whoever answers the client.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// The parser's findings, each with line and column.
    #[error("{path}: {} problem(s)", diagnostics.len())]
    Parse { path: PathBuf, diagnostics: Vec<Diagnostic> },
    #[error("parser plugin {0} is not loaded")]
    NoParser(String),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("parser plugin {parser}: its render of this configuration does not parse back to it")]
    RenderMismatch { parser: String },
    #[error("job {job} has no attempt {attempt}")]
    NoAttempt { job: JobId, attempt: u32 },
    #[error("GPU {0} does not exist")]
    NoSuchGpu(u32),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    CommandFile(#[from] crate::command_files::CommandFileError),
    #[error(transparent)]
    Edit(#[from] crate::config::edit::EditError),
    #[error(transparent)]
    LogAccess(#[from] crate::log_access::LogAccessError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Task(#[from] crate::tasks::TaskError),
    #[error(transparent)]
    Node(#[from] crate::federation::RegistryError),
    #[error(transparent)]
    Unreachable(#[from] crate::federation::forward::Unreachable),
    /// No node of the federation took a submission; each one's reason.
    #[error("no node took the job: {0}")]
    NoNode(String),
    /// The caller may not do this (a local user on another user's daemon, say).
    #[error("{0}")]
    Forbidden(String),
    /// A file read with the caller's rights that could not be, or may not be, read.
    #[error(transparent)]
    Read(#[from] crate::unix::OpenError),
    #[error("{0}")]
    Internal(String),
}

/// The classes of failure a client is told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed (a path that may not be used, say).
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    /// Well-formed but not acceptable: a field's value, a file's content.
    Invalid,
    RateLimited,
    /// A file or body over its size limit.
    TooLarge,
    /// A part the request needs is not working now (the parser plugin, the scheduler stopping).
    Unavailable,
    /// Another daemon this one called for the request did not answer (a federation node).
    Upstream,
    /// Our fault; the client learns nothing more, the daemon's log has the cause.
    Internal,
}

impl ServiceError {
    /// The error as lines a person reads: a parse error's findings as `file:line:column: message`.
    pub fn detail_lines(&self) -> Vec<String> {
        match self {
            ServiceError::Parse { path, diagnostics } => diagnostics.iter().map(|d| format!("{}:{}:{}: {}", path.display(), d.line, d.column, d.message)).collect(),
            other => vec![other.to_string()],
        }
    }

    /// The class, and a short code a client can branch on.
    pub fn kind(&self) -> (ErrorKind, &'static str) {
        use crate::auth::AuthError as A;
        use crate::command_files::CommandFileError as C;
        use crate::config::edit::EditError as E;
        use crate::log_access::LogAccessError as L;
        use ErrorKind::*;
        match self {
            ServiceError::Scheduler(e) => match e {
                SchedulerError::NoSuchJob(_) | SchedulerError::NoSuchRun(_) => (NotFound, "not_found"),
                SchedulerError::Forbidden { .. } => (Forbidden, "forbidden"),
                SchedulerError::Conflict { .. } | SchedulerError::AlreadyRunning { .. } => (Conflict, "conflict"),
                SchedulerError::TooMany { .. } => (Conflict, "too_many"),
                SchedulerError::Invalid(_) => (Invalid, "invalid"),
                SchedulerError::Stopped => (Unavailable, "stopping"),
                SchedulerError::Store(_) | SchedulerError::Thread(_) => (Internal, "internal"),
            },
            ServiceError::Invalid(_) => (Invalid, "invalid"),
            ServiceError::File { .. } => (Invalid, "file"),
            ServiceError::Parse { .. } => (Invalid, "parse"),
            ServiceError::NoParser(_) | ServiceError::Plugin(_) | ServiceError::RenderMismatch { .. } => (Unavailable, "plugin"),
            ServiceError::NoAttempt { .. } | ServiceError::NoSuchGpu(_) | ServiceError::NotFound(_) => (NotFound, "not_found"),
            ServiceError::CommandFile(e) => match e {
                C::Missing { .. } => (NotFound, "not_found"),
                C::NoBackup { .. } => (Conflict, "conflict"),
                C::TooMany { .. } => (Conflict, "too_many"),
                C::Io { .. } => (Internal, "internal"),
            },
            ServiceError::Edit(e) => match e {
                E::File { .. } => (Internal, "internal"),
                E::Field { .. } | E::Config(_) => (Invalid, "invalid"),
            },
            ServiceError::LogAccess(e) => match e {
                L::Outside(_) | L::Replaced(_) => (Forbidden, "forbidden"),
                L::Open(e) => open_kind(e),
                L::Unbound(_) | L::Io { .. } => (NotFound, "not_found"),
                L::Invalid { .. } => (BadRequest, "path"),
                L::TooMany(_) => (Conflict, "too_many"),
            },
            ServiceError::Auth(e) => match e {
                A::BadCredentials | A::BadSecret | A::BadToken | A::NoCredentials | A::NoLocalToken => (Unauthorized, "unauthorized"),
                A::Inactive | A::RegistrationClosed => (Forbidden, "forbidden"),
                A::NoSuchUser => (NotFound, "not_found"),
                A::Invalid { .. } => (Invalid, "invalid"),
                A::Conflict(_) => (Conflict, "conflict"),
                A::WrongMode(_) => (NotFound, "auth_mode"),
                A::RateLimited(_) => (RateLimited, "rate_limited"),
                A::Csrf => (Forbidden, "csrf"),
                A::Store(_) | A::Database { .. } | A::Record(_) | A::Hashing(_) | A::Random(_) | A::File { .. } => (Internal, "internal"),
            },
            ServiceError::Task(e) => match e {
                crate::tasks::TaskError::Unknown(_) => (NotFound, "not_found"),
                crate::tasks::TaskError::NotYours { .. } => (Forbidden, "forbidden"),
                crate::tasks::TaskError::TooMany(_) => (Conflict, "too_many"),
                crate::tasks::TaskError::Invalid { .. } => (Invalid, "invalid"),
            },
            ServiceError::Node(e) => {
                use crate::federation::RegistryError as R;
                match e {
                    R::Name(_) => (Invalid, "invalid"),
                    R::Exists(_) | R::Both(_) => (Conflict, "conflict"),
                    R::Unknown(_) => (NotFound, "not_found"),
                    R::BadToken(_) => (Unauthorized, "unauthorized"),
                    R::Replayed { .. } => (Conflict, "replayed"),
                    R::File { .. } => (Internal, "internal"),
                    R::Closed(_) => (Conflict, "closed"),
                    // Asking to act on a node that is not reporting is asking at the wrong time.
                    R::Offline(_) | R::NoUrl(_) => (Conflict, "offline"),
                }
            }
            ServiceError::Unreachable(_) => (Upstream, "unreachable"),
            ServiceError::NoNode(_) => (Conflict, "no_node"),
            ServiceError::Forbidden(_) => (Forbidden, "forbidden"),
            ServiceError::Read(e) => open_kind(e),
            ServiceError::Internal(_) => (Internal, "internal"),
        }
    }
}

/// A file that could not be opened for a caller: missing, theirs to be refused, or unfit.
fn open_kind(e: &crate::unix::OpenError) -> (ErrorKind, &'static str) {
    use crate::unix::OpenError as O;
    match e {
        O::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => (ErrorKind::NotFound, "not_found"),
        O::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => (ErrorKind::Forbidden, "forbidden"),
        O::Io { .. } | O::NotRegular(_) | O::NotText(_) => (ErrorKind::Invalid, "file"),
        O::HardLink(_) | O::NotPossible { .. } => (ErrorKind::Forbidden, "forbidden"),
        O::TooLarge { .. } => (ErrorKind::TooLarge, "too_large"),
    }
}

/// A fixed set of threads for one kind of blocking work, which then never runs on more threads
/// than that, however many requests ask for it at once.
struct Workers {
    queue: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Workers {
    fn new(name: &str, threads: usize) -> Workers {
        let (queue, jobs) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let jobs = Arc::new(parking_lot::Mutex::new(jobs));
        for _ in 0..threads.max(1) {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
                loop {
                    let next = jobs.lock().recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a {name} thread");
            }
        }
        Workers { queue }
    }

    /// Runs `work` on one of the threads when one is free; `Err` if none is left to run it.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, tokio::sync::oneshot::error::RecvError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.queue.send(Box::new(move || drop(tx.send(work()))));
        rx.await
    }
}

/// Runs blocking work (files, SQLite, argon2, plugin calls) off the async threads.
pub async fn off_thread<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ServiceError>
where
    T: Send + 'static,
    E: Into<ServiceError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| ServiceError::Internal(format!("a blocking task failed: {e}")))?.map_err(Into::into)
}
