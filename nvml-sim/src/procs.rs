//! Which live processes use which simulated GPU: those whose environment carries
//! `GANTRY_SIM_GPU_MEM_MIB` (gantry's executor sets it for jobs in simulation mode), on the GPUs
//! their `CUDA_VISIBLE_DEVICES` names, by index or UUID.

use std::collections::HashMap;

/// Memory a simulated process holds on each GPU it can see, in MiB.
pub const MEM_VAR: &str = "GANTRY_SIM_GPU_MEM_MIB";
/// Utilisation a simulated process adds on each GPU it can see, percent (default 80).
pub const UTIL_VAR: &str = "GANTRY_SIM_GPU_UTIL";
const DEFAULT_UTIL: u32 = 80;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProcess {
    pub pid: u32,
    pub gpu: u32,
    pub memory_mib: u64,
    pub utilization: u32,
}

/// Scans `/proc`. A process whose environment cannot be read (another user's, or one that just
/// exited) is not counted, as a real driver would not show it to an unprivileged caller either.
pub fn scan(uuids: &[String]) -> Vec<SimProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        found.extend(from_environ(pid, &environ, uuids));
    }
    found.sort_by_key(|p| (p.gpu, p.pid));
    found
}

pub fn from_environ(pid: u32, environ: &[u8], uuids: &[String]) -> Vec<SimProcess> {
    let vars: HashMap<&[u8], &[u8]> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((&kv[..eq], &kv[eq + 1..]))
        })
        .collect();
    let text = |k: &str| vars.get(k.as_bytes()).and_then(|v| std::str::from_utf8(v).ok());
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
        let p = from_environ(7, env, &uuids());
        assert_eq!(p.iter().map(|p| (p.gpu, p.memory_mib)).collect::<Vec<_>>(), vec![(1, 2048), (3, 2048)]);
    }

    #[test]
    fn uuids_and_out_of_range_indices() {
        let env = b"CUDA_VISIBLE_DEVICES=GPU-2,9,GPU-x\0GANTRY_SIM_GPU_MEM_MIB=1\0GANTRY_SIM_GPU_UTIL=30\0";
        let p = from_environ(7, env, &uuids());
        assert_eq!(p, vec![SimProcess { pid: 7, gpu: 2, memory_mib: 1, utilization: 30 }]);
    }

    #[test]
    fn processes_without_the_marker_do_not_count() {
        assert!(from_environ(7, b"CUDA_VISIBLE_DEVICES=0\0", &uuids()).is_empty());
        assert!(from_environ(7, b"GANTRY_SIM_GPU_MEM_MIB=5\0", &uuids()).is_empty());
    }
}
