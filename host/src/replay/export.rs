//! A daemon's finished jobs as a trace (`gantry trace export`): what they asked for, when they
//! came, how long they ran and how they ended, so that `gantry replay` can try other policies on
//! last week's work.

use super::trace::{Header, Trace, TraceJob, VERSION};
use crate::gpu::SimSpec;
use crate::model::Job;

/// The trace of `jobs` submitted at or after `since_ms` that ended, in submission order, and
/// how many of those were left out because they have not ended (no duration to replay).
///
/// Each job becomes one line from its last attempt: its GPU count and run time, and its exit
/// code (a signal `s` as `128 + s`, as a shell reports it; an attempt lost without one as 1),
/// with no retries, so that the replay runs each as often as it ran last. A queue is kept when
/// the job shares it with others (a run's queues, `--queue`); an array's own queue is not, so
/// its elements replay independently of its `%N` limit, which the format does not carry.
pub fn export(jobs: &[Job], since_ms: u64, machine: &SimSpec) -> (Trace, usize) {
    let mut chosen: Vec<&Job> = jobs.iter().filter(|j| j.submitted_ms >= since_ms).collect();
    chosen.sort_by_key(|j| (j.submitted_ms, j.id));
    let unfinished = chosen.iter().filter(|j| !j.state.is_final()).count();
    let start = chosen.first().map_or(0, |j| j.submitted_ms);
    let lines = chosen
        .into_iter()
        .filter(|j| j.state.is_final())
        .filter_map(|job| {
            let last = job.attempts.last()?;
            let ended = last.ended_ms?;
            let peak = job.attempts.iter().map(|a| a.gpu_memory_peak_mib).max().filter(|&p| p > 0);
            let shared_queue = job.spec.queue.is_some() || job.run.is_some();
            Some(TraceJob {
                at_s: seconds(job.submitted_ms.saturating_sub(start)),
                duration_s: seconds(ended.saturating_sub(last.started_ms)),
                gpus: u32::try_from(last.gpus.len()).unwrap_or(u32::MAX).max(1),
                memory_mib: job.spec.memory_mib,
                peak_mib: peak,
                owner: job.spec.owner.clone(),
                queue: shared_queue.then(|| job.queue.clone()),
                priority: job.spec.priority,
                exit_code: last.exit_code.or(last.signal.map(|s| 128 + s)).unwrap_or(1),
                retries: Some(0),
            })
        })
        .collect();
    let header = Header { gantry_trace: VERSION, machine: machine.to_string(), source: Some(format!("gantry trace export, jobs submitted since {}", crate::model::iso_time(since_ms))) };
    (Trace { header, machine: machine.clone(), jobs: lines }, unfinished)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
