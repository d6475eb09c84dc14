//! A gantry GPU selection policy: each job goes to the tightest fit among the GPUs below 70 °C,
//! and only when none of them can take it to the tightest fit of the hot ones.

use gantry_plugin::{best_fit, place_by, Candidate, GpuState, PendingJob, Placement, Policy, Rules};

/// GPUs at or above this are used only when no cooler one fits.
const HOT_C: u32 = 70;

struct CoolFirst;

impl Policy for CoolFirst {
    fn place(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Result<Vec<Placement>, String> {
        // A GPU that reports no temperature counts as cool: most do report one.
        let hot = |c: &Candidate| c.gpu.temperature_c.is_some_and(|t| t >= HOT_C);
        Ok(place_by(pending, gpus, rules, |a, b| hot(a).cmp(&hot(b)).then(best_fit(a, b))))
    }
}

gantry_plugin::export_policy!(CoolFirst);

#[cfg(test)]
mod tests {
    use super::CoolFirst;
    use gantry_plugin::testing::{gpu, job, rules, run};

    #[test]
    fn a_job_goes_to_a_cool_gpu_even_where_a_hot_one_fits_it_tighter() {
        let mut hot = gpu(0, 24_576);
        hot.temperature_c = Some(78);
        let mut cool = gpu(1, 81_920);
        cool.temperature_c = Some(45);
        assert_eq!(run::<CoolFirst>(&[job(1, 20_000)], &[hot, cool], &rules()), Ok(vec![(1, vec![1])]));
    }

    #[test]
    fn when_no_cool_gpu_can_take_it_the_tightest_hot_one_does() {
        let mut small_cool = gpu(0, 16_384);
        small_cool.temperature_c = Some(40);
        let mut big_hot = gpu(1, 81_920);
        big_hot.temperature_c = Some(85);
        let mut hot = gpu(2, 49_152);
        hot.temperature_c = Some(75);
        assert_eq!(run::<CoolFirst>(&[job(1, 40_000)], &[small_cool, big_hot, hot], &rules()), Ok(vec![(1, vec![2])]));
    }
}
