//! Reading GPUs through nvml-wrapper. Blocking: the sampler calls it from its own thread, and
//! `gantry gpus` from the main thread, never from async workers.

use super::process::ProcessNames;
use super::{DriverInfo, GpuError, GpuProcess, GpuReading, GpuSnapshot, NodeGpus, ProcessKind};
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// The default name the driver installs; nvml-wrapper's dlopen searches the usual library paths.
pub const SYSTEM_LIBRARY: &str = "libnvidia-ml.so.1";

pub struct NvmlReader {
    nvml: Nvml,
    simulated: bool,
    library: PathBuf,
    names: ProcessNames,
}

/// Errors after which the GPU has nothing more to say this round.
fn is_fatal(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::GpuLost
            | NvmlError::Uninitialized
            | NvmlError::DriverNotLoaded
            | NvmlError::Timeout
            | NvmlError::LibRmVersionMismatch
            | NvmlError::ResetRequired
            | NvmlError::Unknown
    )
}

/// A field the driver does not support (or an old driver lacks the symbol for) is `None`; a fatal
/// error makes the whole GPU unavailable.
fn optional<T>(r: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_fatal(&e) => Err(e),
        Err(_) => Ok(None),
    }
}

impl NvmlReader {
    /// Loads `library` (a path, or a name for the dynamic loader) and initialises NVML.
    pub fn open(library: &Path, simulated: bool) -> Result<Self, GpuError> {
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(library))
            .init()
            .map_err(|e| GpuError::Load { lib: library.display().to_string(), message: e.to_string() })?;
        Ok(NvmlReader { nvml, simulated, library: library.to_path_buf(), names: ProcessNames::default() })
    }

    pub fn simulated(&self) -> bool {
        self.simulated
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    pub fn driver_info(&self) -> DriverInfo {
        DriverInfo {
            driver_version: self.nvml.sys_driver_version().ok(),
            nvml_version: self.nvml.sys_nvml_version().ok(),
            cuda_driver_version: self.nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
        }
    }

    pub fn device_count(&self) -> Result<u32, GpuError> {
        self.nvml.device_count().map_err(|e| GpuError::Nvml(e.to_string()))
    }

    /// One GPU, every field NVML has for it.
    pub fn read_gpu(&mut self, index: u32) -> Result<GpuSnapshot, GpuError> {
        self.read_gpu_inner(index).map_err(|e| GpuError::Device { index, message: e.to_string() })
    }

    fn read_gpu_inner(&mut self, index: u32) -> Result<GpuSnapshot, NvmlError> {
        let device = self.nvml.device_by_index(index)?;
        let memory = device.memory_info()?;
        let utilization = optional(device.utilization_rates())?;
        let mut processes = Vec::new();
        for (kind, list) in [
            (ProcessKind::Compute, optional(device.running_compute_processes())?),
            (ProcessKind::Graphics, optional(device.running_graphics_processes())?),
        ] {
            for p in list.unwrap_or_default() {
                if processes.iter().any(|q: &GpuProcess| q.pid == p.pid) {
                    continue;
                }
                let facts = self.names.describe(p.pid);
                let used_memory_mib = match p.used_gpu_memory {
                    UsedGpuMemory::Used(bytes) => Some(bytes / MIB),
                    UsedGpuMemory::Unavailable => None,
                };
                processes.push(GpuProcess { pid: p.pid, kind, used_memory_mib, user: facts.user, command: facts.command, job: facts.job });
            }
        }
        let memory_temperature_c = optional(device.field_values_for(&[FieldId(NVML_FI_DEV_MEMORY_TEMP)]))?
            .and_then(|samples| samples.into_iter().next())
            .and_then(|sample| match sample.ok()?.value {
                Ok(SampleValue::U32(c)) => Some(c),
                Ok(SampleValue::U64(c)) => u32::try_from(c).ok(),
                _ => None,
            });
        Ok(GpuSnapshot {
            index,
            uuid: device.uuid()?,
            name: device.name()?,
            pci_bus_id: optional(device.pci_info())?.map(|p| p.bus_id),
            memory_total_mib: memory.total / MIB,
            memory_used_mib: memory.used / MIB,
            memory_free_mib: memory.free / MIB,
            memory_reserved_mib: memory.reserved / MIB,
            utilization_gpu: utilization.as_ref().map(|u| u.gpu),
            utilization_memory: utilization.as_ref().map(|u| u.memory),
            temperature_c: optional(device.temperature(TemperatureSensor::Gpu))?,
            memory_temperature_c,
            power_draw_w: optional(device.power_usage())?.map(|mw| f64::from(mw) / 1000.0),
            power_limit_w: optional(device.enforced_power_limit())?.map(|mw| f64::from(mw) / 1000.0),
            fan_percent: optional(device.fan_speed(0))?,
            clock_graphics_mhz: optional(device.clock_info(Clock::Graphics))?,
            clock_sm_mhz: optional(device.clock_info(Clock::SM))?,
            clock_memory_mhz: optional(device.clock_info(Clock::Memory))?,
            performance_state: optional(device.performance_state())?.map(|p| format!("P{}", p.as_c())),
            processes,
        })
    }

    /// Every GPU; one that fails is reported unavailable and the others still read.
    pub fn read_all(&mut self) -> Result<NodeGpus, GpuError> {
        let count = self.device_count()?;
        let gpus = (0..count)
            .map(|index| match self.read_gpu(index) {
                Ok(s) => GpuReading::Available(s),
                Err(e) => GpuReading::Unavailable { index, error: e.to_string() },
            })
            .collect();
        Ok(NodeGpus { simulated: self.simulated, driver: self.driver_info(), sampled_at_ms: crate::model::now_ms(), gpus })
    }
}
