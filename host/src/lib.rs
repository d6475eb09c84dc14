//! gantry: a GPU scheduling runtime whose strategies are WebAssembly plugins.
//!
//! The house has floors, and imports only go down:
//!
//! - [`daemon`]: the composition root: starts every part and serves [`http`] over [`service`];
//! - [`http`]: the HTTP API (gantry's own routes and the seed systems'), one service call per
//!   request;
//! - [`service`]: everything a client may ask, over the parts below;
//! - the parts: [`scheduler`] (queues, runs, retries; one thread decides), [`executor`] (attempts
//!   under shims that outlive the daemon), [`store`] (SQLite), [`policy`] (placement, fail-open),
//!   [`plugin`] (the wasmtime runtime), [`providers`] (Slurm and other systems jobs are handed
//!   to), [`gpu`] (NVML, sampling, simulation), [`host_info`],
//!   [`auth`] (modes, tokens, accounts), [`config`] (reading and editing `gantry.toml`),
//!   [`federation`] (agents and masters), [`tls`], [`command_files`], [`log_access`], [`tasks`],
//!   [`metrics`], [`watch`], [`procfs`], [`memory`] (giving back what the allocator keeps),
//!   [`unix`] (accounts, reading as a caller);
//! - [`model`]: the records every floor speaks (jobs, runs, rules, who is calling).

pub mod auth;
pub mod command_files;
pub mod config;
pub mod daemon;
pub mod executor;
pub mod federation;
pub mod gpu;
pub mod host_info;
pub mod http;
pub mod log_access;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod policy;
pub mod procfs;
pub mod providers;
pub mod replay;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod tasks;
pub mod tls;
pub mod unix;
pub mod watch;

#[cfg(test)]
mod layering;
#[cfg(test)]
mod testing;
