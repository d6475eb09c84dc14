//! Prometheus metrics: the histograms the scheduler records as it works, and the text exposition
//! format they are served in. Gauges (GPUs, jobs by state, queue depth) are read at scrape time
//! from where they already live.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds, for latencies from a millisecond to tens of seconds.
const LATENCY_BOUNDS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A cumulative histogram whose observations are counted without locks.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn latency() -> Histogram {
        Histogram {
            bounds: LATENCY_BOUNDS,
            buckets: LATENCY_BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What the scheduler measures about itself.
pub struct SchedulerMetrics {
    /// One scheduling pass, policy call included.
    pub pass: Histogram,
    /// From the daemon learning that a job ended to the next job of its queue being started.
    pub dispatch: Histogram,
    /// Placements the host's check dropped (a GPU that does not exist or lacks the memory, a job
    /// placed twice): a policy that overbooks shows here.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics { pass: Histogram::latency(), dispatch: Histogram::latency(), dropped: std::sync::atomic::AtomicU64::new(0) }
    }
}

impl SchedulerMetrics {
    pub fn render(&self, out: &mut String) {
        self.pass.render(out, "gantry_scheduling_pass_duration_seconds", "Duration of one scheduling pass, policy call included.");
        self.dispatch.render(
            out,
            "gantry_dispatch_latency_seconds",
            "From a job's end to the start of the next job of its queue, as the daemon saw them.",
        );
        let dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed) as f64;
        family(out, "gantry_policy_placements_dropped_total", "counter", "Placements of the policy that the host's check dropped.", [(String::new(), dropped)]);
    }
}

/// Writes one gauge or counter family: `# HELP`, `# TYPE`, then one line per labelled value.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, values: impl IntoIterator<Item = (String, f64)>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A label value with `\`, `"` and newlines escaped as the exposition format requires.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::latency();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"30\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
