//! Sizes as the seeds write them: system memory in "GB" that are GiB to one decimal (seeds 000
//! and 003), where gantry counts MiB.

/// MiB as the seeds' GB.
pub fn gb(mib: u64) -> f64 {
    (mib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The seeds' GB as MiB; a negative or non-number size is none.
pub fn mib_of_gb(gb: f64) -> u64 {
    if gb.is_finite() && gb > 0.0 { (gb * 1024.0).round() as u64 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_gb_are_gib_to_one_decimal_both_ways() {
        assert_eq!(gb(131_072), 128.0);
        assert_eq!(gb(46_285), 45.2);
        assert_eq!(mib_of_gb(45.2), 46_285);
        assert_eq!(mib_of_gb(gb(24_576)), 24_576);
        assert_eq!((mib_of_gb(-1.0), mib_of_gb(f64::NAN)), (0, 0));
    }
}
