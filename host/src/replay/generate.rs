//! Synthetic traces with a documented distribution (docs/TRACES.md), the same for the same seed
//! on every machine and every gantry version that keeps this file: the generator is written
//! here, not borrowed from a crate whose streams may change.
//!
//! - arrivals: a Poisson stream, one every 32 GPU-minutes of the machine on average (every 4
//!   minutes on 8 GPUs), which with the needs below offers about nine tenths of the machine;
//!   one arrival in ten is a burst (a sweep) of 5 to 20 jobs at once, alike but for their
//!   durations and peaks;
//! - GPUs per job: 1 (70 %), 2 (20 %), 4 (8 %), 8 (2 %), never more than the machine has;
//! - memory per GPU: 8, 16, 24, 40 or 70 GiB (weights 25, 30, 20, 15, 10 %), never more than
//!   the GPU holds;
//! - durations: heavy-tailed, Pareto with a 2-minute minimum and shape 1.3, cut at 48 hours;
//! - peak memory: 60–100 % of what was asked, except one job in ten that reaches 100–130 %;
//! - owners: four (`u1`…`u4`) submitting 40, 30, 20 and 10 % of the jobs; every job succeeds.

use super::trace::{Header, Trace, TraceJob, VERSION};
use crate::gpu::SimSpec;

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and fully defined by its seed.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One of `choices`, by their weights.
    fn pick<T: Copy>(&mut self, choices: &[(T, u32)]) -> T {
        let total: u32 = choices.iter().map(|(_, w)| w).sum();
        let mut at = (self.unit() * f64::from(total)) as u32;
        for &(value, weight) in choices {
            if at < weight {
                return value;
            }
            at -= weight;
        }
        choices[choices.len() - 1].0
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
}

/// GPU-seconds of the machine per arrival, on average.
const GPU_SECONDS_PER_ARRIVAL: f64 = 32.0 * 60.0;
const MIN_DURATION_S: f64 = 120.0;
const PARETO_SHAPE: f64 = 1.3;
const MAX_DURATION_S: f64 = 48.0 * 3600.0;

/// `count` jobs for `machine`, from `seed`.
pub fn generate(count: usize, seed: u64, machine: &SimSpec) -> Trace {
    let mut rng = Stream(seed);
    let gpu_mib = machine.model.memory_mib;
    let mut jobs = Vec::with_capacity(count);
    let mean_gap_s = GPU_SECONDS_PER_ARRIVAL / f64::from(machine.count.max(1));
    let mut at_s = 0.0;
    while jobs.len() < count {
        at_s += -mean_gap_s * (1.0 - rng.unit()).ln();
        let burst = if rng.unit() < 0.1 { 5 + (rng.next() % 16) as usize } else { 1 };
        let gpus = rng.pick(&[(1u32, 70), (2, 20), (4, 8), (8, 2)]).min(machine.count);
        let memory_mib = (rng.pick(&[(8u64, 25), (16, 30), (24, 20), (40, 15), (70, 10)]) * 1024).min(gpu_mib);
        let owner = rng.pick(&[("u1", 40), ("u2", 30), ("u3", 20), ("u4", 10)]);
        for _ in 0..burst.min(count - jobs.len()) {
            let duration_s = (MIN_DURATION_S / (1.0 - rng.unit()).powf(1.0 / PARETO_SHAPE)).min(MAX_DURATION_S);
            let share = if rng.unit() < 0.1 { rng.between(1.0, 1.3) } else { rng.between(0.6, 1.0) };
            jobs.push(TraceJob {
                at_s: round_ms(at_s),
                duration_s: round_ms(duration_s),
                gpus,
                memory_mib,
                peak_mib: Some((memory_mib as f64 * share) as u64),
                owner: Some(owner.to_string()),
                queue: None,
                priority: 0,
                exit_code: 0,
                retries: None,
            });
        }
    }
    let header = Header { gantry_trace: VERSION, machine: machine.to_string(), source: Some(format!("gantry replay --generate {count} --seed {seed}")) };
    Trace { header, machine: machine.clone(), jobs, foreign: Vec::new() }
}

/// Seconds kept to the millisecond, so that a trace written and read back is the same trace.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        let machine: SimSpec = "8xH100".parse().expect("spec");
        let (a, b, c) = (generate(300, 7, &machine), generate(300, 7, &machine), generate(300, 8, &machine));
        assert_eq!(a.to_lines(), b.to_lines());
        assert_ne!(a.to_lines(), c.to_lines());
        let again = Trace::parse("generated", &a.to_lines()).expect("a generated trace reads back");
        assert_eq!(again.jobs, a.jobs);
        assert_eq!(a.jobs.len(), 300);
    }

    #[test]
    fn the_distribution_is_the_documented_one() {
        let machine: SimSpec = "8xH100".parse().expect("spec");
        let trace = generate(5000, 1, &machine);
        let share = |f: &dyn Fn(&TraceJob) -> bool| trace.jobs.iter().filter(|j| f(j)).count() as f64 / trace.jobs.len() as f64;
        let one_gpu = share(&|j| j.gpus == 1);
        assert!((0.62..0.78).contains(&one_gpu), "{one_gpu}");
        assert!(trace.jobs.iter().all(|j| (MIN_DURATION_S..=MAX_DURATION_S).contains(&j.duration_s) && j.memory_mib <= 81_559));
        let over = share(&|j| j.peak_mib.is_some_and(|p| p > j.memory_mib));
        assert!((0.05..0.15).contains(&over), "{over}");
        let span_h = trace.jobs.last().map_or(0.0, |j| j.at_s) / 3600.0;
        // 5,000 jobs, about 2.15 per arrival (bursts of 12.5 on average one time in ten), an
        // arrival every 4 minutes: some 155 hours.
        assert!((120.0..190.0).contains(&span_h), "{span_h}");
    }
}
