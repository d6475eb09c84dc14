//! What the HTTP routes call: the scheduler for jobs, plus what needs more than the scheduler
//! (a command file goes through the parser plugin before it becomes a run; logs are read from
//! attempt directories).

use crate::auth::{AuthMode, Authority, Principal, Role};
use crate::executor;
use crate::gpu::{DriverInfo, GpuMonitor, GpuSummary, UsageSample};
use crate::host_info::{HostInfo, HostMonitor};
use crate::metrics::{family, label, SchedulerMetrics};
use crate::plugin::{Diagnostic, JobFile, ParseMode, PluginRuntime};
use crate::scheduler::{GpuCount, Job, JobFilter, JobId, JobSpec, JobState, RunId, RunMode, RunRequest, RunStatus, Scheduler, SchedulerError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// The parser's findings, each with line and column.
    #[error("{path}: {} problem(s)", diagnostics.len())]
    Parse { path: PathBuf, diagnostics: Vec<Diagnostic> },
    #[error("parser plugin {0} is not loaded")]
    NoParser(String),
    #[error("parser plugin: {0}")]
    Plugin(String),
    #[error("job {job} has no attempt {attempt}")]
    NoAttempt { job: JobId, attempt: u32 },
    #[error("GPU {0} does not exist")]
    NoSuchGpu(u32),
    #[error("{0}")]
    Forbidden(String),
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    CommandFile(#[from] crate::command_files::CommandFileError),
    #[error(transparent)]
    Edit(#[from] crate::config::edit::EditError),
    #[error(transparent)]
    LogAccess(#[from] crate::log_access::LogAccessError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("{0}")]
    Internal(String),
}

pub struct Service {
    pub scheduler: Scheduler,
    pub gpus: Arc<GpuMonitor>,
    pub host: HostMonitor,
    pub plugins: Arc<PluginRuntime>,
    pub parser: String,
    pub metrics: Arc<SchedulerMetrics>,
    pub auth: Arc<Authority>,
    /// The configuration as last read or written (the rules in it may have changed since start).
    pub config: parking_lot::RwLock<crate::config::Config>,
    pub config_file: Arc<crate::config::edit::ConfigFile>,
    pub logs: Arc<crate::log_access::LogAccess>,
    pub tasks: crate::tasks::Tasks,
    /// Notified to stop serving (`gantry shutdown`); jobs keep running under their shims.
    pub shutdown: Arc<tokio::sync::Notify>,
}

/// This machine at a glance: what an agent will report to a federation master.
#[derive(Debug, Serialize, Deserialize)]
pub struct Node {
    pub simulated: bool,
    pub versions: Versions,
    pub driver: DriverInfo,
    pub host: HostInfo,
    pub sampled_at_ms: u64,
    pub gpus: Vec<GpuSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Versions {
    pub gantry: String,
    /// The `gantry:plugin` WIT package plugins must target.
    pub wit: String,
}

/// One GPU with its recent history.
#[derive(Debug, Serialize, Deserialize)]
pub struct GpuDetail {
    #[serde(flatten)]
    pub summary: GpuSummary,
    pub history: Vec<UsageSample>,
}

/// A piece of a job's log.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogChunk {
    pub job: JobId,
    pub attempt: u32,
    pub offset: u64,
    pub next_offset: u64,
    pub data: String,
    /// The attempt has ended: nothing more will be written.
    pub complete: bool,
}

/// What an account has used here (`/auth/users/me`).
#[derive(Debug, Default, Serialize)]
pub struct Usage {
    pub jobs_submitted: usize,
    pub jobs_running: usize,
    pub jobs_succeeded: usize,
    pub jobs_failed: usize,
    /// GPU time of all its attempts, in hours.
    pub gpu_hours: f64,
}

/// Runs blocking work (files, SQLite, argon2, plugin calls) off the async threads.
pub async fn off_thread<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ServiceError>
where
    T: Send + 'static,
    E: Into<ServiceError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| ServiceError::Internal(e.to_string()))?.map_err(Into::into)
}

/// Most bytes one log request returns.
const LOG_CHUNK: usize = 1 << 20;

impl Service {
    /// From the sampler's and the host monitor's memory: no NVML or `/proc` read per request.
    pub fn node(&self) -> Node {
        let latest = self.gpus.latest();
        Node {
            simulated: latest.simulated,
            versions: Versions { gantry: env!("CARGO_PKG_VERSION").into(), wit: crate::plugin::bindings::host_wit_version().into() },
            driver: latest.driver,
            host: self.host.latest(),
            sampled_at_ms: latest.sampled_at_ms,
            gpus: self.gpus.summaries(),
        }
    }

    /// One GPU, with its samples since `since_ms` (the whole ring buffer by default).
    pub fn gpu(&self, index: u32, since_ms: Option<u64>) -> Result<GpuDetail, ServiceError> {
        let summary = self.gpus.summaries().into_iter().find(|s| s.reading.index() == index).ok_or(ServiceError::NoSuchGpu(index))?;
        Ok(GpuDetail { summary, history: self.gpus.history(index, since_ms.unwrap_or(0)) })
    }

    /// Everything Prometheus scrapes, in its text format. GPU figures use DCGM exporter's names
    /// (`DCGM_FI_DEV_*`) so existing dashboards work.
    pub async fn metrics(&self) -> Result<String, ServiceError> {
        let mut out = String::new();
        let gpus = self.gpus.latest();
        let snapshots: Vec<_> = gpus.gpus.iter().filter_map(|r| r.snapshot()).collect();
        let per_gpu = |value: &dyn Fn(&crate::gpu::GpuSnapshot) -> Option<f64>| -> Vec<(String, f64)> {
            snapshots
                .iter()
                .filter_map(|g| value(g).map(|v| (format!("gpu=\"{}\",UUID=\"{}\",modelName=\"{}\"", g.index, label(&g.uuid), label(&g.name)), v)))
                .collect()
        };
        family(&mut out, "DCGM_FI_DEV_FB_USED", "gauge", "GPU memory used (MiB).", per_gpu(&|g| Some(g.memory_used_mib as f64)));
        family(&mut out, "DCGM_FI_DEV_FB_FREE", "gauge", "GPU memory free (MiB).", per_gpu(&|g| Some(g.memory_free_mib as f64)));
        family(&mut out, "DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilisation (%).", per_gpu(&|g| g.utilization_gpu.map(f64::from)));
        family(&mut out, "DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (C).", per_gpu(&|g| g.temperature_c.map(f64::from)));
        family(&mut out, "DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (W).", per_gpu(&|g| g.power_draw_w));
        let available = gpus.gpus.iter().map(|r| (format!("gpu=\"{}\"", r.index()), if r.snapshot().is_some() { 1.0 } else { 0.0 }));
        family(&mut out, "gantry_gpu_available", "gauge", "1 when the GPU answers NVML, 0 while it is lost or failing.", available);

        let status = self.scheduler.status().await?;
        let c = &status.counts;
        let states = [("waiting", c.waiting), ("held", c.held), ("running", c.running), ("succeeded", c.succeeded), ("failed", c.failed), ("cancelled", c.cancelled)];
        family(&mut out, "gantry_jobs", "gauge", "Jobs by state.", states.iter().map(|(s, n)| (format!("state=\"{s}\""), *n as f64)));
        let depth = status.queues.iter().map(|q| (format!("queue=\"{}\"", label(&q.name)), (q.counts.waiting + q.counts.held) as f64));
        family(&mut out, "gantry_queue_depth", "gauge", "Jobs waiting or held in each queue with work left.", depth);
        self.metrics.render(&mut out);

        let plugins = self.plugins.list();
        let named = |p: &crate::plugin::PluginStatus| format!("plugin=\"{}\"", label(&p.name));
        family(&mut out, "gantry_plugin_calls_total", "counter", "Calls into each plugin.", plugins.iter().map(|p| (named(p), p.calls as f64)));
        family(&mut out, "gantry_plugin_failures_total", "counter", "Calls that trapped, timed out, hit a limit or failed.", plugins.iter().map(|p| (named(p), p.failures as f64)));
        family(&mut out, "gantry_plugin_call_seconds_total", "counter", "Time spent in calls into each plugin.", plugins.iter().map(|p| (named(p), p.call_seconds)));
        Ok(out)
    }

    /// Reconciles the plugin directory now, off the async threads, and lists the plugins.
    pub async fn reload_plugins(&self) -> Result<Vec<crate::plugin::PluginStatus>, ServiceError> {
        let plugins = self.plugins.clone();
        tokio::task::spawn_blocking(move || {
            plugins.rescan();
            plugins.list()
        })
        .await
        .map_err(|e| ServiceError::Plugin(e.to_string()))
    }

    /// Loads a command file as a run: read, parsed by the parser plugin (off the async threads),
    /// its blocks turned into jobs whose queues are the file's queue ids.
    pub async fn start_run(&self, file: PathBuf, mode: Option<RunMode>, who: Option<&Principal>) -> Result<RunStatus, ServiceError> {
        let text = tokio::fs::read_to_string(&file)
            .await
            .map_err(|e| ServiceError::File { path: file.clone(), message: e.to_string() })?;
        let parse_mode = mode.map(super::editing::parse_mode);
        let job_file = self.parse(&file, parse_mode, &text).await?;
        let mode = match job_file.mode {
            ParseMode::Single => RunMode::Single,
            ParseMode::Multi => RunMode::Multi,
        };
        let cwd = file.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
        let jobs = job_file
            .jobs
            .into_iter()
            .map(|block| JobSpec {
                commands: block.commands,
                queue: Some(block.queue.to_string()),
                gpus: Some(GpuCount { min: block.gpu_count.max(1), max: block.gpu_count.max(1) }),
                memory_mib: gb_to_mib(block.memory_gb),
                cwd: cwd.clone(),
                ..JobSpec::default()
            })
            .map(|mut spec| {
                if let Some(who) = who {
                    self.stamp_owner(who, &mut spec);
                }
                spec
            })
            .collect();
        Ok(self.scheduler.start_run(RunRequest { file, mode, jobs }).await?)
    }

    /// A command file's text as jobs, by the parser plugin (off the async threads); its
    /// findings come back with line and column.
    pub async fn parse(&self, file: &Path, mode: Option<ParseMode>, text: &str) -> Result<JobFile, ServiceError> {
        let parser = self.plugins.get(&self.parser).ok_or_else(|| ServiceError::NoParser(self.parser.clone()))?;
        let (name, text) = (file.to_string_lossy().into_owned(), text.to_string());
        let parsed = off_thread(move || parser.parse(&name, mode, &text).map_err(|e| ServiceError::Plugin(e.to_string()))).await?;
        parsed.map_err(|diagnostics| ServiceError::Parse { path: file.to_path_buf(), diagnostics })
    }

    /// Registers a training task; one that names its job (or runs as a process of one) is that
    /// job's, on its GPUs.
    pub async fn register_task(&self, registration: crate::tasks::Registration, who: &Principal) -> Result<crate::tasks::Task, ServiceError> {
        let job_id = registration.job_id.or_else(|| {
            registration.pid.and_then(|pid| crate::procfs::environment_value(pid, crate::scheduler::JOB_ID_VAR)).and_then(|v| v.parse().ok())
        });
        let gpus = match job_id {
            Some(id) => {
                let job = self.scheduler.job(id).await?;
                Self::may_touch(who, &job)?;
                job.current_attempt().map(|a| a.gpus.clone()).unwrap_or_default()
            }
            None => Vec::new(),
        };
        Ok(self.tasks.register(registration, job_id, gpus, crate::auth::now_ms()))
    }

    /// Users see and change only their own jobs; admins all of them, viewers see all and change
    /// none (their routes let them only read).
    pub fn may_touch(who: &Principal, job: &Job) -> Result<(), ServiceError> {
        if who.role == Role::User && job.spec.owner.as_deref() != Some(who.name.as_str()) {
            let owner = job.spec.owner.as_deref().unwrap_or("nobody");
            return Err(ServiceError::Forbidden(format!("job {} belongs to {owner}", job.id)));
        }
        Ok(())
    }

    /// [`Service::may_touch`] for a job known by id. Only callers limited to their own jobs cost
    /// a lookup.
    pub async fn check_owner(&self, who: &Principal, id: JobId) -> Result<(), ServiceError> {
        if who.role == Role::User {
            Self::may_touch(who, &self.scheduler.job(id).await?)?;
        }
        Ok(())
    }

    /// Where callers log in, a job is owned by whoever submits it; only an admin may submit in
    /// someone else's name. Without logins the spec's owner stands.
    pub fn stamp_owner(&self, who: &Principal, spec: &mut JobSpec) {
        if self.auth.mode() != AuthMode::None && (who.role != Role::Admin || spec.owner.is_none()) {
            spec.owner = Some(who.name.clone());
        }
    }

    /// Stops a run, if every job of it is the caller's to cancel.
    pub async fn stop_run(&self, id: RunId, who: &Principal) -> Result<RunStatus, ServiceError> {
        for job in self.scheduler.jobs(JobFilter { run: Some(id), ..JobFilter::default() }).await? {
            Self::may_touch(who, &job)?;
        }
        Ok(self.scheduler.stop_run(id).await?)
    }

    /// Jobs of `owner` by state, and the GPU time of their attempts.
    pub async fn usage(&self, owner: &str) -> Result<Usage, ServiceError> {
        let jobs = self.scheduler.jobs(JobFilter { owner: Some(owner.to_string()), ..JobFilter::default() }).await?;
        let now = crate::auth::now_ms();
        let gpu_ms: u64 = jobs
            .iter()
            .flat_map(|j| j.attempts.iter())
            .map(|a| a.ended_ms.unwrap_or(now).saturating_sub(a.started_ms) * a.gpus.len() as u64)
            .sum();
        let count = |state: JobState| jobs.iter().filter(|j| j.state == state).count();
        Ok(Usage {
            jobs_submitted: jobs.len(),
            jobs_running: count(JobState::Running),
            jobs_succeeded: count(JobState::Succeeded),
            jobs_failed: count(JobState::Failed),
            gpu_hours: gpu_ms as f64 / 3_600_000.0,
        })
    }

    /// Reads an attempt's log (the latest attempt unless one is named) from `offset`.
    pub async fn log(&self, id: JobId, attempt: Option<u32>, offset: u64) -> Result<LogChunk, ServiceError> {
        let job: Job = self.scheduler.job(id).await?;
        let chosen = match attempt {
            Some(n) => job.attempts.iter().find(|a| a.number == n).ok_or(ServiceError::NoAttempt { job: id, attempt: n })?,
            None => match job.attempts.last() {
                Some(a) => a,
                None => return Ok(LogChunk { job: id, attempt: 0, offset, next_offset: offset, data: String::new(), complete: job.state.is_final() }),
            },
        };
        let path = executor::log_path(&chosen.dir);
        let complete = chosen.ended_ms.is_some();
        let number = chosen.number;
        let read_error = |message: String| ServiceError::File { path: executor::log_path(&chosen.dir), message };
        let (bytes, next_offset) = tokio::task::spawn_blocking(move || executor::read_log(&path, offset, LOG_CHUNK))
            .await
            .map_err(|e| read_error(e.to_string()))?
            .map_err(|e| read_error(e.to_string()))?;
        Ok(LogChunk { job: id, attempt: number, offset: next_offset - bytes.len() as u64, next_offset, data: String::from_utf8_lossy(&bytes).into_owned(), complete })
    }
}

/// Seed 004 gives memory in GB (decimal fractions allowed); jobs need MiB. 1 GB in those files
/// means what `nvidia-smi` calls 1 GiB, 1024 MiB.
fn gb_to_mib(gb: f64) -> u64 {
    (gb.max(0.0) * 1024.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn gigabytes_of_command_files() {
        assert_eq!(super::gb_to_mib(4.0), 4096);
        assert_eq!(super::gb_to_mib(0.5), 512);
        assert_eq!(super::gb_to_mib(0.3), 308);
    }
}
