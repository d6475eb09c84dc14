//! The figures a replay is judged by, and how they are printed side by side.

use crate::model::JobState;
use crate::scheduler::Replayed;
use serde::Serialize;
use std::collections::BTreeMap;

/// One policy's replay of a trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    pub policy: String,
    /// Who decided the last pass: the policy and its version, or the fallback and why.
    pub decided_by: Option<String>,
    pub jobs: usize,
    pub started: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Never started: refused at submission, or still waiting when nothing else could happen
    /// (a job too big for the machine, or held up behind one).
    pub never_started: usize,
    /// Seconds from submission to the first start, over the jobs that started.
    pub wait_mean_s: f64,
    pub wait_p50_s: f64,
    pub wait_p95_s: f64,
    /// From the first submission to the last end.
    pub makespan_s: f64,
    pub gpu_hours_used: f64,
    /// The machine's GPUs over the makespan.
    pub gpu_hours_available: f64,
    /// `gpu_hours_used` / `gpu_hours_available`, in percent.
    pub utilisation_pct: f64,
    /// Jobs that waited at some pass while the GPUs' free memory held them in total, split.
    pub fragmented_jobs: usize,
    /// Attempts placed where the job's recorded peak memory would not have fitted.
    pub would_oom: usize,
    /// Placements the policy proposed that the host's check dropped (an overbooking policy).
    pub dropped_placements: u64,
    /// The mean wait of each owner's jobs, in seconds: fairness between users.
    pub wait_mean_s_by_owner: BTreeMap<String, f64>,
    pub passes: u64,
    /// The GPUs each job of the trace first ran on, in the trace's order (`null`: never).
    pub placements: Vec<Option<Vec<u32>>>,
}

impl Score {
    pub fn of(policy: &str, replayed: &Replayed, gpus: u32) -> Score {
        let jobs = &replayed.jobs;
        let mut waits: Vec<f64> = Vec::new();
        let mut by_owner: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        let (mut first_submit, mut last_end, mut gpu_ms) = (u64::MAX, 0u64, 0u128);
        for job in jobs {
            first_submit = first_submit.min(job.submitted_ms);
            for attempt in &job.attempts {
                let end = attempt.ended_ms.unwrap_or(attempt.started_ms);
                last_end = last_end.max(end);
                gpu_ms += u128::from(end.saturating_sub(attempt.started_ms)) * attempt.gpus.len() as u128;
            }
            if let Some(first) = job.attempts.first() {
                let wait = first.started_ms.saturating_sub(job.submitted_ms) as f64 / 1000.0;
                waits.push(wait);
                let owner = by_owner.entry(job.spec.owner.clone().unwrap_or_default()).or_default();
                owner.0 += wait;
                owner.1 += 1;
            }
        }
        waits.sort_by(f64::total_cmp);
        let makespan_s = if last_end > first_submit { (last_end - first_submit) as f64 / 1000.0 } else { 0.0 };
        let gpu_hours_used = gpu_ms as f64 / 3_600_000.0;
        let gpu_hours_available = f64::from(gpus) * makespan_s / 3600.0;
        let count = |state: JobState| jobs.iter().filter(|j| j.state == state).count();
        Score {
            policy: policy.to_string(),
            decided_by: replayed.decider.clone(),
            jobs: jobs.len() + replayed.refused.len(),
            started: waits.len(),
            succeeded: count(JobState::Succeeded),
            failed: count(JobState::Failed),
            never_started: jobs.iter().filter(|j| j.attempts.is_empty()).count() + replayed.refused.len(),
            wait_mean_s: if waits.is_empty() { 0.0 } else { waits.iter().sum::<f64>() / waits.len() as f64 },
            wait_p50_s: quantile(&waits, 0.50),
            wait_p95_s: quantile(&waits, 0.95),
            makespan_s,
            gpu_hours_used,
            gpu_hours_available,
            utilisation_pct: if gpu_hours_available > 0.0 { 100.0 * gpu_hours_used / gpu_hours_available } else { 0.0 },
            fragmented_jobs: replayed.fragmented,
            would_oom: replayed.would_oom,
            dropped_placements: replayed.dropped,
            wait_mean_s_by_owner: by_owner.into_iter().map(|(owner, (sum, n))| (owner, sum / n as f64)).collect(),
            passes: replayed.passes,
            placements: replayed.placements.clone(),
        }
    }
}

/// The nearest-rank quantile of sorted `values` (0 when there are none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A duration as people read one: `42 s`, `12 min 5 s`, `3 h 02 min`.
fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// The scores side by side, one column per policy.
pub fn table(scores: &[Score]) -> String {
    type Cell = fn(&Score) -> String;
    let fixed: [(&str, Cell); 13] = [
        ("decided by", |s| s.decided_by.clone().unwrap_or_else(|| "-".into())),
        ("jobs started / never started", |s| format!("{} / {}", s.started, s.never_started)),
        ("succeeded / failed", |s| format!("{} / {}", s.succeeded, s.failed)),
        ("queue wait, mean", |s| human(s.wait_mean_s)),
        ("queue wait, p50", |s| human(s.wait_p50_s)),
        ("queue wait, p95", |s| human(s.wait_p95_s)),
        ("makespan", |s| human(s.makespan_s)),
        ("GPU-hours used / available", |s| format!("{:.1} / {:.1}", s.gpu_hours_used, s.gpu_hours_available)),
        ("utilisation", |s| format!("{:.1} %", s.utilisation_pct)),
        ("fragmented waits (jobs)", |s| s.fragmented_jobs.to_string()),
        ("placed below their peak memory", |s| s.would_oom.to_string()),
        ("placements dropped by the host", |s| s.dropped_placements.to_string()),
        ("scheduling passes", |s| s.passes.to_string()),
    ];
    let mut rows: Vec<(String, Vec<String>)> = fixed.iter().map(|(label, cell)| (label.to_string(), scores.iter().map(cell).collect())).collect();
    let owners: std::collections::BTreeSet<&String> = scores.iter().flat_map(|s| s.wait_mean_s_by_owner.keys()).collect();
    for owner in owners.into_iter().filter(|o| !o.is_empty()) {
        let cells = scores.iter().map(|s| s.wait_mean_s_by_owner.get(owner).map_or_else(|| "-".into(), |w| human(*w))).collect();
        rows.push((format!("queue wait, mean, of {owner}"), cells));
    }
    let label_width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..scores.len()).map(|i| rows.iter().map(|(_, cells)| cells[i].chars().count()).chain([scores[i].policy.chars().count()]).max().unwrap_or(0)).collect();
    let mut out = format!("{:label_width$}", "");
    for (score, width) in scores.iter().zip(&widths) {
        out.push_str(&format!("  {:>width$}", score.policy));
    }
    out.push('\n');
    for (label, cells) in &rows {
        out.push_str(&format!("{label:label_width$}"));
        for (cell, width) in cells.iter().zip(&widths) {
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_durations_read_as_people_expect() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!((quantile(&values, 0.5), quantile(&values, 0.95), quantile(&[], 0.5)), (5.0, 10.0, 0.0));
        assert_eq!((human(42.4), human(725.0), human(10_920.0)), ("42 s".to_string(), "12 min 5 s".to_string(), "3 h 02 min".to_string()));
    }
}
