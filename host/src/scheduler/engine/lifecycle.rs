//! A job's life after its submission: held and released, cancelled, retried; its attempts
//! starting and ending; its queue's failure count and backoff; the dependents and the run that
//! follow its end.

use super::{Engine, Live};
use crate::executor::{self, Adoption, ExitRecord, ShimInfo};
use crate::model::{Attempt, FieldError, Job, JobId, JobState, QueueState, RunId, RunState, RunStatus, Scope};
use crate::scheduler::gpus::Observation;
use crate::scheduler::messages::SchedulerError;

/// How many of a failed attempt's last log bytes are searched for an out-of-memory message.
const OOM_TAIL_BYTES: u64 = 8192;

/// The messages CUDA frameworks print when an allocation fails.
const OOM_MARKERS: &[&str] = &["CUDA out of memory", "OutOfMemoryError", "CUDA_ERROR_OUT_OF_MEMORY", "cudaErrorMemoryAllocation", "RESOURCE_EXHAUSTED: Out of memory"];

/// How an attempt that ran came to an end, as far as the daemon knows.
struct Ending {
    record: Option<ExitRecord>,
    /// Why it ended other than by its own exit, when it did.
    note: Option<String>,
    cancelled: Option<String>,
    out_of_memory: bool,
}

impl Engine {
    /// The job, if it exists and `scope` may touch it.
    pub(super) fn owned(&self, id: JobId, scope: &Scope) -> Result<&Job, SchedulerError> {
        let job = self.jobs.get(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        if !scope.allows(job.spec.owner.as_deref()) {
            let owner = job.spec.owner.clone().unwrap_or_else(|| "nobody".into());
            return Err(SchedulerError::Forbidden { job: id, owner });
        }
        Ok(job)
    }

    pub(super) fn transition(&mut self, id: JobId, scope: &Scope, from: JobState, to: JobState, action: &'static str) -> Result<Job, SchedulerError> {
        let state = self.owned(id, scope)?.state;
        if state != from {
            return Err(SchedulerError::Conflict { id, state: state.as_str(), action });
        }
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        job.state = to;
        let job = job.clone();
        self.save_jobs([&job])?;
        self.dirty = true;
        Ok(job)
    }

    /// A new priority for a job that has not started: its place among the waiting jobs changes
    /// at the next pass (the order is priority, then its owner's recent use, then age).
    pub(super) fn set_priority(&mut self, id: JobId, scope: &Scope, priority: i32) -> Result<Job, SchedulerError> {
        let state = self.owned(id, scope)?.state;
        if !matches!(state, JobState::Waiting | JobState::Held) {
            return Err(SchedulerError::Conflict { id, state: state.as_str(), action: "a new priority" });
        }
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        job.spec.priority = priority;
        let job = job.clone();
        self.save_jobs([&job])?;
        self.dirty = true;
        Ok(job)
    }

    pub(super) fn cancel_request(&mut self, id: JobId, scope: &Scope) -> Result<Job, SchedulerError> {
        self.owned(id, scope)?;
        self.cancel(id, "cancelled by request".into())?;
        Ok(self.jobs[&id].clone())
    }

    /// Cancels a job: at once if it is not running, else by signalling its process group; it
    /// ends as cancelled when its shim reports.
    pub(super) fn cancel(&mut self, id: JobId, why: String) -> Result<(), SchedulerError> {
        let job = self.jobs.get(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        match job.state {
            JobState::Waiting | JobState::Held => self.finish_unstarted(id, JobState::Cancelled, why),
            JobState::Running => {
                let grace = self.rules().cancel_grace;
                if let Some(live) = self.live.get_mut(&id)
                    && live.cancel_requested.is_none()
                {
                    live.cancel_requested = Some(why);
                    let shim = live.shim.clone();
                    if !self.cancel_remote(id)
                        && let Some(shim) = shim
                    {
                        self.launcher.cancel(shim, grace);
                    }
                }
                Ok(())
            }
            state => Err(SchedulerError::Conflict { id, state: state.as_str(), action: "cancel" }),
        }
    }

    pub(super) fn retry(&mut self, id: JobId, scope: &Scope) -> Result<Job, SchedulerError> {
        let job = self.owned(id, scope)?;
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Err(SchedulerError::Conflict { id, state: job.state.as_str(), action: "retry" });
        }
        if let Some(dep) = job.after.iter().find(|d| self.jobs.get(d).is_some_and(|j| matches!(j.state, JobState::Failed | JobState::Cancelled))) {
            return Err(FieldError::new("after", format!("dependency {dep} did not succeed; retry it first")).into());
        }
        let default_retries = self.rules().default_retries;
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        // Its retries count again from here: the attempts so far are history, not budget spent.
        let spent = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX);
        job.spec.retries = Some(job.spec.retries.unwrap_or(default_retries).saturating_add(spent));
        job.state = JobState::Waiting;
        job.reason = Some("retried by request".into());
        let job = job.clone();
        self.save_jobs([&job])?;
        self.index(&job);
        self.dirty = true;
        Ok(job)
    }

    /// Stops a run, if `scope` may touch every job of it: its waiting jobs are cancelled, its
    /// running ones signalled.
    pub(super) fn stop_run(&mut self, id: RunId, scope: &Scope) -> Result<RunStatus, SchedulerError> {
        if !self.runs.contains_key(&id) {
            return Err(SchedulerError::NoSuchRun(id));
        }
        let members: Vec<JobId> = self.jobs.values().filter(|j| j.run == Some(id)).map(|j| j.id).collect();
        for &job in &members {
            self.owned(job, scope)?;
        }
        // Stopped before its jobs are cancelled: the last of them ending must not make it
        // "finished".
        self.end_run(id, RunState::Stopped)?;
        for job in members {
            if !self.jobs[&job].state.is_final() {
                self.cancel(job, format!("run {id} stopped"))?;
            }
        }
        Ok(self.run_status(&self.runs[&id]))
    }

    /// Marks a running run as over.
    pub(super) fn end_run(&mut self, id: RunId, state: RunState) -> Result<(), SchedulerError> {
        let now = self.now();
        if let Some(run) = self.runs.get_mut(&id).filter(|r| r.state == RunState::Running) {
            run.state = state;
            run.ended_ms = Some(now);
            let run = run.clone();
            self.save_run(&run)?;
        }
        Ok(())
    }

    /// Ends a job that is not running, and whatever waited on it.
    pub(super) fn finish_unstarted(&mut self, id: JobId, state: JobState, why: String) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(&id) else { return Ok(()) };
        job.state = state;
        job.reason = Some(why);
        let job = job.clone();
        self.save_jobs([&job])?;
        self.unindex(&job);
        self.after_final(&job)
    }

    /// Dependents of a job that did not succeed are cancelled; a run whose jobs are all done is.
    pub(super) fn after_final(&mut self, job: &Job) -> Result<(), SchedulerError> {
        let dependents = self.dependents.remove(&job.id).unwrap_or_default();
        if job.state != JobState::Succeeded {
            for dependent in dependents {
                if self.jobs.get(&dependent).is_some_and(|j| !j.state.is_final()) {
                    self.cancel(dependent, format!("dependency {} {}", job.id, job.state.as_str()))?;
                }
            }
        }
        if let Some(run) = job.run
            && self.jobs.values().filter(|j| j.run == Some(run)).all(|j| j.state.is_final())
        {
            self.end_run(run, RunState::Finished)?;
        }
        self.dirty = true;
        Ok(())
    }

    pub(super) fn started(&mut self, id: JobId, attempt: u32, shim: Result<ShimInfo, String>) -> Result<(), SchedulerError> {
        match shim {
            Ok(shim) => {
                let Some(live) = self.live.get_mut(&id).filter(|l| l.attempt == attempt) else { return Ok(()) };
                live.shim = Some(shim.clone());
                if live.cancel_requested.is_some() {
                    let grace = self.rules().cancel_grace;
                    self.launcher.cancel(shim, grace);
                }
                Ok(())
            }
            Err(error) => self.ended(id, attempt, Err(error)),
        }
    }

    /// An attempt is over, as its shim, the executor or adoption tell.
    pub(super) fn ended(&mut self, id: JobId, number: u32, outcome: Result<Adoption, String>) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get(&id) else { return Ok(()) };
        if job.state != JobState::Running || job.current_attempt().is_none_or(|a| a.number != number) {
            return Ok(());
        }
        let cancelled = self.live.get(&id).and_then(|l| l.cancel_requested.clone());
        let timed_out = self.live.get(&id).and_then(|l| l.timed_out.clone());
        let (record, note) = match outcome {
            Ok(Adoption::Finished(record)) => (Some(record), timed_out),
            Ok(Adoption::Lost { ran: false, reason }) => return self.never_started(id, reason),
            Ok(Adoption::Lost { ran: true, reason }) => (None, Some(reason)),
            Ok(Adoption::Running(_)) => (None, Some("the executor lost track of the attempt".to_string())),
            Err(error) => (None, Some(error)),
        };
        let out_of_memory = record.as_ref().is_some_and(|r| !r.success()) && self.log_says_out_of_memory(id);
        let job = self.record_ending(id, Ending { record, note, cancelled, out_of_memory })?;
        self.attempt_over(id);
        if job.state.is_final() {
            self.unindex(&job);
            self.after_final(&job)?;
        }
        // Only where a next job may follow at once: not into a backoff, not in an empty queue.
        let backing_off = self.queues.get(&job.queue).and_then(|q| q.backoff_until_ms).is_some_and(|t| t > self.now());
        if !backing_off && self.queue_jobs.contains_key(&job.queue) {
            self.freed.insert(job.queue.clone(), std::time::Instant::now());
        }
        self.dirty = true;
        Ok(())
    }

    /// The attempt's shim never recorded itself: as if the job had never been placed.
    pub(super) fn never_started(&mut self, id: JobId, reason: String) -> Result<(), SchedulerError> {
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        job.attempts.pop();
        job.state = JobState::Waiting;
        job.reason = Some(reason);
        let job = job.clone();
        self.save_jobs([&job])?;
        self.attempt_over(id);
        self.dirty = true;
        Ok(())
    }

    /// Writes how the attempt ended into it, moves the job to its next state, and updates its
    /// queue's failure count; both are committed, together.
    fn record_ending(&mut self, id: JobId, ending: Ending) -> Result<Job, SchedulerError> {
        self.burst_attempt_over(id);
        let default_retries = self.rules().default_retries;
        let (max_failures, backoff) = (self.rules().max_retry_before_backoff, self.rules().backoff);
        let now = self.now();
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        let attempt = job.attempts.last_mut().ok_or(SchedulerError::NoSuchJob(id))?;
        attempt.ended_ms = Some(ending.record.as_ref().map_or(now, |r| r.ended_ms));
        if let Some(ExitRecord { exit_code, signal, started_ms, peak_rss_kib, .. }) = ending.record {
            attempt.exit_code = exit_code;
            attempt.signal = signal;
            attempt.started_ms = started_ms;
            attempt.peak_rss_kib = Some(peak_rss_kib);
            if let Some(cost) = attempt.remote.as_mut().and_then(|r| r.cost.as_mut()) {
                cost.running_since_ms = cost.running_since_ms.or(Some(started_ms));
            }
        }
        if let (Some(cost), Some(ended)) = (attempt.remote.as_mut().and_then(|r| r.cost.as_mut()), attempt.ended_ms) {
            cost.count_to(ended);
        }
        attempt.out_of_memory = ending.out_of_memory;
        attempt.note = ending.note.clone().or_else(|| ending.cancelled.clone());
        let success = attempt.exit_code == Some(0) && ending.note.is_none();
        let failure = describe_failure(attempt);
        let observed_peak = attempt.gpu_memory_peak_mib;

        let queue = self.queues.entry(job.queue.clone()).or_insert_with(|| QueueState::new(&job.queue));
        if let Some(why) = ending.cancelled {
            job.state = JobState::Cancelled;
            job.reason = Some(why);
        } else if success {
            job.state = JobState::Succeeded;
            job.reason = None;
            queue.consecutive_failures = 0;
        } else {
            count_failure(queue, format!("job {id}: {failure}"), max_failures, backoff, now);
            let attempts = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX);
            if attempts <= job.retries(default_retries) {
                job.state = JobState::Waiting;
                job.reason = Some(format!("attempt {attempts} {failure}; retrying"));
                if ending.out_of_memory {
                    raise_need(job, observed_peak);
                }
            } else {
                job.state = JobState::Failed;
                job.reason = Some(failure);
            }
        }
        let (queue, job) = (queue.clone(), job.clone());
        self.save_jobs_and_queue([&job], Some(&queue))?;
        self.count_use(id);
        Ok(job)
    }

    fn log_says_out_of_memory(&self, id: JobId) -> bool {
        let Some(attempt) = self.jobs.get(&id).and_then(Job::current_attempt) else { return false };
        let tail = executor::log_tail(&executor::log_path(&attempt.dir), OOM_TAIL_BYTES).unwrap_or_default();
        OOM_MARKERS.iter().any(|m| tail.contains(m))
    }

    /// A new GPU sample: what the running jobs hold now, and the peaks an out-of-memory retry
    /// asks for.
    pub(super) fn gpus_changed(&mut self) {
        let running = self.running_ids.read().clone();
        self.observed = Observation::of(&self.gpus.summaries(), &|job| running.contains(&job));
        for (&(job, _), &mib) in &self.observed.held {
            if let Some(attempt) = self.jobs.get_mut(&job).and_then(|j| j.attempts.last_mut()) {
                attempt.gpu_memory_peak_mib = attempt.gpu_memory_peak_mib.max(mib);
            }
        }
        self.dirty = true;
    }

    /// Tracks an attempt that was just placed until its shim reports.
    pub(super) fn track(&mut self, id: JobId, attempt: u32) {
        self.running_ids.write().insert(id);
        self.live.insert(id, Live { attempt, shim: None, cancel_requested: None, timed_out: None });
    }
}

/// One more failure in a row for the queue; after `max` of them it pauses for `backoff` (seed
/// 004), and counts from zero again.
fn count_failure(queue: &mut QueueState, error: String, max: u32, backoff: std::time::Duration, now: u64) {
    queue.consecutive_failures += 1;
    queue.last_error = Some(error);
    if max > 0 && queue.consecutive_failures >= max {
        let until = now + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(queue = %queue.name, failures = queue.consecutive_failures, "queue backs off");
        queue.backoff_until_ms = Some(until);
        queue.consecutive_failures = 0;
    }
}

/// After a CUDA out-of-memory failure. What NVML saw the job hold can't exceed the GPU that was
/// too small, so the new need is that (or the old need, if larger) plus a quarter: enough to move
/// the retry to a GPU with more room instead of failing the same way.
fn raise_need(job: &mut Job, observed_peak_mib: u64) {
    let seen = observed_peak_mib.max(job.memory_mib);
    let raised = seen + seen.div_ceil(4).max(1);
    tracing::info!(job = %job.id, from = job.memory_mib, to = raised, "out of GPU memory; retrying with a larger need");
    job.memory_mib = raised;
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
