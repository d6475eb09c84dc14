//! The scheduler: queues of jobs, placed on GPUs by the policy plugin, run by the executor, kept
//! in the store.
//!
//! One thread owns all of it (the job table, the store's connection, the policy calls), so a
//! scheduling decision never races another: requests, GPU changes and job ends arrive as
//! messages, and after each batch of messages one pass places whatever can run. Nothing polls:
//! the thread sleeps until a message or the next backoff or delayed start is due.
//!
//! - `messages`: what the handle and the thread say to each other, and what goes wrong;
//! - `engine`: the thread, its state, the requests it answers, the pass, and the replay of a
//!   workload through it on a virtual clock;
//! - `launcher`: how an attempt's shim is started, watched and cancelled;
//! - `remote`: attempts a provider runs (Slurm, …): submitted, followed, cancelled;
//! - `gpus`: what the policy is told about each GPU, with gantry's own jobs accounted exactly.

mod engine;
pub mod gpus;
mod launcher;
mod messages;
mod remote;

pub use engine::{replay, ForeignChange, ReplayJob, Replayed, Workload};
pub use messages::{JobToken, RunRequest, SchedulerError, SchedulerOptions};

use crate::gpu::GpuMonitor;
use crate::model::{Batch, Event, Job, JobFilter, JobId, QueueState, QueueStatus, RunId, RunProgress, RunStatus, RunningJob, SchedulingRules, Scope, Status, Usage, QuotaStatus, WaitHere};
use crate::policy::PolicyService;
use crate::store::Store;
use messages::{Msg, Request};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The handle the service layer holds; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    tx: std::sync::mpsc::Sender<Msg>,
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
        let runtime = tokio::runtime::Handle::current();
        let launcher = launcher::Shims::new(crate::executor::Spawner::new(&options.shim_program), runtime.clone());
        let remote = options.providers.clone().filter(|p| !p.is_empty()).map(|p| remote::RemoteJobs::new(p, runtime.clone()));
        let tx = engine::start(engine::Parts { options, store, gpus, policy, launcher: Box::new(launcher), remote }, runtime, events.clone())?;
        Ok(Scheduler { tx, events })
    }

    /// Every job and run change from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, SchedulerError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Request(make(reply))).map_err(|_| SchedulerError::Stopped)?;
        answer.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Submits a batch: all of it is committed, or none of it (an unknown dependency refuses the
    /// whole batch). Answers once it is committed.
    pub async fn submit(&self, batch: Batch) -> Result<Vec<JobId>, SchedulerError> {
        self.ask(|r| Request::Submit(batch, r)).await?
    }

    pub async fn start_run(&self, run: RunRequest) -> Result<RunStatus, SchedulerError> {
        self.ask(|r| Request::StartRun(run, r)).await?
    }

    /// Cancels the run's waiting jobs and stops its running ones, if `scope` covers all of them.
    pub async fn stop_run(&self, id: RunId, scope: Scope) -> Result<RunStatus, SchedulerError> {
        self.ask(|r| Request::StopRun(id, scope, r)).await?
    }

    pub async fn cancel(&self, id: JobId, scope: Scope) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Cancel(id, scope, r)).await?
    }

    pub async fn hold(&self, id: JobId, scope: Scope) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Hold(id, scope, r)).await?
    }

    pub async fn release(&self, id: JobId, scope: Scope) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Release(id, scope, r)).await?
    }

    pub async fn set_priority(&self, id: JobId, scope: Scope, priority: i32) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::SetPriority(id, scope, priority, r)).await?
    }

    /// Queues a failed or cancelled job again, keeping its attempts, for one more attempt (and
    /// its retries after that).
    pub async fn retry(&self, id: JobId, scope: Scope) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Retry(id, scope, r)).await?
    }

    pub async fn job(&self, id: JobId, scope: Scope) -> Result<Job, SchedulerError> {
        self.ask(|r| Request::Job(id, scope, r)).await?
    }

    /// Jobs matching `filter` that `scope` may see.
    /// Every job matching `filter`: what a caller may see of them is the service's to decide.
    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<Job>, SchedulerError> {
        self.ask(|r| Request::Jobs(filter, r)).await
    }

    pub async fn runs(&self) -> Result<Vec<RunStatus>, SchedulerError> {
        self.ask(Request::Runs).await
    }

    /// Every running run with each of its queues' progress.
    pub async fn progress(&self) -> Result<Vec<RunProgress>, SchedulerError> {
        self.ask(Request::Progress).await
    }

    pub async fn status(&self) -> Result<Status, SchedulerError> {
        self.ask(Request::Status).await
    }

    /// What `owner`'s jobs have used.
    pub async fn usage(&self, owner: String) -> Result<Usage, SchedulerError> {
        self.ask(|r| Request::Usage(owner, r)).await
    }

    pub async fn quota(&self, owner: String, groups: Vec<u32>) -> Result<QuotaStatus, SchedulerError> {
        self.ask(|r| Request::Quota(owner, groups, r)).await
    }

    /// How long `gpus` GPUs with `memory_mib` each would wait here now.
    pub async fn wait_here(&self, gpus: u32, memory_mib: u64) -> Result<WaitHere, SchedulerError> {
        self.ask(|r| Request::WaitHere(gpus, memory_mib, r)).await
    }

    /// The running jobs and their GPUs: cheaper than [`Scheduler::status`], which walks every job.
    pub async fn running(&self) -> Result<Vec<RunningJob>, SchedulerError> {
        self.ask(Request::Running).await
    }

    /// Every queue with work left or remembered state.
    pub async fn queues(&self) -> Result<Vec<QueueStatus>, SchedulerError> {
        self.ask(Request::Queues).await
    }

    /// How many jobs of a queue may run at once (1 unless set).
    pub async fn set_parallelism(&self, queue: String, parallelism: u32) -> Result<QueueState, SchedulerError> {
        self.ask(|r| Request::SetParallelism(queue, parallelism, r)).await?
    }

    /// New rules, hot: the next pass uses them.
    pub fn set_rules(&self, rules: SchedulingRules) -> Result<(), SchedulerError> {
        self.tx.send(Msg::Request(Request::SetRules(Box::new(rules)))).map_err(|_| SchedulerError::Stopped)
    }

    /// The policy plugin, by name, hot: the next pass asks it.
    pub fn set_policy(&self, name: String) -> Result<(), SchedulerError> {
        self.tx.send(Msg::Request(Request::SetPolicy(name))).map_err(|_| SchedulerError::Stopped)
    }

    /// Stops the scheduling thread; jobs keep running under their shims and are adopted by the
    /// next daemon.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }
}
