//! A daemon's finished jobs as a trace (`gantry trace export`): what they asked for, when they
//! came, how long they ran and how they ended, so that `gantry replay` can try other policies on
//! last week's work.

use super::trace::{ForeignLine, ForeignUse, Header, Trace, TraceJob, VERSION};
use crate::gpu::SimSpec;
use crate::model::Job;
use crate::scheduler::ForeignChange;

/// The trace of `jobs` submitted at or after `since_ms` that ended, in submission order, with
/// other people's GPU use from `foreign` (as [`super::foreign::ForeignLog::read`] gives it), and
/// how many jobs were left out because they have not ended (no duration to replay).
///
/// The trace starts at the first job's submission or the first change of other people's use
/// after `since_ms`, whichever came first; what they held before that is said at its start.
/// Their use of a GPU the machine doesn't have is left out, and more than one of its GPUs holds
/// is cut to what it holds (both only where `--machine` names another machine).
///
/// Each job becomes one line from its last attempt: its GPU count and run time, and its exit
/// code (a signal `s` as `128 + s`, as a shell reports it; an attempt lost without one as 1),
/// with no retries, so that the replay runs each as often as it ran last. A queue is kept when
/// the job shares it with others (a run's queues, `--queue`); an array's own queue is not, so
/// its elements replay independently of its `%N` limit, which the format does not carry.
pub fn export(jobs: &[Job], foreign: &[ForeignChange], since_ms: u64, machine: &SimSpec) -> (Trace, usize) {
    let mut chosen: Vec<&Job> = jobs.iter().filter(|j| j.submitted_ms >= since_ms).collect();
    chosen.sort_by_key(|j| (j.submitted_ms, j.id));
    let unfinished = chosen.iter().filter(|j| !j.state.is_final()).count();
    let first_change = foreign.iter().map(|f| f.at_ms).find(|&at| at >= since_ms);
    let start = chosen.first().map(|j| j.submitted_ms).into_iter().chain(first_change).min().unwrap_or(since_ms);
    let foreign = foreign
        .iter()
        .filter(|f| f.gpu < machine.count)
        .map(|f| ForeignLine {
            at_s: seconds(f.at_ms.saturating_sub(start)),
            foreign: ForeignUse { gpu: f.gpu, memory_mib: f.memory_mib.min(machine.model.memory_mib) },
        })
        .collect();
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
    (Trace { header, machine: machine.clone(), jobs: lines, foreign }, unfinished)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
