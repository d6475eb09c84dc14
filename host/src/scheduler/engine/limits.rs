//! Time limits: a local attempt that runs past its job's `time_limit_s`, counted from when it
//! was placed, is stopped as a cancel stops it (SIGTERM to its process group, SIGKILL after the
//! grace), and fails with a note that says so. A provider enforces the limit of a remote
//! attempt itself.

use super::Engine;
use crate::model::{Job, JobState};

/// When the job's current local attempt runs out of time, if it has a limit.
pub(super) fn limit_ends_ms(job: &Job) -> Option<u64> {
    let limit = job.spec.time_limit_s?;
    let attempt = job.current_attempt().filter(|a| a.remote.is_none() && a.ended_ms.is_none())?;
    Some(attempt.started_ms.saturating_add(limit.saturating_mul(1000)))
}

impl Engine {
    /// Stops every running local attempt past its limit, once.
    pub(super) fn stop_overdue(&mut self) {
        let now = self.now();
        let grace = self.rules().cancel_grace;
        let overdue: Vec<_> = self
            .live
            .iter()
            // Once its shim is known: one still starting is stopped at the next pass.
            .filter(|(_, l)| l.shim.is_some() && l.cancel_requested.is_none() && l.timed_out.is_none())
            .filter_map(|(id, _)| self.jobs.get(id))
            .filter(|j| j.state == JobState::Running && limit_ends_ms(j).is_some_and(|t| t <= now))
            .map(|j| (j.id, j.spec.time_limit_s.unwrap_or_default()))
            .collect();
        for (id, limit) in overdue {
            let Some(live) = self.live.get_mut(&id) else { continue };
            let Some(shim) = live.shim.clone() else { continue };
            live.timed_out = Some(format!("ran past its time limit of {limit} s and was stopped"));
            tracing::info!(job = %id, limit_s = limit, "stopping a job past its time limit");
            self.launcher.cancel(shim, grace);
        }
    }

    /// The next time a running attempt runs out of time.
    pub(super) fn time_limit_deadline(&self) -> Option<u64> {
        self.live.iter().filter(|(_, l)| l.timed_out.is_none()).filter_map(|(id, _)| self.jobs.get(id)).filter(|j| j.state == JobState::Running).filter_map(limit_ends_ms).min()
    }
}
