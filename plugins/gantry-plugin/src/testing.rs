//! Runs a policy natively, as the host would call it, on GPUs and jobs made in a test.
//!
//! ```
//! use gantry_plugin::testing::{gpu, job, rules, run};
//! # use gantry_plugin::{best_fit, place_by, GpuState, PendingJob, Placement, Policy, Rules};
//! # struct BestFit;
//! # impl Policy for BestFit {
//! #     fn place(p: &[PendingJob], g: &[GpuState], r: &Rules) -> Result<Vec<Placement>, String> { Ok(place_by(p, g, r, best_fit)) }
//! # }
//! let gpus = [gpu(0, 81_920), gpu(1, 24_576)];
//! assert_eq!(run::<BestFit>(&[job(7, 20_000)], &gpus, &rules()), Ok(vec![(7, vec![1])]));
//! ```

use crate::{validate, GpuState, PendingJob, Policy, Rules};
pub use placement::testing::{gpu, job, rules};

/// What the host would start: each placement the policy proposed and the host's check kept, as
/// `(job, GPUs)`. A placement the check refuses is an `Err` naming why, as the daemon's log would,
/// since a test should not pass on proposals the daemon throws away.
pub fn run<P: Policy>(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Result<Vec<(u64, Vec<u32>)>, String> {
    let proposed = P::place(pending, gpus, rules)?;
    let (accepted, rejected) = validate(proposed, pending, gpus, rules);
    if let Some(first) = rejected.first() {
        let all: Vec<String> = rejected.iter().map(ToString::to_string).collect();
        return Err(format!("the host would refuse {} placement(s), first {first}: {}", rejected.len(), all.join("; ")));
    }
    Ok(accepted.into_iter().map(|p| (p.job, p.gpus)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{coolest, place_by, Placement};

    struct Coolest;
    impl Policy for Coolest {
        fn place(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Result<Vec<Placement>, String> {
            Ok(place_by(pending, gpus, rules, coolest))
        }
    }

    struct Overbooks;
    impl Policy for Overbooks {
        fn place(pending: &[PendingJob], _: &[GpuState], _: &Rules) -> Result<Vec<Placement>, String> {
            Ok(pending.iter().map(|j| Placement { job: j.id, gpus: vec![0] }).collect())
        }
    }

    #[test]
    fn a_run_gives_what_the_host_keeps_and_refuses_what_it_would_drop() {
        let mut hot = gpu(0, 24_576);
        hot.temperature_c = Some(83);
        let mut cool = gpu(1, 81_920);
        cool.temperature_c = Some(41);
        assert_eq!(run::<Coolest>(&[job(1, 10_000), job(2, 10_000)], &[hot.clone(), cool.clone()], &rules()), Ok(vec![(1, vec![1]), (2, vec![0])]));
        let refused = run::<Overbooks>(&[job(1, 10_000), job(2, 10_000)], &[hot, cool], &rules()).expect_err("two jobs on GPU 0");
        assert!(refused.contains("job 2: GPU 0 already runs a job and sharing is off"), "{refused}");
    }
}
