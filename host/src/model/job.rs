//! Jobs and their attempts, and what a user submits: raw ([`JobSpec`], as JSON has it), then
//! checked field by field into a [`Batch`] before the scheduler sees it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The variable that marks every process of a job, inherited by all it starts: how a GPU's
/// processes are known to be a job's.
pub const JOB_ID_VAR: &str = "GANTRY_JOB_ID";

/// A job's number: given once, never reused.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

/// Just the number, as people and logs know it.
impl std::fmt::Debug for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for JobId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(JobId)
    }
}

/// How many GPUs a job takes: a fixed count (`min == max`), or elastic, sized by seed 004's rule
/// when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuCount {
    pub min: u32,
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
    fn check(self) -> Result<(), String> {
        if self.min == 0 || self.max < self.min {
            return Err(format!("need 1 <= min <= max, got {}..{}", self.min, self.max));
        }
        if self.max > limits::GPUS {
            return Err(format!("at most {} GPUs per job", limits::GPUS));
        }
        Ok(())
    }
}

/// A job after `after` in a batch names an existing job by id or an earlier or later job of the
/// same batch by its `key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dependency {
    Job(JobId),
    Key(String),
}

/// What a user submits, as it arrives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Shell lines run in sequence in one shell; the first that fails ends the attempt.
    pub commands: Vec<String>,
    /// Jobs of one queue run one after another. Without a queue, a job waits for nothing but a
    /// GPU.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub gpus: Option<GpuCount>,
    /// Memory needed on every GPU the job gets.
    #[serde(default)]
    pub memory_mib: u64,
    #[serde(default)]
    pub priority: i32,
    /// Further attempts after a failure.
    #[serde(default)]
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
}

/// How much one submission may ask for. The shell script of a job is one argument of `sh -c`,
/// which Linux caps at 128 KiB (`MAX_ARG_STRLEN`); the environment shares the 2 MiB `ARG_MAX`
/// with it. Anything a parser plugin makes goes through the same checks.
pub mod limits {
    /// Jobs in one submission, and in one command file.
    pub const JOBS_PER_BATCH: usize = 10_000;
    /// All command lines of one job together, joined by newlines.
    pub const COMMAND_BYTES: usize = 100 * 1024;
    pub const ENV_ENTRIES: usize = 256;
    /// All `KEY=VALUE` strings of one job together.
    pub const ENV_BYTES: usize = 256 * 1024;
    pub const LABELS: usize = 64;
    /// A queue, key, label, owner or environment variable name.
    pub const NAME_BYTES: usize = 256;
    pub const LABEL_VALUE_BYTES: usize = 1024;
    pub const DEPENDENCIES: usize = 1024;
    pub const GPUS: u32 = 1024;
    pub const RETRIES: u32 = 1000;
}

/// A field of a submission that is not acceptable, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// A dependency of a checked job: a job that exists (the scheduler confirms it) or another
/// member of the same batch, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Job(JobId),
    Member(usize),
}

/// One job of a checked batch.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub spec: JobSpec,
    pub after: Vec<After>,
}

/// Jobs that passed every check needing no scheduler state: counts, sizes, names, and
/// dependencies within the batch (keys that exist, no cycle). Only [`Batch::new`] makes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    jobs: Vec<NewJob>,
}

impl Batch {
    /// Checks `specs`; an error names the field as `jobs[i].field`.
    pub fn new(specs: Vec<JobSpec>) -> Result<Batch, FieldError> {
        if specs.is_empty() {
            return Err(FieldError::new("jobs", "no jobs given"));
        }
        if specs.len() > limits::JOBS_PER_BATCH {
            return Err(FieldError::new("jobs", format!("{} jobs; at most {} per submission", specs.len(), limits::JOBS_PER_BATCH)));
        }
        let mut keys: HashMap<&str, usize> = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if let Some(key) = &spec.key {
                name(key).map_err(|m| FieldError::new(format!("jobs[{i}].key"), m))?;
                if keys.insert(key, i).is_some() {
                    return Err(FieldError::new(format!("jobs[{i}].key"), format!("'{key}' is used twice in this batch")));
                }
            }
        }
        let mut jobs = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = |field: &str| format!("jobs[{i}].{field}");
            check_spec(spec).map_err(|(field, message)| FieldError::new(at(field), message))?;
            if spec.after.len() > limits::DEPENDENCIES {
                return Err(FieldError::new(at("after"), format!("at most {} dependencies", limits::DEPENDENCIES)));
            }
            let mut after = Vec::with_capacity(spec.after.len());
            for dep in &spec.after {
                after.push(match dep {
                    Dependency::Job(id) => After::Job(*id),
                    Dependency::Key(key) => match keys.get(key.as_str()) {
                        Some(&j) if j == i => return Err(FieldError::new(at("after"), "a job cannot wait for itself")),
                        Some(&j) => After::Member(j),
                        None => return Err(FieldError::new(at("after"), format!("no job of this batch has key '{key}'"))),
                    },
                });
            }
            jobs.push(after);
        }
        if let Some(cycle) = find_cycle(&jobs) {
            let names: Vec<String> = cycle.iter().map(|&i| specs[i].key.clone().unwrap_or_else(|| format!("jobs[{i}]"))).collect();
            return Err(FieldError::new("after", format!("dependency cycle: {}", names.join(" → "))));
        }
        Ok(Batch { jobs: specs.into_iter().zip(jobs).map(|(spec, after)| NewJob { spec, after }).collect() })
    }

    pub fn jobs(&self) -> &[NewJob] {
        &self.jobs
    }

    /// Sets the owner of every job whose owner is not to be kept as given (names come from
    /// authentication, not from the body, unless an admin submits in someone else's name).
    pub fn stamp_owner(&mut self, owner: &str, keep_given: bool) {
        for job in &mut self.jobs {
            if !(keep_given && job.spec.owner.is_some()) {
                job.spec.owner = Some(owner.to_string());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn into_jobs(self) -> Vec<NewJob> {
        self.jobs
    }
}

/// A name people type and other records refer to: not empty, bounded, no control characters.
fn name(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("is empty".into());
    }
    if text.len() > limits::NAME_BYTES {
        return Err(format!("longer than {} bytes", limits::NAME_BYTES));
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

/// The checks of one spec that need nothing but the spec: `(field, message)`.
fn check_spec(spec: &JobSpec) -> Result<(), (&'static str, String)> {
    if spec.commands.iter().all(|c| c.trim().is_empty()) {
        return Err(("commands", "no command to run".into()));
    }
    if spec.commands.iter().any(|c| c.contains('\0')) {
        return Err(("commands", "a command contains a NUL byte".into()));
    }
    let script = spec.commands.iter().map(|c| c.len() + 1).sum::<usize>();
    if script > limits::COMMAND_BYTES {
        return Err(("commands", format!("{script} bytes of commands; at most {} per job", limits::COMMAND_BYTES)));
    }
    if let Some(queue) = &spec.queue {
        name(queue).map_err(|m| ("queue", m))?;
    }
    if let Some(owner) = &spec.owner {
        name(owner).map_err(|m| ("owner", m))?;
    }
    if let Some(gpus) = spec.gpus {
        gpus.check().map_err(|m| ("gpus", m))?;
    }
    if spec.retries.is_some_and(|r| r > limits::RETRIES) {
        return Err(("retries", format!("at most {}", limits::RETRIES)));
    }
    if spec.cwd.as_ref().is_some_and(|d| d.as_os_str().as_encoded_bytes().contains(&0)) {
        return Err(("cwd", "contains a NUL byte".into()));
    }
    if spec.env.len() > limits::ENV_ENTRIES {
        return Err(("env", format!("{} variables; at most {}", spec.env.len(), limits::ENV_ENTRIES)));
    }
    let mut env_bytes = 0;
    for (key, value) in &spec.env {
        let valid_key = !key.is_empty() && key.len() <= limits::NAME_BYTES && !key.contains(['=', '\0']);
        if !valid_key {
            return Err(("env", format!("'{}' is not a variable name", key.escape_debug())));
        }
        if value.contains('\0') {
            return Err(("env", format!("{key}: the value contains a NUL byte")));
        }
        env_bytes += key.len() + value.len() + 2;
    }
    if env_bytes > limits::ENV_BYTES {
        return Err(("env", format!("{env_bytes} bytes; at most {}", limits::ENV_BYTES)));
    }
    if spec.labels.len() > limits::LABELS {
        return Err(("labels", format!("{} labels; at most {}", spec.labels.len(), limits::LABELS)));
    }
    for (key, value) in &spec.labels {
        name(key).map_err(|m| ("labels", format!("'{}': {m}", key.escape_debug())))?;
        if value.len() > limits::LABEL_VALUE_BYTES {
            return Err(("labels", format!("{key}: longer than {} bytes", limits::LABEL_VALUE_BYTES)));
        }
    }
    Ok(())
}

/// A cycle among the members of a batch, as the positions along it, if there is one. Jobs
/// already submitted can't depend on new ones, so a cycle can only run through the batch.
fn find_cycle(after: &[Vec<After>]) -> Option<Vec<usize>> {
    let members = |i: usize| after[i].iter().filter_map(|a| if let After::Member(j) = a { Some(*j) } else { None });
    // 0 unvisited, 1 on the current path, 2 done.
    let mut mark = vec![0u8; after.len()];
    for start in 0..after.len() {
        if mark[start] != 0 {
            continue;
        }
        let mut path = vec![start];
        let mut stack = vec![(start, 0usize)];
        mark[start] = 1;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(dep) = members(node).nth(*next) {
                *next += 1;
                match mark[dep] {
                    0 => {
                        mark[dep] = 1;
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
                mark[node] = 2;
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

impl Job {
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn retries(&self, default: u32) -> u32 {
        self.spec.retries.unwrap_or(default)
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

    fn spec(key: Option<&str>, after: &[Dependency]) -> JobSpec {
        JobSpec { commands: vec!["true".into()], key: key.map(String::from), after: after.to_vec(), ..JobSpec::default() }
    }

    fn key(k: &str) -> Dependency {
        Dependency::Key(k.into())
    }

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
    fn dependencies_by_id_or_key() {
        let spec: JobSpec = serde_json::from_str(r#"{"commands":["true"],"after":[3,"prep"]}"#).expect("valid");
        assert_eq!(spec.after, vec![Dependency::Job(JobId(3)), Dependency::Key("prep".into())]);
        let err = serde_json::from_str::<JobSpec>(r#"{"commands":["true"],"memory":1}"#).expect_err("unknown field");
        assert!(err.to_string().contains("memory"), "{err}");
    }

    #[test]
    fn a_batch_resolves_keys_to_members() {
        let batch = Batch::new(vec![spec(Some("b"), &[key("a"), Dependency::Job(JobId(7))]), spec(Some("a"), &[])]).expect("valid");
        assert_eq!(batch.jobs()[0].after, vec![After::Member(1), After::Job(JobId(7))]);
    }

    #[test]
    fn a_batch_names_the_field_at_fault() {
        let refused = |specs: Vec<JobSpec>| Batch::new(specs).expect_err("refused");
        assert_eq!(refused(vec![]).field, "jobs");
        assert_eq!(refused(vec![spec(Some("x"), &[]), spec(Some("x"), &[])]).field, "jobs[1].key");
        assert_eq!(refused(vec![spec(None, &[key("nobody")])]).field, "jobs[0].after");
        assert_eq!(refused(vec![spec(Some("me"), &[key("me")])]).message, "a job cannot wait for itself");
        let cycle = refused(vec![spec(Some("a"), &[key("b")]), spec(Some("b"), &[key("c")]), spec(Some("c"), &[key("a")])]);
        assert_eq!((cycle.field.as_str(), cycle.message.as_str()), ("after", "dependency cycle: a → b → c → a"));

        let with = |f: &dyn Fn(&mut JobSpec)| {
            let mut s = spec(None, &[]);
            f(&mut s);
            Batch::new(vec![s]).map(|_| ()).map_err(|e| e.field)
        };
        assert_eq!(with(&|s| s.commands = vec![" ".into()]), Err("jobs[0].commands".into()));
        assert_eq!(with(&|s| s.commands = vec!["x".repeat(limits::COMMAND_BYTES)]), Err("jobs[0].commands".into()));
        assert_eq!(with(&|s| s.queue = Some(String::new())), Err("jobs[0].queue".into()));
        assert_eq!(with(&|s| s.queue = Some("a\u{1b}[2J".into())), Err("jobs[0].queue".into()));
        assert_eq!(with(&|s| s.gpus = Some(GpuCount { min: 2, max: 1 })), Err("jobs[0].gpus".into()));
        assert_eq!(with(&|s| { s.env.insert("A=B".into(), "c".into()); }), Err("jobs[0].env".into()));
        assert_eq!(with(&|s| { s.env.insert("BIG".into(), "v".repeat(limits::ENV_BYTES)); }), Err("jobs[0].env".into()));
        assert_eq!(with(&|s| s.retries = Some(limits::RETRIES + 1)), Err("jobs[0].retries".into()));
        assert_eq!(with(&|s| { s.env.insert("OK".into(), "fine".into()); s.queue = Some("sweep".into()); }), Ok(()));
        let too_many = vec![spec(None, &[]); limits::JOBS_PER_BATCH + 1];
        assert_eq!(Batch::new(too_many).expect_err("too many").field, "jobs");
    }
}
