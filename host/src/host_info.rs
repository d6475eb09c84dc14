//! The machine around the GPUs (seeds 001 and 003): hostname, CPU, load, memory, swap, uptime.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostInfo {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_cores: usize,
    pub cpu_percent: f32,
    pub load_average: [f64; 3],
    pub memory_total_mib: u64,
    pub memory_used_mib: u64,
    pub memory_percent: f64,
    pub swap_total_mib: u64,
    pub swap_used_mib: u64,
    pub swap_percent: f64,
    pub uptime_s: u64,
}

/// Holds the `System` between readings: CPU usage is a difference between two refreshes.
pub struct HostProbe {
    system: System,
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl HostProbe {
    pub fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::everything()).with_memory(MemoryRefreshKind::everything()),
        );
        HostProbe { system }
    }

    /// Blocking (reads `/proc`); cheap enough to call once per sample.
    pub fn read(&mut self) -> HostInfo {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let s = &self.system;
        let mib = |bytes: u64| bytes / (1 << 20);
        let percent = |used: u64, total: u64| if total == 0 { 0.0 } else { (used as f64 * 1000.0 / total as f64).round() / 10.0 };
        let load = System::load_average();
        HostInfo {
            hostname: System::host_name(),
            os: System::long_os_version(),
            kernel: System::kernel_version(),
            cpu_model: s.cpus().first().map(|c| c.brand().trim().to_string()).filter(|b| !b.is_empty()),
            cpu_cores: s.cpus().len(),
            cpu_percent: s.global_cpu_usage(),
            load_average: [load.one, load.five, load.fifteen],
            memory_total_mib: mib(s.total_memory()),
            memory_used_mib: mib(s.used_memory()),
            memory_percent: percent(s.used_memory(), s.total_memory()),
            swap_total_mib: mib(s.total_swap()),
            swap_used_mib: mib(s.used_swap()),
            swap_percent: percent(s.used_swap(), s.total_swap()),
            uptime_s: System::uptime(),
        }
    }
}

/// Reads the host every `interval` on a thread of its own, so requests are answered from memory
/// (sysinfo reads `/proc`, and CPU usage needs two readings apart). Stops when dropped.
pub struct HostMonitor {
    latest: std::sync::Arc<parking_lot::RwLock<HostInfo>>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl HostMonitor {
    pub fn start(interval: std::time::Duration) -> std::io::Result<HostMonitor> {
        let mut probe = HostProbe::new();
        let latest = std::sync::Arc::new(parking_lot::RwLock::new(probe.read()));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shared = latest.clone();
        std::thread::Builder::new().name("gantry-host-info".into()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let info = probe.read();
                *shared.write() = info;
            }
        })?;
        Ok(HostMonitor { latest, _stop: stop })
    }

    pub fn latest(&self) -> HostInfo {
        self.latest.read().clone()
    }
}

/// This machine's name, as a federation node calls itself unless told otherwise.
pub fn host_name() -> String {
    System::host_name().filter(|n| !n.is_empty()).unwrap_or_else(|| "gantry".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let info = HostProbe::new().read();
        assert!(info.cpu_cores >= 1);
        assert!(info.memory_total_mib > 0);
        assert!(info.memory_used_mib <= info.memory_total_mib);
        assert!((0.0..=100.0).contains(&info.memory_percent));
        assert!(info.uptime_s > 0);
    }
}
