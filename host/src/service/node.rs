//! This machine: its GPUs and host as the monitors last saw them (no NVML or `/proc` read per
//! request), Prometheus metrics, the plugins, and seed 000's training tasks.

use super::{off_thread, Service, ServiceError};
use crate::federation::{Node, Versions};
use crate::gpu::{GpuSummary, NodeGpus, SamplerConfig, UsageSample};
use crate::host_info::HostInfo;
use crate::metrics::{family, label};
use crate::model::{now_ms, JobId, Principal, JOB_ID_VAR};
use crate::plugin::{PluginKind, PluginStatus};
use crate::tasks::{Registration, Report, Task};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One GPU with its recent history.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuDetail {
    #[serde(flatten)]
    pub summary: GpuSummary,
    pub history: Vec<UsageSample>,
}

/// The latest GPU sample and host reading, for the seed consoles that show both.
pub struct Machine {
    pub gpus: NodeGpus,
    pub host: HostInfo,
    pub sampler: SamplerConfig,
}

/// The latest GPU sample with the gantry job running on each GPU and that job's reported
/// training progress (seed 000's `current_task`).
pub struct GpusWithTasks {
    pub gpus: NodeGpus,
    pub jobs: HashMap<u32, JobId>,
    pub progress: HashMap<JobId, f64>,
}

/// Queues that get a `gantry_queue_depth` series of their own.
const QUEUE_SERIES: usize = 100;

impl Service {
    pub fn node(&self) -> Node {
        let latest = self.gpus.latest();
        Node {
            simulated: latest.simulated,
            versions: Versions { gantry: env!("CARGO_PKG_VERSION").into(), wit: crate::plugin::wit_version().into() },
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

    pub fn machine(&self) -> Machine {
        Machine { gpus: self.gpus.latest(), host: self.host.latest(), sampler: self.gpus.config().clone() }
    }

    /// When the latest GPU sample was taken: tells a cache of an answer made from it whether it
    /// is current.
    pub fn sampled_at_ms(&self) -> u64 {
        self.gpus.sampled_at_ms()
    }

    pub async fn gpus_with_tasks(&self) -> Result<GpusWithTasks, ServiceError> {
        let running = self.scheduler.running().await?;
        let jobs: HashMap<u32, JobId> = running.iter().flat_map(|job| job.gpus.iter().map(move |&g| (g, job.id))).collect();
        // Only the running jobs' tasks, looked up one by one: this answers dashboards polling.
        let progress = running.iter().filter_map(|job| Some((job.id, self.tasks.get(job.id.0).ok()?.progress?))).collect();
        Ok(GpusWithTasks { gpus: self.gpus.latest(), jobs, progress })
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
        // The deepest queues by name, the rest summed: a series per queue would grow a scrape
        // without bound (one per job when jobs have no queue of their own).
        let mut depths: Vec<(&str, usize)> = status.queues.iter().map(|q| (q.name.as_str(), q.counts.waiting + q.counts.held)).filter(|(_, d)| *d > 0).collect();
        depths.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let rest: usize = depths.iter().skip(QUEUE_SERIES).map(|(_, d)| d).sum();
        let depth = depths.iter().take(QUEUE_SERIES).map(|(name, d)| (format!("queue=\"{}\"", label(name)), *d as f64));
        let others = (depths.len() > QUEUE_SERIES).then(|| ("queue=\"(others)\"".to_string(), rest as f64));
        family(&mut out, "gantry_queue_depth", "gauge", "Jobs waiting or held in the deepest queues; the rest summed as queue=\"(others)\".", depth.chain(others));
        // Which job holds what on which GPU, as DCGM's HPC job mapping gives its users: a series
        // per running job and GPU only, so a scrape stays as small as what runs.
        let snapshots = &snapshots;
        let held = status.running.iter().flat_map(|job| {
            job.gpus.iter().map(move |&index| {
                let gpu = snapshots.iter().find(|g| g.index == index);
                let used: u64 = gpu.map(|g| g.processes.iter().filter(|p| p.job == Some(job.id)).filter_map(|p| p.used_memory_mib).sum()).unwrap_or(0);
                let uuid = gpu.map(|g| label(&g.uuid)).unwrap_or_default();
                let labels = format!("job=\"{}\",queue=\"{}\",owner=\"{}\",gpu=\"{index}\",UUID=\"{uuid}\"", job.id, label(&job.queue), label(job.owner.as_deref().unwrap_or("")));
                (labels, used as f64)
            })
        });
        family(&mut out, "gantry_job_gpu_memory_used_mib", "gauge", "GPU memory the processes of each running job hold on each of its GPUs (MiB).", held);
        self.metrics.render(&mut out);

        let plugins = self.plugins.list();
        let named = |p: &PluginStatus| format!("plugin=\"{}\"", label(&p.name));
        family(&mut out, "gantry_plugin_calls_total", "counter", "Calls into each plugin.", plugins.iter().map(|p| (named(p), p.calls as f64)));
        family(&mut out, "gantry_plugin_failures_total", "counter", "Calls that trapped, timed out, hit a limit or failed.", plugins.iter().map(|p| (named(p), p.failures as f64)));
        family(&mut out, "gantry_plugin_call_seconds_total", "counter", "Time spent in calls into each plugin.", plugins.iter().map(|p| (named(p), p.call_seconds)));
        Ok(out)
    }

    /// Loaded plugins and files that failed to load, of one kind if `kind` says so.
    pub fn plugins(&self, kind: Option<PluginKind>) -> Vec<PluginStatus> {
        self.plugins.list().into_iter().filter(|p| kind.is_none_or(|k| p.kind == Some(k))).collect()
    }

    /// The configured providers, with the health of each.
    pub fn providers(&self) -> Vec<crate::providers::ProviderStatus> {
        self.providers.list()
    }

    /// Reconciles the plugin directory now, off the async threads, and lists the plugins.
    pub async fn reload_plugins(&self) -> Result<Vec<PluginStatus>, ServiceError> {
        let plugins = self.plugins.clone();
        off_thread(move || {
            plugins.rescan();
            Ok::<_, ServiceError>(plugins.list())
        })
        .await
    }

    /// Registers a training task; one that names its job (or runs as a process of one) is that
    /// job's, on its GPUs, if the caller may see the job.
    pub async fn register_task(&self, who: &Principal, registration: Registration) -> Result<Task, ServiceError> {
        let job_id = match (registration.job_id, registration.pid) {
            (Some(id), _) => Some(id),
            (None, Some(pid)) => off_thread(move || Ok::<_, ServiceError>(crate::procfs::environment_value(pid, JOB_ID_VAR).and_then(|v| v.parse().ok()))).await?,
            (None, None) => None,
        };
        let gpus = match job_id {
            Some(id) => self.scheduler.job(id, who.scope()).await?.current_attempt().map(|a| a.gpus.clone()).unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(self.tasks.register(registration, &who.name, job_id, gpus, now_ms())?)
    }

    /// A progress report, from the task's owner (or an admin).
    pub fn report_task(&self, who: &Principal, id: u64, report: Report) -> Result<Task, ServiceError> {
        let scope = who.scope();
        Ok(self.tasks.report(id, report, now_ms(), |owner| scope.allows(Some(owner)))?)
    }

    pub fn task(&self, id: u64) -> Result<Task, ServiceError> {
        Ok(self.tasks.get(id)?)
    }

    pub fn tasks(&self) -> Vec<Task> {
        self.tasks.list()
    }
}
