//! Which live processes use which simulated GPU: those whose environment carries
//! `GANTRY_SIM_GPU_MEM_MIB` (gantry's executor sets it for jobs in simulation mode), on the GPUs
//! their `CUDA_VISIBLE_DEVICES` names, by index or UUID.
//!
//! Several simulated machines can share one real one (a test suite runs many daemons at once):
//! a process that names its machine in `GANTRY_SIM_MACHINE` (the canonical path of the machine's
//! `nvml-sim.json`) is seen only by that machine; one that names none, by every machine.

use std::collections::HashMap;

/// Memory a simulated process holds on each GPU it can see, in MiB.
pub const MEM_VAR: &str = "GANTRY_SIM_GPU_MEM_MIB";
/// Utilisation a simulated process adds on each GPU it can see, percent (default 80).
pub const UTIL_VAR: &str = "GANTRY_SIM_GPU_UTIL";
const DEFAULT_UTIL: u32 = 80;
/// Which simulated machine a process uses.
pub const MACHINE_VAR: &str = "GANTRY_SIM_MACHINE";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProcess {
    pub pid: u32,
    pub gpu: u32,
    pub memory_mib: u64,
    pub utilization: u32,
}

/// Scans `/proc`. A process whose environment cannot be read (another user's, or one that just
/// exited) is not counted, as a real driver would not show it to an unprivileged caller either.
pub fn scan(uuids: &[String], machine: Option<&str>) -> Vec<SimProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    let mut parents = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let procs = from_environ(pid, &environ, uuids, machine);
        if !procs.is_empty() {
            parents.insert(pid, parent_of(pid));
            found.extend(procs);
        }
    }
    let mut found = without_inherited(found, &parents);
    found.sort_by_key(|p| (p.gpu, p.pid));
    found
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.split_whitespace().nth(1)?.parse().ok()
}

/// A job's shell and the commands it runs all inherit the job's environment, but together they
/// hold the job's memory once, as a real CUDA program's launcher does not hold its own. So a
/// process whose parent already holds the same simulated memory on the same GPU is not counted;
/// one that sets a different amount is a separate allocation and is.
fn without_inherited(found: Vec<SimProcess>, parents: &HashMap<u32, Option<u32>>) -> Vec<SimProcess> {
    let held: std::collections::HashSet<(u32, u32, u64)> = found.iter().map(|p| (p.pid, p.gpu, p.memory_mib)).collect();
    found
        .into_iter()
        .filter(|p| match parents.get(&p.pid).copied().flatten() {
            Some(parent) => !held.contains(&(parent, p.gpu, p.memory_mib)),
            None => true,
        })
        .collect()
}

pub fn from_environ(pid: u32, environ: &[u8], uuids: &[String], machine: Option<&str>) -> Vec<SimProcess> {
    let vars: HashMap<&[u8], &[u8]> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((&kv[..eq], &kv[eq + 1..]))
        })
        .collect();
    let text = |k: &str| vars.get(k.as_bytes()).and_then(|v| std::str::from_utf8(v).ok());
    if text(MACHINE_VAR).is_some_and(|wanted| Some(wanted) != machine) {
        return Vec::new();
    }
    let Some(memory_mib) = text(MEM_VAR).and_then(|v| v.trim().parse::<u64>().ok()) else { return Vec::new() };
    let utilization = text(UTIL_VAR).and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_UTIL);
    let Some(visible) = text("CUDA_VISIBLE_DEVICES") else { return Vec::new() };
    visible
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| match d.parse::<u32>() {
            Ok(i) if (i as usize) < uuids.len() => Some(i),
            Ok(_) => None,
            Err(_) => uuids.iter().position(|u| u == d).map(|i| i as u32),
        })
        .map(|gpu| SimProcess { pid, gpu, memory_mib, utilization })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuids() -> Vec<String> {
        (0..4).map(|i| format!("GPU-{i}")).collect()
    }

    #[test]
    fn a_job_on_two_gpus_appears_on_both() {
        let env = b"PATH=/bin\0CUDA_VISIBLE_DEVICES=1,3\0GANTRY_SIM_GPU_MEM_MIB=2048\0";
        let p = from_environ(7, env, &uuids(), None);
        assert_eq!(p.iter().map(|p| (p.gpu, p.memory_mib)).collect::<Vec<_>>(), vec![(1, 2048), (3, 2048)]);
    }

    #[test]
    fn uuids_and_out_of_range_indices() {
        let env = b"CUDA_VISIBLE_DEVICES=GPU-2,9,GPU-x\0GANTRY_SIM_GPU_MEM_MIB=1\0GANTRY_SIM_GPU_UTIL=30\0";
        let p = from_environ(7, env, &uuids(), None);
        assert_eq!(p, vec![SimProcess { pid: 7, gpu: 2, memory_mib: 1, utilization: 30 }]);
    }

    #[test]
    fn processes_without_the_marker_do_not_count() {
        assert!(from_environ(7, b"CUDA_VISIBLE_DEVICES=0\0", &uuids(), None).is_empty());
        assert!(from_environ(7, b"GANTRY_SIM_GPU_MEM_MIB=5\0", &uuids(), None).is_empty());
    }

    #[test]
    fn a_process_of_another_simulated_machine_is_not_seen() {
        let env = b"CUDA_VISIBLE_DEVICES=0\0GANTRY_SIM_GPU_MEM_MIB=5\0GANTRY_SIM_MACHINE=/a/nvml-sim.json\0";
        assert_eq!(from_environ(7, env, &uuids(), Some("/a/nvml-sim.json")).len(), 1);
        assert!(from_environ(7, env, &uuids(), Some("/b/nvml-sim.json")).is_empty());
        assert!(from_environ(7, env, &uuids(), None).is_empty());
    }

    #[test]
    fn a_child_that_inherits_its_parents_memory_is_not_counted_twice() {
        let p = |pid, memory_mib| SimProcess { pid, gpu: 0, memory_mib, utilization: 80 };
        let parents = HashMap::from([(10, Some(1)), (11, Some(10)), (12, Some(10))]);
        let kept = without_inherited(vec![p(10, 100), p(11, 100), p(12, 300)], &parents);
        assert_eq!(kept.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![10, 12]);
    }
}
