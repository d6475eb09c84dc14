//! The pass: which jobs may start now, where the policy puts them, and launching them. Also what
//! wakes the thread when nothing else does (backoffs ending, delayed starts).

use super::Engine;
use crate::executor::AttemptSpec;
use crate::model::{Attempt, Job, JobId, JobState, JOB_ID_VAR};
use crate::policy::Decider;
use crate::scheduler::gpus::{gpu_states, Booking};
use crate::scheduler::messages::SchedulerError;
use placement::PendingJob;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A pass hands the policy at most this many jobs: the highest-priority, oldest heads. A pass
/// can start no more jobs than there are GPUs anyway, and the cost of a call grows with its input.
const MAX_PENDING_PER_PASS: usize = 256;

impl Engine {
    pub(super) fn pass(&mut self) -> Result<(), SchedulerError> {
        let started = std::time::Instant::now();
        self.stop_overdue();
        let result = self.place_heads();
        self.options.metrics.pass.observe(started.elapsed());
        result
    }

    /// The jobs that may start now: per queue, in order, as many as its parallelism allows; a
    /// head that must wait (held, delayed, dependencies) holds up the rest of its queue.
    pub(super) fn runnable(&mut self) -> Vec<JobId> {
        let now = self.now();
        self.last_pass_ms = now;
        let mut heads = Vec::new();
        for (name, ids) in &self.queue_jobs {
            let queue = self.queues.get(name);
            if queue.and_then(|q| q.backoff_until_ms).is_some_and(|t| t > now) {
                continue;
            }
            let mut slots = queue.map_or(1, |q| q.parallelism.max(1));
            for id in ids {
                let Some(job) = self.jobs.get(id) else { continue };
                match job.state {
                    JobState::Running => slots = slots.saturating_sub(1),
                    JobState::Waiting => {
                        let delayed = job.spec.start_at_ms.is_some_and(|t| t > now);
                        let blocked = job.after.iter().any(|d| self.jobs.get(d).is_none_or(|dep| dep.state != JobState::Succeeded));
                        if delayed || blocked || slots == 0 {
                            break;
                        }
                        heads.push(*id);
                        slots -= 1;
                    }
                    _ => break,
                }
                if slots == 0 {
                    break;
                }
            }
        }
        heads
    }

    /// The jobs offered to the policy: by priority, then their owner's recent use (least
    /// first: fair share), then age; at most [`MAX_PENDING_PER_PASS`], within the quotas. Jobs
    /// a quota holds back are told why.
    fn pending(&mut self, mut heads: Vec<JobId>) -> Result<Vec<PendingJob>, SchedulerError> {
        let used = self.recent_use(self.now());
        let usage_of = |job: &Job| used.get(job.spec.owner.as_deref().unwrap_or_default()).copied().unwrap_or(0.0);
        let mut keyed: Vec<(i32, f64, JobId)> = heads.drain(..).filter_map(|id| self.jobs.get(&id).map(|j| (j.spec.priority, usage_of(j), id))).collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        keyed.truncate(MAX_PENDING_PER_PASS);
        let usage: HashMap<JobId, f64> = keyed.iter().map(|&(_, u, id)| (id, u)).collect();
        let super::share::Admission { admitted, waiting } = self.within_quotas(keyed.into_iter().map(|(_, _, id)| id).collect());
        for (id, why) in waiting {
            self.explain(id, why)?;
        }
        let mut pending: Vec<PendingJob> = Vec::with_capacity(admitted.len());
        for (id, most) in admitted {
            let Some(job) = self.jobs.get(&id) else { continue };
            let next = self.queue_numbers.len() as u64;
            let queue = *self.queue_numbers.entry(job.queue.clone()).or_insert(next);
            let gpus = job.spec.gpus.unwrap_or_default();
            pending.push(PendingJob {
                id: job.id.0,
                queue,
                min_gpus: gpus.min,
                max_gpus: most,
                memory_mib: job.memory_mib,
                priority: job.spec.priority,
                attempts: u32::try_from(job.attempts.len()).unwrap_or(u32::MAX),
                submitted_ms: job.submitted_ms,
                labels: (!job.spec.labels.is_empty()).then(|| job.spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                owner: job.spec.owner.clone(),
                owner_usage: usage.get(&id).copied().unwrap_or(0.0),
            });
        }
        Ok(pending)
    }

    fn place_heads(&mut self) -> Result<(), SchedulerError> {
        let runnable = self.runnable();
        let (remote, heads) = self.split_remote(runnable);
        if !remote.is_empty() {
            self.launch_remote(remote)?;
        }
        if heads.is_empty() {
            return Ok(());
        }
        let pending = self.pending(heads)?;
        if pending.is_empty() {
            return Ok(());
        }
        let states = self.gpu_view();
        let outcome = self.policy.place(&pending, &states, &crate::policy::rules_for(&self.options.rules));
        self.options.metrics.dropped.fetch_add(outcome.rejected.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.last_decider = Some(match &outcome.decider {
            Decider::Plugin { name, version } => format!("{name} {version}"),
            Decider::Fallback { reason } => format!("native best fit ({reason})"),
        });
        self.launch(outcome.placements.into_iter().map(|p| (JobId(p.job), p.gpus)).collect())?;
        // After the launches: a job placed once and proposed twice is running, not refused.
        for rejection in &outcome.rejected {
            self.explain(JobId(rejection.job()), format!("not placed this pass: {rejection}"))?;
        }
        Ok(())
    }

    /// The GPUs as the policy sees them: what NVML reports, less what running jobs booked.
    pub(super) fn gpu_view(&self) -> Vec<placement::GpuState> {
        let summaries = self.gpus.summaries();
        // The attempts in flight, not every job ever run: a pass must not cost more as history grows.
        let bookings: Vec<Booking<'_>> = self
            .live
            .keys()
            .filter_map(|id| self.jobs.get(id))
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.current_attempt().map(|a| Booking { job: j.id, gpus: &a.gpus, need_mib: a.memory_mib }))
            .collect();
        let rules = &self.options.rules;
        gpu_states(&summaries, &|i| rules.eligible(i), &bookings, &self.observed)
    }

    /// Says why a waiting job did not start, once per change of reason.
    pub(super) fn explain(&mut self, id: JobId, reason: String) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(&id).filter(|j| j.state == JobState::Waiting && j.reason.as_deref() != Some(reason.as_str())) else {
            return Ok(());
        };
        job.reason = Some(reason);
        let job = job.clone();
        self.save_jobs([&job])
    }

    /// Records the pass's attempts (one commit for all of them) and only then starts their shims,
    /// so a crash in between leaves attempts that adoption finds never started, not jobs that run
    /// unrecorded.
    fn launch(&mut self, placements: Vec<(JobId, Vec<u32>)>) -> Result<(), SchedulerError> {
        let mut starts = Vec::with_capacity(placements.len());
        let now = self.now();
        for (id, gpus) in placements {
            let options = &self.options;
            let job = self.jobs.get_mut(&id).ok_or(SchedulerError::NoSuchJob(id))?;
            let number = u32::try_from(job.attempts.len()).unwrap_or(u32::MAX) + 1;
            let dir = attempt_dir(&options.state_dir, id, number);
            let spec = AttemptSpec {
                job_id: id.0,
                attempt: number,
                commands: job.spec.commands.clone(),
                cwd: job.spec.cwd.clone().or_else(|| options.work_dir.clone()),
                env: attempt_env(job, number, &gpus, options),
                log_max_bytes: options.rules.log_max_bytes,
                log_keep: options.rules.log_keep,
                user: job.run_as,
                umask: options.job_umask,
            };
            job.attempts.push(Attempt::new(number, gpus, job.memory_mib, dir.clone(), now));
            job.state = JobState::Running;
            job.reason = None;
            starts.push((id, number, dir, spec));
        }
        let jobs: Vec<Job> = starts.iter().map(|(id, ..)| self.jobs[id].clone()).collect();
        self.save_jobs(&jobs)?;
        for ((id, number, dir, spec), job) in starts.into_iter().zip(&jobs) {
            self.track(id, number);
            if let Some(freed) = self.freed.remove(&job.queue) {
                self.options.metrics.dispatch.observe(freed.elapsed());
            }
            self.launcher.launch(id, number, dir, spec, self.tx.clone());
        }
        Ok(())
    }

    /// The earliest time a backoff ends or a delayed job may start that the last pass did not
    /// see pass. Compared with the last pass's clock, not the current one: a deadline that passed
    /// after that pass looked must still wake the next.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        let seen = self.last_pass_ms;
        let backoffs = self.queues.values().filter_map(|q| q.backoff_until_ms);
        let delays = self
            .queue_jobs
            .values()
            .filter_map(|ids| ids.iter().next())
            .filter_map(|id| self.jobs.get(id).and_then(|j| j.spec.start_at_ms));
        backoffs.chain(delays).chain(self.provider_deadline()).chain(self.burst_deadline()).chain(self.time_limit_deadline()).filter(|&t| t > seen).min()
    }

    pub(super) fn what_fits(&self) -> Capacity {
        let summaries = self.gpus.summaries();
        let physical_gpus = u32::try_from(summaries.len()).unwrap_or(u32::MAX);
        let physical_mib = summaries.iter().filter_map(|s| s.reading.snapshot()).map(|g| g.memory_total_mib).max();
        let gpus: Vec<u64> = summaries
            .iter()
            .filter_map(|s| s.reading.snapshot())
            .filter(|g| self.options.rules.eligible(g.index))
            // The driver's reservation is never free, however the GPU's jobs come and go.
            .map(|g| g.memory_total_mib.saturating_sub(g.memory_reserved_mib).saturating_sub(self.options.rules.memory_margin_mib))
            .collect();
        Capacity { eligible_gpus: u32::try_from(gpus.len()).unwrap_or(u32::MAX), largest_mib: gpus.into_iter().max().unwrap_or(0), physical_gpus, physical_mib }
    }
}

/// What an attempt's processes find in their environment: the job's own variables, then what
/// gantry sets, which the job can't override.
fn attempt_env(job: &Job, number: u32, gpus: &[u32], options: &crate::scheduler::SchedulerOptions) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let Some(machine) = options.simulation.as_deref() {
        env.insert("GANTRY_SIM_MACHINE".to_string(), machine.to_string());
        env.insert("GANTRY_SIM_GPU_MEM_MIB".to_string(), job.memory_mib.to_string());
    }
    env.extend(job.spec.env.clone());
    let visible: Vec<String> = gpus.iter().map(u32::to_string).collect();
    env.insert("CUDA_VISIBLE_DEVICES".into(), visible.join(","));
    // CUDA's default order is fastest-first; NVML's, and so gantry's, is by PCI bus.
    env.insert("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into());
    env.insert(JOB_ID_VAR.into(), job.id.to_string());
    env.insert("GANTRY_ATTEMPT".into(), number.to_string());
    env.insert("GANTRY_QUEUE".into(), job.queue.clone());
    if let (Some(mint), Some(owner)) = (&options.job_token, job.spec.owner.as_deref()) {
        env.insert("GANTRY_TOKEN".into(), mint(owner, job.run_as));
    }
    env
}

/// The most this node's eligible GPUs could ever give a job, and the most its GPUs could at
/// all.
pub(super) struct Capacity {
    pub eligible_gpus: u32,
    pub largest_mib: u64,
    /// Every GPU the node has, readable now or not.
    pub physical_gpus: u32,
    /// The largest GPU's memory, if one can be read now.
    pub physical_mib: Option<u64>,
}

impl Capacity {
    /// Why a job is refused at submission: it asks for more GPUs, or more memory on one GPU, than
    /// this node has at all, and can't go elsewhere. (What the rules exclude, or a GPU that is
    /// unreadable for now, can change; those jobs wait, with [`Capacity::never_fits`]'s reason.)
    pub fn refuses(&self, job: &Job) -> Option<(&'static str, String)> {
        if job.spec.provider.is_some() || job.spec.burst.is_some() {
            return None;
        }
        let want = job.spec.gpus.unwrap_or_default().min;
        if self.physical_gpus > 0 && want > self.physical_gpus {
            return Some(("gpus", format!("needs {want} GPUs; this node has {}", self.physical_gpus)));
        }
        match self.physical_mib {
            Some(largest) if job.memory_mib > largest => Some(("memory_mib", format!("needs {} MiB on each GPU; this node's largest GPU has {largest} MiB", job.memory_mib))),
            _ => None,
        }
    }

    /// Why a job can't start on this node whatever else runs, if that is so.
    pub fn never_fits(&self, job: &Job) -> Option<String> {
        if job.spec.provider.is_some() {
            return None;
        }
        self.never_takes(job.spec.gpus.unwrap_or_default().min, job.memory_mib)
    }

    /// Why `want` GPUs with `memory_mib` each can't start on this node whatever else runs.
    pub fn never_takes(&self, want: u32, memory_mib: u64) -> Option<String> {
        if want > self.eligible_gpus {
            Some(format!("needs {want} GPUs; this node has {} eligible: it waits until more are", self.eligible_gpus))
        } else if memory_mib > self.largest_mib {
            Some(format!("needs {memory_mib} MiB per GPU; the largest eligible GPU here has {} MiB: it waits", self.largest_mib))
        } else {
            None
        }
    }
}

/// `<state>/jobs/<id>/<attempt>`: the attempt's spec, lock, log and exit record.
pub fn attempt_dir(state_dir: &Path, job: JobId, attempt: u32) -> PathBuf {
    state_dir.join("jobs").join(job.to_string()).join(attempt.to_string())
}
