//! New jobs and runs. A batch was checked field by field before it got here ([`Batch`]); what is
//! left to check needs the scheduler's state: that the jobs it depends on exist.

use super::Engine;
use crate::model::{After, Batch, FieldError, Job, JobId, JobState, Run, RunId, RunState, RunStatus};
use std::collections::BTreeMap;
use crate::scheduler::messages::{RunRequest, SchedulerError};

impl Engine {
    /// The providers a job names are configured, and one that may burst has one to go to.
    fn check_providers(&self, spec: &crate::model::JobSpec) -> Result<(), (&'static str, String)> {
        let names = self.remote.as_ref().map(|r| r.names()).unwrap_or_default();
        let known = || if names.is_empty() { "none is configured ([providers.NAME] in gantry.toml)".to_string() } else { format!("configured: {}", names.join(", ")) };
        if let Some(provider) = spec.provider.as_ref().filter(|p| !names.contains(p)) {
            return Err(("provider", format!("no provider '{provider}'; {}", known())));
        }
        if let Some(burst) = &spec.burst {
            if names.is_empty() {
                return Err(("burst", format!("nowhere to burst to: {}", known())));
            }
            if let Some(provider) = burst.providers.iter().find(|p| !names.contains(p)) {
                return Err(("burst.providers", format!("no provider '{provider}'; {}", known())));
            }
        }
        Ok(())
    }

    pub(super) fn submit(&mut self, batch: Batch, run: Option<RunId>) -> Result<Vec<JobId>, SchedulerError> {
        self.check_unfinished(&batch)?;
        let first = self.next_job;
        let ids: Vec<JobId> = (first..first + batch.len() as u64).map(JobId).collect();
        let now = self.now();
        let fits = self.what_fits();
        let (run_as, groups, array) = (batch.run_as(), batch.groups().to_vec(), batch.array_batch());
        // An array whose template names no queue gets one of its own, with its limit.
        let own_queue = array.filter(|_| batch.jobs().first().is_some_and(|j| j.spec.queue.is_none()));
        let mut jobs = Vec::with_capacity(batch.len());
        for (i, new) in batch.into_jobs().into_iter().enumerate() {
            let mut after = Vec::with_capacity(new.after.len());
            for dep in new.after {
                after.push(match dep {
                    After::Member(j) => ids[j],
                    After::Job(id) if self.jobs.contains_key(&id) => id,
                    After::Job(id) => return Err(FieldError::new(format!("jobs[{i}].after"), format!("job {id} does not exist")).into()),
                });
            }
            let mut spec = new.spec;
            // A queue that bursts by rule: recorded with the job, so it shows how the job runs.
            if spec.provider.is_none() && spec.burst.is_none() && spec.queue.as_deref().is_some_and(|q| self.rules().bursts_queue(q)) {
                spec.burst = Some(crate::model::Burst::default());
            }
            self.check_providers(&spec).map_err(|(field, message)| FieldError::new(format!("jobs[{i}].{field}"), message))?;
            // An array's elements share a queue of their own (see `model::array`).
            let own = if array.is_some() { format!("array{}", ids[0]) } else { format!("job{}", ids[i]) };
            let queue = match (run, &spec.queue) {
                (Some(run), Some(q)) => format!("run{run}/{q}"),
                (Some(run), None) => format!("run{run}/{own}"),
                (None, Some(q)) => q.clone(),
                (None, None) => own,
            };
            let mut job = Job {
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
                run_as,
                groups: groups.clone(),
                redacted: false,
                usage: None,
                unanswered: None,
                array: new.array_index.map(|index| crate::model::ArrayPlace { id: ids[0], index }),
            };
            if let Some((field, message)) = fits.refuses(&job) {
                return Err(FieldError::new(format!("jobs[{i}].{field}"), message).into());
            }
            // Not refused (GPUs can come back, rules change), but said.
            job.reason = fits.never_fits(&job);
            jobs.push(job);
        }
        // Committed before it is acknowledged, and before anything can start.
        let mut array_queue = None;
        if let Some(array) = own_queue
            && let Some(queue) = jobs.first().map(|j| j.queue.clone())
        {
            let parallelism = array.max_running.unwrap_or_else(|| u32::try_from(jobs.len()).unwrap_or(u32::MAX));
            let state = self.queues.entry(queue.clone()).or_insert_with(|| crate::model::QueueState::new(&queue));
            state.parallelism = parallelism.max(1);
            array_queue = Some(state.clone());
        }
        self.save_jobs_and_queue(&jobs, array_queue.as_ref())?;
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

    /// Refuses a batch that would take an owner past `quotas.max_jobs_per_user`.
    fn check_unfinished(&self, batch: &Batch) -> Result<(), SchedulerError> {
        let mut more: BTreeMap<&str, usize> = BTreeMap::new();
        for job in batch.jobs() {
            *more.entry(job.spec.owner.as_deref().unwrap_or_default()).or_default() += 1;
        }
        let mut counts = more.into_iter().map(|(owner, more)| (owner, (self.unfinished.get(owner).copied().unwrap_or(0), more)));
        let limit = self.options.rules.quotas.max_jobs_per_user;
        match counts.find(|(_, (unfinished, more))| unfinished + more > limit) {
            Some((owner, (unfinished, more))) => Err(SchedulerError::TooMany { owner: owner.to_string(), unfinished, more, limit }),
            None => Ok(()),
        }
    }

    pub(super) fn start_run(&mut self, request: RunRequest) -> Result<RunStatus, SchedulerError> {
        if request.exclusive
            && let Some(running) = self.runs.values().rev().find(|r| r.file == request.file && r.state == RunState::Running)
        {
            return Err(SchedulerError::AlreadyRunning { file: request.file, run: running.id });
        }
        let id = RunId(self.next_run);
        let run = Run { id, file: request.file, mode: request.mode, state: RunState::Running, created_ms: self.now(), ended_ms: None };
        self.save_run(&run)?;
        self.next_run += 1;
        self.runs.insert(id, run);
        if let Err(e) = self.submit(request.batch, Some(id)) {
            self.end_run(id, RunState::Stopped)?;
            return Err(e);
        }
        Ok(self.run_status(&self.runs[&id]))
    }
}
