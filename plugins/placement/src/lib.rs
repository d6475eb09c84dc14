//! GPU placement: the best-fit and spread algorithms, and the check the host applies to whatever a
//! policy returns.
//!
//! This crate is compiled twice: into the `policy-*` WebAssembly components, and natively into the
//! host, where the same code is the fail-open fallback and the benchmark baseline. Its types are the
//! ones `wit-bindgen` generates from `wit/gantry.wit`, so there is no second schema to drift.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "placement::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::export;
#[doc(hidden)]
pub use bindings::exports;
pub use bindings::exports::gantry::plugin::meta::{Guest as MetaGuest, PluginInfo, PluginKind};
pub use bindings::exports::gantry::plugin::policy::Guest as PolicyGuest;
pub use bindings::gantry::plugin::scheduling::{GpuState, PendingJob, Placement, Rules};

use std::cmp::Ordering;
use std::collections::HashSet;

/// The `gantry:plugin` package version these bindings were generated from.
pub fn wit_version() -> String {
    let wit = include_str!("../../../wit/gantry.wit");
    wit.lines()
        .find_map(|l| l.trim().strip_prefix("package gantry:plugin@"))
        .map(|v| v.trim_end_matches(';').to_string())
        .unwrap_or_default()
}

/// Defines and exports a whole policy component that places with `$ranking`. The plugin's name is
/// `$name`, or the crate's package name; its version is the crate's.
#[macro_export]
macro_rules! policy_plugin {
    ($ranking:expr) => {
        $crate::policy_plugin!(env!("CARGO_PKG_NAME"), $ranking);
    };
    ($name:expr, $ranking:expr) => {
        #[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
        struct Plugin;

        impl $crate::MetaGuest for Plugin {
            fn info() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    name: $name.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    kind: $crate::PluginKind::Policy,
                    wit_version: $crate::wit_version(),
                }
            }
        }

        impl $crate::PolicyGuest for Plugin {
            fn place(
                pending: Vec<$crate::PendingJob>,
                gpus: Vec<$crate::GpuState>,
                rules: $crate::Rules,
            ) -> Result<Vec<$crate::Placement>, String> {
                Ok($crate::place(&pending, &gpus, &rules, $ranking))
            }
        }

        // Exported names such as `gantry:plugin/policy@0.1.0#place` are only valid in a component.
        #[cfg(target_family = "wasm")]
        $crate::export!(Plugin with_types_in $crate::bindings);
    };
}

/// How the bundled policies order candidate GPUs for a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranking {
    /// Least free memory that still fits first: keeps large GPUs whole for large jobs.
    BestFit,
    /// Most free memory, then lowest utilisation first: spreads load and heat.
    Spread,
}

impl Ranking {
    pub fn order(self) -> fn(&Candidate<'_>, &Candidate<'_>) -> Ordering {
        match self {
            Ranking::BestFit => best_fit,
            Ranking::Spread => spread,
        }
    }
}

/// A GPU that can take the job being placed, as the pass stands: its state, and the memory still
/// free on it after the window's peak use, reservations, the margin and every placement the pass
/// has made so far (the figure the host's check uses).
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub gpu: &'a GpuState,
    pub free_mib: u64,
}

/// Tightest fit first: keeps the roomiest GPUs whole for the jobs that need them.
pub fn best_fit(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.free_mib.cmp(&b.free_mib)
}

/// Roomiest first, then the least utilised: spreads load and heat.
pub fn spread(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    b.free_mib.cmp(&a.free_mib).then(a.gpu.utilization_mean.cmp(&b.gpu.utilization_mean))
}

/// Coolest first (a GPU that reports no temperature last), then the tightest fit.
pub fn coolest(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    let heat = |c: &Candidate<'_>| c.gpu.temperature_c.unwrap_or(u32::MAX);
    heat(a).cmp(&heat(b)).then(best_fit(a, b))
}

/// Least utilised over the window first, then the fewest gantry jobs, then the roomiest.
pub fn least_loaded(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.gpu
        .utilization_mean
        .cmp(&b.gpu.utilization_mean)
        .then(a.gpu.gantry_jobs.cmp(&b.gpu.gantry_jobs))
        .then(b.free_mib.cmp(&a.free_mib))
}

/// What is still free on one GPU while a pass hands out memory.
#[derive(Clone, Debug)]
struct Slot<'a> {
    gpu: &'a GpuState,
    /// Copied from `gpu`: the pass reads them for every job it considers.
    index: u32,
    eligible: bool,
    free_mib: u64,
    /// A gantry job runs or was just placed here.
    occupied: bool,
}

/// The running account of a pass: free memory per GPU after the window's peak use, reservations,
/// the margin and every placement accepted so far.
struct Ledger<'a> {
    slots: Vec<Slot<'a>>,
    rules: &'a Rules,
}

impl<'a> Ledger<'a> {
    fn new(gpus: &'a [GpuState], rules: &'a Rules) -> Self {
        let slots = gpus
            .iter()
            .map(|g| Slot { gpu: g, index: g.index, eligible: g.eligible, free_mib: free_mib(g, rules), occupied: g.gantry_jobs > 0 || g.memory_reserved_mib > 0 })
            .collect();
        Ledger { slots, rules }
    }

    fn slot(&self, index: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.index == index)
    }

    fn can_take(&self, slot: &Slot<'_>, memory_mib: u64) -> bool {
        slot.eligible && slot.free_mib >= memory_mib && (self.rules.allow_sharing || !slot.occupied)
    }

    /// Seed 004's GPU-count rule: `min(max, max(min, available - gpu_left))`.
    fn gpu_count(&self, job: &PendingJob, available: usize) -> u32 {
        let available = u32::try_from(available).unwrap_or(u32::MAX);
        if job.min_gpus == job.max_gpus {
            return job.min_gpus;
        }
        job.max_gpus
            .min(job.min_gpus.max(available.saturating_sub(self.rules.gpu_left)))
    }

    fn book(&mut self, positions: &[usize], memory_mib: u64) {
        for &p in positions {
            let slot = &mut self.slots[p];
            slot.free_mib -= memory_mib;
            slot.occupied = true;
        }
    }
}

/// What a job may still use on `gpu` before anything is placed this pass: a GPU that was busy a
/// moment ago will be busy again, so it is judged by the window's peak.
pub fn free_mib(gpu: &GpuState, rules: &Rules) -> u64 {
    gpu.memory_total_mib
        .saturating_sub(gpu.memory_used_mib.max(gpu.memory_peak_mib))
        .saturating_sub(gpu.memory_reserved_mib)
        .saturating_sub(rules.memory_margin_mib)
}

/// What a new job may take of `gpu` now: its free memory, or nothing where the GPU is not
/// eligible, or already runs a gantry job and the rules do not allow sharing.
pub fn room_mib(gpu: &GpuState, rules: &Rules) -> u64 {
    let occupied = gpu.gantry_jobs > 0 || gpu.memory_reserved_mib > 0;
    if gpu.eligible && (rules.allow_sharing || !occupied) { free_mib(gpu, rules) } else { 0 }
}

/// The order jobs are considered in: priority, then the jobs needing more GPUs (seed 004 schedules
/// multi-GPU jobs first, since they are the hardest to fit), then submission order.
fn job_order(a: &PendingJob, b: &PendingJob) -> Ordering {
    b.priority
        .cmp(&a.priority)
        // Fair share: of equal priority, the job of whoever used less lately goes first.
        .then(a.owner_usage.total_cmp(&b.owner_usage))
        .then(b.min_gpus.cmp(&a.min_gpus))
        .then(a.submitted_ms.cmp(&b.submitted_ms))
        .then(a.id.cmp(&b.id))
}

/// Places as many of `pending` as fit, greedily, in [`job_order`], on the GPUs `ranking` puts
/// first. Jobs that do not fit are left out and wait for the next pass.
pub fn place(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules, ranking: Ranking) -> Vec<Placement> {
    place_by(pending, gpus, rules, ranking.order())
}

/// [`place`] with any order of GPUs (smaller first; ties go to the lower index): the fit, the
/// GPU count and the booking are the host's, so what it returns always passes [`validate`].
pub fn place_by(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules, order: impl Fn(&Candidate<'_>, &Candidate<'_>) -> Ordering) -> Vec<Placement> {
    let mut ledger = Ledger::new(gpus, rules);
    let mut jobs: Vec<&PendingJob> = pending.iter().collect();
    jobs.sort_unstable_by(|a, b| job_order(a, b));

    let better = |a: &Slot<'_>, b: &Slot<'_>| -> Ordering {
        order(&Candidate { gpu: a.gpu, free_mib: a.free_mib }, &Candidate { gpu: b.gpu, free_mib: b.free_mib }).then(a.index.cmp(&b.index))
    };

    let mut placements = Vec::new();
    // Reused for every job: a pass allocates per placement, not per job considered.
    let mut candidates: Vec<usize> = Vec::with_capacity(ledger.slots.len());
    for job in jobs {
        if job.min_gpus == 0 {
            continue;
        }
        candidates.clear();
        candidates.extend((0..ledger.slots.len()).filter(|&p| ledger.can_take(&ledger.slots[p], job.memory_mib)));
        let count = ledger.gpu_count(job, candidates.len()) as usize;
        if count == 0 || candidates.len() < count {
            continue;
        }
        let slots = &ledger.slots;
        if count == 1 {
            // The common case needs the best GPU, not an order of all of them.
            let best = candidates.iter().copied().min_by(|&a, &b| better(&slots[a], &slots[b]));
            candidates.clear();
            candidates.extend(best);
        } else {
            candidates.sort_unstable_by(|&a, &b| better(&slots[a], &slots[b]));
            candidates.truncate(count);
        }
        let mut indices: Vec<u32> = candidates.iter().map(|&p| ledger.slots[p].index).collect();
        indices.sort_unstable();
        ledger.book(&candidates, job.memory_mib);
        placements.push(Placement { job: job.id, gpus: indices });
    }
    placements
}

/// Why the host dropped a placement a policy proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    UnknownJob { job: u64 },
    DuplicateJob { job: u64 },
    UnknownGpu { job: u64, gpu: u32 },
    RepeatedGpu { job: u64, gpu: u32 },
    IneligibleGpu { job: u64, gpu: u32 },
    GpuCount { job: u64, got: u32, min: u32, max: u32 },
    MemoryDoesNotFit { job: u64, gpu: u32, need_mib: u64, free_mib: u64 },
    GpuOccupied { job: u64, gpu: u32 },
}

impl Rejection {
    /// The job whose placement was dropped.
    pub fn job(&self) -> u64 {
        match *self {
            Rejection::UnknownJob { job }
            | Rejection::DuplicateJob { job }
            | Rejection::UnknownGpu { job, .. }
            | Rejection::RepeatedGpu { job, .. }
            | Rejection::IneligibleGpu { job, .. }
            | Rejection::GpuCount { job, .. }
            | Rejection::MemoryDoesNotFit { job, .. }
            | Rejection::GpuOccupied { job, .. } => job,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::UnknownJob { job } => write!(f, "job {job} is not pending"),
            Rejection::DuplicateJob { job } => write!(f, "job {job} was placed twice"),
            Rejection::UnknownGpu { job, gpu } => write!(f, "job {job}: GPU {gpu} does not exist"),
            Rejection::RepeatedGpu { job, gpu } => write!(f, "job {job}: GPU {gpu} listed twice"),
            Rejection::IneligibleGpu { job, gpu } => write!(f, "job {job}: GPU {gpu} is not eligible"),
            Rejection::GpuCount { job, got, min, max } => {
                write!(f, "job {job}: {got} GPUs given, the rules allow {min}..={max}")
            }
            Rejection::MemoryDoesNotFit { job, gpu, need_mib, free_mib } => write!(
                f,
                "job {job}: GPU {gpu} has {free_mib} MiB free after reservations, the job needs {need_mib} MiB"
            ),
            Rejection::GpuOccupied { job, gpu } => {
                write!(f, "job {job}: GPU {gpu} already runs a job and sharing is off")
            }
        }
    }
}

/// The placements that pass, in the order given, and why the others were dropped. Each accepted
/// placement books its memory before the next is checked, so two placements cannot both take the
/// last room on a GPU.
pub fn validate(
    proposed: Vec<Placement>,
    pending: &[PendingJob],
    gpus: &[GpuState],
    rules: &Rules,
) -> (Vec<Placement>, Vec<Rejection>) {
    let mut ledger = Ledger::new(gpus, rules);
    let mut placed: HashSet<u64> = HashSet::new();
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();

    for placement in proposed {
        match check(&placement, pending, &ledger, &placed) {
            Ok(positions) => {
                let job = placement.job;
                let memory = pending.iter().find(|j| j.id == job).map_or(0, |j| j.memory_mib);
                ledger.book(&positions, memory);
                placed.insert(job);
                accepted.push(placement);
            }
            Err(why) => rejected.push(why),
        }
    }
    (accepted, rejected)
}

fn check(
    placement: &Placement,
    pending: &[PendingJob],
    ledger: &Ledger<'_>,
    placed: &HashSet<u64>,
) -> Result<Vec<usize>, Rejection> {
    let job_id = placement.job;
    let job = pending
        .iter()
        .find(|j| j.id == job_id)
        .ok_or(Rejection::UnknownJob { job: job_id })?;
    if placed.contains(&job_id) {
        return Err(Rejection::DuplicateJob { job: job_id });
    }

    let mut positions = Vec::with_capacity(placement.gpus.len());
    for &gpu in &placement.gpus {
        let p = ledger.slot(gpu).ok_or(Rejection::UnknownGpu { job: job_id, gpu })?;
        if positions.contains(&p) {
            return Err(Rejection::RepeatedGpu { job: job_id, gpu });
        }
        let slot = &ledger.slots[p];
        if !slot.eligible {
            return Err(Rejection::IneligibleGpu { job: job_id, gpu });
        }
        if slot.free_mib < job.memory_mib {
            return Err(Rejection::MemoryDoesNotFit {
                job: job_id,
                gpu,
                need_mib: job.memory_mib,
                free_mib: slot.free_mib,
            });
        }
        if slot.occupied && !ledger.rules.allow_sharing {
            return Err(Rejection::GpuOccupied { job: job_id, gpu });
        }
        positions.push(p);
    }

    let available = ledger
        .slots
        .iter()
        .filter(|s| ledger.can_take(s, job.memory_mib))
        .count();
    let max = ledger.gpu_count(job, available).max(job.min_gpus);
    let got = u32::try_from(positions.len()).unwrap_or(u32::MAX);
    if got < job.min_gpus.max(1) || got > max {
        return Err(Rejection::GpuCount { job: job_id, got, min: job.min_gpus, max });
    }
    Ok(positions)
}

/// GPUs, jobs and rules made in tests: the SDK's harness, this crate's and the host's tests.
pub mod testing {
    use super::{GpuState, PendingJob, Rules};

    /// An idle, eligible GPU with `total_mib` of memory, none of it used; change its fields to taste.
    pub fn gpu(index: u32, total_mib: u64) -> GpuState {
        GpuState {
            index,
            uuid: format!("GPU-{index:08}-test"),
            name: "Test GPU".into(),
            memory_total_mib: total_mib,
            memory_used_mib: 0,
            memory_peak_mib: 0,
            utilization_mean: 0,
            temperature_c: None,
            power_mw: None,
            memory_reserved_mib: 0,
            gantry_jobs: 0,
            foreign_processes: 0,
            eligible: true,
        }
    }

    /// A first attempt at a one-GPU job needing `memory_mib`, alone in its queue, submitted at `id` ms.
    pub fn job(id: u64, memory_mib: u64) -> PendingJob {
        PendingJob {
            id,
            queue: id,
            min_gpus: 1,
            max_gpus: 1,
            memory_mib,
            priority: 0,
            attempts: 0,
            submitted_ms: id,
            labels: None,
            owner: None,
            owner_usage: 0.0,
        }
    }

    /// The rules of a daemon on its defaults: no GPU left over, no margin, no sharing.
    pub fn rules() -> Rules {
        Rules { gpu_left: 0, min_gpu: 1, max_gpu: 1, memory_margin_mib: 0, allow_sharing: false, memory_save_mode: false, params: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, total: u64, used: u64) -> GpuState {
        GpuState { memory_used_mib: used, memory_peak_mib: used, ..testing::gpu(index, total) }
    }

    fn job(id: u64, gpus: u32, memory_mib: u64) -> PendingJob {
        PendingJob { min_gpus: gpus, max_gpus: gpus, ..testing::job(id, memory_mib) }
    }

    #[test]
    fn of_equal_priority_whoever_used_less_goes_first() {
        let gpus = vec![gpu(0, 80_000, 0)];
        let mut heavy = job(1, 1, 60_000);
        heavy.owner_usage = 40.0;
        let mut light = job(2, 1, 60_000);
        light.owner_usage = 2.0;
        let placed = place(&[heavy.clone(), light], &gpus, &rules(), Ranking::BestFit);
        assert_eq!(placed, vec![Placement { job: 2, gpus: vec![0] }]);
        // Priority still comes first.
        heavy.priority = 1;
        let mut light = job(2, 1, 60_000);
        light.owner_usage = 2.0;
        assert_eq!(place(&[heavy, light], &gpus, &rules(), Ranking::BestFit), vec![Placement { job: 1, gpus: vec![0] }]);
    }

    fn rules() -> Rules {
        Rules { max_gpu: 8, ..testing::rules() }
    }

    #[test]
    fn best_fit_takes_the_tightest_gpu() {
        let gpus = [gpu(0, 24_000, 0), gpu(1, 24_000, 10_000), gpu(2, 80_000, 0)];
        let placed = place(&[job(1, 1, 12_000)], &gpus, &rules(), Ranking::BestFit);
        assert_eq!(placed, vec![Placement { job: 1, gpus: vec![1] }]);
    }

    #[test]
    fn spread_takes_the_emptiest_gpu() {
        let gpus = [gpu(0, 24_000, 0), gpu(1, 24_000, 10_000), gpu(2, 80_000, 0)];
        let placed = place(&[job(1, 1, 12_000)], &gpus, &rules(), Ranking::Spread);
        assert_eq!(placed, vec![Placement { job: 1, gpus: vec![2] }]);
    }

    #[test]
    fn coolest_and_least_loaded_order_by_heat_and_load_then_room() {
        let mut hot = gpu(0, 24_000, 10_000);
        hot.temperature_c = Some(81);
        hot.utilization_mean = 5;
        let mut cool = gpu(1, 80_000, 0);
        cool.temperature_c = Some(40);
        cool.utilization_mean = 90;
        let unknown = gpu(2, 24_000, 0);
        let gpus = [hot, cool, unknown];
        assert_eq!(place_by(&[job(1, 1, 1_000)], &gpus, &rules(), coolest), vec![Placement { job: 1, gpus: vec![1] }]);
        assert_eq!(place_by(&[job(1, 1, 1_000)], &gpus, &rules(), least_loaded), vec![Placement { job: 1, gpus: vec![2] }]);
        // Equal in the order: the lower index wins, as in every ranking.
        assert_eq!(place_by(&[job(1, 1, 1_000)], &gpus, &rules(), |_, _| Ordering::Equal), vec![Placement { job: 1, gpus: vec![0] }]);
    }

    #[test]
    fn the_window_peak_counts_not_the_momentary_use() {
        let mut busy = gpu(0, 24_000, 1_000);
        busy.memory_peak_mib = 20_000;
        let placed = place(&[job(1, 1, 8_000)], &[busy], &rules(), Ranking::BestFit);
        assert!(placed.is_empty());
    }

    #[test]
    fn reservations_and_margin_reduce_free_memory() {
        let mut reserved = gpu(0, 24_000, 0);
        reserved.memory_reserved_mib = 10_000;
        let mut r = rules();
        r.allow_sharing = true;
        r.memory_margin_mib = 2_000;
        assert!(place(&[job(1, 1, 13_000)], &[reserved.clone()], &r, Ranking::BestFit).is_empty());
        assert_eq!(place(&[job(1, 1, 12_000)], &[reserved], &r, Ranking::BestFit).len(), 1);
    }

    #[test]
    fn two_jobs_never_share_the_last_room_on_a_gpu() {
        let mut r = rules();
        r.allow_sharing = true;
        let placed = place(&[job(1, 1, 16_000), job(2, 1, 16_000)], &[gpu(0, 24_000, 0)], &r, Ranking::BestFit);
        assert_eq!(placed.len(), 1);
    }

    #[test]
    fn sharing_off_keeps_one_job_per_gpu() {
        let gpus = [gpu(0, 80_000, 0)];
        assert_eq!(place(&[job(1, 1, 1_000), job(2, 1, 1_000)], &gpus, &rules(), Ranking::BestFit).len(), 1);
        let mut r = rules();
        r.allow_sharing = true;
        assert_eq!(place(&[job(1, 1, 1_000), job(2, 1, 1_000)], &gpus, &r, Ranking::BestFit).len(), 2);
    }

    #[test]
    fn ineligible_gpus_are_never_used() {
        let mut g = gpu(0, 24_000, 0);
        g.eligible = false;
        assert!(place(&[job(1, 1, 1)], &[g], &rules(), Ranking::Spread).is_empty());
    }

    #[test]
    fn multi_gpu_jobs_are_placed_first() {
        let gpus = [gpu(0, 24_000, 0), gpu(1, 24_000, 0)];
        let placed = place(&[job(1, 1, 1_000), job(2, 2, 1_000)], &gpus, &rules(), Ranking::BestFit);
        assert_eq!(placed, vec![Placement { job: 2, gpus: vec![0, 1] }]);
    }

    #[test]
    fn elastic_count_follows_seed_004_formula() {
        let gpus: Vec<GpuState> = (0..6).map(|i| gpu(i, 24_000, 0)).collect();
        let mut r = rules();
        r.gpu_left = 2;
        let mut elastic = job(1, 1, 1_000);
        elastic.max_gpus = 3;
        // min(3, max(1, 6 - 2)) = 3
        assert_eq!(place(&[elastic.clone()], &gpus, &r, Ranking::BestFit)[0].gpus.len(), 3);
        // min(3, max(1, 2 - 2)) = 1
        assert_eq!(place(&[elastic.clone()], &gpus[..2], &r, Ranking::BestFit)[0].gpus.len(), 1);
        elastic.max_gpus = 8;
        // min(8, max(1, 6 - 2)) = 4
        assert_eq!(place(&[elastic], &gpus, &r, Ranking::BestFit)[0].gpus.len(), 4);
    }

    #[test]
    fn higher_priority_goes_first() {
        let mut low = job(1, 1, 20_000);
        low.priority = 0;
        let mut high = job(2, 1, 20_000);
        high.priority = 5;
        let placed = place(&[low, high], &[gpu(0, 24_000, 0)], &rules(), Ranking::BestFit);
        assert_eq!(placed[0].job, 2);
    }

    #[test]
    fn validate_rejects_unknown_gpu_overbooking_and_unknown_jobs() {
        let gpus = [gpu(0, 24_000, 0), gpu(1, 24_000, 0)];
        let pending = [job(1, 1, 20_000), job(2, 1, 20_000), job(3, 2, 1_000)];
        let mut r = rules();
        r.allow_sharing = true;
        let (ok, bad) = validate(
            vec![
                Placement { job: 1, gpus: vec![0] },
                Placement { job: 2, gpus: vec![0] },
                Placement { job: 2, gpus: vec![7] },
                Placement { job: 9, gpus: vec![1] },
                Placement { job: 3, gpus: vec![1, 1] },
                Placement { job: 1, gpus: vec![1] },
            ],
            &pending,
            &gpus,
            &r,
        );
        assert_eq!(ok, vec![Placement { job: 1, gpus: vec![0] }]);
        assert_eq!(
            bad,
            vec![
                Rejection::MemoryDoesNotFit { job: 2, gpu: 0, need_mib: 20_000, free_mib: 4_000 },
                Rejection::UnknownGpu { job: 2, gpu: 7 },
                Rejection::UnknownJob { job: 9 },
                Rejection::RepeatedGpu { job: 3, gpu: 1 },
                Rejection::DuplicateJob { job: 1 },
            ]
        );
    }

    #[test]
    fn validate_rejects_wrong_gpu_counts() {
        let gpus = [gpu(0, 24_000, 0), gpu(1, 24_000, 0)];
        let (ok, bad) = validate(
            vec![Placement { job: 1, gpus: vec![0] }, Placement { job: 1, gpus: vec![] }],
            &[job(1, 2, 1_000)],
            &gpus,
            &rules(),
        );
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 2);
        assert!(matches!(bad[0], Rejection::GpuCount { got: 1, .. }));
    }

    #[test]
    fn what_place_returns_always_validates() {
        let gpus: Vec<GpuState> = (0..8).map(|i| gpu(i, 24_000 + u64::from(i) * 1_000, u64::from(i) * 500)).collect();
        let pending: Vec<PendingJob> = (0..64).map(|i| job(i, 1 + (i % 3) as u32, 2_000 + i * 97)).collect();
        let mut r = rules();
        r.allow_sharing = true;
        for order in [best_fit, spread, coolest, least_loaded] {
            let placed = place_by(&pending, &gpus, &r, order);
            let (ok, bad) = validate(placed.clone(), &pending, &gpus, &r);
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(ok, placed);
        }
    }
}
