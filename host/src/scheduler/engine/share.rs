//! Sharing the GPUs between people, in the simplest form of HTCondor's and Slurm's fair share:
//! what each owner used lately (GPU time, decayed with `[quotas] half_life_hours`) orders the
//! owners competing for GPUs, least first; and the caps of `[quotas]` bound what one owner, or
//! one group's members together, hold at once.

use super::Engine;
use crate::model::{Cap, Held, Job, JobId, JobState, QuotaStatus};
use std::collections::HashMap;
use std::time::Duration;

/// GPU-seconds of ended attempts, as they counted at `at_ms`.
#[derive(Clone, Copy, Debug, Default)]
struct Decayed {
    value: f64,
    at_ms: u64,
}

fn seconds(from_ms: u64, to_ms: u64) -> f64 {
    to_ms.saturating_sub(from_ms) as f64 / 1000.0
}

fn decayed(value: f64, from_ms: u64, to_ms: u64, half_life: Duration) -> f64 {
    value * 0.5f64.powf(seconds(from_ms, to_ms) / half_life.as_secs_f64())
}

/// `gpus` GPUs held from `start_ms` to `end_ms`, as it counts at `now_ms`: each second weighs
/// `2^(-age / half_life)`, integrated over the interval.
fn held_for(gpus: usize, start_ms: u64, end_ms: u64, now_ms: u64, half_life: Duration) -> f64 {
    let rate = std::f64::consts::LN_2 / half_life.as_secs_f64();
    let weight = |t: u64| (-rate * seconds(t, now_ms)).exp();
    gpus as f64 * (weight(end_ms) - weight(start_ms.min(end_ms))) / rate
}

/// Recent use of each owner's ended attempts; running ones are added when asked.
#[derive(Debug, Default)]
pub(super) struct Shares {
    ended: HashMap<String, Decayed>,
}

impl Shares {
    pub(super) fn add(&mut self, owner: &str, gpus: usize, start_ms: u64, end_ms: u64, half_life: Duration) {
        let now = end_ms;
        let entry = self.ended.entry(owner.to_string()).or_default();
        entry.value = decayed(entry.value, entry.at_ms, now, half_life) + held_for(gpus, start_ms, end_ms, now, half_life);
        entry.at_ms = now;
    }

    fn ended(&self, owner: &str, now_ms: u64, half_life: Duration) -> f64 {
        self.ended.get(owner).map_or(0.0, |d| decayed(d.value, d.at_ms, now_ms, half_life))
    }
}

fn owner(job: &Job) -> &str {
    job.spec.owner.as_deref().unwrap_or_default()
}

/// What is left under a cap given what is held, in GPUs for a job needing `memory_mib` each.
fn room(cap: Cap, held: Held, memory_mib: u64) -> u32 {
    let by_gpus = cap.gpus.map_or(u32::MAX, |limit| limit.saturating_sub(held.gpus));
    let by_memory = match (cap.memory_mib, memory_mib) {
        (Some(limit), need) if need > 0 => u32::try_from(limit.saturating_sub(held.memory_mib) / need).unwrap_or(u32::MAX),
        _ => u32::MAX,
    };
    by_gpus.min(by_memory)
}

fn describe(who: &str, cap: Cap, held: Held) -> String {
    let mut limits = Vec::new();
    if let Some(gpus) = cap.gpus {
        limits.push(format!("{gpus} GPU(s)"));
    }
    if let Some(mib) = cap.memory_mib {
        limits.push(format!("{mib} MiB of GPU memory"));
    }
    format!("waits for quota: {who} may hold {} and holds {} GPU(s), {} MiB", limits.join(" and "), held.gpus, held.memory_mib)
}

/// The jobs a pass may offer the policy, each with the most GPUs it may take, and the others
/// with why they wait.
pub(super) struct Admission {
    pub admitted: Vec<(JobId, u32)>,
    pub waiting: Vec<(JobId, String)>,
}

impl Engine {
    /// Counts the attempts that ended before this daemon started.
    pub(super) fn count_past_use(&mut self) {
        let half_life = self.rules().quotas.half_life;
        for job in self.jobs.values() {
            for attempt in &job.attempts {
                if let Some(end) = attempt.ended_ms {
                    self.shares.add(owner(job), attempt.gpus.len(), attempt.started_ms, end, half_life);
                }
            }
        }
    }

    /// Counts an attempt that just ended.
    pub(super) fn count_use(&mut self, id: JobId) {
        let half_life = self.rules().quotas.half_life;
        let Some(job) = self.jobs.get(&id) else { return };
        if let Some((attempt, end)) = job.current_attempt().and_then(|a| a.ended_ms.map(|end| (a, end))) {
            self.shares.add(owner(job), attempt.gpus.len(), attempt.started_ms, end, half_life);
        }
    }

    /// Each owner's recent use in GPU-hours at `now_ms`: ended attempts and running ones.
    pub(super) fn recent_use(&self, now_ms: u64) -> HashMap<&str, f64> {
        let half_life = self.rules().quotas.half_life;
        let mut used: HashMap<&str, f64> = HashMap::new();
        for job in self.live.keys().filter_map(|id| self.jobs.get(id)) {
            if let Some(attempt) = job.current_attempt() {
                *used.entry(owner(job)).or_default() += held_for(attempt.gpus.len(), attempt.started_ms, now_ms, now_ms, half_life);
            }
        }
        for name in self.shares.ended.keys() {
            *used.entry(name.as_str()).or_default() += self.shares.ended(name, now_ms, half_life);
        }
        used.into_iter().map(|(name, seconds)| (name, seconds / 3600.0)).collect()
    }

    /// What each owner and each capped group holds now.
    fn holdings(&self) -> (HashMap<String, Held>, HashMap<u32, Held>) {
        let groups = &self.rules().quotas.groups;
        let (mut owners, mut by_group): (HashMap<String, Held>, HashMap<u32, Held>) = Default::default();
        // The attempts in flight, not every job ever run: a pass must not cost more as history grows.
        for job in self.live.keys().filter_map(|id| self.jobs.get(id)).filter(|j| j.state == JobState::Running) {
            let Some(attempt) = job.current_attempt() else { continue };
            let held = Held { gpus: u32::try_from(attempt.gpus.len()).unwrap_or(u32::MAX), memory_mib: attempt.memory_mib * attempt.gpus.len() as u64 };
            owners.entry(owner(job).to_string()).or_default().add(held);
            for group in groups.iter().filter(|g| job.groups.contains(&g.gid)) {
                by_group.entry(group.gid).or_default().add(held);
            }
        }
        (owners, by_group)
    }

    /// Narrows the jobs that may start (in the order they are offered) to what the caps leave
    /// room for, counting each admitted job at its largest size, so that no placement the
    /// policy makes can go over a cap.
    pub(super) fn within_quotas(&self, jobs: Vec<JobId>) -> Admission {
        let quotas = &self.rules().quotas;
        let (mut owners, mut groups) = self.holdings();
        let (mut admitted, mut waiting) = (Vec::with_capacity(jobs.len()), Vec::new());
        for id in jobs {
            let Some(job) = self.jobs.get(&id) else { continue };
            let gpus = job.spec.gpus.unwrap_or_default();
            let name = owner(job);
            let (cap, held) = (quotas.user_cap(name), owners.get(name).copied().unwrap_or_default());
            let mut most = gpus.max.min(room(cap, held, job.memory_mib));
            let mut why = (most < gpus.min).then(|| describe(name, cap, held));
            for group in quotas.groups.iter().filter(|g| job.groups.contains(&g.gid)) {
                let held = groups.get(&group.gid).copied().unwrap_or_default();
                most = most.min(room(group.cap, held, job.memory_mib));
                if most < gpus.min && why.is_none() {
                    why = Some(describe(&format!("group {}", group.name), group.cap, held));
                }
            }
            if let Some(why) = why {
                waiting.push((id, why));
                continue;
            }
            let taking = Held { gpus: most, memory_mib: job.memory_mib * u64::from(most) };
            owners.entry(name.to_string()).or_default().add(taking);
            for group in quotas.groups.iter().filter(|g| job.groups.contains(&g.gid)) {
                groups.entry(group.gid).or_default().add(taking);
            }
            admitted.push((id, most));
        }
        Admission { admitted, waiting }
    }

    /// An owner's caps, what they and their groups hold, and their recent use.
    pub(super) fn quota(&self, name: &str, groups: &[u32]) -> QuotaStatus {
        let quotas = &self.rules().quotas;
        let (owners, by_group) = self.holdings();
        let used = self.recent_use(self.now());
        QuotaStatus {
            owner: name.to_string(),
            cap: quotas.user_cap(name),
            holds: owners.get(name).copied().unwrap_or_default(),
            recent_gpu_hours: used.get(name).copied().unwrap_or(0.0),
            half_life_hours: quotas.half_life.as_secs_f64() / 3600.0,
            groups: quotas
                .groups
                .iter()
                .filter(|g| groups.contains(&g.gid))
                .map(|g| crate::model::GroupQuota { name: g.name.clone(), cap: g.cap, holds: by_group.get(&g.gid).copied().unwrap_or_default() })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn use_decays_by_half_each_half_life() {
        // One GPU for an hour, just ended: 3600 GPU-seconds, a little less for the decay during it.
        let fresh = held_for(1, 0, 3_600_000, 3_600_000, DAY);
        assert!((fresh - 3600.0).abs() < 60.0, "{fresh}");
        let day_later = held_for(1, 0, 3_600_000, 3_600_000 + 86_400_000, DAY);
        assert!((day_later * 2.0 - fresh).abs() < 1e-6, "{day_later} vs {fresh}");
        let mut shares = Shares::default();
        shares.add("ada", 2, 0, 3_600_000, DAY);
        assert!((shares.ended("ada", 3_600_000 + 86_400_000, DAY) * 2.0 - 2.0 * fresh).abs() < 1e-6);
        assert_eq!(shares.ended("bob", 0, DAY), 0.0);
    }

    #[test]
    fn room_under_caps_of_gpus_and_memory() {
        let cap = Cap { gpus: Some(2), memory_mib: Some(30_000) };
        assert_eq!(room(cap, Held::default(), 10_000), 2);
        assert_eq!(room(cap, Held { gpus: 1, memory_mib: 10_000 }, 10_000), 1);
        assert_eq!(room(cap, Held { gpus: 1, memory_mib: 25_000 }, 10_000), 0);
        assert_eq!(room(Cap::default(), Held { gpus: 100, memory_mib: 1 << 40 }, 10_000), u32::MAX);
    }
}
