//! The scheduling thread: its state, the messages it handles, and the pass.

use super::gpus::{gpu_states, ownership, Booking, Observation, JOB_ID_VAR};
use super::model::{Attempt, Dependency, Job, JobId, JobSpec, JobState, QueueState, Run, RunId, RunState};
use super::{Counts, Event, QueueStatus, Request, RunRequest, RunStatus, RunningJob, SchedulerError, SchedulerOptions, SchedulingRules, Status};
use crate::executor::{self, Adoption, AttemptSpec, ExitRecord, RunningAttempt, ShimInfo};
use crate::gpu::GpuMonitor;
use crate::policy::{Decider, PolicyService};
use crate::store::Store;
use parking_lot::RwLock;
use placement::PendingJob;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

pub(crate) enum Msg {
    Request(Request),
    /// The shim of an attempt is up (or could not be started).
    Started { job: JobId, attempt: u32, shim: Result<ShimInfo, String> },
    /// An attempt's shim exited, as far as the executor can tell.
    Ended { job: JobId, attempt: u32, outcome: Result<Adoption, String> },
    GpusChanged,
    Shutdown,
}

/// A pass hands the policy at most this many jobs: the highest-priority, oldest heads. A pass
/// can start no more jobs than there are GPUs anyway, and the cost of a call grows with its input.
const MAX_PENDING_PER_PASS: usize = 256;

/// How many of a failed attempt's last log bytes are searched for an out-of-memory message.
const OOM_TAIL_BYTES: u64 = 8192;

/// The messages CUDA frameworks print when an allocation fails.
const OOM_MARKERS: &[&str] = &["CUDA out of memory", "OutOfMemoryError", "CUDA_ERROR_OUT_OF_MEMORY", "cudaErrorMemoryAllocation", "RESOURCE_EXHAUSTED: Out of memory"];

fn now_ms() -> u64 {
    crate::gpu::now_ms()
}

/// An attempt in flight, as far as cancellation and accounting need it.
struct Live {
    attempt: u32,
    shim: Option<ShimInfo>,
    cancel_requested: Option<String>,
}

struct Engine {
    options: SchedulerOptions,
    store: Store,
    gpus: Arc<GpuMonitor>,
    policy: PolicyService,
    runtime: tokio::runtime::Handle,
    tx: mpsc::Sender<Msg>,
    events: tokio::sync::broadcast::Sender<Event>,

    jobs: BTreeMap<JobId, Job>,
    runs: BTreeMap<RunId, Run>,
    queues: HashMap<String, QueueState>,
    /// Unfinished jobs of each queue, in order.
    queue_jobs: BTreeMap<String, BTreeSet<JobId>>,
    /// Unfinished jobs waiting on each job.
    dependents: HashMap<JobId, Vec<JobId>>,
    live: HashMap<JobId, Live>,
    /// The running job ids, shared with the sampler's ownership test.
    running_ids: Arc<RwLock<HashSet<JobId>>>,
    /// Memory per (job, GPU) seen at the last GPU change.
    observed: Observation,
    /// Small numbers the policy sees for queue names.
    queue_numbers: HashMap<String, u64>,
    next_job: JobId,
    next_run: RunId,
    dirty: bool,
    /// The clock reading the last pass judged delays and backoffs by.
    last_pass_ms: u64,
    /// When the daemon learnt that a queue's job ended, for the dispatch latency of its next.
    freed: HashMap<String, std::time::Instant>,
    last_decider: Option<String>,
}

pub(super) fn start(
    options: SchedulerOptions,
    store: Store,
    gpus: Arc<GpuMonitor>,
    policy: PolicyService,
    runtime: tokio::runtime::Handle,
    events: tokio::sync::broadcast::Sender<Event>,
) -> Result<mpsc::Sender<Msg>, SchedulerError> {
    let (tx, rx) = mpsc::channel();
    let snapshot = store.load()?;
    let next_job = store.max_job_id()? + 1;
    let running_ids = Arc::new(RwLock::new(HashSet::new()));
    gpus.set_ownership(ownership(running_ids.clone()));
    let mut engine = Engine {
        options,
        store,
        gpus: gpus.clone(),
        policy,
        runtime: runtime.clone(),
        tx: tx.clone(),
        events,
        jobs: BTreeMap::new(),
        next_run: snapshot.runs.iter().map(|r| r.id).max().unwrap_or(0) + 1,
        runs: snapshot.runs.into_iter().map(|r| (r.id, r)).collect(),
        queues: snapshot.queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
        queue_jobs: BTreeMap::new(),
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
    };
    for job in snapshot.jobs {
        engine.index(&job);
        engine.jobs.insert(job.id, job);
    }
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
    std::thread::Builder::new()
        .name("gantry-scheduler".into())
        .spawn(move || engine.run(rx))
        .map_err(|e| SchedulerError::Invalid { field: "scheduler".into(), message: format!("cannot start its thread: {e}") })?;
    Ok(tx)
}

impl Engine {
    fn rules(&self) -> &SchedulingRules {
        &self.options.rules
    }

    /// Adds an unfinished job to the queue and dependency indexes.
    fn index(&mut self, job: &Job) {
        if job.state.is_final() {
            return;
        }
        self.queue_jobs.entry(job.queue.clone()).or_default().insert(job.id);
        for dep in &job.after {
            self.dependents.entry(*dep).or_default().push(job.id);
        }
        if job.state == JobState::Running {
            self.running_ids.write().insert(job.id);
        }
    }

    /// Takes a finished job out of its queue's index.
    fn unindex(&mut self, id: JobId, queue: &str) {
        if let Some(set) = self.queue_jobs.get_mut(queue) {
            set.remove(&id);
            if set.is_empty() {
                self.queue_jobs.remove(queue);
                self.freed.remove(queue);
            }
        }
    }

    /// Forgets what was tracked of a job's attempt while it ran: it holds no GPU any more.
    fn attempt_over(&mut self, id: JobId) {
        self.running_ids.write().remove(&id);
        self.live.remove(&id);
        self.observed.forget(id);
    }

    /// After a restart: every attempt the store says is running is looked at again.
    fn adopt_running(&mut self) -> Result<(), SchedulerError> {
        let running: Vec<(JobId, Attempt)> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.current_attempt().map(|a| (j.id, a.clone())))
            .collect();
        for (id, attempt) in running {
            let adoption = executor::adopt(&attempt.dir).map_err(|e| e.to_string());
            match adoption {
                Ok(Adoption::Running(running)) => {
                    tracing::info!(job = id, attempt = attempt.number, "adopted a running attempt");
                    self.live.insert(id, Live { attempt: attempt.number, shim: Some(running.shim.clone()), cancel_requested: None });
                    self.watch(id, attempt.number, running);
                }
                outcome => self.ended(id, attempt.number, outcome)?,
            }
        }
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let timeout = self.next_deadline().map_or(Duration::from_secs(3600), |at| Duration::from_millis(at.saturating_sub(now_ms())));
            let first = match rx.recv_timeout(timeout) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.dirty = true;
                    None
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
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
        }
    }

    fn handle(&mut self, msg: Msg) -> Result<(), SchedulerError> {
        match msg {
            Msg::Request(request) => self.request(request),
            Msg::Started { job, attempt, shim } => self.started(job, attempt, shim),
            Msg::Ended { job, attempt, outcome } => self.ended(job, attempt, outcome),
            Msg::GpusChanged => {
                let running = self.running_ids.read().clone();
                self.observed = Observation::of(&self.gpus.summaries(), &|job| running.contains(&job));
                self.note_gpu_peaks();
                self.dirty = true;
                Ok(())
            }
            Msg::Shutdown => Ok(()),
        }
    }

    fn request(&mut self, request: Request) -> Result<(), SchedulerError> {
        match request {
            Request::Submit(specs, reply) => {
                let _ = reply.send(self.submit(specs, None));
            }
            Request::StartRun(run, reply) => {
                let _ = reply.send(self.start_run(run));
            }
            Request::StopRun(id, reply) => {
                let _ = reply.send(self.stop_run(id));
            }
            Request::Cancel(id, reply) => {
                let _ = reply.send(self.cancel(id, "cancelled by request".into()).and_then(|()| self.job(id)));
            }
            Request::Hold(id, reply) => {
                let _ = reply.send(self.transition(id, JobState::Waiting, JobState::Held, "hold"));
            }
            Request::Release(id, reply) => {
                let _ = reply.send(self.transition(id, JobState::Held, JobState::Waiting, "release"));
            }
            Request::Job(id, reply) => {
                let _ = reply.send(self.job(id));
            }
            Request::Jobs(filter, reply) => {
                let jobs = self
                    .jobs
                    .values()
                    .filter(|j| filter.state.is_none_or(|s| j.state == s))
                    .filter(|j| filter.queue.as_ref().is_none_or(|q| &j.queue == q))
                    .filter(|j| filter.run.is_none_or(|r| j.run == Some(r)))
                    .filter(|j| filter.owner.as_ref().is_none_or(|o| j.spec.owner.as_ref() == Some(o)))
                    .cloned()
                    .collect();
                let _ = reply.send(jobs);
            }
            Request::Runs(reply) => {
                let _ = reply.send(self.runs.values().map(|r| self.run_status(r)).collect());
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::SetParallelism(name, parallelism, reply) => {
                let _ = reply.send(self.set_parallelism(name, parallelism));
            }
            Request::Retry(id, reply) => {
                let _ = reply.send(self.retry(id));
            }
            Request::Running(reply) => {
                let running = self.live.keys().filter_map(|id| self.jobs.get(id)).filter_map(running_job).collect();
                let _ = reply.send(running);
            }
            Request::Queues(reply) => {
                let _ = reply.send(self.survey().1);
            }
            Request::SetRules(rules) => {
                tracing::info!("scheduling rules changed");
                self.options.rules = rules;
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Commits jobs, then tells subscribers what changed.
    fn save_jobs<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>) -> Result<(), SchedulerError> {
        let jobs: Vec<&Job> = jobs.into_iter().collect();
        self.store.save_jobs(jobs.iter().copied())?;
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
            return Err(SchedulerError::Invalid { field: "parallelism".into(), message: "must be at least 1".into() });
        }
        let queue = self.queues.entry(name.clone()).or_insert_with(|| QueueState::new(&name));
        queue.parallelism = parallelism;
        let queue = queue.clone();
        self.store.save_queue(&queue)?;
        self.dirty = true;
        Ok(queue)
    }

    fn what_fits(&self) -> Capacity {
        let gpus: Vec<u64> = self
            .gpus
            .summaries()
            .iter()
            .filter_map(|s| s.reading.snapshot())
            .filter(|g| self.options.rules.eligible(g.index))
            .map(|g| g.memory_total_mib.saturating_sub(self.options.rules.memory_margin_mib))
            .collect();
        Capacity { eligible_gpus: u32::try_from(gpus.len()).unwrap_or(u32::MAX), largest_mib: gpus.into_iter().max().unwrap_or(0) }
    }

    fn job(&self, id: JobId) -> Result<Job, SchedulerError> {
        self.jobs.get(&id).cloned().ok_or(SchedulerError::NoSuchJob(id))
    }

    fn submit(&mut self, specs: Vec<JobSpec>, run: Option<RunId>) -> Result<Vec<JobId>, SchedulerError> {
        let invalid = |i: usize, field: &str, message: String| SchedulerError::Invalid { field: format!("jobs[{i}].{field}"), message };
        if specs.is_empty() {
            return Err(SchedulerError::Invalid { field: "jobs".into(), message: "no jobs given".into() });
        }
        let first = self.next_job;
        let ids: Vec<JobId> = (first..first + specs.len() as u64).collect();
        let mut keys = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if let Some(key) = &spec.key
                && keys.insert(key.clone(), ids[i]).is_some() {
                    return Err(invalid(i, "key", format!("'{key}' is used twice in this batch")));
                }
        }
        let now = now_ms();
        let mut jobs = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            if spec.commands.iter().all(|c| c.trim().is_empty()) {
                return Err(invalid(i, "commands", "no command to run".into()));
            }
            if let Some(gpus) = spec.gpus
                && (gpus.min == 0 || gpus.max < gpus.min) {
                    return Err(invalid(i, "gpus", format!("need 1 <= min <= max, got {}..{}", gpus.min, gpus.max)));
                }
            let mut after = Vec::new();
            for dep in &spec.after {
                let id = match dep {
                    Dependency::Job(id) if self.jobs.contains_key(id) || ids.contains(id) => *id,
                    Dependency::Job(id) => return Err(invalid(i, "after", format!("job {id} does not exist"))),
                    Dependency::Key(key) => *keys.get(key).ok_or_else(|| invalid(i, "after", format!("no job of this batch has key '{key}'")))?,
                };
                if id == ids[i] {
                    return Err(invalid(i, "after", "a job cannot wait for itself".into()));
                }
                after.push(id);
            }
            let queue = match (run, &spec.queue) {
                (Some(run), Some(q)) => format!("run{run}/{q}"),
                (Some(run), None) => format!("run{run}/job{}", ids[i]),
                (None, Some(q)) if q.trim().is_empty() => return Err(invalid(i, "queue", "empty queue name".into())),
                (None, Some(q)) => q.clone(),
                (None, None) => format!("job{}", ids[i]),
            };
            jobs.push(Job {
                id: ids[i],
                state: if spec.hold { JobState::Held } else { JobState::Waiting },
                memory_mib: spec.memory_mib,
                queue,
                run,
                submitted_ms: now,
                attempts: vec![],
                reason: None,
                after,
                spec,
            });
        }
        if let Some(cycle) = find_cycle(&jobs) {
            let names: Vec<String> = cycle.iter().map(|id| id.to_string()).collect();
            return Err(SchedulerError::Invalid { field: "after".into(), message: format!("dependency cycle: {}", names.join(" → ")) });
        }
        // Not refused (GPUs can come back, and a federation may send it elsewhere), but said.
        let fits = self.what_fits();
        for job in &mut jobs {
            job.reason = fits.never_fits(job);
        }
        // Committed before it is acknowledged, and before anything can start.
        self.save_jobs(&jobs)?;
        self.next_job += jobs.len() as u64;
        for job in jobs {
            self.index(&job);
            self.jobs.insert(job.id, job);
        }
        // A dependency that already failed dooms its dependents at once.
        for id in &ids {
            let failed_dep = self.jobs[id].after.iter().copied().find(|d| self.jobs.get(d).is_some_and(|j| matches!(j.state, JobState::Failed | JobState::Cancelled)));
            if let Some(dep) = failed_dep {
                self.finish_unstarted(*id, JobState::Cancelled, format!("dependency {dep} did not succeed"))?;
            }
        }
        self.dirty = true;
        Ok(ids)
    }

    fn start_run(&mut self, request: RunRequest) -> Result<RunStatus, SchedulerError> {
        let id = self.next_run;
        let run = Run { id, file: request.file, mode: request.mode, state: RunState::Running, created_ms: now_ms(), ended_ms: None };
        self.save_run(&run)?;
        self.next_run += 1;
        self.runs.insert(id, run);
        if let Err(e) = self.submit(request.jobs, Some(id)) {
            if let Some(run) = self.runs.get_mut(&id) {
                run.state = RunState::Stopped;
                run.ended_ms = Some(now_ms());
                let run = run.clone();
                self.save_run(&run)?;
            }
            return Err(e);
        }
        Ok(self.run_status(&self.runs[&id]))
    }

    fn stop_run(&mut self, id: RunId) -> Result<RunStatus, SchedulerError> {
        if !self.runs.contains_key(&id) {
            return Err(SchedulerError::NoSuchRun(id));
        }
        let unfinished: Vec<JobId> = self.jobs.values().filter(|j| j.run == Some(id) && !j.state.is_final()).map(|j| j.id).collect();
        for job in unfinished {
            self.cancel(job, format!("run {id} stopped"))?;
        }
        if let Some(run) = self.runs.get_mut(&id)
            && run.state == RunState::Running {
                run.state = RunState::Stopped;
                run.ended_ms = Some(now_ms());
                let run = run.clone();
                self.save_run(&run)?;
            }
        Ok(self.run_status(&self.runs[&id]))
    }

    fn transition(&mut self, id: JobId, from: JobState, to: JobState, action: &'static str) -> Result<Job, SchedulerError> {
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        if job.state != from {
            return Err(SchedulerError::Conflict { id, state: job.state.as_str(), action });
        }
        job.state = to;
        let job = job.clone();
        self.save_jobs([&job])?;
        self.dirty = true;
        Ok(job)
    }

    /// Cancels a job: at once if it is not running, else by signalling its process group; it
    /// ends as cancelled when its shim reports.
    fn cancel(&mut self, id: JobId, why: String) -> Result<(), SchedulerError> {
        let job = self.jobs.get(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        match job.state {
            JobState::Waiting | JobState::Held => self.finish_unstarted(id, JobState::Cancelled, why),
            JobState::Running => {
                let grace = self.rules().cancel_grace;
                if let Some(live) = self.live.get_mut(&id)
                    && live.cancel_requested.is_none() {
                        live.cancel_requested = Some(why);
                        if let Some(shim) = live.shim.clone() {
                            self.runtime.spawn(async move { executor::cancel(&shim, grace).await });
                        }
                    }
                Ok(())
            }
            state => Err(SchedulerError::Conflict { id, state: state.as_str(), action: "cancel" }),
        }
    }

    /// Ends a job that is not running, and whatever waited on it.
    fn finish_unstarted(&mut self, id: JobId, state: JobState, why: String) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(&id) else { return Ok(()) };
        job.state = state;
        job.reason = Some(why);
        let job = job.clone();
        self.save_jobs([&job])?;
        self.unindex(id, &job.queue);
        self.after_final(&job)
    }

    /// Dependents of a job that did not succeed are cancelled; a run whose jobs are all done is.
    fn after_final(&mut self, job: &Job) -> Result<(), SchedulerError> {
        let dependents = self.dependents.remove(&job.id).unwrap_or_default();
        if job.state != JobState::Succeeded {
            for dependent in dependents {
                if self.jobs.get(&dependent).is_some_and(|j| !j.state.is_final()) {
                    self.cancel(dependent, format!("dependency {} {}", job.id, job.state.as_str()))?;
                }
            }
        }
        if let Some(run_id) = job.run {
            let done = self.jobs.values().filter(|j| j.run == Some(run_id)).all(|j| j.state.is_final());
            if let Some(run) = self.runs.get_mut(&run_id).filter(|r| done && r.state == RunState::Running) {
                run.state = RunState::Finished;
                run.ended_ms = Some(now_ms());
                let run = run.clone();
                self.save_run(&run)?;
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn started(&mut self, id: JobId, attempt: u32, shim: Result<ShimInfo, String>) -> Result<(), SchedulerError> {
        match shim {
            Ok(shim) => {
                let Some(live) = self.live.get_mut(&id).filter(|l| l.attempt == attempt) else { return Ok(()) };
                live.shim = Some(shim.clone());
                if live.cancel_requested.is_some() {
                    let grace = self.rules().cancel_grace;
                    self.runtime.spawn(async move { executor::cancel(&shim, grace).await });
                }
                Ok(())
            }
            Err(error) => self.ended(id, attempt, Err(error)),
        }
    }

    fn ended(&mut self, id: JobId, number: u32, outcome: Result<Adoption, String>) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get(&id) else { return Ok(()) };
        if job.state != JobState::Running || job.current_attempt().is_none_or(|a| a.number != number) {
            return Ok(());
        }
        let cancelled = self.live.get(&id).and_then(|l| l.cancel_requested.clone());
        let (record, note) = match outcome {
            Ok(Adoption::Finished(record)) => (Some(record), None),
            Ok(Adoption::Lost { ran: false, reason }) => {
                // It never started: as if it had never been placed.
                let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
                job.attempts.pop();
                job.state = JobState::Waiting;
                job.reason = Some(reason);
                let job = job.clone();
                self.save_jobs([&job])?;
                self.attempt_over(id);
                self.dirty = true;
                return Ok(());
            }
            Ok(Adoption::Lost { ran: true, reason }) => (None, Some(reason)),
            Ok(Adoption::Running(_)) => (None, Some("the executor lost track of the attempt".to_string())),
            Err(error) => (None, Some(error)),
        };
        let out_of_memory = record.as_ref().is_some_and(|r| !r.success()) && self.log_says_out_of_memory(id);
        let default_retries = self.rules().default_retries;
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        let attempt = job.attempts.last_mut().ok_or(SchedulerError::NoSuchJob(id))?;
        attempt.ended_ms = Some(record.as_ref().map_or_else(now_ms, |r| r.ended_ms));
        if let Some(ExitRecord { exit_code, signal, started_ms, peak_rss_kib, .. }) = record {
            attempt.exit_code = exit_code;
            attempt.signal = signal;
            attempt.started_ms = started_ms;
            attempt.peak_rss_kib = Some(peak_rss_kib);
        }
        attempt.out_of_memory = out_of_memory;
        attempt.note = note.clone().or_else(|| cancelled.clone());
        let success = attempt.exit_code == Some(0) && note.is_none();
        let describe = describe_failure(attempt);
        let observed_peak = attempt.gpu_memory_peak_mib;

        let queue_name = job.queue.clone();
        let queue = self.queues.entry(queue_name.clone()).or_insert_with(|| QueueState::new(&queue_name));
        if let Some(why) = cancelled {
            job.state = JobState::Cancelled;
            job.reason = Some(why);
        } else if success {
            job.state = JobState::Succeeded;
            job.reason = None;
            queue.consecutive_failures = 0;
        } else {
            queue.consecutive_failures += 1;
            queue.last_error = Some(format!("job {id}: {describe}"));
            let max = self.options.rules.max_retry_before_backoff;
            if max > 0 && queue.consecutive_failures >= max {
                let until = now_ms() + u64::try_from(self.options.rules.backoff.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(queue = %queue_name, failures = queue.consecutive_failures, "queue backs off");
                queue.backoff_until_ms = Some(until);
                queue.consecutive_failures = 0;
            }
            let attempts = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX);
            if attempts <= job.retries(default_retries) {
                job.state = JobState::Waiting;
                job.reason = Some(format!("attempt {attempts} {describe}; retrying"));
                if out_of_memory {
                    // What NVML saw it hold can't exceed the GPU that was too small, so the new
                    // need is that (or the old need, if larger) plus a quarter: enough to move
                    // the retry to a GPU with more room instead of failing the same way.
                    let seen = observed_peak.max(job.memory_mib);
                    let raised = seen + seen.div_ceil(4).max(1);
                    tracing::info!(job = id, from = job.memory_mib, to = raised, "out of GPU memory; retrying with a larger need");
                    job.memory_mib = raised;
                }
            } else {
                job.state = JobState::Failed;
                job.reason = Some(describe);
            }
        }
        let queue = queue.clone();
        let job = job.clone();
        self.save_jobs([&job])?;
        self.store.save_queue(&queue)?;
        self.attempt_over(id);
        if job.state.is_final() {
            self.unindex(id, &job.queue);
            self.after_final(&job)?;
        }
        // Only where a next job may follow at once: not into a backoff, not in an empty queue.
        let backing_off = queue.backoff_until_ms.is_some_and(|t| t > now_ms());
        if !backing_off && self.queue_jobs.contains_key(&job.queue) {
            self.freed.insert(job.queue.clone(), std::time::Instant::now());
        }
        self.dirty = true;
        Ok(())
    }

    fn log_says_out_of_memory(&self, id: JobId) -> bool {
        let Some(attempt) = self.jobs.get(&id).and_then(Job::current_attempt) else { return false };
        let tail = executor::log_tail(&executor::log_path(&attempt.dir), OOM_TAIL_BYTES).unwrap_or_default();
        OOM_MARKERS.iter().any(|m| tail.contains(m))
    }

    /// Keeps each running attempt's highest observed GPU memory, which an out-of-memory retry asks for.
    fn note_gpu_peaks(&mut self) {
        for (&(job, _), &mib) in &self.observed.held {
            if let Some(attempt) = self.jobs.get_mut(&job).and_then(|j| j.attempts.last_mut()) {
                attempt.gpu_memory_peak_mib = attempt.gpu_memory_peak_mib.max(mib);
            }
        }
    }

    /// The earliest time a backoff ends or a delayed job may start that the last pass did not
    /// see pass. Compared with the last pass's clock, not the current one: a deadline that passed
    /// after that pass looked must still wake the next.
    fn next_deadline(&self) -> Option<u64> {
        let seen = self.last_pass_ms;
        let backoffs = self.queues.values().filter_map(|q| q.backoff_until_ms);
        let delays = self
            .queue_jobs
            .values()
            .filter_map(|ids| ids.iter().next())
            .filter_map(|id| self.jobs.get(id).and_then(|j| j.spec.start_at_ms));
        backoffs.chain(delays).filter(|&t| t > seen).min()
    }

    /// The jobs that may start now: per queue, in order, as many as its parallelism allows; a
    /// head that must wait (held, delayed, dependencies) holds up the rest of its queue.
    fn runnable(&mut self) -> Vec<JobId> {
        let now = now_ms();
        self.last_pass_ms = now;
        let mut heads = Vec::new();
        for (name, ids) in &self.queue_jobs {
            let queue = self.queues.get(name);
            if queue.and_then(|q| q.backoff_until_ms).is_some_and(|t| t > now) {
                continue;
            }
            let mut slots = queue.map_or(1, |q| q.parallelism.max(1));
            for id in ids {
                let Some(job) = self.jobs.get(id) else { continue };
                match job.state {
                    JobState::Running => slots = slots.saturating_sub(1),
                    JobState::Waiting => {
                        let delayed = job.spec.start_at_ms.is_some_and(|t| t > now);
                        let blocked = job.after.iter().any(|d| self.jobs.get(d).is_none_or(|dep| dep.state != JobState::Succeeded));
                        if delayed || blocked || slots == 0 {
                            break;
                        }
                        heads.push(*id);
                        slots -= 1;
                    }
                    _ => break,
                }
                if slots == 0 {
                    break;
                }
            }
        }
        heads
    }

    fn pass(&mut self) -> Result<(), SchedulerError> {
        let started = std::time::Instant::now();
        let result = self.place_heads();
        self.options.metrics.pass.observe(started.elapsed());
        result
    }

    fn place_heads(&mut self) -> Result<(), SchedulerError> {
        let heads = self.runnable();
        if heads.is_empty() {
            return Ok(());
        }
        let mut pending: Vec<PendingJob> = heads
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|job| {
                let next = self.queue_numbers.len() as u64;
                let queue = *self.queue_numbers.entry(job.queue.clone()).or_insert(next);
                let gpus = job.spec.gpus.unwrap_or_default();
                PendingJob {
                    id: job.id,
                    queue,
                    min_gpus: gpus.min,
                    max_gpus: gpus.max,
                    memory_mib: job.memory_mib,
                    priority: job.spec.priority,
                    attempts: u32::try_from(job.attempts.len()).unwrap_or(u32::MAX),
                    submitted_ms: job.submitted_ms,
                    labels: (!job.spec.labels.is_empty()).then(|| job.spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                }
            })
            .collect();
        pending.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        pending.truncate(MAX_PENDING_PER_PASS);

        let summaries = self.gpus.summaries();
        let bookings: Vec<Booking<'_>> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.current_attempt().map(|a| Booking { job: j.id, gpus: &a.gpus, need_mib: a.memory_mib }))
            .collect();
        let rules = &self.options.rules;
        let states = gpu_states(&summaries, &|i| rules.eligible(i), &bookings, &self.observed);
        let outcome = self.policy.place(&pending, &states, &rules.for_policy());
        self.last_decider = Some(match &outcome.decider {
            Decider::Plugin { name, version } => format!("{name} {version}"),
            Decider::Fallback { reason } => format!("native best fit ({reason})"),
        });
        for placement in outcome.placements {
            self.launch(placement.job, placement.gpus)?;
        }
        Ok(())
    }

    /// Records the attempt (committed) and only then starts its shim, so a crash in between
    /// leaves an attempt that adoption finds never started, not a job that runs unrecorded.
    fn launch(&mut self, id: JobId, gpus: Vec<u32>) -> Result<(), SchedulerError> {
        let simulation = self.options.simulation.clone();
        let state_dir = self.options.state_dir.clone();
        let work_dir = self.options.work_dir.clone();
        let (log_max_bytes, log_keep) = (self.options.rules.log_max_bytes, self.options.rules.log_keep);
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        let number = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX) + 1;
        let dir = attempt_dir(&state_dir, id, number);
        let visible: Vec<String> = gpus.iter().map(u32::to_string).collect();
        let mut env = BTreeMap::new();
        if let Some(machine) = simulation {
            env.insert("GANTRY_SIM_MACHINE".to_string(), machine);
            env.insert("GANTRY_SIM_GPU_MEM_MIB".to_string(), job.memory_mib.to_string());
        }
        env.extend(job.spec.env.clone());
        env.insert("CUDA_VISIBLE_DEVICES".into(), visible.join(","));
        // CUDA's default order is fastest-first; NVML's, and so gantry's, is by PCI bus.
        env.insert("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into());
        env.insert(JOB_ID_VAR.into(), id.to_string());
        env.insert("GANTRY_ATTEMPT".into(), number.to_string());
        env.insert("GANTRY_QUEUE".into(), job.queue.clone());
        let spec = AttemptSpec {
            job_id: id,
            attempt: number,
            commands: job.spec.commands.clone(),
            cwd: job.spec.cwd.clone().or(work_dir),
            env,
            log_max_bytes,
            log_keep,
        };
        job.attempts.push(Attempt::new(number, gpus, job.memory_mib, dir.clone(), now_ms()));
        job.state = JobState::Running;
        job.reason = None;
        let job = job.clone();
        self.save_jobs([&job])?;
        self.running_ids.write().insert(id);
        self.live.insert(id, Live { attempt: number, shim: None, cancel_requested: None });
        if let Some(freed) = self.freed.remove(&job.queue) {
            self.options.metrics.dispatch.observe(freed.elapsed());
        }

        let tx = self.tx.clone();
        let program = self.options.shim_program.clone();
        let runtime = self.runtime.clone();
        self.runtime.spawn_blocking(move || match executor::spawn(&program, &dir, &spec) {
            Ok(running) => {
                let _ = tx.send(Msg::Started { job: id, attempt: number, shim: Ok(running.shim.clone()) });
                runtime.spawn(async move {
                    let outcome = executor::wait(running).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Ended { job: id, attempt: number, outcome });
                });
            }
            Err(e) => {
                let _ = tx.send(Msg::Started { job: id, attempt: number, shim: Err(e.to_string()) });
            }
        });
        Ok(())
    }

    /// Waits, on the runtime, for an adopted attempt to end.
    fn watch(&self, id: JobId, number: u32, running: RunningAttempt) {
        let tx = self.tx.clone();
        self.runtime.spawn(async move {
            let outcome = executor::wait(running).await.map_err(|e| e.to_string());
            let _ = tx.send(Msg::Ended { job: id, attempt: number, outcome });
        });
    }

    fn run_status(&self, run: &Run) -> RunStatus {
        let mut counts = Counts::default();
        for job in self.jobs.values().filter(|j| j.run == Some(run.id)) {
            counts.add(job.state);
        }
        RunStatus { run: run.clone(), counts }
    }

    /// Every queue that has jobs, in name order, the job counts, and the running jobs.
    fn survey(&self) -> (Counts, Vec<QueueStatus>, Vec<RunningJob>) {
        let mut counts = Counts::default();
        let mut per_queue: BTreeMap<&str, QueueStatus> = BTreeMap::new();
        let mut running = Vec::new();
        for job in self.jobs.values() {
            counts.add(job.state);
            let entry = per_queue.entry(job.queue.as_str()).or_insert_with(|| {
                let state = self.queues.get(&job.queue);
                QueueStatus {
                    name: job.queue.clone(),
                    run: job.run,
                    counts: Counts::default(),
                    current: vec![],
                    parallelism: state.map_or(1, |q| q.parallelism.max(1)),
                    consecutive_failures: state.map_or(0, |q| q.consecutive_failures),
                    backoff_until_ms: state.and_then(|q| q.backoff_until_ms).filter(|&t| t > now_ms()),
                    last_error: state.and_then(|q| q.last_error.clone()),
                }
            });
            entry.counts.add(job.state);
            if job.state == JobState::Running {
                entry.current.push(job.id);
                running.extend(running_job(job));
            }
        }
        (counts, per_queue.into_values().collect(), running)
    }

    fn status(&self) -> Status {
        let (counts, queues, running) = self.survey();
        // Queues whose work is all done are not shown, even with an old error.
        let queues = queues.into_iter().filter(|q| q.counts.total > q.counts.succeeded + q.counts.failed + q.counts.cancelled).collect();
        Status {
            counts,
            runs: self.runs.values().map(|r| self.run_status(r)).collect(),
            queues,
            running,
            last_decider: self.last_decider.clone(),
        }
    }

    fn retry(&mut self, id: JobId) -> Result<Job, SchedulerError> {
        let job = self.jobs.get(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Err(SchedulerError::Conflict { id, state: job.state.as_str(), action: "retry" });
        }
        if let Some(dep) = job.after.iter().find(|d| self.jobs.get(d).is_some_and(|j| matches!(j.state, JobState::Failed | JobState::Cancelled))) {
            return Err(SchedulerError::Invalid { field: "after".into(), message: format!("dependency {dep} did not succeed; retry it first") });
        }
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        // Its retries count again from here: the attempts so far are history, not budget spent.
        let spent = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX);
        job.spec.retries = Some(job.spec.retries.unwrap_or(self.options.rules.default_retries).saturating_add(spent));
        job.state = JobState::Waiting;
        job.reason = Some("retried by request".into());
        let job = job.clone();
        self.save_jobs([&job])?;
        self.index(&job);
        self.dirty = true;
        Ok(job)
    }
}

fn running_job(job: &Job) -> Option<RunningJob> {
    let attempt = job.current_attempt()?;
    Some(RunningJob {
        id: job.id,
        queue: job.queue.clone(),
        gpus: attempt.gpus.clone(),
        memory_mib: attempt.memory_mib,
        started_ms: attempt.started_ms,
        commands: job.spec.commands.clone(),
    })
}

/// The most this node's eligible GPUs could ever give a job.
struct Capacity {
    eligible_gpus: u32,
    largest_mib: u64,
}

impl Capacity {
    /// Why a job can't start on this node whatever else runs, if that is so.
    fn never_fits(&self, job: &Job) -> Option<String> {
        let want = job.spec.gpus.unwrap_or_default().min;
        if want > self.eligible_gpus {
            Some(format!("needs {want} GPUs; this node has {} eligible: it waits until more are", self.eligible_gpus))
        } else if job.memory_mib > self.largest_mib {
            Some(format!("needs {} MiB per GPU; the largest eligible GPU here has {} MiB: it waits", job.memory_mib, self.largest_mib))
        } else {
            None
        }
    }
}

/// `<state>/jobs/<id>/<attempt>`: the attempt's spec, lock, log and exit record.
pub fn attempt_dir(state_dir: &std::path::Path, job: JobId, attempt: u32) -> PathBuf {
    state_dir.join("jobs").join(job.to_string()).join(attempt.to_string())
}

fn describe_failure(attempt: &Attempt) -> String {
    let how = match (attempt.exit_code, attempt.signal, &attempt.note) {
        (_, _, Some(note)) => note.clone(),
        (Some(code), _, None) => format!("exited with code {code}"),
        (None, Some(signal), None) => format!("was killed by signal {signal}"),
        (None, None, None) => "ended without a status".into(),
    };
    if attempt.out_of_memory { format!("{how} (CUDA out of memory)") } else { how }
}

/// A dependency cycle among a batch, as the ids along it, if there is one. Jobs already
/// submitted can't depend on new ones, so a cycle can only run through the batch.
fn find_cycle(jobs: &[Job]) -> Option<Vec<JobId>> {
    let edges: HashMap<JobId, &[JobId]> = jobs.iter().map(|j| (j.id, j.after.as_slice())).collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut mark: HashMap<JobId, u8> = HashMap::new();
    for start in jobs.iter().map(|j| j.id) {
        if mark.get(&start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut path = vec![start];
        let mut stack = vec![(start, 0usize)];
        mark.insert(start, 1);
        while let Some((node, next)) = stack.last_mut() {
            let deps = edges.get(node).copied().unwrap_or(&[]);
            if let Some(&dep) = deps.get(*next) {
                *next += 1;
                match mark.get(&dep).copied().unwrap_or(0) {
                    0 if edges.contains_key(&dep) => {
                        mark.insert(dep, 1);
                        path.push(dep);
                        stack.push((dep, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&n| n == dep).unwrap_or(0);
                        let mut cycle = path[from..].to_vec();
                        cycle.push(dep);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark.insert(*node, 2);
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: JobId, after: &[JobId]) -> Job {
        Job {
            id,
            spec: JobSpec::default(),
            queue: String::new(),
            run: None,
            state: JobState::Waiting,
            memory_mib: 0,
            submitted_ms: 0,
            attempts: vec![],
            reason: None,
            after: after.to_vec(),
        }
    }

    #[test]
    fn a_job_that_can_never_fit_says_why() {
        let capacity = Capacity { eligible_gpus: 2, largest_mib: 24_000 };
        let mut j = job(1, &[]);
        assert_eq!(capacity.never_fits(&j), None);
        j.spec.gpus = Some(crate::scheduler::GpuCount { min: 4, max: 8 });
        assert_eq!(capacity.never_fits(&j).as_deref(), Some("needs 4 GPUs; this node has 2 eligible: it waits until more are"));
        j.spec.gpus = None;
        j.memory_mib = 30_000;
        assert!(capacity.never_fits(&j).is_some_and(|why| why.contains("30000 MiB")));
    }

    #[test]
    fn cycles_are_found_and_named() {
        assert_eq!(find_cycle(&[job(1, &[]), job(2, &[1]), job(3, &[1, 2])]), None);
        assert_eq!(find_cycle(&[job(1, &[3]), job(2, &[1]), job(3, &[2])]), Some(vec![1, 3, 2, 1]));
        assert_eq!(find_cycle(&[job(1, &[]), job(2, &[2])]), Some(vec![2, 2]));
        // A dependency outside the batch can't close a cycle.
        assert_eq!(find_cycle(&[job(5, &[4])]), None);
    }
}
