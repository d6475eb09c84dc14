//! The GPU layer: what the GPUs of this machine say, read through NVML only.
//!
//! - `nvml`: the reader over nvml-wrapper (the real driver or the bundled stand-in);
//! - `sim`: simulation mode, which runs the same NVML code path over the bundled fake library;
//! - `process`: user, command line and gantry job of the processes NVML reports;
//! - `sampler`: the background thread that samples every GPU into ring buffers and tells
//!   observers when something changed;
//! - `job_map`: DCGM's HPC job mapping files, which say which jobs are on which GPU.
//!
//! The types here are serialisable snapshots: the HTTP API shows them and a federation master
//! will receive them from agents.

pub mod job_map;
mod nvml;
mod process;
mod sampler;
mod sim;

pub use nvml::{NvmlReader, SYSTEM_LIBRARY};
pub use sampler::{GpuMonitor, GpuSummary, Ownership, SamplerConfig, UsageSample};
pub use sim::{SimSpec, prepare_simulation, BUNDLED_FAKE_NVML};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("cannot load {lib}: {message}")]
    Load { lib: String, message: String },
    #[error("NVML: {0}")]
    Nvml(String),
    #[error("GPU {index}: {message}")]
    Device { index: u32, message: String },
    #[error("simulation: {0}")]
    Simulation(String),
    #[error("--simulate {spec}: {message}")]
    SimSpec { spec: String, message: String },
}

/// Versions of the driver stack; absent where the driver doesn't say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriverInfo {
    pub driver_version: Option<String>,
    pub nvml_version: Option<String>,
    /// `major.minor`, e.g. `12.4`.
    pub cuda_driver_version: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    Compute,
    Graphics,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuProcess {
    pub pid: u32,
    pub kind: ProcessKind,
    /// Unknown under WDDM or when the driver withholds it.
    pub used_memory_mib: Option<u64>,
    /// None when the process is gone or belongs to a user whose `/proc` entries we can't read.
    pub user: Option<String>,
    pub command: Option<String>,
    /// The gantry job whose process this is (by `GANTRY_JOB_ID` in its environment), read when
    /// the sample was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::model::JobId>,
}

/// One GPU at one moment. Fields the driver does not support are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuSnapshot {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: Option<String>,
    pub memory_total_mib: u64,
    /// What processes hold: NVML's `used`, as `nvidia-smi` and gpustat show it.
    pub memory_used_mib: u64,
    pub memory_free_mib: u64,
    /// What the driver keeps for itself (NVML's `reserved`): neither used nor ever free, so
    /// `total = reserved + used + free`. Placement counts it as taken.
    #[serde(default)]
    pub memory_reserved_mib: u64,
    pub utilization_gpu: Option<u32>,
    pub utilization_memory: Option<u32>,
    pub temperature_c: Option<u32>,
    /// The memory's (HBM's) temperature, where the GPU reports it.
    #[serde(default)]
    pub memory_temperature_c: Option<u32>,
    pub power_draw_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub fan_percent: Option<u32>,
    pub clock_graphics_mhz: Option<u32>,
    pub clock_sm_mhz: Option<u32>,
    pub clock_memory_mhz: Option<u32>,
    /// `P0` (fastest) to `P15`.
    pub performance_state: Option<String>,
    pub processes: Vec<GpuProcess>,
}

/// A GPU that answered, or one that did not (lost, timing out) and is being retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
// Nearly every reading is `Available`: boxing it would cost an allocation per GPU per sample to
// shrink the rare one.
#[allow(clippy::large_enum_variant)]
pub enum GpuReading {
    Available(GpuSnapshot),
    Unavailable { index: u32, error: String },
}

impl GpuReading {
    pub fn index(&self) -> u32 {
        match self {
            GpuReading::Available(s) => s.index,
            GpuReading::Unavailable { index, .. } => *index,
        }
    }

    pub fn snapshot(&self) -> Option<&GpuSnapshot> {
        match self {
            GpuReading::Available(s) => Some(s),
            GpuReading::Unavailable { .. } => None,
        }
    }
}

/// Every GPU of one machine: what `gantry gpus --json` prints and what an agent will report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeGpus {
    pub simulated: bool,
    pub driver: DriverInfo,
    /// Milliseconds since the Unix epoch.
    pub sampled_at_ms: u64,
    pub gpus: Vec<GpuReading>,
}

/// Where GPU readings come from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum GpuMode {
    /// The NVIDIA driver if it loads, else simulated GPUs (saying so).
    #[default]
    Auto,
    /// The driver or nothing.
    Hardware,
    /// Simulated GPUs even where a driver exists.
    Simulate(SimSpec),
}

/// Opens NVML as `mode` says: `driver` is the real library (normally [`SYSTEM_LIBRARY`]), `sim_dir`
/// where simulation keeps its stand-in. The second value is the one line to tell the user when
/// gantry fell back to simulation. Blocking.
pub fn open_gpus(mode: &GpuMode, driver: &std::path::Path, sim_dir: &std::path::Path) -> Result<(NvmlReader, Option<String>), GpuError> {
    match mode {
        GpuMode::Simulate(spec) => {
            let lib = prepare_simulation(sim_dir, Some(spec))?;
            Ok((NvmlReader::open(&lib, true)?, None))
        }
        GpuMode::Hardware => Ok((NvmlReader::open(driver, false)?, None)),
        GpuMode::Auto => match NvmlReader::open(driver, false) {
            Ok(reader) => Ok((reader, None)),
            Err(e) => {
                let lib = prepare_simulation(sim_dir, None)?;
                let reader = NvmlReader::open(&lib, true)?;
                let count = reader.device_count().unwrap_or(0);
                let notice = format!(
                    "no NVIDIA driver ({e}); using {count} simulated GPUs (configured in {}; --no-simulate refuses, --simulate N[xMODEL] chooses)",
                    sim_dir.join("nvml-sim.json").display()
                );
                Ok((reader, Some(notice)))
            }
        },
    }
}

#[cfg(test)]
mod tests;
