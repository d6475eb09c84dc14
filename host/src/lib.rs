//! gantry: a GPU scheduling runtime whose strategies are WebAssembly plugins.
//!
//! - [`plugin`]: the plugin runtime (wasmtime components defined in `wit/gantry.wit`);
//! - [`policy`]: asks the active policy plugin where jobs go, re-checks the answer, falls back to
//!   the native best fit;
//! - [`config`]: `gantry.toml`.

pub mod config;
pub mod plugin;
pub mod policy;
