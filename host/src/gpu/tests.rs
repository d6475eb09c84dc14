//! The GPU layer against the stand-in library, loaded through nvml-wrapper exactly as a driver
//! would be. Each test gets its own copy of the library and its own `nvml-sim.json`, so the
//! fake's state is never shared between tests.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const FAKE: &str = env!("GANTRY_NVML_SIM");

struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new(config: serde_json::Value) -> Machine {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(FAKE, dir.path().join("libnvidia-ml.so.1")).expect("copy fake");
        let m = Machine { dir };
        m.configure(config);
        m
    }

    fn configure(&self, config: serde_json::Value) {
        // Written aside and renamed so the fake never reads a half-written file.
        let tmp = self.dir.path().join("nvml-sim.json.tmp");
        std::fs::write(&tmp, config.to_string()).expect("write config");
        std::fs::rename(&tmp, self.dir.path().join("nvml-sim.json")).expect("install config");
    }

    fn lib(&self) -> PathBuf {
        self.dir.path().join("libnvidia-ml.so.1")
    }

    fn reader(&self) -> NvmlReader {
        NvmlReader::open(&self.lib(), true).expect("fake loads")
    }
}

/// A process that the fake counts as using `mib` on the GPUs in `visible`.
fn gpu_user(visible: &str, mib: u64) -> Child {
    Command::new("sleep")
        .arg("60")
        .env("CUDA_VISIBLE_DEVICES", visible)
        .env("GANTRY_SIM_GPU_MEM_MIB", mib.to_string())
        .spawn()
        .expect("spawn sleep")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn this_user() -> String {
    let uid = unsafe { libc::getuid() };
    process::ProcessNames::default().describe(std::process::id()).user.unwrap_or_else(|| uid.to_string())
}

#[test]
fn configured_values_come_back_through_nvml_wrapper() {
    let m = Machine::new(serde_json::json!({
        "driver_version": "999.1.2",
        "cuda_driver_version": 12080,
        "count": 3,
        "model": {"name": "Test GPU 16G", "memory_mib": 16000, "power_limit_w": 300, "idle_power_w": 20,
                  "base_temperature_c": 41, "base_utilization": 7, "base_used_mib": 100},
        "gpus": [{}, {"name": "Odd One", "memory_mib": 8000}],
    }));
    let node = m.reader().read_all().expect("reads");
    assert!(node.simulated);
    assert_eq!(node.driver.driver_version.as_deref(), Some("999.1.2"));
    assert_eq!(node.driver.cuda_driver_version.as_deref(), Some("12.8"));
    assert_eq!(node.gpus.len(), 3);
    let g: Vec<&GpuSnapshot> = node.gpus.iter().map(|r| r.snapshot().expect("available")).collect();
    assert_eq!(g[0].name, "Test GPU 16G");
    assert_eq!((g[1].name.as_str(), g[1].memory_total_mib), ("Odd One", 8000));
    assert_eq!((g[2].memory_total_mib, g[2].memory_used_mib, g[2].memory_free_mib), (16000, 100, 15900));
    assert_eq!(g[0].utilization_gpu, Some(7));
    assert_eq!(g[0].power_limit_w, Some(300.0));
    assert_eq!(g[0].temperature_c, Some(41 + 7 * 2 / 5));
    assert_eq!(g[0].pci_bus_id.as_deref(), Some("00000000:17:00.0"));
    assert_eq!(g[0].performance_state.as_deref(), Some("P2"));
    assert!(g[0].uuid.starts_with("GPU-"));
    assert_ne!(g[0].uuid, g[1].uuid);
}

#[test]
fn memory_the_driver_reserved_is_used_not_free_and_the_memory_temperature_is_read() {
    // As real drivers and NVIDIA's own mock do: NVML's v2 `used` leaves the reservation out, and
    // `free` is what is left of the total after both.
    let m = Machine::new(serde_json::json!({
        "count": 1,
        "model": {"memory_mib": 81_559, "reserved_mib": 1_024, "base_used_mib": 500, "base_temperature_c": 40},
    }));
    let node = m.reader().read_all().expect("reads");
    let g = node.gpus[0].snapshot().expect("available");
    assert_eq!((g.memory_total_mib, g.memory_reserved_mib, g.memory_used_mib, g.memory_free_mib), (81_559, 1_024, 500, 80_035));
    assert_eq!(g.memory_reserved_mib + g.memory_used_mib + g.memory_free_mib, g.memory_total_mib);
    assert_eq!(g.memory_temperature_c, Some(43));
    let unsupported = Machine::new(serde_json::json!({"count": 1, "gpus": [{"not_supported": ["nvmlDeviceGetFieldValues"]}]}));
    assert_eq!(unsupported.reader().read_all().expect("reads").gpus[0].snapshot().expect("available").memory_temperature_c, None);
}

#[test]
fn unsupported_fields_are_none_not_failures() {
    let m = Machine::new(serde_json::json!({
        "count": 1,
        "gpus": [{"not_supported": ["nvmlDeviceGetFanSpeed_v2", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature"]}],
    }));
    let node = m.reader().read_all().expect("reads");
    let g = node.gpus[0].snapshot().expect("still available");
    assert_eq!((g.fan_percent, g.power_draw_w, g.temperature_c), (None, None, None));
    assert!(g.power_limit_w.is_some());
}

#[test]
fn simulated_processes_appear_on_their_gpus_and_leave_when_they_exit() {
    let m = Machine::new(serde_json::json!({"count": 8}));
    let mut reader = m.reader();
    let mut child = gpu_user("5,GPU-5a1d0007-0000-4000-8000-00006a6e7479", 1234);
    let pid = child.id();

    wait_until("the process to show", || reader.read_gpu(5).expect("gpu 5").processes.iter().any(|p| p.pid == pid));
    for index in [5, 7] {
        let g = reader.read_gpu(index).expect("reads");
        let p = g.processes.iter().find(|p| p.pid == pid).expect("listed");
        assert_eq!(p.used_memory_mib, Some(1234));
        assert_eq!(p.kind, ProcessKind::Compute);
        assert_eq!(p.user.as_deref(), Some(this_user().as_str()));
        assert_eq!(p.command.as_deref(), Some("sleep 60"));
        assert!(g.memory_used_mib >= 1234);
    }
    assert!(reader.read_gpu(6).expect("reads").processes.iter().all(|p| p.pid != pid));

    child.kill().expect("kill");
    child.wait().expect("reap");
    wait_until("the process to go", || reader.read_gpu(5).expect("gpu 5").processes.iter().all(|p| p.pid != pid));
}

#[test]
fn a_lost_gpu_is_unavailable_while_the_others_report_and_it_recovers() {
    let m = Machine::new(serde_json::json!({"count": 3}));
    let monitor = GpuMonitor::start(m.reader(), SamplerConfig { interval: Duration::from_millis(100), ..Default::default() })
        .expect("sampler starts");
    let mut changes = monitor.subscribe();
    assert!(monitor.latest().gpus.iter().all(|g| g.snapshot().is_some()));
    let seen = *changes.borrow_and_update();

    m.configure(serde_json::json!({"count": 3, "gpus": [{}, {"error": "gpu_lost"}]}));
    wait_until("GPU 1 to be lost", || matches!(monitor.latest().gpus[1], GpuReading::Unavailable { .. }));
    let latest = monitor.latest();
    assert!(latest.gpus[0].snapshot().is_some() && latest.gpus[2].snapshot().is_some());
    match &latest.gpus[1] {
        GpuReading::Unavailable { index, error } => {
            assert_eq!(*index, 1);
            assert!(error.contains("fell off the bus"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(*changes.borrow_and_update() > seen, "observers are told");

    m.configure(serde_json::json!({"count": 3}));
    wait_until("GPU 1 to come back", || monitor.latest().gpus[1].snapshot().is_some());
}

#[test]
fn the_window_peak_remembers_memory_that_was_freed_a_moment_ago() {
    let m = Machine::new(serde_json::json!({"count": 4}));
    let monitor = GpuMonitor::start(
        m.reader(),
        SamplerConfig { interval: Duration::from_millis(100), window: Duration::from_secs(60), history: Duration::from_secs(60) },
    )
    .expect("sampler starts");
    let mut child = gpu_user("3", 4321);
    let pid = child.id();
    let has_it = |monitor: &GpuMonitor| {
        monitor.latest().gpus[3].snapshot().is_some_and(|g| g.processes.iter().any(|p| p.pid == pid))
    };
    wait_until("the job to be sampled", || has_it(&monitor));
    child.kill().expect("kill");
    child.wait().expect("reap");
    wait_until("the job to be gone", || !has_it(&monitor));

    let summary = monitor.summaries().into_iter().find(|s| s.reading.index() == 3).expect("gpu 3");
    assert!(summary.memory_peak_mib >= 4321, "peak {} forgets the job", summary.memory_peak_mib);
    assert!(summary.utilization_mean.is_some());
    assert!(!monitor.history(3, 0).is_empty());
}

#[test]
fn a_driver_that_fails_to_initialise_leads_to_simulation_with_a_message() {
    let broken = Machine::new(serde_json::json!({"init_error": "driver_not_loaded"}));
    let sim_dir = tempfile::tempdir().expect("sim dir");
    let (reader, notice) = open_gpus(&GpuMode::Auto, &broken.lib(), sim_dir.path()).expect("falls back");
    assert!(reader.simulated());
    let notice = notice.expect("says so");
    assert!(notice.contains("driver is not loaded") && notice.contains("4 simulated GPUs"), "{notice}");

    let err = open_gpus(&GpuMode::Hardware, &broken.lib(), sim_dir.path()).err().expect("no fallback");
    assert!(err.to_string().contains("driver is not loaded"), "{err}");
}

#[test]
fn simulation_writes_the_bundled_driver_and_honours_the_spec() {
    let sim_dir = tempfile::tempdir().expect("sim dir");
    let spec: SimSpec = "2xH100".parse().expect("spec");
    let (mut reader, notice) = open_gpus(&GpuMode::Simulate(spec), Path::new("/nonexistent/libnvidia-ml.so.1"), sim_dir.path())
        .expect("simulates");
    assert!(notice.is_none(), "forced simulation needs no excuse");
    let node = reader.read_all().expect("reads");
    assert_eq!(node.gpus.len(), 2);
    assert_eq!(node.gpus[0].snapshot().expect("available").name, "NVIDIA H100 80GB HBM3");
    assert_eq!(std::fs::read(sim_dir.path().join("libnvidia-ml.so.1")).expect("written"), BUNDLED_FAKE_NVML);
}
