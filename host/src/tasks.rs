//! Seed 000's training tasks: a training process registers itself and reports its progress
//! (step, epoch, loss, free-form metrics), and GPU views show it next to the job. A task started
//! by gantry is its job (found from the job id, or from the process's `GANTRY_JOB_ID`); one
//! started by hand is tracked on its own. Progress lives in memory: it is what the process says
//! now, and it says it again after a daemon restart.

use crate::model::JobId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Task {
    pub task_id: u64,
    pub name: String,
    /// Who registered it: only they (and admins) report its progress.
    pub owner: String,
    pub job_id: Option<JobId>,
    pub pid: Option<u32>,
    pub gpu_ids: Vec<u32>,
    /// Percent, 0 to 100.
    pub progress: Option<f64>,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub epoch: Option<u64>,
    pub loss: Option<f64>,
    pub message: Option<String>,
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub registered_ms: u64,
    pub updated_ms: u64,
}

#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub name: Option<String>,
    pub job_id: Option<JobId>,
    pub pid: Option<u32>,
    #[serde(default)]
    pub gpu_ids: Vec<u32>,
    pub total_steps: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Percent; worked out from `step` and `total_steps` when not given.
    pub progress: Option<f64>,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub epoch: Option<u64>,
    pub loss: Option<f64>,
    pub message: Option<String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TaskError {
    #[error("task {0} is not registered")]
    Unknown(u64),
    #[error("task {id} belongs to {owner}")]
    NotYours { id: u64, owner: String },
    #[error("`{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    TooMany(String),
}

/// What the tasks may hold, which live in memory: without bounds, a few hundred registrations
/// with megabytes of metrics each took the daemon's memory.
pub mod limits {
    pub const TASKS: usize = 10_000;
    pub const TASKS_PER_OWNER: usize = 1_000;
    pub const NAME_BYTES: usize = 256;
    pub const MESSAGE_BYTES: usize = 4096;
    pub const METRICS: usize = 32;
    pub const METRIC_KEY_BYTES: usize = 64;
    /// A metric's value as JSON text.
    pub const METRIC_VALUE_BYTES: usize = 1024;
}

fn too_long(field: &'static str, text: &str, limit: usize) -> Result<(), TaskError> {
    if text.len() > limit {
        return Err(TaskError::Invalid { field, message: format!("{} bytes; at most {limit}", text.len()) });
    }
    Ok(())
}

/// Ids of tasks without a job start here, clear of job ids.
const OWN_IDS: u64 = 1 << 40;

#[derive(Default)]
pub struct Tasks {
    tasks: parking_lot::RwLock<BTreeMap<u64, Task>>,
}

impl Tasks {
    /// A task for `job` (if any) takes the job's id; registering again updates it. An owner may
    /// have [`limits::TASKS_PER_OWNER`] tasks, everyone together [`limits::TASKS`].
    pub fn register(&self, r: Registration, owner: &str, job: Option<JobId>, gpu_ids: Vec<u32>, now_ms: u64) -> Result<Task, TaskError> {
        if let Some(name) = &r.name {
            too_long("name", name, limits::NAME_BYTES)?;
        }
        let mut tasks = self.tasks.write();
        let task_id = job.map_or_else(|| tasks.keys().copied().filter(|k| *k >= OWN_IDS).max().map_or(OWN_IDS, |k| k + 1), |j| j.0);
        if !tasks.contains_key(&task_id) {
            if tasks.len() >= limits::TASKS {
                return Err(TaskError::TooMany(format!("{} tasks are registered, the most this daemon keeps", limits::TASKS)));
            }
            if tasks.values().filter(|t| t.owner == owner).count() >= limits::TASKS_PER_OWNER {
                return Err(TaskError::TooMany(format!("{owner} has {} tasks registered, the most one owner may", limits::TASKS_PER_OWNER)));
            }
        }
        let name = r.name.unwrap_or_else(|| job.map_or_else(|| format!("task {task_id}"), |j| format!("job {j}")));
        let task = Task {
            task_id,
            name,
            owner: owner.to_string(),
            job_id: job,
            pid: r.pid,
            gpu_ids: if gpu_ids.is_empty() { r.gpu_ids } else { gpu_ids },
            progress: None,
            step: None,
            total_steps: r.total_steps,
            epoch: None,
            loss: None,
            message: None,
            metrics: BTreeMap::new(),
            registered_ms: now_ms,
            updated_ms: now_ms,
        };
        tasks.insert(task_id, task.clone());
        Ok(task)
    }

    /// Records a report on task `id`, if `may` lets its reporter change a task of that owner.
    pub fn report(&self, id: u64, r: Report, now_ms: u64, may: impl Fn(&str) -> bool) -> Result<Task, TaskError> {
        if let Some(p) = r.progress.filter(|p| !p.is_finite() || !(0.0..=100.0).contains(p)) {
            return Err(TaskError::Invalid { field: "progress", message: format!("must be a percentage from 0 to 100, got {p}") });
        }
        if let Some(message) = &r.message {
            too_long("message", message, limits::MESSAGE_BYTES)?;
        }
        for (key, value) in &r.metrics {
            too_long("metrics", key, limits::METRIC_KEY_BYTES)?;
            too_long("metrics", &value.to_string(), limits::METRIC_VALUE_BYTES).map_err(|_| TaskError::Invalid { field: "metrics", message: format!("{key}: at most {} bytes of JSON", limits::METRIC_VALUE_BYTES) })?;
        }
        let mut tasks = self.tasks.write();
        let task = tasks.get_mut(&id).ok_or(TaskError::Unknown(id))?;
        if !may(&task.owner) {
            return Err(TaskError::NotYours { id, owner: task.owner.clone() });
        }
        task.step = r.step.or(task.step);
        task.total_steps = r.total_steps.or(task.total_steps);
        task.epoch = r.epoch.or(task.epoch);
        task.loss = r.loss.or(task.loss);
        task.message = r.message.or(task.message.take());
        let added = r.metrics.keys().filter(|k| !task.metrics.contains_key(*k)).count();
        if task.metrics.len() + added > limits::METRICS {
            return Err(TaskError::Invalid { field: "metrics", message: format!("at most {} metrics per task", limits::METRICS) });
        }
        task.metrics.extend(r.metrics);
        task.progress = r.progress.or_else(|| match (task.step, task.total_steps) {
            (Some(step), Some(total)) if total > 0 => Some((step as f64 / total as f64 * 100.0).min(100.0)),
            _ => task.progress,
        });
        task.updated_ms = now_ms;
        Ok(task.clone())
    }

    pub fn get(&self, id: u64) -> Result<Task, TaskError> {
        self.tasks.read().get(&id).cloned().ok_or(TaskError::Unknown(id))
    }

    pub fn list(&self) -> Vec<Task> {
        self.tasks.read().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_task_takes_its_id_and_progress_follows_the_steps() {
        let tasks = Tasks::default();
        let task = tasks.register(Registration { total_steps: Some(200), ..Registration::default() }, "ada", Some(JobId(7)), vec![1], 10).expect("registered");
        assert_eq!((task.task_id, task.name.as_str(), task.gpu_ids.as_slice()), (7, "job 7", &[1][..]));
        let own = tasks.register(Registration { name: Some("by hand".into()), gpu_ids: vec![0], ..Registration::default() }, "ada", None, vec![], 10).expect("registered");
        assert_eq!(own.task_id, OWN_IDS);
        let report = Report { step: Some(50), loss: Some(0.25), ..Report::default() };
        let ada = |owner: &str| owner == "ada";
        assert_eq!(tasks.report(7, report.clone(), 20, |owner| owner == "bob"), Err(TaskError::NotYours { id: 7, owner: "ada".into() }));
        let task = tasks.report(7, report, 20, ada).expect("known");
        assert_eq!((task.progress, task.loss, task.updated_ms), (Some(25.0), Some(0.25), 20));
        let bad = Report { progress: Some(150.0), ..Report::default() };
        assert!(matches!(tasks.report(7, bad, 30, ada), Err(TaskError::Invalid { field: "progress", .. })));
        assert_eq!(tasks.report(9, Report::default(), 30, ada), Err(TaskError::Unknown(9)));
    }

    #[test]
    fn tasks_are_bounded_in_number_and_size() {
        let tasks = Tasks::default();
        for _ in 0..limits::TASKS_PER_OWNER {
            tasks.register(Registration::default(), "ada", None, vec![], 1).expect("within the limit");
        }
        assert!(matches!(tasks.register(Registration::default(), "ada", None, vec![], 1), Err(TaskError::TooMany(_))));
        let bob = tasks.register(Registration::default(), "bob", None, vec![], 1).expect("another owner");
        let anyone = |_: &str| true;
        let huge = Report { message: Some("x".repeat(limits::MESSAGE_BYTES + 1)), ..Report::default() };
        assert!(matches!(tasks.report(bob.task_id, huge, 2, anyone), Err(TaskError::Invalid { field: "message", .. })));
        let big_value = Report { metrics: [("loss".to_string(), serde_json::json!("y".repeat(2000)))].into(), ..Report::default() };
        assert!(matches!(tasks.report(bob.task_id, big_value, 2, anyone), Err(TaskError::Invalid { field: "metrics", .. })));
        let many = Report { metrics: (0..=limits::METRICS).map(|i| (format!("m{i}"), serde_json::json!(i))).collect(), ..Report::default() };
        assert!(matches!(tasks.report(bob.task_id, many, 2, anyone), Err(TaskError::Invalid { field: "metrics", .. })));
    }
}
