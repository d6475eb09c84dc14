//! The scheduling thread: its state, the loop that handles messages and runs passes, and the
//! requests it answers. The work itself is split by what it does:
//!
//! - `submit`: new jobs and runs;
//! - `lifecycle`: what happens to a job after that: hold, cancel, retry, its attempts' start and
//!   end, backoff, dependents, the end of its run;
//! - `pass`: which jobs may start now, where the policy puts them, and launching them;
//! - `burst`: which runnable jobs leave for a provider this pass ("wait here or go there");
//! - `remote`: the attempts of jobs a provider runs: handed to it, followed, refused;
//! - `views`: the answers that only read: jobs, runs, queues, status, progress, usage;
//! - `share`: sharing GPUs between people: quotas, and fair order by recent use;
//! - `replay`: a workload run through all of the above on a virtual clock, starting nothing.

mod budget;
mod burst;
mod estimate;
mod lifecycle;
mod limits;
mod pass;
mod remote;
mod replay;
mod share;
mod submit;
mod views;

#[cfg(test)]
mod tests;

pub use replay::{replay, ForeignChange, ReplayJob, Replayed, Workload};

use super::gpus::{ownership, Observation};
use super::launcher::Launcher;
use super::messages::{Msg, Request, SchedulerError, SchedulerOptions};
use crate::executor::Adoption;
use crate::gpu::GpuMonitor;
use crate::model::{Event, Job, JobId, JobState, QueueState, Run, RunId, SchedulingRules};
use crate::policy::PolicyService;
use crate::store::Store;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// An attempt in flight, as far as cancellation and accounting need it.
struct Live {
    attempt: u32,
    shim: Option<crate::executor::ShimInfo>,
    cancel_requested: Option<String>,
    /// Stopped for running past its time limit: why, for the attempt's note.
    timed_out: Option<String>,
}

pub(super) struct Engine {
    options: SchedulerOptions,
    store: Store,
    gpus: Arc<GpuMonitor>,
    policy: PolicyService,
    launcher: Box<dyn Launcher>,
    remote: Option<super::remote::RemoteJobs>,
    /// Providers that could not be reached, by name.
    provider_backoff: HashMap<String, ProviderBackoff>,
    /// Unfinished jobs that may burst: how long they waited, who refused them.
    bursts: HashMap<JobId, burst::BurstWait>,
    tx: mpsc::Sender<Msg>,
    events: tokio::sync::broadcast::Sender<Event>,

    jobs: BTreeMap<JobId, Job>,
    runs: BTreeMap<RunId, Run>,
    queues: HashMap<String, QueueState>,
    /// Unfinished jobs of each queue, in order.
    queue_jobs: BTreeMap<String, BTreeSet<JobId>>,
    /// How many unfinished jobs each owner has (`""`: jobs without one), kept with `queue_jobs`
    /// so that a submission checks `quotas.max_jobs_per_user` without reading every job.
    unfinished: HashMap<String, usize>,
    /// Unfinished jobs waiting on each job.
    dependents: HashMap<JobId, Vec<JobId>>,
    live: HashMap<JobId, Live>,
    /// The running job ids, shared with the sampler's ownership test.
    running_ids: Arc<RwLock<HashSet<JobId>>>,
    /// Memory per (job, GPU) seen at the last GPU change.
    observed: Observation,
    /// Small numbers the policy sees for queue names.
    queue_numbers: HashMap<String, u64>,
    next_job: u64,
    next_run: u64,
    dirty: bool,
    /// The clock reading the last pass judged delays and backoffs by.
    last_pass_ms: u64,
    /// When the daemon learnt that a queue's job ended, for the dispatch latency of its next.
    freed: HashMap<String, std::time::Instant>,
    last_decider: Option<String>,
    shares: share::Shares,
}

/// What the engine is made of.
pub(super) struct Parts {
    pub options: SchedulerOptions,
    pub store: Store,
    pub gpus: Arc<GpuMonitor>,
    pub policy: PolicyService,
    pub launcher: Box<dyn Launcher>,
    pub remote: Option<super::remote::RemoteJobs>,
}

/// Builds the engine from the store, adopts the attempts that were running, and starts the
/// thread. GPU changes are forwarded to it from `runtime`.
pub(super) fn start(parts: Parts, runtime: tokio::runtime::Handle, events: tokio::sync::broadcast::Sender<Event>) -> Result<mpsc::Sender<Msg>, SchedulerError> {
    let (tx, rx) = mpsc::channel();
    let gpus = parts.gpus.clone();
    let mut engine = Engine::new(parts, tx.clone(), events)?;
    engine.adopt_running()?;

    // GPU changes wake the scheduler; the forwarder ends when the scheduler is gone.
    let mut changes = gpus.subscribe();
    let forward = tx.clone();
    runtime.spawn(async move {
        while changes.changed().await.is_ok() {
            if forward.send(Msg::GpusChanged).is_err() {
                break;
            }
        }
    });
    std::thread::Builder::new().name("gantry-scheduler".into()).spawn(move || engine.run(rx)).map_err(SchedulerError::Thread)?;
    Ok(tx)
}

impl Engine {
    fn new(parts: Parts, tx: mpsc::Sender<Msg>, events: tokio::sync::broadcast::Sender<Event>) -> Result<Engine, SchedulerError> {
        let Parts { options, store, gpus, policy, launcher, remote } = parts;
        let snapshot = store.load()?;
        let next_job = store.max_job_id()? + 1;
        let running_ids = Arc::new(RwLock::new(HashSet::new()));
        gpus.set_ownership(ownership(running_ids.clone()));
        let mut engine = Engine {
            options,
            store,
            gpus,
            policy,
            launcher,
            remote,
            provider_backoff: HashMap::new(),
            bursts: HashMap::new(),
            tx,
            events,
            jobs: BTreeMap::new(),
            next_run: snapshot.runs.iter().map(|r| r.id.0).max().unwrap_or(0) + 1,
            runs: snapshot.runs.into_iter().map(|r| (r.id, r)).collect(),
            queues: snapshot.queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            queue_jobs: BTreeMap::new(),
            unfinished: HashMap::new(),
            dependents: HashMap::new(),
            live: HashMap::new(),
            running_ids,
            observed: Observation::default(),
            queue_numbers: HashMap::new(),
            next_job,
            dirty: true,
            last_pass_ms: 0,
            freed: HashMap::new(),
            last_decider: None,
            shares: share::Shares::default(),
        };
        for job in snapshot.jobs {
            engine.index(&job);
            engine.jobs.insert(job.id, job);
        }
        engine.count_past_use();
        Ok(engine)
    }

    fn now(&self) -> u64 {
        self.options.clock.now_ms()
    }

    fn rules(&self) -> &SchedulingRules {
        &self.options.rules
    }

    /// After a restart: every attempt the store says is running is looked at again.
    fn adopt_running(&mut self) -> Result<(), SchedulerError> {
        let running: Vec<(JobId, crate::model::Attempt)> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.current_attempt().map(|a| (j.id, a.clone())))
            .collect();
        for (id, attempt) in running {
            if let Some(remote) = attempt.remote.clone() {
                self.follow_remote(id, &attempt, remote)?;
                continue;
            }
            match crate::executor::adopt(&attempt.dir).map_err(|e| e.to_string()) {
                Ok(Adoption::Running(running)) => {
                    tracing::info!(job = %id, attempt = attempt.number, "adopted a running attempt");
                    self.live.insert(id, Live { attempt: attempt.number, shim: Some(running.shim.clone()), cancel_requested: None, timed_out: None });
                    self.launcher.watch(id, attempt.number, running, self.tx.clone());
                }
                outcome => self.ended(id, attempt.number, outcome)?,
            }
        }
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let timeout = self.next_deadline().map_or(Duration::from_secs(3600), |at| Duration::from_millis(at.saturating_sub(self.now())));
            let first = match rx.recv_timeout(timeout) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.dirty = true;
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let busy = !self.live.is_empty();
            // Everything that arrived meanwhile is handled before one pass decides on all of it.
            for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                if matches!(msg, Msg::Shutdown) {
                    return;
                }
                if let Err(e) = self.handle(msg) {
                    tracing::error!(error = %e, "scheduler");
                }
            }
            if self.dirty {
                self.dirty = false;
                if let Err(e) = self.pass() {
                    tracing::error!(error = %e, "scheduling pass");
                }
            }
            // The last job of a burst has ended: what its thousands of attempts' records and
            // messages took is freed, and given back (measured: 11 MiB after 2,000 jobs).
            if busy && self.live.is_empty() {
                crate::memory::release_freed();
            }
        }
    }

    fn handle(&mut self, msg: Msg) -> Result<(), SchedulerError> {
        match msg {
            Msg::Request(request) => {
                self.request(request);
                Ok(())
            }
            Msg::Started { job, attempt, shim } => self.started(job, attempt, shim),
            Msg::Ended { job, attempt, outcome } => self.ended(job, attempt, outcome),
            Msg::RemoteSubmitted { job, attempt, id, log_path, state, price } => self.remote_submitted(job, attempt, id, log_path, state, price),
            Msg::RemoteState { job, attempt, state, started_ms } => self.remote_state(job, attempt, state, started_ms),
            Msg::RemoteRefused { job, attempt, reason } => self.remote_refused(job, attempt, reason),
            Msg::RemoteUnavailable { job, attempt, provider, reason } => self.remote_unavailable(job, attempt, provider, reason),
            Msg::GpusChanged => {
                self.gpus_changed();
                Ok(())
            }
            Msg::Shutdown => Ok(()),
        }
    }

    /// Answers one request. A reply nobody waits for any more (the client went away) is
    /// dropped: the change it asked for stands.
    fn request(&mut self, request: Request) {
        match request {
            Request::Submit(batch, reply) => drop(reply.send(self.submit(batch, None))),
            Request::StartRun(run, reply) => drop(reply.send(self.start_run(run))),
            Request::StopRun(id, scope, reply) => drop(reply.send(self.stop_run(id, &scope))),
            Request::Cancel(id, scope, reply) => drop(reply.send(self.cancel_request(id, &scope))),
            Request::Hold(id, scope, reply) => drop(reply.send(self.transition(id, &scope, JobState::Waiting, JobState::Held, "hold"))),
            Request::Release(id, scope, reply) => drop(reply.send(self.transition(id, &scope, JobState::Held, JobState::Waiting, "release"))),
            Request::Retry(id, scope, reply) => drop(reply.send(self.retry(id, &scope))),
            Request::SetPriority(id, scope, priority, reply) => drop(reply.send(self.set_priority(id, &scope, priority))),
            Request::Job(id, scope, reply) => drop(reply.send(self.owned(id, &scope).cloned())),
            Request::Jobs(filter, reply) => drop(reply.send(self.list(&filter))),
            Request::Runs(reply) => drop(reply.send(self.runs.values().map(|r| self.run_status(r)).collect())),
            Request::Progress(reply) => drop(reply.send(self.progress())),
            Request::Status(reply) => drop(reply.send(self.status())),
            Request::Usage(owner, reply) => drop(reply.send(self.usage(&owner))),
            Request::Quota(owner, groups, reply) => drop(reply.send(self.quota(&owner, &groups))),
            Request::SetParallelism(name, parallelism, reply) => drop(reply.send(self.set_parallelism(name, parallelism))),
            Request::Queues(reply) => drop(reply.send(self.survey().1)),
            Request::Running(reply) => drop(reply.send(self.running())),
            Request::WaitHere(gpus, memory_mib, reply) => drop(reply.send(self.wait_here(gpus, memory_mib))),
            Request::SetRules(rules) => {
                tracing::info!("scheduling rules changed");
                self.options.rules = *rules;
                self.dirty = true;
            }
            Request::SetPolicy(name) => {
                if name != self.policy.active_name() {
                    tracing::info!(from = self.policy.active_name(), to = %name, "policy changed");
                    self.policy.set_active(name);
                    self.dirty = true;
                }
            }
        }
    }

    /// Commits jobs, then tells subscribers what changed.
    fn save_jobs<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>) -> Result<(), SchedulerError> {
        self.save_jobs_and_queue(jobs, None)
    }

    /// [`Engine::save_jobs`] with the queue they changed, in the same commit.
    fn save_jobs_and_queue<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>, queue: Option<&QueueState>) -> Result<(), SchedulerError> {
        let jobs: Vec<&Job> = jobs.into_iter().collect();
        self.store.save_jobs_and_queue(jobs.iter().copied(), queue)?;
        if self.events.receiver_count() > 0 {
            for job in jobs {
                let _ = self.events.send(Event::job(job));
            }
        }
        Ok(())
    }

    fn save_run(&mut self, run: &Run) -> Result<(), SchedulerError> {
        self.store.save_run(run)?;
        let _ = self.events.send(Event::Run(run.clone()));
        Ok(())
    }

    fn set_parallelism(&mut self, name: String, parallelism: u32) -> Result<QueueState, SchedulerError> {
        if parallelism == 0 {
            return Err(crate::model::FieldError::new("parallelism", "must be at least 1").into());
        }
        let queue = self.queues.entry(name.clone()).or_insert_with(|| QueueState::new(&name));
        queue.parallelism = parallelism;
        let queue = queue.clone();
        self.store.save_queue(&queue)?;
        self.dirty = true;
        Ok(queue)
    }

    /// Adds an unfinished job to the queue and dependency indexes.
    fn index(&mut self, job: &Job) {
        if job.state.is_final() {
            return;
        }
        if self.queue_jobs.entry(job.queue.clone()).or_default().insert(job.id) {
            *self.unfinished.entry(owner_key(job).to_string()).or_default() += 1;
        }
        for dep in &job.after {
            self.dependents.entry(*dep).or_default().push(job.id);
        }
        if job.state == JobState::Running {
            self.running_ids.write().insert(job.id);
        }
    }

    /// Takes a finished job out of its queue's index.
    fn unindex(&mut self, job: &Job) {
        self.bursts.remove(&job.id);
        let Some(set) = self.queue_jobs.get_mut(&job.queue) else { return };
        if set.remove(&job.id)
            && let Some(count) = self.unfinished.get_mut(owner_key(job))
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.unfinished.remove(owner_key(job));
            }
        }
        if set.is_empty() {
            self.queue_jobs.remove(&job.queue);
            self.freed.remove(&job.queue);
        }
    }

    /// Forgets what was tracked of a job's attempt while it ran: it holds no GPU any more.
    fn attempt_over(&mut self, id: JobId) {
        self.running_ids.write().remove(&id);
        self.live.remove(&id);
        self.observed.forget(id);
    }
}

/// Whose job it is, as the per-owner counts key it.
fn owner_key(job: &Job) -> &str {
    job.spec.owner.as_deref().unwrap_or_default()
}

/// A provider that could not be reached: not asked again before `until_ms`; each failure in a
/// row doubles the wait. `why` is what the waiting jobs are told.
struct ProviderBackoff {
    until_ms: u64,
    failures: u32,
    why: String,
}
