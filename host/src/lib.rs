//! gantry: a GPU scheduling runtime whose strategies are WebAssembly plugins.
//!
//! - [`plugin`]: the plugin runtime (wasmtime components defined in `wit/gantry.wit`);
//! - [`policy`]: asks the active policy plugin where jobs go, re-checks the answer, falls back to
//!   the native best fit;
//! - [`gpu`]: NVML (real or the bundled stand-in), sampling, GPU snapshots;
//! - [`host_info`]: CPU, memory and the rest of the machine;
//! - [`executor`]: runs each job attempt under a shim that outlives the daemon;
//! - [`config`]: `gantry.toml`.

pub mod config;
pub mod executor;
pub mod gpu;
pub mod host_info;
pub mod plugin;
pub mod policy;
