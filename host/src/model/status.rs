//! What the scheduler reports about itself: job counts, queues, runs, the running jobs, and the
//! events subscribers hear as things change.

use super::{Job, JobId, JobState, Run, RunId};
use serde::{Deserialize, Serialize};

/// Which jobs a listing shows.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub run: Option<RunId>,
    pub owner: Option<String>,
    /// The elements of this array.
    pub array: Option<JobId>,
}

impl JobFilter {
    pub fn matches(&self, job: &Job) -> bool {
        self.array.is_none_or(|a| job.array.is_some_and(|p| p.id == a))
            && self.state.is_none_or(|s| job.state == s)
            && self.queue.as_ref().is_none_or(|q| &job.queue == q)
            && self.run.is_none_or(|r| job.run == Some(r))
            && self.owner.as_ref().is_none_or(|o| job.spec.owner.as_ref() == Some(o))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counts {
    pub total: usize,
    pub waiting: usize,
    pub held: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl Counts {
    pub fn add(&mut self, state: JobState) {
        self.total += 1;
        *match state {
            JobState::Waiting => &mut self.waiting,
            JobState::Held => &mut self.held,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        } += 1;
    }

    /// Jobs not yet over.
    pub fn unfinished(&self) -> usize {
        self.waiting + self.held + self.running
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueStatus {
    pub name: String,
    pub run: Option<RunId>,
    pub counts: Counts,
    /// The jobs of this queue running now.
    pub current: Vec<JobId>,
    /// How many of its jobs may run at once.
    pub parallelism: u32,
    pub consecutive_failures: u32,
    pub backoff_until_ms: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunStatus {
    #[serde(flatten)]
    pub run: Run,
    pub counts: Counts,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunningJob {
    pub id: JobId,
    pub queue: String,
    pub gpus: Vec<u32>,
    pub memory_mib: u64,
    pub started_ms: u64,
    pub commands: Vec<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// The whole scheduler at a glance (`gantry status`).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Status {
    pub counts: Counts,
    pub runs: Vec<RunStatus>,
    /// Queues with work left or a recent error.
    pub queues: Vec<QueueStatus>,
    pub running: Vec<RunningJob>,
    /// Who decided the last pass: the policy plugin, or the native fallback and why.
    pub last_decider: Option<String>,
}

/// A running run with the progress of each of its queues (seed 001's running schedulers).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct RunProgress {
    pub status: RunStatus,
    /// GPUs its running jobs hold, in order.
    pub gpus_used: Vec<u32>,
    pub queues: Vec<QueueProgress>,
}

/// One queue of a run: the command file's queue id, its counts, and the job running now.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct QueueProgress {
    pub id: String,
    pub counts: Counts,
    pub current: Option<CurrentJob>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CurrentJob {
    pub id: JobId,
    /// From 1, among the queue's jobs.
    pub position: usize,
    pub first_command: String,
    pub gpus: Vec<u32>,
    pub owner: Option<String>,
}

/// What an account has used here (`/auth/users/me`).
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Usage {
    pub jobs_submitted: usize,
    pub jobs_running: usize,
    pub jobs_succeeded: usize,
    pub jobs_failed: usize,
    /// GPU time of all its attempts, in hours.
    pub gpu_hours: f64,
}

/// How long a job would wait for GPUs on this node: the "wait" of "wait here or pay there".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitHere {
    /// Why it can never start here, if so (more GPUs or memory than any here).
    pub never: Option<String>,
    /// When it could start, milliseconds since the Unix epoch: when enough GPUs are free after
    /// the jobs running here and those waiting ahead of it, each running for its time limit or,
    /// without one, the typical run time of its command (else its queue) here. `None` where that
    /// can't be told (a job without a limit or history on the GPUs it needs, memory held by
    /// others).
    pub start_ms: Option<u64>,
    /// Jobs waiting here now.
    pub waiting: usize,
    /// Those counted ahead of it: waiting for this node's GPUs, at its priority or above.
    pub ahead: usize,
    /// How many of the run times counted were typical run times rather than time limits.
    pub from_history: usize,
}

/// What subscribers (`/api/v1/events`, the run logs) hear as it happens.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A job was submitted or changed state, attempt or GPUs.
    Job { id: JobId, state: JobState, queue: String, run: Option<RunId>, attempt: u32, gpus: Vec<u32>, reason: Option<String> },
    /// A run started, finished or was stopped.
    Run(Run),
}

impl Event {
    pub fn job(job: &Job) -> Event {
        Event::Job {
            id: job.id,
            state: job.state,
            queue: job.queue.clone(),
            run: job.run,
            attempt: job.current_attempt().map_or(0, |a| a.number),
            gpus: job.gpus_held().to_vec(),
            reason: job.reason.clone(),
        }
    }
}

/// GPUs and GPU memory (over all of them) held at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Held {
    pub gpus: u32,
    pub memory_mib: u64,
}

impl Held {
    pub fn add(&mut self, other: Held) {
        self.gpus = self.gpus.saturating_add(other.gpus);
        self.memory_mib = self.memory_mib.saturating_add(other.memory_mib);
    }
}

/// A user's caps and use (`gantry quota`, `GET /api/v1/quota`).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct QuotaStatus {
    pub owner: String,
    /// Absent limits are no limit.
    pub cap: super::Cap,
    pub holds: Held,
    /// GPU-hours, each counting half as much a half-life later: what orders users who compete
    /// for a GPU, least first.
    pub recent_gpu_hours: f64,
    pub half_life_hours: f64,
    /// The capped groups they are in, with what the group's members hold together.
    pub groups: Vec<GroupQuota>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct GroupQuota {
    pub name: String,
    pub cap: super::Cap,
    pub holds: Held,
}
