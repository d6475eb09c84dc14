//! When a new job would start here, as `gantry offers`, `submit --dry-run` and the dashboard tell
//! someone deciding whether to wait or pay. Each running job ends at its time limit or, without
//! one, after the typical run time of its command here (else of its queue); the jobs waiting
//! ahead take the GPUs that free first, one after another, for as long; the new job then needs
//! as many of them. Whole GPUs: jobs that would share one by memory are not fitted together, so
//! the estimate errs late.
//!
//! The burst decision does not use this: it leaves early only on time limits, which are promises,
//! where a typical run time is a guess.

use super::Engine;
use crate::model::{Job, JobState};
use std::collections::HashMap;

/// The typical run time of a command (or queue) is the median of its last this many successes.
const RECENT: usize = 20;

/// Run times of the successful local attempts here, by command and by queue, oldest first.
#[derive(Default)]
struct History {
    by_command: HashMap<String, Vec<u64>>,
    by_queue: HashMap<String, Vec<u64>>,
}

fn command_key(job: &Job) -> String {
    job.spec.commands.join("\n")
}

impl History {
    fn of<'a>(jobs: impl Iterator<Item = &'a Job>) -> Self {
        let mut runs: Vec<(u64, u64, &Job)> = jobs
            .filter(|j| j.state == JobState::Succeeded)
            .filter_map(|j| {
                let attempt = j.current_attempt().filter(|a| a.remote.is_none())?;
                let ended = attempt.ended_ms?;
                Some((ended, ended.saturating_sub(attempt.started_ms), j))
            })
            .collect();
        runs.sort_unstable_by_key(|&(ended, _, j)| (ended, j.id));
        let mut history = History::default();
        for (_, run_ms, job) in runs {
            history.by_command.entry(command_key(job)).or_default().push(run_ms);
            if let Some(queue) = &job.spec.queue {
                history.by_queue.entry(queue.clone()).or_default().push(run_ms);
            }
        }
        history
    }

    fn typical_ms(&self, job: &Job) -> Option<u64> {
        let runs = self.by_command.get(&command_key(job)).or_else(|| job.spec.queue.as_ref().and_then(|q| self.by_queue.get(q)))?;
        let mut recent = runs[runs.len().saturating_sub(RECENT)..].to_vec();
        recent.sort_unstable();
        recent.get(recent.len() / 2).copied()
    }
}

/// How long an attempt of `job` runs: its time limit, else its typical run time; whether the
/// latter was used.
fn run_ms(job: &Job, history: &History) -> Option<(u64, bool)> {
    match job.spec.time_limit_s {
        Some(limit) => Some((limit.saturating_mul(1000), false)),
        None => history.typical_ms(job).map(|t| (t, true)),
    }
}

/// The estimate: when, how many jobs were counted ahead, and how many run times were guessed
/// from history rather than taken from a limit.
pub(super) struct Estimate {
    pub start_ms: Option<u64>,
    pub ahead: usize,
    pub from_history: usize,
}

impl Engine {
    /// When a job of `gpus` GPUs submitted now, at the default priority, could start here.
    pub(super) fn estimate_start(&self, gpus: u32, now: u64) -> Estimate {
        let history = History::of(self.jobs.values());
        let mut from_history = 0;
        let ends = |job: &Job, guessed: &mut usize| {
            let attempt = job.current_attempt()?;
            let (run, guess) = run_ms(job, &history)?;
            *guessed += usize::from(guess);
            // One that ran past its typical time ends any moment now.
            Some(attempt.started_ms.saturating_add(run).max(now))
        };
        let mut free: Vec<u64> = self.free_at(now, |job| ends(job, &mut from_history)).into_values().collect();
        let mut ahead: Vec<&Job> = self.jobs.values().filter(|j| j.state == JobState::Waiting && j.spec.provider.is_none() && j.spec.priority >= 0).collect();
        ahead.sort_unstable_by_key(|j| (std::cmp::Reverse(j.spec.priority), j.submitted_ms, j.id));
        for job in &ahead {
            free.sort_unstable();
            let need = usize::try_from(job.spec.gpus.unwrap_or_default().min.max(1)).unwrap_or(usize::MAX);
            let Some(&start) = free.get(need - 1) else { continue };
            match run_ms(job, &history) {
                Some((run, guess)) => {
                    from_history += usize::from(guess);
                    for t in &mut free[..need] {
                        *t = start.saturating_add(run);
                    }
                }
                // Its GPUs are busy for as long as can't be told.
                None => drop(free.drain(..need)),
            }
        }
        free.sort_unstable();
        let need = usize::try_from(gpus.max(1) - 1).unwrap_or(usize::MAX);
        Estimate { start_ms: free.get(need).copied(), ahead: ahead.len(), from_history }
    }
}
