//! The sandbox one plugin call runs in: a store with no files, no sockets and no environment
//! unless the plugin's configuration grants them, a memory cap, and a deadline in epoch ticks.

use super::engine::EPOCH_TICK;
use super::{PluginError, PluginGrants, PluginLimits};
use std::path::Path;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How much of a plugin's stderr (its panic message, usually) is kept for the error report.
const STDERR_CAPACITY: usize = 4096;

/// Refuses memory growth past the cap and remembers that it did, so a trap caused by the refusal
/// is reported as a memory limit rather than as an anonymous abort.
pub struct MemoryCap {
    max_bytes: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 16)
    }
}

pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub cap: MemoryCap,
    stderr: MemoryOutputPipe,
    http: WasiHttpCtx,
    hooks: super::provider::AllowListHooks,
}

impl StoreState {
    /// The end of what the plugin wrote to stderr, for error reports.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        text.trim().lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// A store for one plugin, configured from its limits and grants.
pub fn new_store(engine: &Engine, plugin: &str, limits: &PluginLimits, grants: &PluginGrants) -> Result<Store<StoreState>, PluginError> {
    let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stderr(stderr.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    for (key, value) in &grants.env {
        wasi.env(key, value);
    }
    for dir in &grants.read_only_dirs {
        let guest = dir.to_string_lossy();
        wasi.preopened_dir(Path::new(dir), guest.as_ref(), FsPerms::ReadOnly).map_err(|e| {
            PluginError::Instantiate { origin: plugin.to_string(), message: format!("granting {}: {e:#}", dir.display()) }
        })?;
    }

    let state = StoreState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        cap: MemoryCap { max_bytes: limits.memory_bytes(), hit: false },
        stderr,
        http: WasiHttpCtx::new(),
        hooks: super::provider::AllowListHooks::new(grants.http_base_urls.clone()),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.cap);
    store.epoch_deadline_trap();
    Ok(store)
}

/// Arms the store's deadline for one call. A call starts somewhere within a tick, so one tick
/// more than the timeout spans makes sure it gets all of its time (and at most a tick more).
pub fn arm_deadline(store: &mut Store<StoreState>, limits: &PluginLimits) {
    let ticks = limits.timeout.as_micros().div_ceil(EPOCH_TICK.as_micros()) + 1;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
}

/// Turns a failed call into the error an operator can act on.
pub fn classify(plugin: &str, limits: &PluginLimits, store: &Store<StoreState>, error: wasmtime::Error) -> PluginError {
    let state = store.data();
    if state.cap.hit {
        return PluginError::MemoryLimit { plugin: plugin.to_string(), limit_mib: limits.memory_mib };
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::Timeout { plugin: plugin.to_string(), limit: limits.timeout },
        Some(trap) => {
            let stderr = state.stderr_tail();
            let message = if stderr.is_empty() { trap.to_string() } else { format!("{trap} (stderr: {stderr})") };
            PluginError::Trap { plugin: plugin.to_string(), message }
        }
        None => PluginError::Trap { plugin: plugin.to_string(), message: format!("{error:#}") },
    }
}
