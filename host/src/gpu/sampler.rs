//! The sampler: one thread owns the NVML reader and samples every GPU each `interval` into a ring
//! buffer per GPU. Policies judge a GPU by the peak memory and mean utilisation over the recent
//! `window` (seed 004's high-frequency sampling): a GPU that is free only between two iterations of
//! someone else's training loop is not free.
//!
//! A GPU that fails (lost, timing out) is shown unavailable and retried with backoff; the others
//! keep reporting, and the daemon never stops for it.

use super::{GpuReading, NodeGpus, NvmlReader};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    pub interval: Duration,
    /// How far back the ring buffers reach.
    pub history: Duration,
    /// What "recent" means for the peak and mean that placement uses.
    pub window: Duration,
}

impl SamplerConfig {
    /// Faster sampling than this costs CPU for no decision it would change.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { interval: Duration::from_secs(1), history: Duration::from_secs(600), window: Duration::from_secs(10) }
    }
}

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageSample {
    pub at_ms: u64,
    pub memory_used_mib: u64,
    /// Memory held by processes the owner (the scheduler) did not claim as its own jobs'.
    pub memory_foreign_mib: u64,
    pub utilization_gpu: Option<u32>,
}

/// A GPU as policies see it: the latest reading and its recent history condensed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuSummary {
    pub reading: GpuReading,
    /// Highest memory use within the window (at least the latest use).
    pub memory_peak_mib: u64,
    /// Highest memory use by processes not claimed as gantry's own within the window. Gantry
    /// knows what its own jobs hold; judging them by a peak would keep a GPU looking busy for a
    /// whole window after its job ended.
    pub foreign_peak_mib: u64,
    pub utilization_mean: Option<u32>,
}

/// Tells whether a job is one of gantry's running jobs: the memory of its processes is then
/// gantry's own, not someone else's.
pub type Ownership = Arc<dyn Fn(crate::model::JobId) -> bool + Send + Sync>;

struct Shared {
    latest: NodeGpus,
    ownership: Option<Ownership>,
    history: HashMap<u32, VecDeque<UsageSample>>,
    /// Memory per GPU that a replay says other people hold, laid over the readings.
    strangers: HashMap<u32, u64>,
}

pub struct GpuMonitor {
    shared: Arc<RwLock<Shared>>,
    changes: watch::Receiver<u64>,
    config: SamplerConfig,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Per GPU: when to try a failing one again, and the wait after that.
struct Retry {
    next: Instant,
    backoff: Duration,
    error: String,
}

struct Sampler {
    reader: NvmlReader,
    config: SamplerConfig,
    capacity: usize,
    retries: HashMap<u32, Retry>,
    shared: Arc<RwLock<Shared>>,
    changes: watch::Sender<u64>,
}

impl GpuMonitor {
    /// Takes a first sample before returning, so callers never see an empty machine, then samples
    /// on its own thread until dropped.
    pub fn start(reader: NvmlReader, config: SamplerConfig) -> std::io::Result<GpuMonitor> {
        let config = SamplerConfig { interval: config.interval.max(SamplerConfig::MIN_INTERVAL), ..config };
        let capacity = usize::try_from(config.history.as_millis() / config.interval.as_millis().max(1)).unwrap_or(600).max(1);
        let latest = NodeGpus { simulated: reader.simulated(), driver: reader.driver_info(), sampled_at_ms: 0, gpus: vec![] };
        let shared = Arc::new(RwLock::new(Shared { latest, ownership: None, history: HashMap::new(), strangers: HashMap::new() }));
        let (tx, changes) = watch::channel(0u64);
        let mut sampler = Sampler { reader, config: config.clone(), capacity, retries: HashMap::new(), shared: shared.clone(), changes: tx };
        sampler.sample();

        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("gantry-gpu-sampler".into()).spawn(move || {
            // Sleeping on the channel: dropping the monitor disconnects it and ends the loop at once.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(sampler.config.interval) {
                sampler.sample();
            }
        })?;
        Ok(GpuMonitor { shared, changes, config, stop: Some(stop), thread: Some(thread) })
    }

    /// From now on, samples split memory into gantry's own jobs' and everybody else's.
    pub fn set_ownership(&self, ownership: Ownership) {
        self.shared.write().ownership = Some(ownership);
    }

    /// A replay's other people: from now on summaries show each GPU of `memory_mib` with that
    /// much more memory held by a process gantry did not start (replacing what was set before).
    /// A trace records their use over time, which simulated GPUs can't hold.
    pub fn set_strangers(&self, memory_mib: HashMap<u32, u64>) {
        self.shared.write().strangers = memory_mib;
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    pub fn latest(&self) -> NodeGpus {
        self.shared.read().latest.clone()
    }

    /// When the latest sample was taken: tells a cache whether what it holds is current.
    pub fn sampled_at_ms(&self) -> u64 {
        self.shared.read().latest.sampled_at_ms
    }

    /// Bumped whenever a GPU's availability, memory use or process set changes: the scheduler
    /// wakes on it rather than polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    pub fn summaries(&self) -> Vec<GpuSummary> {
        let shared = self.shared.read();
        let since = shared.latest.sampled_at_ms.saturating_sub(u64::try_from(self.config.window.as_millis()).unwrap_or(u64::MAX));
        shared
            .latest
            .gpus
            .iter()
            .map(|reading| {
                let recent: Vec<&UsageSample> = shared
                    .history
                    .get(&reading.index())
                    .map(|h| h.iter().filter(|s| s.at_ms >= since).collect())
                    .unwrap_or_default();
                let latest_used = reading.snapshot().map_or(0, |s| s.memory_used_mib);
                let memory_peak_mib = recent.iter().map(|s| s.memory_used_mib).max().unwrap_or(0).max(latest_used);
                let foreign_peak_mib = recent.iter().map(|s| s.memory_foreign_mib).max().unwrap_or(0);
                let utils: Vec<u32> = recent.iter().filter_map(|s| s.utilization_gpu).collect();
                let utilization_mean = (!utils.is_empty()).then(|| utils.iter().sum::<u32>() / utils.len() as u32);
                let summary = GpuSummary { reading: reading.clone(), memory_peak_mib, foreign_peak_mib, utilization_mean };
                match shared.strangers.get(&reading.index()) {
                    Some(&mib) if mib > 0 => with_stranger(summary, mib),
                    _ => summary,
                }
            })
            .collect()
    }

    /// Samples of one GPU taken at or after `since_ms`.
    pub fn history(&self, index: u32, since_ms: u64) -> Vec<UsageSample> {
        let shared = self.shared.read();
        shared.history.get(&index).map(|h| h.iter().filter(|s| s.at_ms >= since_ms).copied().collect()).unwrap_or_default()
    }
}

/// `summary` with one more process, gantry's no job's, holding `mib`.
fn with_stranger(mut summary: GpuSummary, mib: u64) -> GpuSummary {
    if let GpuReading::Available(gpu) = &mut summary.reading {
        gpu.memory_used_mib = gpu.memory_used_mib.saturating_add(mib);
        gpu.memory_free_mib = gpu.memory_free_mib.saturating_sub(mib);
        gpu.processes.push(super::GpuProcess { pid: 0, kind: super::ProcessKind::Compute, used_memory_mib: Some(mib), user: None, command: None, job: None });
        summary.memory_peak_mib = summary.memory_peak_mib.saturating_add(mib);
        summary.foreign_peak_mib = summary.foreign_peak_mib.saturating_add(mib);
    }
    summary
}

impl Drop for GpuMonitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Sampler {
    fn sample(&mut self) {
        let now = Instant::now();
        let at_ms = crate::model::now_ms();
        let count = match self.reader.device_count() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count GPUs; keeping the last reading");
                return;
            }
        };
        let mut gpus = Vec::with_capacity(count as usize);
        for index in 0..count {
            if let Some(retry) = self.retries.get(&index)
                && now < retry.next {
                    gpus.push(GpuReading::Unavailable { index, error: retry.error.clone() });
                    continue;
                }
            match self.reader.read_gpu(index) {
                Ok(snapshot) => {
                    if self.retries.remove(&index).is_some() {
                        tracing::info!(gpu = index, "GPU answers again");
                    }
                    gpus.push(GpuReading::Available(snapshot));
                }
                Err(e) => {
                    let error = e.to_string();
                    let backoff = self.retries.get(&index).map_or(FIRST_RETRY, |r| (r.backoff * 2).min(MAX_RETRY));
                    if !self.retries.contains_key(&index) {
                        tracing::warn!(gpu = index, error = %error, "GPU unavailable; retrying with backoff");
                    }
                    self.retries.insert(index, Retry { next: now + backoff, backoff, error: error.clone() });
                    gpus.push(GpuReading::Unavailable { index, error });
                }
            }
        }

        let ownership = self.shared.read().ownership.clone();
        let foreign: Vec<u64> = gpus
            .iter()
            .map(|reading| {
                let Some(s) = reading.snapshot() else { return 0 };
                let ours: u64 = match &ownership {
                    Some(owned) => s.processes.iter().filter(|p| p.job.is_some_and(|job| owned(job))).filter_map(|p| p.used_memory_mib).sum(),
                    None => 0,
                };
                s.memory_used_mib.saturating_sub(ours)
            })
            .collect();
        let mut shared = self.shared.write();
        let changed = materially_different(&shared.latest.gpus, &gpus);
        for (reading, &memory_foreign_mib) in gpus.iter().zip(&foreign) {
            let GpuReading::Available(s) = reading else { continue };
            let ring = shared.history.entry(s.index).or_default();
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(UsageSample { at_ms, memory_used_mib: s.memory_used_mib, memory_foreign_mib, utilization_gpu: s.utilization_gpu });
        }
        shared.latest.gpus = gpus;
        shared.latest.sampled_at_ms = at_ms;
        drop(shared);
        if changed {
            self.changes.send_modify(|generation| *generation += 1);
        }
    }
}

/// Availability, memory use or the set of processes changed: what can change a placement.
fn materially_different(old: &[GpuReading], new: &[GpuReading]) -> bool {
    if old.len() != new.len() {
        return true;
    }
    old.iter().zip(new).any(|(a, b)| match (a, b) {
        (GpuReading::Available(a), GpuReading::Available(b)) => {
            a.memory_used_mib != b.memory_used_mib
                || a.processes.iter().map(|p| p.pid).ne(b.processes.iter().map(|p| p.pid))
        }
        (GpuReading::Unavailable { .. }, GpuReading::Unavailable { .. }) => false,
        _ => true,
    })
}
