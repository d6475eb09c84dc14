//! A submission checked field by field: what [`super::JobSpec`]s must satisfy, needing no
//! scheduler state, before they become a [`Batch`] the scheduler accepts.

use super::job::{Dependency, JobId, JobSpec};
use std::collections::HashMap;

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
    /// Memory on one GPU: far above any GPU made, far below what overflows a sum.
    pub const MEMORY_MIB: u64 = 16 << 20;
    /// How far ahead `start_at_ms` may be.
    pub const START_AHEAD_MS: u64 = 366 * 24 * 3600 * 1000;
    pub const RETRIES: u32 = 1000;
    /// How long a job may wait here before it bursts to a provider: as far ahead as a start.
    pub const BURST_WAIT_MS: u64 = START_AHEAD_MS;
    /// A job's time limit, in seconds: a year.
    pub const TIME_LIMIT_S: u64 = START_AHEAD_MS / 1000;
    /// A command file: lists of shell lines; a bigger file is a mistake.
    pub const COMMAND_FILE_BYTES: u64 = 16 << 20;
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
    /// Its index, if it is an element of an array.
    pub array_index: Option<u32>,
}

/// What a batch that is an array asks of all its elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayBatch {
    /// The parallelism of the elements' queue: this many at once, else all of them.
    pub max_running: Option<u32>,
}

/// Jobs that passed every check needing no scheduler state: counts, sizes, names, and
/// dependencies within the batch (keys that exist, no cycle). Only [`Batch::new`] makes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    jobs: Vec<NewJob>,
    run_as: Option<u32>,
    groups: Vec<u32>,
    array: Option<ArrayBatch>,
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
        Ok(Batch { jobs: specs.into_iter().zip(jobs).map(|(spec, after)| NewJob { spec, after, array_index: None }).collect(), run_as: None, groups: Vec::new(), array: None })
    }

    /// The batch as an array whose elements are its jobs, with these indices in order (see
    /// `model::array`, which makes one).
    pub fn into_array(mut self, indices: &[u32], max_running: Option<u32>) -> Batch {
        for (job, index) in self.jobs.iter_mut().zip(indices) {
            job.array_index = Some(*index);
        }
        self.array = Some(ArrayBatch { max_running });
        self
    }

    pub fn array_batch(&self) -> Option<ArrayBatch> {
        self.array
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

    /// The Unix user the batch's jobs run as (`None`: the daemon's own) and the groups their
    /// owner is in (for group quotas), decided from who submitted it, never from the body.
    pub fn set_identity(&mut self, run_as: Option<u32>, groups: Vec<u32>) {
        self.run_as = run_as;
        self.groups = groups;
    }

    pub fn run_as(&self) -> Option<u32> {
        self.run_as
    }

    pub fn groups(&self) -> &[u32] {
        &self.groups
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
    if let Some(provider) = &spec.provider {
        name(provider).map_err(|m| ("provider", m))?;
    }
    if let Some(burst) = &spec.burst {
        if spec.provider.is_some() {
            return Err(("burst", "the job names a provider, so it runs there and never waits here; give one or the other".into()));
        }
        if burst.max_wait_ms.is_some_and(|ms| ms > limits::BURST_WAIT_MS) {
            return Err(("burst.max_wait_ms", format!("at most {} (a year)", limits::BURST_WAIT_MS)));
        }
        for provider in &burst.providers {
            name(provider).map_err(|m| ("burst.providers", m))?;
        }
    }
    if let Some(image) = &spec.image {
        if spec.provider.is_none() {
            return Err(("image", "this node runs commands, not containers: an image needs a provider to run it in".into()));
        }
        if image.is_empty() || image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(("image", "an image reference of 1 to 512 characters without spaces".into()));
        }
    }
    if let Some(gpu_type) = &spec.gpu_type
        && (gpu_type.trim().is_empty() || gpu_type.len() > 128 || gpu_type.chars().any(char::is_control))
    {
        return Err(("gpu_type", "a GPU type name of 1 to 128 characters".into()));
    }
    if spec.cpus.is_some_and(|c| c > 4096) {
        return Err(("cpus", "at most 4096".into()));
    }
    if spec.ram_gib.is_some_and(|r| r > 65536) {
        return Err(("ram_gib", "at most 65536 GiB".into()));
    }
    if let Some(gpus) = spec.gpus {
        gpus.check().map_err(|m| ("gpus", m))?;
    }
    if let Some(limit) = spec.time_limit_s
        && !(1..=limits::TIME_LIMIT_S).contains(&limit)
    {
        return Err(("time_limit_s", format!("{limit}: give 1 to {} seconds (a year)", limits::TIME_LIMIT_S)));
    }
    if spec.memory_mib > limits::MEMORY_MIB {
        return Err(("memory_mib", format!("{} MiB; at most {} per GPU", spec.memory_mib, limits::MEMORY_MIB)));
    }
    if let Some(at) = spec.start_at_ms
        && at > super::now_ms().saturating_add(limits::START_AHEAD_MS)
    {
        return Err(("start_at_ms", format!("{at} is more than a year ahead (milliseconds since the Unix epoch are expected)")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GpuCount;

    fn spec(key: Option<&str>, after: &[Dependency]) -> JobSpec {
        JobSpec { commands: vec!["true".into()], key: key.map(String::from), after: after.to_vec(), ..JobSpec::default() }
    }

    fn key(k: &str) -> Dependency {
        Dependency::Key(k.into())
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
        let burst = |max_wait_ms, providers: &[&str]| Some(crate::model::Burst { max_wait_ms, providers: providers.iter().map(|p| p.to_string()).collect() });
        assert_eq!(with(&|s| { s.burst = burst(None, &[]); s.provider = Some("slurm".into()); }), Err("jobs[0].burst".into()), "go there, or wait here first: not both");
        assert_eq!(with(&|s| s.burst = burst(Some(limits::BURST_WAIT_MS + 1), &[])), Err("jobs[0].burst.max_wait_ms".into()));
        assert_eq!(with(&|s| s.time_limit_s = Some(0)), Err("jobs[0].time_limit_s".into()));
        assert_eq!(with(&|s| s.time_limit_s = Some(limits::TIME_LIMIT_S + 1)), Err("jobs[0].time_limit_s".into()));
        assert_eq!(with(&|s| s.burst = burst(None, &[""])), Err("jobs[0].burst.providers".into()));
        assert_eq!(with(&|s| s.burst = burst(Some(0), &["slurm", "k8s"])), Ok(()));
        assert_eq!(with(&|s| s.image = Some("pytorch:24.02".into())), Err("jobs[0].image".into()), "no container here");
        assert_eq!(with(&|s| { s.image = Some("a b".into()); s.provider = Some("runpod".into()); }), Err("jobs[0].image".into()));
        assert_eq!(with(&|s| { s.image = Some("nvcr.io/nvidia/pytorch:24.02-py3".into()); s.provider = Some("runpod".into()); s.gpu_type = Some("A100".into()); s.cpus = Some(12); s.ram_gib = Some(48); }), Ok(()));
        assert_eq!(with(&|s| s.gpu_type = Some(" ".into())), Err("jobs[0].gpu_type".into()));
        assert_eq!(with(&|s| s.cpus = Some(5000)), Err("jobs[0].cpus".into()));
        let too_many = vec![spec(None, &[]); limits::JOBS_PER_BATCH + 1];
        assert_eq!(Batch::new(too_many).expect_err("too many").field, "jobs");
    }
}
