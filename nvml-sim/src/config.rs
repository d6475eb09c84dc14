//! The simulated machine, read from a JSON file: `$GANTRY_SIM_CONFIG`, else `nvml-sim.json`
//! beside this library, else four 24 GiB GPUs. The file is re-read when it changes, so a test can
//! lose a GPU and bring it back while a client holds the library open.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub driver_version: String,
    pub nvml_version: String,
    /// CUDA driver version as NVML encodes it: 1000 × major + 10 × minor.
    pub cuda_driver_version: i32,
    /// Makes `nvmlInit` fail, as on a machine whose driver is missing or mismatched.
    pub init_error: Option<SimError>,
    /// Template for GPUs not listed in `gpus`.
    pub count: u32,
    pub model: GpuModel,
    /// Per-GPU overrides of the template, by position.
    pub gpus: Vec<GpuOverride>,
    /// A file to which every `nvmlInit*` and `nvmlShutdown` call is appended, one name a line.
    pub call_log: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            driver_version: "550.54.15".into(),
            nvml_version: "12.550.54.15".into(),
            cuda_driver_version: 12040,
            init_error: None,
            count: 4,
            model: GpuModel::default(),
            gpus: Vec::new(),
            call_log: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuModel {
    pub name: String,
    pub memory_mib: u64,
    pub power_limit_w: u32,
    pub idle_power_w: u32,
    /// Utilisation with no simulated process, percent.
    pub base_utilization: u32,
    pub base_temperature_c: u32,
    /// Memory used with no simulated process.
    pub base_used_mib: u64,
    /// Memory the driver sets aside for itself, never free: NVML's `reserved` (v2), counted in
    /// `used` by the v1 call, as real drivers do.
    pub reserved_mib: u64,
    pub fan_percent: u32,
}

impl Default for GpuModel {
    fn default() -> Self {
        GpuModel {
            name: "NVIDIA GeForce RTX 4090".into(),
            memory_mib: 24_564,
            power_limit_w: 450,
            idle_power_w: 25,
            base_utilization: 0,
            base_temperature_c: 35,
            base_used_mib: 0,
            reserved_mib: 0,
            fan_percent: 30,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuOverride {
    pub name: Option<String>,
    pub memory_mib: Option<u64>,
    pub power_limit_w: Option<u32>,
    pub base_utilization: Option<u32>,
    pub base_temperature_c: Option<u32>,
    pub base_used_mib: Option<u64>,
    pub reserved_mib: Option<u64>,
    /// Every call about this GPU fails so (e.g. `gpu_lost`).
    pub error: Option<SimError>,
    /// These functions fail with `not_supported` for this GPU.
    pub not_supported: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SimError {
    Uninitialized,
    NotSupported,
    NoPermission,
    DriverNotLoaded,
    Timeout,
    GpuLost,
    LibRmVersionMismatch,
    Unknown,
}

impl SimError {
    pub fn code(self) -> u32 {
        match self {
            SimError::Uninitialized => crate::NVML_ERROR_UNINITIALIZED,
            SimError::NotSupported => crate::NVML_ERROR_NOT_SUPPORTED,
            SimError::NoPermission => crate::NVML_ERROR_NO_PERMISSION,
            SimError::DriverNotLoaded => crate::NVML_ERROR_DRIVER_NOT_LOADED,
            SimError::Timeout => crate::NVML_ERROR_TIMEOUT,
            SimError::GpuLost => crate::NVML_ERROR_GPU_IS_LOST,
            SimError::LibRmVersionMismatch => crate::NVML_ERROR_LIB_RM_VERSION_MISMATCH,
            SimError::Unknown => crate::NVML_ERROR_UNKNOWN,
        }
    }
}

/// One GPU with the template and its override applied.
#[derive(Clone, Debug)]
pub struct SimGpu {
    pub name: String,
    pub uuid: String,
    pub memory_mib: u64,
    pub power_limit_w: u32,
    pub idle_power_w: u32,
    pub base_utilization: u32,
    pub base_temperature_c: u32,
    pub base_used_mib: u64,
    pub reserved_mib: u64,
    pub fan_percent: u32,
    pub error: Option<SimError>,
    pub not_supported: Vec<String>,
}

impl SimConfig {
    pub fn gpus(&self) -> Vec<SimGpu> {
        let count = self.count.max(u32::try_from(self.gpus.len()).unwrap_or(u32::MAX));
        (0..count)
            .map(|index| {
                let o = self.gpus.get(index as usize).cloned().unwrap_or_default();
                let m = &self.model;
                SimGpu {
                    name: o.name.unwrap_or_else(|| m.name.clone()),
                    uuid: format!("GPU-5a1d{index:04x}-0000-4000-8000-{:012x}", 0x6a6e7472_u64 + u64::from(index)),
                    memory_mib: o.memory_mib.unwrap_or(m.memory_mib),
                    power_limit_w: o.power_limit_w.unwrap_or(m.power_limit_w),
                    idle_power_w: m.idle_power_w,
                    base_utilization: o.base_utilization.unwrap_or(m.base_utilization),
                    base_temperature_c: o.base_temperature_c.unwrap_or(m.base_temperature_c),
                    base_used_mib: o.base_used_mib.unwrap_or(m.base_used_mib),
                    reserved_mib: o.reserved_mib.unwrap_or(m.reserved_mib).min(o.memory_mib.unwrap_or(m.memory_mib)),
                    fan_percent: m.fan_percent,
                    error: o.error,
                    not_supported: o.not_supported,
                }
            })
            .collect()
    }
}
