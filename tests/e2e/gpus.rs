//! `gantry gpus` on simulated GPUs, against the stand-in library, and against gpustat.

use crate::{stderr, stdout, Gantry, NO_DRIVER};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;

/// A process using `mib` on the listed GPUs of the simulated machine in `g`, and on no other
/// test's machine.
pub fn gpu_user(g: &Gantry, visible: &str, mib: u64) -> Child {
    Command::new("sleep")
        .arg("60")
        .env("GANTRY_SIM_MACHINE", g.sim_machine())
        .env("CUDA_VISIBLE_DEVICES", visible)
        .env("GANTRY_SIM_GPU_MEM_MIB", mib.to_string())
        .spawn()
        .expect("spawn sleep")
}

pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_a_driver_gpus_are_simulated_and_the_user_is_told_once() {
    let out = Gantry::new().run(&["gpus"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no NVIDIA driver") && err.contains("4 simulated GPUs"), "{err}");
    let table = stdout(&out);
    assert!(table.contains("[simulated]"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with('[')).count(), 4, "{table}");
}

#[test]
fn no_simulate_refuses_clearly() {
    let out = Gantry::new().run(&["gpus", "--no-simulate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(NO_DRIVER), "{}", stderr(&out));
}

#[test]
fn nvml_shutdown_is_called_once_at_exit() {
    let g = Gantry::new();
    // A stand-in "driver" that logs init and shutdown.
    let dir = g.state.path().join("driver");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(env!("GANTRY_NVML_SIM"), dir.join("libnvidia-ml.so.1")).expect("copy");
    let log = dir.join("calls.log");
    std::fs::write(dir.join("nvml-sim.json"), serde_json::json!({"count": 2, "call_log": log}).to_string()).expect("config");

    let out = g.command().env("GANTRY_NVML_LIBRARY", dir.join("libnvidia-ml.so.1")).args(["gpus", "--no-simulate", "--json"]).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let node: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(node["simulated"], false, "a library given as the driver is the driver");
    assert_eq!(std::fs::read_to_string(&log).expect("logged"), "nvmlInit\nnvmlShutdown\n");
}

/// gpustat and its nvidia-ml-py, installed once into the test target dir from PyPI.
fn gpustat() -> &'static PathBuf {
    static DEPS: OnceLock<PathBuf> = OnceLock::new();
    DEPS.get_or_init(|| super::pip_install("gpustat==1.1.1", "pydeps"))
}

#[test]
fn gpus_json_agrees_with_gpustat() {
    let g = Gantry::new();
    let prepare = g.run(&["gpus", "--simulate", "3xA6000"]);
    assert!(prepare.status.success(), "{}", stderr(&prepare));
    // A driver that keeps memory for itself, as real ones do: both read NVML's v2 call, which
    // reports the reservation apart from `used`, and must show the same used.
    let config = g.sim_dir().join("nvml-sim.json");
    let mut sim: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    sim["model"]["reserved_mib"] = serde_json::json!(512);
    std::fs::write(&config, sim.to_string()).expect("write config");
    let a = Reaped(gpu_user(&g, "1", 3000));
    let b = Reaped(gpu_user(&g, "0,2", 1500));
    // Both read the processes once the children are what the fake counts (they have exec'd with
    // their environment), not a moment earlier.
    let pids_on = |value: &serde_json::Value, gpu: usize| -> Vec<u64> {
        value["gpus"][gpu]["processes"].as_array().map(|list| list.iter().filter_map(|p| p["pid"].as_u64()).collect()).unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ours = loop {
        let out = g.run(&["gpus", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let ours: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        if pids_on(&ours, 1).contains(&u64::from(a.0.id())) && pids_on(&ours, 2).contains(&u64::from(b.0.id())) {
            break ours;
        }
        assert!(std::time::Instant::now() < deadline, "the fake never counted both processes: {ours:#}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };

    let theirs = Command::new("python3")
        .args(["-m", "gpustat", "--json"])
        .env("PYTHONPATH", gpustat())
        .env("LD_LIBRARY_PATH", g.sim_dir())
        .output()
        .expect("gpustat runs");
    assert!(theirs.status.success(), "gpustat: {}", stderr(&theirs));
    let theirs: serde_json::Value = serde_json::from_str(&stdout(&theirs)).expect("gpustat json");

    let ours = ours["gpus"].as_array().expect("gpus");
    let theirs = theirs["gpus"].as_array().expect("gpus");
    assert_eq!(ours.len(), 3);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o["index"], t["index"]);
        assert_eq!(o["name"], t["name"]);
        assert_eq!(o["name"], "NVIDIA RTX A6000");
        assert_eq!(o["uuid"], t["uuid"]);
        assert_eq!(o["memory_total_mib"], t["memory.total"]);
        assert_eq!(o["memory_used_mib"], t["memory.used"]);
        let pids = |list: &serde_json::Value, pid: &str, mem: &str| -> Vec<(u64, u64)> {
            let mut v: Vec<(u64, u64)> = list
                .as_array()
                .expect("processes")
                .iter()
                .map(|p| (p[pid].as_u64().expect("pid"), p[mem].as_u64().expect("memory")))
                .collect();
            v.sort();
            v
        };
        assert_eq!(pids(&o["processes"], "pid", "used_memory_mib"), pids(&t["processes"], "pid", "gpu_memory_usage"));
    }
    assert!(ours[1]["memory_used_mib"].as_u64().expect("used") >= 3000);
}

/// Symbols that gpustat and nvitop look up. A missing one makes nvitop log an error on every
/// refresh (it did for the first three below) even when the query is optional.
#[test]
fn the_stand_in_exports_what_nvml_clients_look_up() {
    let path = std::ffi::CString::new(env!("GANTRY_NVML_SIM")).expect("path");
    // SAFETY: dlopen/dlsym/dlclose on a library built by this workspace; nothing is called.
    unsafe {
        let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!lib.is_null(), "dlopen failed");
        let missing: Vec<&str> = [
            "nvmlDeviceGetDriverModel",
            "nvmlDeviceGetTotalEccErrors",
            "nvmlDeviceGetProcessUtilization",
            "nvmlInit_v2",
            "nvmlInitWithFlags",
            "nvmlShutdown",
            "nvmlErrorString",
            "nvmlSystemGetDriverVersion",
            "nvmlSystemGetCudaDriverVersion",
            "nvmlDeviceGetCount_v2",
            "nvmlDeviceGetHandleByIndex_v2",
            "nvmlDeviceGetIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetPciInfo_v3",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetMemoryInfo_v2",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetEncoderUtilization",
            "nvmlDeviceGetDecoderUtilization",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetFanSpeed",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetPerformanceState",
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
            "nvmlDeviceGetPersistenceMode",
            "nvmlDeviceGetDisplayActive",
            "nvmlDeviceGetComputeMode",
            "nvmlDeviceGetMigMode",
        ]
        .into_iter()
        .filter(|name| {
            let symbol = std::ffi::CString::new(*name).expect("name");
            libc::dlsym(lib, symbol.as_ptr()).is_null()
        })
        .collect();
        libc::dlclose(lib);
        assert!(missing.is_empty(), "missing: {missing:?}");
    }
}
