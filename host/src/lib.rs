//! gantry: a GPU scheduling runtime whose strategies are WebAssembly plugins.
//!
//! - [`plugin`]: the plugin runtime (wasmtime components defined in `wit/gantry.wit`);
//! - [`policy`]: asks the active policy plugin where jobs go, re-checks the answer, falls back to
//!   the native best fit;
//! - [`gpu`]: NVML (real or the bundled stand-in), sampling, GPU snapshots;
//! - [`host_info`]: CPU, memory and the rest of the machine;
//! - [`executor`]: runs each job attempt under a shim that outlives the daemon;
//! - [`scheduler`]: queues, runs, retries; one thread that decides where and when jobs start;
//! - [`store`]: SQLite state that survives crashes;
//! - [`daemon`]: `gantry serve`, the HTTP API over all of the above;
//! - [`config`] reads and checks `gantry.toml`; [`watch`] tells when it (or a plugin) changed;
//!   [`procfs`] holds the few facts read from `/proc`; [`metrics`] is Prometheus' side of it.

pub mod auth;
pub mod command_files;
pub mod config;
pub mod daemon;
pub mod executor;
pub mod gpu;
pub mod host_info;
pub mod log_access;
pub mod metrics;
pub mod plugin;
pub mod policy;
pub mod procfs;
pub mod scheduler;
pub mod store;
pub mod tasks;
pub mod watch;
