//! Jobs that name a provider: their attempts are handed to it instead of placed on this node's
//! GPUs. They keep everything else a job has (queue order, dependencies, retries, cancel, events),
//! because from here on they are attempts like any other; only where they run differs.

use super::Engine;
use crate::model::{Attempt, Job, JobId, JobState, RemoteAttempt, RemoteCost, UnansweredSubmit};
use crate::scheduler::messages::SchedulerError;
use crate::scheduler::remote::{unavailable_backoff, RemoteSpec};

impl Engine {
    /// Hands runnable heads to their providers; one commit for all of them before any is
    /// submitted. A head whose provider is backing off waits, and is told why.
    pub(super) fn launch_remote(&mut self, heads: Vec<(JobId, String)>) -> Result<(), SchedulerError> {
        let now = self.now();
        let mut starts = Vec::new();
        for (id, provider) in heads {
            let Some(job) = self.jobs.get(&id) else { continue };
            if let Some(backoff) = self.provider_backoff.get(&provider).filter(|b| b.until_ms > now) {
                let why = format!("{}; asked again in {} s", backoff.why, backoff.until_ms.saturating_sub(now).div_ceil(1000));
                self.explain(id, why)?;
                continue;
            }
            let Some(remote) = &self.remote else { continue };
            let number = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX) + 1;
            let key = match &job.unanswered {
                Some(unanswered) if unanswered.provider == provider => unanswered.key.clone(),
                _ => remote.key(id, number),
            };
            let dir = super::pass::attempt_dir(&self.options.state_dir, id, number);
            let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
            let mut attempt = Attempt::new(number, Vec::new(), job.memory_mib, dir, now);
            attempt.remote = Some(RemoteAttempt { provider, key, ..RemoteAttempt::default() });
            job.attempts.push(attempt);
            job.state = JobState::Running;
            job.reason = None;
            starts.push(id);
        }
        if starts.is_empty() {
            return Ok(());
        }
        let jobs: Vec<Job> = starts.iter().map(|id| self.jobs[id].clone()).collect();
        self.save_jobs(&jobs)?;
        for job in &jobs {
            let Some(attempt) = job.current_attempt().cloned() else { continue };
            let Some(remote) = attempt.remote.clone() else { continue };
            self.follow_remote(job.id, &attempt, remote)?;
        }
        Ok(())
    }

    /// Submits (or, after a restart, finds again) a remote attempt and follows it.
    pub(super) fn follow_remote(&mut self, id: JobId, attempt: &Attempt, known: RemoteAttempt) -> Result<(), SchedulerError> {
        if !self.remote.as_ref().is_some_and(|r| r.has(&known.provider)) {
            let reason = format!("provider {} is no longer configured", known.provider);
            return self.ended(id, attempt.number, Ok(crate::executor::Adoption::Lost { ran: known.id.is_some(), reason }));
        }
        if !self.live.contains_key(&id) {
            self.track(id, attempt.number);
        }
        let job = self.jobs.get(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        let options = &self.options;
        let spec = RemoteSpec {
            provider: known.provider.clone(),
            key: known.key.clone(),
            name: job.spec.labels.get("name").cloned().unwrap_or_else(|| format!("gantry job {id}")),
            commands: job.spec.commands.clone(),
            gpus: job.spec.gpus.unwrap_or_default().min,
            memory_mib: job.memory_mib,
            cwd: job.spec.cwd.clone().or_else(|| options.work_dir.clone()),
            env: remote_env(job, attempt.number),
            run_as: job.run_as,
            dir: attempt.dir.clone(),
            log_max_bytes: options.rules.log_max_bytes,
            log_keep: options.rules.log_keep,
            started_ms: attempt.started_ms,
            time_limit_s: job.spec.time_limit_s,
            image: job.spec.image.clone(),
            gpu_type: job.spec.gpu_type.clone(),
            cpus: job.spec.cpus,
            ram_gib: job.spec.ram_gib,
            budget: self.budget_left(job),
            max_price: job.spec.provider.is_none().then(|| self.rules().burst_max_price.clone()).flatten(),
        };
        if let Some(remote) = &self.remote {
            remote.run(id, attempt.number, spec, known, self.tx.clone());
        }
        Ok(())
    }

    /// The provider took the attempt: its id is committed, so a restart follows this job.
    /// A restarted daemon re-attaching is told no price, and keeps the one it had.
    pub(super) fn remote_submitted(&mut self, id: JobId, number: u32, remote_id: String, log_path: Option<String>, state: String, price: Option<RemoteCost>) -> Result<(), SchedulerError> {
        let Some(provider) = self.current_remote(id, number).map(|r| r.provider.clone()) else { return Ok(()) };
        self.provider_backoff.remove(&provider);
        let Some(job) = self.jobs.get_mut(&id) else { return Ok(()) };
        job.unanswered = None;
        if let Some(remote) = job.attempts.last_mut().and_then(|a| a.remote.as_mut()) {
            remote.id = Some(remote_id.clone());
            remote.log_path = log_path;
            remote.state = Some(state);
            if price.is_some() {
                remote.cost = price;
            }
        }
        let job = job.clone();
        self.save_jobs([&job])?;
        // Cancelled while it was being submitted.
        if self.live.get(&id).is_some_and(|l| l.attempt == number && l.cancel_requested.is_some())
            && let Some(remote) = &self.remote
        {
            remote.cancel(provider, remote_id);
        }
        Ok(())
    }

    pub(super) fn remote_state(&mut self, id: JobId, number: u32, state: String, started_ms: Option<u64>) -> Result<(), SchedulerError> {
        if self.current_remote(id, number).is_none() {
            return Ok(());
        }
        let now = self.now();
        let Some(job) = self.jobs.get_mut(&id) else { return Ok(()) };
        if let Some(remote) = job.attempts.last_mut().and_then(|a| a.remote.as_mut()) {
            remote.state = Some(state);
            if let Some(cost) = &mut remote.cost {
                cost.running_since_ms = cost.running_since_ms.or(started_ms);
                cost.count_to(now);
            }
        }
        let job = job.clone();
        self.save_jobs([&job])
    }

    /// The provider will not run the job as it is (too many GPUs for its nodes, a field it
    /// refuses): it fails with the provider's reason, and is not retried, since the same request
    /// would be refused again. A job that was bursting waits instead, if another of its
    /// providers or this node could still run it.
    pub(super) fn remote_refused(&mut self, id: JobId, number: u32, reason: String) -> Result<(), SchedulerError> {
        let Some(provider) = self.current_remote(id, number).map(|r| r.provider.clone()) else { return Ok(()) };
        if self.burst_refused(id, provider) {
            return self.taken_back(id, format!("{reason}; it waits for a GPU here or another provider"));
        }
        let now = self.now();
        let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
        if let Some(attempt) = job.attempts.last_mut() {
            attempt.ended_ms = Some(now);
            attempt.note = Some(reason.clone());
        }
        job.state = JobState::Failed;
        job.reason = Some(reason);
        let job = job.clone();
        self.save_jobs([&job])?;
        self.attempt_over(id);
        self.unindex(&job);
        self.after_final(&job)
    }

    /// The provider could not be asked: the attempt never began, the job waits, and the
    /// provider is not asked again before its backoff ends.
    pub(super) fn remote_unavailable(&mut self, id: JobId, number: u32, provider: String, reason: String) -> Result<(), SchedulerError> {
        let Some(key) = self.current_remote(id, number).map(|r| r.key.clone()) else { return Ok(()) };
        let now = self.now();
        // The request may have reached the provider and only its answer been lost.
        if let Some(job) = self.jobs.get_mut(&id) {
            let since_ms = job.unanswered.as_ref().filter(|u| u.provider == provider && u.key == key).map_or(now, |u| u.since_ms);
            job.unanswered = Some(UnansweredSubmit { provider: provider.clone(), key, since_ms });
        }
        let failures = self.provider_backoff.get(&provider).map_or(0, |b| b.failures);
        let delay = u64::try_from(unavailable_backoff(failures).as_millis()).unwrap_or(u64::MAX);
        self.provider_backoff.insert(provider, super::ProviderBackoff { until_ms: now.saturating_add(delay), failures: failures + 1, why: reason.clone() });
        self.taken_back(id, reason)
    }

    /// A remote attempt that never began: the job waits, or is cancelled if that was asked
    /// meanwhile.
    fn taken_back(&mut self, id: JobId, reason: String) -> Result<(), SchedulerError> {
        let cancelled = self.live.get(&id).and_then(|l| l.cancel_requested.clone());
        self.never_started(id, reason)?;
        if let Some(why) = cancelled {
            self.cancel(id, why)?;
        }
        Ok(())
    }

    /// The earliest time a provider that could not be reached is asked again.
    pub(super) fn provider_deadline(&self) -> Option<u64> {
        self.provider_backoff.values().map(|b| b.until_ms).min()
    }

    /// The remote part of a job's current attempt, if it is `number` and still running.
    fn current_remote(&self, id: JobId, number: u32) -> Option<&RemoteAttempt> {
        let job = self.jobs.get(&id).filter(|j| j.state == JobState::Running)?;
        job.current_attempt().filter(|a| a.number == number)?.remote.as_ref()
    }

    /// Cancels a running remote attempt: the provider is asked once its id is known.
    pub(super) fn cancel_remote(&self, id: JobId) -> bool {
        let Some(job) = self.jobs.get(&id) else { return false };
        let Some(remote) = job.current_attempt().and_then(|a| a.remote.as_ref()) else { return false };
        if let (Some(remote_id), Some(jobs)) = (&remote.id, &self.remote) {
            jobs.cancel(remote.provider.clone(), remote_id.clone());
        }
        true
    }
}

/// A remote attempt's environment: the job's own, and who it is. Not the GPUs (the provider
/// chooses them and sets `CUDA_VISIBLE_DEVICES`), and not a token for this daemon, which a job
/// on another machine has no business holding.
fn remote_env(job: &Job, number: u32) -> std::collections::BTreeMap<String, String> {
    let mut env = job.spec.env.clone();
    env.remove("CUDA_VISIBLE_DEVICES");
    env.insert(crate::model::JOB_ID_VAR.into(), job.id.to_string());
    env.insert("GANTRY_ATTEMPT".into(), number.to_string());
    env.insert("GANTRY_QUEUE".into(), job.queue.clone());
    env
}
