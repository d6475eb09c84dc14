//! A workload replayed through the real engine on a virtual clock: the same submissions, queue
//! order, quotas, retries, backoffs, policy calls and host checks as the daemon's, with a
//! launcher that starts nothing. Each attempt "runs" for the duration the workload gives it;
//! time jumps from one event (a submission, an attempt's end, a backoff's or delay's end) to the
//! next, so nothing sleeps.

use super::{Engine, Parts};
use crate::executor::{Adoption, AttemptSpec, ExitRecord, RunningAttempt, ShimInfo};
use crate::model::{Batch, Job, JobId, JobSpec};
use crate::scheduler::launcher::Launcher;
use crate::gpu::GpuMonitor;
use crate::policy::PolicyService;
use crate::scheduler::messages::{Msg, SchedulerError, SchedulerOptions};
use crate::store::Store;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// One job of a workload.
#[derive(Clone, Debug)]
pub struct ReplayJob {
    /// When it is submitted, on the replay's clock.
    pub at_ms: u64,
    pub spec: JobSpec,
    /// How long each of its attempts runs.
    pub duration_ms: u64,
    /// How each attempt ends (a failure is retried as the rules say).
    pub exit_code: i32,
    /// The GPU memory it was seen to use at its peak, where the workload knows it.
    pub peak_mib: Option<u64>,
}

/// From `at_ms` on, processes the workload did not start hold `memory_mib` of GPU `gpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignChange {
    pub at_ms: u64,
    pub gpu: u32,
    pub memory_mib: u64,
}

/// What a replay runs: jobs sorted by `at_ms`, and other people's use of the GPUs over time,
/// also sorted.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub jobs: Vec<ReplayJob>,
    pub foreign: Vec<ForeignChange>,
}

/// What became of a workload.
#[derive(Debug)]
pub struct Replayed {
    /// Every job as the engine left it, in the workload's order.
    pub jobs: Vec<Job>,
    /// The workload's jobs the engine refused at submission (by their place in the workload),
    /// and why.
    pub refused: Vec<(usize, String)>,
    /// Where each of the workload's jobs first ran, in the workload's order (`None`: never).
    pub placements: Vec<Option<Vec<u32>>>,
    /// Jobs that at some pass waited while the GPUs had enough memory free in total for them,
    /// but split so that no placement fitted (fragmentation).
    pub fragmented: usize,
    /// Attempts placed where the job's recorded peak would not have fitted: its booking plus
    /// what the GPU had free beside it.
    pub would_oom: usize,
    /// Placements the policy proposed that the host's check dropped.
    pub dropped: u64,
    pub passes: u64,
    /// Who decided the last pass: the policy with its version, or the fallback and why.
    pub decider: Option<String>,
}

/// Records what the engine launches; the replay starts and ends those attempts on its clock.
struct Recorder(Arc<Mutex<Vec<(JobId, u32)>>>);

impl Launcher for Recorder {
    fn launch(&self, job: JobId, attempt: u32, _dir: PathBuf, _spec: AttemptSpec, _tx: mpsc::Sender<Msg>) {
        if let Ok(mut launched) = self.0.lock() {
            launched.push((job, attempt));
        }
    }

    fn watch(&self, _job: JobId, _attempt: u32, _running: RunningAttempt, _tx: mpsc::Sender<Msg>) {}

    /// Nothing runs, so nothing is signalled: a replayed workload cancels nothing.
    fn cancel(&self, _shim: ShimInfo, _grace: Duration) {}
}

/// Replays `workload` through an engine whose options carry the virtual clock and whose store is
/// the replay's own. Other people's use is laid over `gpus`' readings as the workload says, from
/// none at the start. Blocking: policy calls run here.
pub fn replay(options: SchedulerOptions, store: Store, gpus: Arc<GpuMonitor>, policy: PolicyService, workload: &Workload) -> Result<Replayed, SchedulerError> {
    let (foreign_changes, workload) = (&workload.foreign, &workload.jobs[..]);
    let mut foreign: HashMap<u32, u64> = HashMap::new();
    gpus.set_strangers(foreign.clone());
    let mut next_foreign = 0;
    let launched = Arc::new(Mutex::new(Vec::new()));
    let clock = options.clock.clone();
    let parts = Parts { options, store, gpus: gpus.clone(), policy, launcher: Box::new(Recorder(launched.clone())), remote: None };
    let (tx, _rx) = mpsc::channel();
    let (events, _) = tokio::sync::broadcast::channel(1);
    let mut engine = Engine::new(parts, tx, events)?;
    let rules = crate::policy::rules_for(&engine.options.rules);

    let mut of_job: HashMap<JobId, usize> = HashMap::new();
    let mut ends: BinaryHeap<Reverse<(u64, JobId, u32)>> = BinaryHeap::new();
    let mut next = 0;
    let (mut fragmented, mut would_oom, mut passes, mut refused) = (BTreeSet::new(), 0, 0, Vec::new());
    loop {
        let at = [workload.get(next).map(|j| j.at_ms), ends.peek().map(|Reverse((t, ..))| *t), engine.next_deadline()].into_iter().flatten().min();
        // A change of other people's use is an event too, and the only one left when jobs wait
        // for it to end; once no job waits, the rest of it changes nothing.
        let at = match (at, foreign_changes.get(next_foreign)) {
            (Some(at), Some(change)) => Some(at.min(change.at_ms)),
            (None, Some(change)) if engine.jobs.values().any(|j| !j.state.is_final()) => Some(change.at_ms),
            (at, _) => at,
        };
        let Some(at) = at else { break };
        clock.advance_to(at);
        let now = clock.now_ms();
        let mut changed = false;
        while let Some(change) = foreign_changes.get(next_foreign).filter(|c| c.at_ms <= now) {
            changed |= foreign.insert(change.gpu, change.memory_mib) != Some(change.memory_mib);
            next_foreign += 1;
        }
        if changed {
            gpus.set_strangers(foreign.clone());
        }
        while let Some(job) = workload.get(next).filter(|j| j.at_ms <= now) {
            match engine.submit(Batch::new(vec![job.spec.clone()])?, None) {
                Ok(ids) => of_job.extend(ids.into_iter().map(|id| (id, next))),
                // Refused as the daemon would refuse it (more GPUs than the machine has, past a
                // quota's job count): counted, and the workload goes on.
                Err(e @ (SchedulerError::Invalid(_) | SchedulerError::TooMany { .. })) => refused.push((next, e.to_string())),
                Err(e) => return Err(e),
            }
            next += 1;
        }
        while let Some(&Reverse((end, id, attempt))) = ends.peek().filter(|Reverse((t, ..))| *t <= now) {
            ends.pop();
            let job = &workload[of_job[&id]];
            let started_ms = end.saturating_sub(job.duration_ms);
            let record = ExitRecord { exit_code: Some(job.exit_code), signal: None, started_ms, ended_ms: end, peak_rss_kib: 0 };
            engine.ended(id, attempt, Ok(Adoption::Finished(record)))?;
        }
        // One pass per instant, as the daemon makes one per batch of messages (a deadline that
        // came due wakes it as a message would).
        engine.pass()?;
        passes += 1;
        let started: Vec<(JobId, u32)> = launched.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        let view = if started.is_empty() { Vec::new() } else { engine.gpu_view() };
        for (id, attempt) in started {
            let job = &workload[of_job[&id]];
            engine.started(id, attempt, Ok(ShimInfo { pid: 0, start_ticks: 0, job_pgid: 0, job_start_ticks: 0 }))?;
            ends.push(Reverse((now + job.duration_ms, id, attempt)));
            if would_run_out(&engine, id, job, &view, &rules) {
                would_oom += 1;
            }
        }
        fragmented.extend(engine.split_waits(&rules));
    }
    gpus.set_strangers(HashMap::new());
    let decider = engine.last_decider.clone();
    let dropped = engine.options.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let mut jobs: Vec<Job> = engine.jobs.into_values().collect();
    jobs.sort_by_key(|j| of_job.get(&j.id).copied().unwrap_or(usize::MAX));
    let mut placements = vec![None; workload.len()];
    for job in &jobs {
        if let (Some(&at), Some(first)) = (of_job.get(&job.id), job.attempts.first()) {
            placements[at] = Some(first.gpus.clone());
        }
    }
    Ok(Replayed { jobs, refused, placements, fragmented: fragmented.len(), would_oom, dropped, passes, decider })
}

/// Whether the attempt just started for `id` got less memory than its recorded peak: its
/// booking and what is left free beside it on each of its GPUs.
fn would_run_out(engine: &Engine, id: JobId, job: &ReplayJob, view: &[placement::GpuState], rules: &placement::Rules) -> bool {
    let Some(peak) = job.peak_mib else { return false };
    let Some(attempt) = engine.jobs.get(&id).and_then(Job::current_attempt) else { return false };
    attempt.gpus.iter().any(|index| {
        // Its own booking is in `view` already; what is free beside it it could grow into.
        let free = view.iter().find(|g| g.index == *index).map_or(0, |g| placement::free_mib(g, rules));
        attempt.memory_mib.saturating_add(free) < peak
    })
}

impl Engine {
    /// The jobs that could start now (queue heads) whose need the GPUs' free memory would hold in
    /// total, but no set of GPUs holds.
    fn split_waits(&mut self, rules: &placement::Rules) -> Vec<JobId> {
        let heads = self.runnable();
        let free: Vec<u64> = self.gpu_view().iter().map(|g| placement::room_mib(g, rules)).collect();
        let total: u64 = free.iter().sum();
        heads
            .into_iter()
            .filter(|id| {
                let Some(job) = self.jobs.get(id) else { return false };
                let gpus = u64::from(job.spec.gpus.unwrap_or_default().min);
                let fitting = free.iter().filter(|&&f| f >= job.memory_mib).count() as u64;
                job.memory_mib > 0 && total >= job.memory_mib.saturating_mul(gpus) && fitting < gpus
            })
            .collect()
    }
}
