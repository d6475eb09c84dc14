//! What the scheduler's handle and its thread say to each other, what the thread needs from the
//! daemon, and what can go wrong.

use crate::executor::{Adoption, ShimInfo};
use crate::model::{Batch, FieldError, Job, JobFilter, JobId, QueueState, QueueStatus, RunId, RunMode, RunProgress, RunStatus, RunningJob, SchedulingRules, Scope, Status, Usage, QuotaStatus, WaitHere};
use crate::store::StoreError;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("job {0} does not exist")]
    NoSuchJob(JobId),
    #[error("run {0} does not exist")]
    NoSuchRun(RunId),
    #[error("job {job} belongs to {owner}")]
    Forbidden { job: JobId, owner: String },
    #[error("job {id} is {state}: {action} is not possible")]
    Conflict { id: JobId, state: &'static str, action: &'static str },
    #[error("{} is running already as run {run}", file.display())]
    AlreadyRunning { file: PathBuf, run: RunId },
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{owner} has {unfinished} jobs waiting or running, and {more} more would pass the {limit} one owner may have; let some finish, or cancel some")]
    TooMany { owner: String, unfinished: usize, more: usize, limit: usize },
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error("starting the scheduling thread: {0}")]
    Thread(std::io::Error),
    #[error("the scheduler has stopped")]
    Stopped,
}

pub type JobToken = Arc<dyn Fn(&str, Option<u32>) -> String + Send + Sync>;

/// What the scheduler needs from the daemon.
pub struct SchedulerOptions {
    pub rules: SchedulingRules,
    pub state_dir: PathBuf,
    /// `gantry-shim`, the spawner every attempt's shim is forked from.
    pub shim_program: PathBuf,
    /// In simulation, the machine (`GANTRY_SIM_MACHINE`) whose fake NVML counts the jobs' memory.
    pub simulation: Option<String>,
    /// Working directory of jobs that name none.
    pub work_dir: Option<PathBuf>,
    /// The file-creation mask jobs get: the one the daemon was started with, before it took
    /// a private one for its own files.
    pub job_umask: u32,
    /// Mints the token a job calls the daemon with (`GANTRY_TOKEN`), from its owner and the
    /// Unix user it runs as.
    pub job_token: Option<JobToken>,
    pub metrics: Arc<crate::metrics::SchedulerMetrics>,
    /// The system's clock, or a replay's.
    pub clock: crate::model::Clock,
    /// `[providers.NAME]`: where jobs that name a provider run. `None`: nowhere (a replay).
    pub providers: Option<Arc<crate::providers::Providers>>,
}

/// A command file's jobs, ready to become a run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub file: PathBuf,
    pub mode: RunMode,
    pub batch: Batch,
    /// Refuse if a run of the same file is still going (seed 001's one scheduler per file).
    pub exclusive: bool,
}

pub enum Request {
    Submit(Batch, oneshot::Sender<Result<Vec<JobId>, SchedulerError>>),
    StartRun(RunRequest, oneshot::Sender<Result<RunStatus, SchedulerError>>),
    StopRun(RunId, Scope, oneshot::Sender<Result<RunStatus, SchedulerError>>),
    Cancel(JobId, Scope, oneshot::Sender<Result<Job, SchedulerError>>),
    Hold(JobId, Scope, oneshot::Sender<Result<Job, SchedulerError>>),
    SetPriority(JobId, Scope, i32, oneshot::Sender<Result<Job, SchedulerError>>),
    Release(JobId, Scope, oneshot::Sender<Result<Job, SchedulerError>>),
    Retry(JobId, Scope, oneshot::Sender<Result<Job, SchedulerError>>),
    Job(JobId, Scope, oneshot::Sender<Result<Job, SchedulerError>>),
    Jobs(JobFilter, oneshot::Sender<Vec<Job>>),
    Runs(oneshot::Sender<Vec<RunStatus>>),
    Progress(oneshot::Sender<Vec<RunProgress>>),
    Status(oneshot::Sender<Status>),
    Usage(String, oneshot::Sender<Usage>),
    /// An owner's caps and use, with the groups they are in.
    Quota(String, Vec<u32>, oneshot::Sender<QuotaStatus>),
    SetRules(Box<SchedulingRules>),
    SetPolicy(String),
    SetParallelism(String, u32, oneshot::Sender<Result<QueueState, SchedulerError>>),
    Queues(oneshot::Sender<Vec<QueueStatus>>),
    Running(oneshot::Sender<Vec<RunningJob>>),
    WaitHere(u32, u64, oneshot::Sender<WaitHere>),
}

/// Everything the scheduling thread hears.
pub enum Msg {
    Request(Request),
    /// The shim of an attempt is up (or could not be started).
    Started { job: JobId, attempt: u32, shim: Result<ShimInfo, String> },
    /// An attempt's shim exited, as far as the executor can tell.
    Ended { job: JobId, attempt: u32, outcome: Result<Adoption, String> },
    /// A provider took the attempt: its id there, and where its output goes.
    RemoteSubmitted { job: JobId, attempt: u32, id: String, log_path: Option<String>, state: String, price: Option<crate::model::RemoteCost> },
    /// What the provider says of a remote attempt changed.
    RemoteState { job: JobId, attempt: u32, state: String, started_ms: Option<u64> },
    /// The provider refused the attempt: the job can't run there as it is.
    RemoteRefused { job: JobId, attempt: u32, reason: String },
    /// The provider could not be asked: the job waits, and the provider is asked again later.
    RemoteUnavailable { job: JobId, attempt: u32, provider: String, reason: String },
    GpusChanged,
    Shutdown,
}
