//! Jobs and their attempts, and what a user submits, as JSON has it ([`JobSpec`]; the checks it
//! must pass before the scheduler sees it are in `submission`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The variable that marks every process of a job, inherited by all it starts: how a GPU's
/// processes are known to be a job's.
pub const JOB_ID_VAR: &str = "GANTRY_JOB_ID";

super::number! {
    /// A job's number: given once, never reused.
    JobId
}

/// How many GPUs a job takes: a fixed count (`min == max`), or elastic, sized by seed 004's rule
/// when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuCount {
    #[schemars(range(min = 1, max = super::limits::GPUS))]
    pub min: u32,
    #[schemars(range(min = 1, max = super::limits::GPUS))]
    pub max: u32,
}

impl Default for GpuCount {
    fn default() -> Self {
        GpuCount { min: 1, max: 1 }
    }
}

impl std::str::FromStr for GpuCount {
    type Err = String;

    /// `N` or `MIN..MAX`.
    fn from_str(s: &str) -> Result<Self, String> {
        let number = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("'{s}' is not N or MIN..MAX"));
        let count = match s.split_once("..") {
            Some((min, max)) => GpuCount { min: number(min)?, max: number(max.trim_start_matches('='))? },
            None => {
                let n = number(s)?;
                GpuCount { min: n, max: n }
            }
        };
        count.check().map_err(|message| format!("'{s}': {message}"))?;
        Ok(count)
    }
}

impl GpuCount {
    pub(super) fn check(self) -> Result<(), String> {
        if self.min == 0 || self.max < self.min {
            return Err(format!("need 1 <= min <= max, got {}..{}", self.min, self.max));
        }
        if self.max > super::limits::GPUS {
            return Err(format!("at most {} GPUs per job", super::limits::GPUS));
        }
        Ok(())
    }
}

/// A job after `after` in a batch names an existing job by id or an earlier or later job of the
/// same batch by its `key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Dependency {
    Job(JobId),
    Key(String),
}

/// What a user submits, as it arrives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Shell lines run in sequence in one shell; the first that fails ends the attempt.
    #[schemars(length(min = 1))]
    pub commands: Vec<String>,
    /// Jobs of one queue run one after another. Without a queue, a job waits for nothing but a
    /// GPU.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub gpus: Option<GpuCount>,
    /// Memory needed on every GPU the job gets.
    #[serde(default)]
    #[schemars(range(max = super::limits::MEMORY_MIB))]
    pub memory_mib: u64,
    #[serde(default)]
    pub priority: i32,
    /// Further attempts after a failure.
    #[serde(default)]
    #[schemars(range(max = super::limits::RETRIES))]
    pub retries: Option<u32>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Runs only after these succeeded; cancelled if one of them fails or is cancelled.
    #[serde(default)]
    pub after: Vec<Dependency>,
    /// A name other jobs of the same batch use in `after`.
    #[serde(default)]
    pub key: Option<String>,
    /// Not before this time (milliseconds since the Unix epoch).
    #[serde(default)]
    pub start_at_ms: Option<u64>,
    /// Submitted held: it waits until released.
    #[serde(default)]
    pub hold: bool,
    /// Most seconds an attempt may run. Here it is stopped then, as a cancel stops it, and fails
    /// (retried as any failure is); a provider gets it as its own limit (Slurm's `time_limit`,
    /// Kubernetes' `activeDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = super::limits::TIME_LIMIT_S))]
    pub time_limit_s: Option<u64>,
    /// The configured provider (`[providers.NAME]`) that runs it, instead of this node's GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Waits for this node's GPUs for a while, then goes to a provider that takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
    /// The container image its provider runs it in (a cloud, Kubernetes); only with `provider`,
    /// as this node runs commands, not containers. Without one, the instance's `options.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// The GPU type a provider should give it (`A100`, or a provider's own name of a type);
    /// placement here does not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub gpu_type: Option<String>,
    /// CPUs and memory (GiB) a provider should give it besides its GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4096))]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 65536))]
    pub ram_gib: Option<u32>,
}

/// "Wait here or go there": a job that prefers this node's GPUs but should not wait for them
/// longer than `max_wait_ms`. The wait counts from when the job could start (its turn in its
/// queue, its dependencies done), and starts over for each attempt and after a daemon restart,
/// so a job never leaves earlier than asked. A job that can never fit here goes at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// `None`: `[scheduler] burst_max_wait_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = super::limits::BURST_WAIT_MS))]
    pub max_wait_ms: Option<u64>,
    /// The providers it may go to, tried in this order; empty: every configured one, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn in its queue, its dependencies, its start time or a GPU.
    Waiting,
    Held,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [JobState::Waiting, JobState::Held, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Held => "held",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

/// One try at running a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    /// Counts from 1.
    pub number: u32,
    pub gpus: Vec<u32>,
    /// Memory per GPU this attempt was placed with.
    pub memory_mib: u64,
    pub dir: PathBuf,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub peak_rss_kib: Option<u64>,
    /// Most GPU memory NVML saw the attempt's processes hold on one GPU.
    #[serde(default)]
    pub gpu_memory_peak_mib: u64,
    /// The log's last lines said CUDA ran out of memory.
    #[serde(default)]
    pub out_of_memory: bool,
    /// Why it ended other than by its own exit (cancelled, lost with the shim, never started).
    pub note: Option<String>,
    /// Where it runs when a provider runs it; `None`: on this node's GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteAttempt>,
}

/// An attempt a provider runs. Committed before the provider is asked, and again with the id it
/// answers: a restarted daemon follows the job by that id, or, if the answer was lost, asks again
/// with the same key, which the provider recognises.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteAttempt {
    /// The `[providers.NAME]` instance.
    pub provider: String,
    /// Unique to this attempt on this node: how the provider knows a repeated submission.
    pub key: String,
    /// The provider's id for it, once it answered.
    pub id: Option<String>,
    /// Where the provider writes its output; the daemon copies it into the attempt's log.
    pub log_path: Option<String>,
    /// The provider's last word on it, e.g. `PENDING (Resources)`.
    pub state: Option<String>,
    /// What it costs, where the provider has a price for it (`estimate-cost` when submitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<RemoteCost>,
}

/// A remote attempt's cost so far: its price for each hour it has run there. Time it waited in
/// the provider's queue costs nothing (a Slurm job that is pending uses no node).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteCost {
    pub currency: String,
    pub per_hour: f64,
    /// When the provider says it started running (ms since the Unix epoch).
    pub running_since_ms: Option<u64>,
    /// Up to its end, or to the provider's last word while it runs.
    pub total: f64,
}

impl RemoteCost {
    /// Brings `total` up to `until_ms`.
    pub fn count_to(&mut self, until_ms: u64) {
        if let Some(since) = self.running_since_ms {
            self.total = self.per_hour * until_ms.saturating_sub(since) as f64 / 3_600_000.0;
        }
    }
}

impl Attempt {
    /// An attempt just placed, before anything is known of how it runs.
    pub fn new(number: u32, gpus: Vec<u32>, memory_mib: u64, dir: PathBuf, started_ms: u64) -> Attempt {
        Attempt {
            number,
            gpus,
            memory_mib,
            dir,
            started_ms,
            ended_ms: None,
            exit_code: None,
            signal: None,
            peak_rss_kib: None,
            gpu_memory_peak_mib: 0,
            out_of_memory: false,
            note: None,
            remote: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    /// The queue it runs in: the spec's, namespaced by its run, or its own.
    pub queue: String,
    pub run: Option<super::RunId>,
    pub state: JobState,
    /// Memory per GPU it needs now: the spec's, raised after an out-of-memory failure.
    pub memory_mib: u64,
    pub submitted_ms: u64,
    pub attempts: Vec<Attempt>,
    /// Why it is in its state: the last error, what it waits for, who cancelled it.
    pub reason: Option<String>,
    /// Dependencies resolved to job ids.
    pub after: Vec<JobId>,
    /// The Unix user its attempts run as; `None`: the daemon's own.
    #[serde(default)]
    pub run_as: Option<u32>,
    /// The Unix groups its owner was in when it was submitted: what group quotas count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// Shown to someone who may not see its command, environment and working directory, which
    /// are left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    /// What it has used so far, in the answers of the API (not kept: it is worked out from the
    /// attempts when shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<JobUsage>,
    /// Its array and its index there, if it is an element of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<super::ArrayPlace>,
    /// A submission to a provider whose answer never came (the network, a timeout): the
    /// provider may have made the job anyway, so the next attempt there asks with the same key,
    /// and is found rather than made twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered: Option<UnansweredSubmit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnansweredSubmit {
    pub provider: String,
    pub key: String,
    /// When the first submission there went unanswered (ms since the Unix epoch).
    #[serde(default)]
    pub since_ms: u64,
}

/// What a job has used over all its attempts: what its owner is accounted for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobUsage {
    /// GPUs held times hours held, over every attempt (a running one until now).
    pub gpu_hours: f64,
    /// The most GPU memory its processes held on one GPU in any attempt (MiB).
    pub gpu_memory_peak_mib: u64,
}

impl Job {
    /// Its use of GPUs as of `now_ms`.
    pub fn usage_at(&self, now_ms: u64) -> JobUsage {
        let held_ms: u64 = self.attempts.iter().map(|a| a.ended_ms.unwrap_or(now_ms).saturating_sub(a.started_ms) * a.gpus.len() as u64).sum();
        JobUsage { gpu_hours: held_ms as f64 / 3_600_000.0, gpu_memory_peak_mib: self.attempts.iter().map(|a| a.gpu_memory_peak_mib).max().unwrap_or(0) }
    }

    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn retries(&self, default: u32) -> u32 {
        self.spec.retries.unwrap_or(default)
    }

    /// The job as others see it: that it exists, its queue, GPUs, state and times (as `squeue`
    /// shows them), not what it runs or with which secrets.
    pub fn redact(mut self) -> Job {
        self.spec.commands.clear();
        self.spec.env.clear();
        self.spec.cwd = None;
        self.redacted = true;
        self
    }

    /// The GPUs it holds now: its attempt's, while it runs.
    pub fn gpus_held(&self) -> &[u32] {
        match self.current_attempt() {
            Some(attempt) if self.state == JobState::Running => &attempt.gpus,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_counts() {
        assert_eq!("2".parse::<GpuCount>(), Ok(GpuCount { min: 2, max: 2 }));
        assert_eq!("1..4".parse::<GpuCount>(), Ok(GpuCount { min: 1, max: 4 }));
        assert!("0".parse::<GpuCount>().is_err());
        assert!("4..2".parse::<GpuCount>().is_err());
        assert!("x".parse::<GpuCount>().is_err());
        assert!("1..5000".parse::<GpuCount>().is_err());
    }

    #[test]
    fn usage_counts_every_attempts_gpus_by_the_time_held_a_running_one_until_now() {
        let mut done = Attempt::new(1, vec![0, 1], 1000, PathBuf::new(), 0);
        done.ended_ms = Some(1_800_000);
        done.gpu_memory_peak_mib = 700;
        let mut running = Attempt::new(2, vec![3], 1000, PathBuf::new(), 3_600_000);
        running.gpu_memory_peak_mib = 900;
        let job: Job = serde_json::from_value(serde_json::json!({
            "id": 1, "spec": { "commands": ["true"] }, "queue": "q", "run": null, "state": "running", "memory_mib": 1000, "submitted_ms": 0,
            "attempts": [done, running], "reason": null, "after": [],
        }))
        .expect("a job");
        let usage = job.usage_at(5_400_000);
        assert!((usage.gpu_hours - 1.5).abs() < 1e-9, "2 GPUs for half an hour, then 1 for half an hour: {usage:?}");
        assert_eq!(usage.gpu_memory_peak_mib, 900);
        assert!(!serde_json::to_string(&job).expect("json").contains("usage"), "not kept with the job");
    }

    #[test]
    fn dependencies_by_id_or_key() {
        let spec: JobSpec = serde_json::from_str(r#"{"commands":["true"],"after":[3,"prep"]}"#).expect("valid");
        assert_eq!(spec.after, vec![Dependency::Job(JobId(3)), Dependency::Key("prep".into())]);
        let err = serde_json::from_str::<JobSpec>(r#"{"commands":["true"],"memory":1}"#).expect_err("unknown field");
        assert!(err.to_string().contains("memory"), "{err}");
    }
}
