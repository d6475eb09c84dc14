//! What the policy is told about each GPU.
//!
//! Memory the driver reserved for itself counts as used: it is never free.
//!
//! Other people's use is judged by its peak over the sampling window (seed 004's high-frequency
//! sampling). Gantry's own jobs are accounted exactly instead: each running job counts the larger
//! of the memory it was promised and what NVML shows its processes holding. So memory promised
//! to a job that is still starting stays booked (no second job races onto it), and memory of a
//! job that just ended is free at once rather than a window later.

use crate::gpu::{GpuSummary, Ownership};
use crate::model::JobId;
use parking_lot::RwLock;
use placement::GpuState;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The sampler's test for "one of gantry's running jobs": by job id, which the scheduler records
/// before the job's first process exists, so no process is ever mistaken for a stranger's. The
/// job a process belongs to was read once, when the sample was taken.
pub fn ownership(running: Arc<RwLock<HashSet<JobId>>>) -> Ownership {
    Arc::new(move |job| running.read().contains(&job))
}

/// What a GPU reading shows of gantry's running jobs, from the job each process was found to
/// belong to when the sample was taken. Made once per sample that changed.
#[derive(Default)]
pub struct Observation {
    /// Memory per (job, GPU) the jobs' processes hold.
    pub held: HashMap<(JobId, u32), u64>,
    /// The GPU processes that belong to running jobs.
    pub pids: HashSet<u32>,
}

impl Observation {
    pub fn of(summaries: &[GpuSummary], running: &impl Fn(JobId) -> bool) -> Observation {
        let mut seen = Observation::default();
        for summary in summaries {
            let Some(gpu) = summary.reading.snapshot() else { continue };
            for process in &gpu.processes {
                if let Some(job) = process.job.filter(|&job| running(job)) {
                    *seen.held.entry((job, gpu.index)).or_insert(0) += process.used_memory_mib.unwrap_or(0);
                    seen.pids.insert(process.pid);
                }
            }
        }
        seen
    }

    /// A job ended: nothing it held counts any more.
    pub fn forget(&mut self, job: JobId) {
        self.held.retain(|(j, _), _| *j != job);
    }
}

/// A running job as GPU accounting sees it.
pub struct Booking<'a> {
    pub job: JobId,
    pub gpus: &'a [u32],
    pub need_mib: u64,
}

pub fn gpu_states(
    summaries: &[GpuSummary],
    eligible: &impl Fn(u32) -> bool,
    bookings: &[Booking<'_>],
    observed: &Observation,
) -> Vec<GpuState> {
    summaries
        .iter()
        .map(|summary| {
            let index = summary.reading.index();
            let Some(gpu) = summary.reading.snapshot() else {
                return GpuState {
                    index,
                    uuid: String::new(),
                    name: String::new(),
                    memory_total_mib: 0,
                    memory_used_mib: 0,
                    memory_peak_mib: 0,
                    utilization_mean: 0,
                    temperature_c: None,
                    power_mw: None,
                    memory_reserved_mib: 0,
                    gantry_jobs: 0,
                    foreign_processes: 0,
                    eligible: false,
                };
            };
            let (mut held, mut reserved, mut jobs) = (0u64, 0u64, 0u32);
            for booking in bookings.iter().filter(|b| b.gpus.contains(&index)) {
                let seen = observed.held.get(&(booking.job, index)).copied().unwrap_or(0);
                held += seen;
                reserved += booking.need_mib.saturating_sub(seen);
                jobs += 1;
            }
            let foreign = gpu.processes.iter().filter(|p| !observed.pids.contains(&p.pid)).count();
            // What the driver keeps is never free: a policy judging `total - used` sees only what
            // NVML says is free.
            let used = summary.foreign_peak_mib + held + gpu.memory_reserved_mib;
            GpuState {
                index,
                uuid: gpu.uuid.clone(),
                name: gpu.name.clone(),
                memory_total_mib: gpu.memory_total_mib,
                memory_used_mib: used,
                memory_peak_mib: used,
                utilization_mean: summary.utilization_mean.unwrap_or(0).min(100) as u8,
                temperature_c: gpu.temperature_c,
                power_mw: gpu.power_draw_w.map(|w| (w * 1000.0) as u32),
                memory_reserved_mib: reserved,
                gantry_jobs: jobs,
                foreign_processes: u32::try_from(foreign).unwrap_or(u32::MAX),
                eligible: eligible(index),
            }
        })
        .collect()
}
