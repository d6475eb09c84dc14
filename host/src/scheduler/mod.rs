//! The scheduler: queues of jobs, placed on GPUs by the policy plugin, run by the executor, kept
//! in the store.
//!
//! One thread owns all of it (the job table, the store's connection, the policy calls), so a
//! scheduling decision never races another: requests, GPU changes and job ends arrive as
//! messages, and after each batch of messages one pass places whatever can run. Nothing polls:
//! the thread sleeps until a message or the next backoff or delayed start is due.
//!
//! - `model`: jobs, attempts, queues, runs;
//! - `rules`: the scheduling rules from `gantry.toml`;
//! - `engine`: the thread, its state, and the pass;
//! - `gpus`: what the policy is told about each GPU, with gantry's own jobs accounted exactly.

mod engine;
mod gpus;
mod model;
mod rules;

pub use model::{Attempt, Dependency, GpuCount, Job, JobId, JobSpec, JobState, QueueState, Run, RunId, RunMode, RunState};
pub use rules::SchedulingRules;
pub use gpus::JOB_ID_VAR;

use crate::gpu::GpuMonitor;
use crate::policy::PolicyService;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("job {0} does not exist")]
    NoSuchJob(JobId),
    #[error("run {0} does not exist")]
    NoSuchRun(RunId),
    #[error("job {id} is {state}: {action} is not possible")]
    Conflict { id: JobId, state: &'static str, action: &'static str },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error("the scheduler has stopped")]
    Stopped,
}

/// What the scheduler needs from the daemon.
pub struct SchedulerOptions {
    pub rules: SchedulingRules,
    pub state_dir: PathBuf,
    /// The `gantry` binary, re-executed as the shim of every attempt.
    pub shim_program: PathBuf,
    /// In simulation, the machine (`GANTRY_SIM_MACHINE`) whose fake NVML counts the jobs' memory.
    pub simulation: Option<String>,
    /// Working directory of jobs that name none.
    pub work_dir: Option<PathBuf>,
    pub metrics: Arc<crate::metrics::SchedulerMetrics>,
}

/// Which jobs a listing shows.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub run: Option<RunId>,
    pub owner: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub total: usize,
    pub waiting: usize,
    pub held: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl Counts {
    fn add(&mut self, state: JobState) {
        self.total += 1;
        *match state {
            JobState::Waiting => &mut self.waiting,
            JobState::Held => &mut self.held,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        } += 1;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueStatus {
    pub name: String,
    pub run: Option<RunId>,
    pub counts: Counts,
    /// The jobs of this queue running now.
    pub current: Vec<JobId>,
    /// How many of its jobs may run at once.
    pub parallelism: u32,
    pub consecutive_failures: u32,
    pub backoff_until_ms: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunStatus {
    #[serde(flatten)]
    pub run: Run,
    pub counts: Counts,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningJob {
    pub id: JobId,
    pub queue: String,
    pub gpus: Vec<u32>,
    pub memory_mib: u64,
    pub started_ms: u64,
    pub commands: Vec<String>,
}

/// The whole scheduler at a glance (`gantry status`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub counts: Counts,
    pub runs: Vec<RunStatus>,
    /// Queues with work left or a recent error.
    pub queues: Vec<QueueStatus>,
    pub running: Vec<RunningJob>,
    /// Who decided the last pass: the policy plugin, or the native fallback and why.
    pub last_decider: Option<String>,
}

/// What subscribers (`/api/v1/events`, the dashboard) hear as it happens.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A job was submitted or changed state, attempt or GPUs.
    Job { id: JobId, state: JobState, queue: String, run: Option<RunId>, attempt: u32, gpus: Vec<u32>, reason: Option<String> },
    /// A run started, finished or was stopped.
    Run(Run),
}

impl Event {
    fn job(job: &Job) -> Event {
        let attempt = job.current_attempt();
        Event::Job {
            id: job.id,
            state: job.state,
            queue: job.queue.clone(),
            run: job.run,
            attempt: attempt.map_or(0, |a| a.number),
            gpus: attempt.filter(|_| job.state == JobState::Running).map(|a| a.gpus.clone()).unwrap_or_default(),
            reason: job.reason.clone(),
        }
    }
}

/// A command file's jobs, ready to become a run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub file: PathBuf,
    pub mode: RunMode,
    pub jobs: Vec<JobSpec>,
}

pub(crate) enum Request {
    Submit(Vec<JobSpec>, oneshot::Sender<Result<Vec<JobId>, SchedulerError>>),
    StartRun(RunRequest, oneshot::Sender<Result<RunStatus, SchedulerError>>),
    StopRun(RunId, oneshot::Sender<Result<RunStatus, SchedulerError>>),
    Cancel(JobId, oneshot::Sender<Result<Job, SchedulerError>>),
    Hold(JobId, oneshot::Sender<Result<Job, SchedulerError>>),
    Release(JobId, oneshot::Sender<Result<Job, SchedulerError>>),
    Job(JobId, oneshot::Sender<Result<Job, SchedulerError>>),
    Jobs(JobFilter, oneshot::Sender<Vec<Job>>),
    Runs(oneshot::Sender<Vec<RunStatus>>),
    Status(oneshot::Sender<Status>),
    SetRules(SchedulingRules),
    SetParallelism(String, u32, oneshot::Sender<Result<QueueState, SchedulerError>>),
    Retry(JobId, oneshot::Sender<Result<Job, SchedulerError>>),
    Queues(oneshot::Sender<Vec<QueueStatus>>),
    Running(oneshot::Sender<Vec<RunningJob>>),
}

/// The handle the service layer holds; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    tx: std::sync::mpsc::Sender<engine::Msg>,
    events: tokio::sync::broadcast::Sender<Event>,
}

/// Events a slow subscriber may fall behind by before it is told it lagged.
const EVENT_BACKLOG: usize = 4096;

impl Scheduler {
    /// Opens the store, adopts the attempts that were running when the daemon last stopped, and
    /// starts the scheduling thread. Must be called within a tokio runtime, which waits on the
    /// running attempts.
    pub fn start(options: SchedulerOptions, store: Store, gpus: Arc<GpuMonitor>, policy: PolicyService) -> Result<Scheduler, SchedulerError> {
        let (events, _) = tokio::sync::broadcast::channel(EVENT_BACKLOG);
        let tx = engine::start(options, store, gpus, policy, tokio::runtime::Handle::current(), events.clone())?;
        Ok(Scheduler { tx, events })
    }

    /// Every job and run change from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, SchedulerError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(engine::Msg::Request(make(reply))).map_err(|_| SchedulerError::Stopped)?;
        answer.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Submits a batch: all of it is committed, or none of it (a cycle or an unknown dependency
    /// refuses the whole batch). Answers once it is committed.
    pub async fn submit(&self, specs: Vec<JobSpec>) -> Result<Vec<JobId>, SchedulerError> {
        self.ask(|r| Request::Submit(specs, r)).await?
    }

    pub async fn start_run(&self, run: RunRequest) -> Result<RunStatus, SchedulerError> {
        self.ask(|r| Request::StartRun(run, r)).await?
    }

    /// Cancels the run's waiting jobs and stops its running ones.
    pub async fn stop_run(&self, id: RunId) -> Result<RunStatus, SchedulerError> {
        self.ask(|r| Request::StopRun(id, r)).await?
    }

    pub async fn cancel(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Cancel(id, r)).await?
    }

    /// Queues a failed or cancelled job again, keeping its attempts, for one more attempt (and
    /// its retries after that).
    pub async fn retry(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Retry(id, r)).await?
    }

    /// The running jobs and their GPUs: cheaper than [`Scheduler::status`], which walks every job.
    pub async fn running(&self) -> Result<Vec<RunningJob>, SchedulerError> {
        self.ask(Request::Running).await
    }

    /// Every queue with work left or remembered state.
    pub async fn queues(&self) -> Result<Vec<QueueStatus>, SchedulerError> {
        self.ask(Request::Queues).await
    }

    pub async fn hold(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Hold(id, r)).await?
    }

    pub async fn release(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Release(id, r)).await?
    }

    pub async fn job(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Job(id, r)).await?
    }

    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<Job>, SchedulerError> {
        self.ask(|r| Request::Jobs(filter, r)).await
    }

    pub async fn runs(&self) -> Result<Vec<RunStatus>, SchedulerError> {
        self.ask(Request::Runs).await
    }

    pub async fn status(&self) -> Result<Status, SchedulerError> {
        self.ask(Request::Status).await
    }

    /// How many jobs of a queue may run at once (1 unless set).
    pub async fn set_parallelism(&self, queue: String, parallelism: u32) -> Result<QueueState, SchedulerError> {
        self.ask(|r| Request::SetParallelism(queue, parallelism, r)).await?
    }

    /// New rules, hot: the next pass uses them.
    pub fn set_rules(&self, rules: SchedulingRules) -> Result<(), SchedulerError> {
        self.tx.send(engine::Msg::Request(Request::SetRules(rules))).map_err(|_| SchedulerError::Stopped)
    }

    /// Stops the scheduling thread; jobs keep running under their shims and are adopted by the
    /// next daemon.
    pub fn shutdown(&self) {
        let _ = self.tx.send(engine::Msg::Shutdown);
    }
}
