//! "Wait here or go there": the runnable heads that leave for a provider this pass. A job that
//! names a provider always goes there; one that may burst goes once it has waited its
//! `max_wait` here, or at once if it can never fit here or if the jobs running here would, by
//! their time limits, hold the GPUs it needs past its `max_wait`; to the first of its providers
//! that is not backing off and has not refused it. Every other head is placed on this node's
//! GPUs.

use super::Engine;
use crate::model::{Job, JobId, JobState, WaitHere};
use std::collections::{BTreeMap, BTreeSet};

/// How long a bursting job whose submission went unanswered waits for that provider to answer
/// before it may run elsewhere.
const UNANSWERED_PIN_MS: u64 = 3_600_000;

/// A job that may burst, while it is unfinished.
#[derive(Default)]
pub(super) struct BurstWait {
    /// Since when it could start here; cleared when an attempt ends, so each attempt waits anew.
    since_ms: Option<u64>,
    /// The providers that refused it: asking them again would get the same answer.
    refused: BTreeSet<String>,
}

impl Engine {
    /// Splits the runnable heads into those a provider runs now, each with its provider, and
    /// those placed here.
    pub(super) fn split_remote(&mut self, heads: Vec<JobId>) -> (Vec<(JobId, String)>, Vec<JobId>) {
        let now = self.now();
        let (mut capacity, mut free_times) = (None, None);
        let (mut remote, mut local) = (Vec::new(), Vec::new());
        for id in heads {
            let Some(job) = self.jobs.get(&id) else { continue };
            if let Some(provider) = &job.spec.provider {
                remote.push((id, provider.clone()));
                continue;
            }
            if job.spec.burst.is_none() {
                local.push(id);
                continue;
            }
            if let Some(provider) = self.pinned_to(job, now) {
                remote.push((id, provider));
                continue;
            }
            let since = *self.bursts.entry(id).or_default().since_ms.get_or_insert(now);
            let until = since.saturating_add(self.max_wait_ms(job));
            let due = now >= until || capacity.get_or_insert_with(|| self.what_fits()).never_fits(job).is_some() || expected_start_ms(job, free_times.get_or_insert_with(|| self.free_times(now))).is_some_and(|t| t > until);
            match due.then(|| self.burst_target(job, now)).flatten() {
                Some(provider) => remote.push((id, provider)),
                None => local.push(id),
            }
        }
        (remote, local)
    }

    /// When each eligible GPU here is free if every job on it runs to its time limit, as
    /// Slurm's backfill judges, earliest first; a GPU whose time can't be told (a job on it
    /// without a limit, memory held by a process gantry did not start) is left out. Once per
    /// pass, for all the bursting heads.
    fn free_times(&self, now: u64) -> Vec<u64> {
        let mut times: Vec<u64> = self.free_at(now, super::limits::limit_ends_ms).into_values().collect();
        times.sort_unstable();
        times
    }

    /// When each eligible GPU here is free, by GPU index, if every local job on it ends when
    /// `ends` says; a GPU where `ends` can't tell for one of its jobs, or with memory held by a
    /// process gantry did not start, is left out.
    pub(super) fn free_at(&self, now: u64, mut ends: impl FnMut(&Job) -> Option<u64>) -> BTreeMap<u32, u64> {
        let mut free_at: BTreeMap<u32, u64> = self
            .gpus
            .summaries()
            .iter()
            .filter(|s| s.foreign_peak_mib == 0)
            .filter_map(|s| s.reading.snapshot())
            .filter(|g| self.options.rules.eligible(g.index))
            .map(|g| (g.index, now))
            .collect();
        for running in self.jobs.values().filter(|j| j.state == JobState::Running) {
            let Some(attempt) = running.current_attempt().filter(|a| a.remote.is_none()) else { continue };
            let end = ends(running);
            for gpu in &attempt.gpus {
                match end {
                    Some(t) => {
                        if let Some(at) = free_at.get_mut(gpu) {
                            *at = (*at).max(t);
                        }
                    }
                    None => {
                        free_at.remove(gpu);
                    }
                }
            }
        }
        free_at
    }

    /// The provider a bursting job asks again before it runs anywhere else: the one whose
    /// answer to its last submission was lost, which may have made the job anyway (asked again
    /// with the same key, it finds it), for up to [`UNANSWERED_PIN_MS`] while it is configured.
    /// After that the job may run elsewhere, and what the lost request may have made there is
    /// not followed; the job's `unanswered` (provider, key, since when) says where to look.
    fn pinned_to(&self, job: &Job, now: u64) -> Option<String> {
        let unanswered = job.unanswered.as_ref()?;
        let configured = self.remote.as_ref().is_some_and(|r| r.has(&unanswered.provider));
        (configured && now.saturating_sub(unanswered.since_ms) < UNANSWERED_PIN_MS).then(|| unanswered.provider.clone())
    }

    /// The first of the job's providers it may go to now.
    fn burst_target(&self, job: &Job, now: u64) -> Option<String> {
        let refused = self.bursts.get(&job.id).map(|w| &w.refused);
        self.burst_providers(job)
            .into_iter()
            .filter(|p| refused.is_none_or(|r| !r.contains(p)))
            .find(|p| self.provider_backoff.get(p).is_none_or(|b| b.until_ms <= now))
    }

    /// The configured providers a bursting job may go to, in the order it tries them.
    fn burst_providers(&self, job: &Job) -> Vec<String> {
        let Some(remote) = &self.remote else { return Vec::new() };
        match job.spec.burst.as_ref().map(|b| &b.providers) {
            Some(named) if !named.is_empty() => named.iter().filter(|p| remote.has(p)).cloned().collect(),
            _ => remote.names(),
        }
    }

    fn max_wait_ms(&self, job: &Job) -> u64 {
        let default = u64::try_from(self.rules().burst_max_wait.as_millis()).unwrap_or(u64::MAX);
        job.spec.burst.as_ref().and_then(|b| b.max_wait_ms).unwrap_or(default)
    }

    /// A bursting job's provider refused it. `true`: it has somewhere left to go (another of its
    /// providers, or this node's GPUs), so it waits instead of failing.
    pub(super) fn burst_refused(&mut self, id: JobId, provider: String) -> bool {
        let Some(job) = self.jobs.get(&id).filter(|j| j.spec.burst.is_some()) else { return false };
        let wait = self.bursts.entry(id).or_default();
        wait.refused.insert(provider);
        let refused = wait.refused.clone();
        let elsewhere = self.burst_providers(job).iter().any(|p| !refused.contains(p));
        elsewhere || self.what_fits().never_fits(job).is_none()
    }

    /// When the next bursting job has waited long enough.
    pub(super) fn burst_deadline(&self) -> Option<u64> {
        self.bursts
            .iter()
            .filter_map(|(id, wait)| Some((self.jobs.get(id).filter(|j| j.state == JobState::Waiting)?, wait.since_ms?)))
            .map(|(job, since)| since.saturating_add(self.max_wait_ms(job)))
            .min()
    }

    /// How long `gpus` GPUs with `memory_mib` each would wait here now.
    pub(super) fn wait_here(&self, gpus: u32, memory_mib: u64) -> WaitHere {
        let now = self.now();
        let never = self.what_fits().never_takes(gpus, memory_mib);
        let waiting = self.jobs.values().filter(|j| j.state == JobState::Waiting).count();
        if never.is_some() {
            return WaitHere { never, start_ms: None, waiting, ahead: 0, from_history: 0 };
        }
        let estimate = self.estimate_start(gpus, now);
        WaitHere { never, start_ms: estimate.start_ms, waiting, ahead: estimate.ahead, from_history: estimate.from_history }
    }

    /// An attempt ended: the next one waits its full `max_wait` here again.
    pub(super) fn burst_attempt_over(&mut self, id: JobId) {
        if let Some(wait) = self.bursts.get_mut(&id) {
            wait.since_ms = None;
        }
    }
}

/// When this node could take `job`, by the GPUs' [`Engine::free_times`]; `None` with too few
/// GPUs whose time can be told. Jobs waiting ahead of it are not counted, so a job leaves early
/// only when it would wait longer than its `max_wait` even with no one ahead.
fn expected_start_ms(job: &Job, free_times: &[u64]) -> Option<u64> {
    let needed = usize::try_from(job.spec.gpus.unwrap_or_default().min.max(1)).ok()?;
    free_times.get(needed - 1).copied()
}
