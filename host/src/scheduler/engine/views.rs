//! Answers that only read the scheduler's state, each made in one visit to the thread.

use super::Engine;
use crate::model::{
    Counts, CurrentJob, Job, JobFilter, JobState, QueueProgress, QueueStatus, Run, RunProgress, RunState, RunStatus, RunningJob, Status, Usage,
};
use std::collections::BTreeMap;

impl Engine {
    /// Jobs matching `filter`.
    pub(super) fn list(&self, filter: &JobFilter) -> Vec<Job> {
        self.jobs.values().filter(|j| filter.matches(j)).cloned().collect()
    }

    pub(super) fn run_status(&self, run: &Run) -> RunStatus {
        let mut counts = Counts::default();
        for job in self.jobs.values().filter(|j| j.run == Some(run.id)) {
            counts.add(job.state);
        }
        RunStatus { run: run.clone(), counts }
    }

    pub(super) fn running(&self) -> Vec<RunningJob> {
        self.live.keys().filter_map(|id| self.jobs.get(id)).filter_map(running_job).collect()
    }

    /// Every queue that has jobs, in name order, the job counts, and the running jobs.
    pub(super) fn survey(&self) -> (Counts, Vec<QueueStatus>, Vec<RunningJob>) {
        let mut counts = Counts::default();
        let mut per_queue: BTreeMap<&str, QueueStatus> = BTreeMap::new();
        let mut running = Vec::new();
        let now = self.now();
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
                    backoff_until_ms: state.and_then(|q| q.backoff_until_ms).filter(|&t| t > now),
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

    pub(super) fn status(&self) -> Status {
        let (counts, queues, running) = self.survey();
        // Queues whose work is all done are not shown, even with an old error.
        let queues = queues.into_iter().filter(|q| q.counts.unfinished() > 0).collect();
        Status { counts, runs: self.runs.values().map(|r| self.run_status(r)).collect(), queues, running, last_decider: self.last_decider.clone() }
    }

    /// Each running run, and each of its queues: counts, the job running now, the last error.
    pub(super) fn progress(&self) -> Vec<RunProgress> {
        let mut out = Vec::new();
        for run in self.runs.values().filter(|r| r.state == RunState::Running) {
            let prefix = format!("run{}/", run.id);
            let mut queues: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
            let mut counts = Counts::default();
            for job in self.jobs.values().filter(|j| j.run == Some(run.id)) {
                counts.add(job.state);
                queues.entry(job.queue.as_str()).or_default().push(job);
            }
            let mut gpus_used: Vec<u32> = queues.values().flatten().flat_map(|j| j.gpus_held().iter().copied()).collect();
            gpus_used.sort_unstable();
            gpus_used.dedup();
            let queues = queues
                .into_iter()
                .map(|(name, members)| {
                    let mut counts = Counts::default();
                    members.iter().for_each(|j| counts.add(j.state));
                    let current = members.iter().position(|j| j.state == JobState::Running).map(|i| CurrentJob {
                        id: members[i].id,
                        position: i + 1,
                        first_command: members[i].spec.commands.first().cloned().unwrap_or_default(),
                        gpus: members[i].gpus_held().to_vec(),
                        owner: members[i].spec.owner.clone(),
                    });
                    QueueProgress {
                        id: name.strip_prefix(&prefix).unwrap_or(name).to_string(),
                        counts,
                        current,
                        last_error: self.queues.get(name).and_then(|q| q.last_error.clone()),
                    }
                })
                .collect();
            out.push(RunProgress { status: RunStatus { run: run.clone(), counts }, gpus_used, queues });
        }
        out
    }

    /// `owner`'s jobs by state, and the GPU time of their attempts.
    pub(super) fn usage(&self, owner: &str) -> Usage {
        let now = self.now();
        let mut usage = Usage::default();
        let mut gpu_ms = 0u64;
        for job in self.jobs.values().filter(|j| j.spec.owner.as_deref() == Some(owner)) {
            usage.jobs_submitted += 1;
            match job.state {
                JobState::Running => usage.jobs_running += 1,
                JobState::Succeeded => usage.jobs_succeeded += 1,
                JobState::Failed => usage.jobs_failed += 1,
                _ => {}
            }
            gpu_ms += job.attempts.iter().map(|a| a.ended_ms.unwrap_or(now).saturating_sub(a.started_ms) * a.gpus.len() as u64).sum::<u64>();
        }
        usage.gpu_hours = gpu_ms as f64 / 3_600_000.0;
        usage
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
        owner: job.spec.owner.clone(),
    })
}
