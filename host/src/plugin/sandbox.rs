//! The sandbox a plugin instance runs in: a store with no files, no sockets and no environment
//! unless the plugin's configuration grants them; one memory budget for everything the instance
//! allocates; a stderr that keeps the end of what one call wrote; a deadline in epoch ticks.

use super::engine::EPOCH_TICK;
use super::{PluginError, PluginGrants, PluginLimits};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How much of what a plugin writes to stderr during one call (its panic message, usually) is
/// kept for the error report.
const STDERR_TAIL: usize = 4096;

/// A table element's share of the budget: a function reference is a pointer and a type index.
const TABLE_ELEMENT_BYTES: usize = 16;

/// Core instances, tables and memories one plugin instance may create. A component of a few core
/// modules (the program, WASI's adapter shims) needs a handful.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

/// One budget for all the memories and tables of a plugin instance, so four memories of 60 MiB
/// under a 64 MiB cap are refused, not four caps. It remembers that it refused, so the trap that
/// follows is reported as the memory limit it is.
pub struct MemoryBudget {
    max_bytes: usize,
    used_bytes: usize,
    /// The cap in force, quoted by the error.
    pub limit_mib: u64,
    pub hit: bool,
}

impl MemoryBudget {
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let used = self.used_bytes.saturating_sub(current).saturating_add(desired);
        if used > self.max_bytes {
            self.hit = true;
            return false;
        }
        self.used_bytes = used;
        true
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(current.saturating_mul(TABLE_ELEMENT_BYTES), desired.saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// A plugin's stderr (and stdout): the last [`STDERR_TAIL`] bytes written since the current call
/// began.
/// Writing never fails and never waits, however much a plugin writes, so a chatty plugin can't
/// trap itself on a full pipe.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock();
        let keep = &bytes[bytes.len().saturating_sub(STDERR_TAIL)..];
        let overflow = (tail.len() + keep.len()).saturating_sub(STDERR_TAIL).min(tail.len());
        tail.drain(..overflow);
        tail.extend(keep);
    }

    /// Forgets the previous call's output.
    pub fn clear(&self) {
        self.0.lock().clear();
    }

    /// The last lines, joined, made safe to log.
    pub fn text(&self) -> String {
        let bytes: Vec<u8> = self.0.lock().iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.trim().lines().collect();
        super::text::shown(&lines[lines.len().saturating_sub(5)..].join(" | "), STDERR_TAIL)
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub budget: MemoryBudget,
    pub stderr: StderrTail,
    http: WasiHttpCtx,
    pub hooks: super::provider::AllowListHooks,
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

/// A store for one plugin instance, configured from its limits and grants.
pub fn new_store(engine: &Engine, plugin: &str, limits: &PluginLimits, grants: &PluginGrants) -> Result<Store<StoreState>, PluginError> {
    let stderr = StderrTail::default();
    let mut wasi = WasiCtxBuilder::new();
    // In-memory streams only: WASI's defaults for these start a background task in whichever
    // runtime the instance was made on, which a pooled instance called from another thread
    // would leave undriven. What a plugin prints to stdout is kept with its stderr.
    wasi.stdin(MemoryInputPipe::new(bytes::Bytes::new()))
        .stdout(stderr.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
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
        budget: MemoryBudget { max_bytes: limits.memory_bytes(), used_bytes: 0, limit_mib: limits.memory_mib, hit: false },
        stderr,
        http: WasiHttpCtx::new(),
        hooks: super::provider::AllowListHooks::new(plugin, grants.http_base_urls.clone(), grants.https_trust.clone()),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.budget);
    store.epoch_deadline_trap();
    Ok(store)
}

/// Arms the store's deadline for one call. A call starts somewhere within a tick, so one tick
/// more than the timeout spans makes sure it gets all of it (and at most a tick more).
pub fn arm_deadline(store: &mut Store<StoreState>, limits: &PluginLimits) {
    let ticks = limits.timeout.as_micros().div_ceil(EPOCH_TICK.as_micros()) + 1;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
}

/// Turns a failed call into the error an operator can act on.
pub fn classify(plugin: &str, limits: &PluginLimits, store: &Store<StoreState>, error: wasmtime::Error) -> PluginError {
    let state = store.data();
    if state.budget.hit {
        return PluginError::MemoryLimit { plugin: plugin.to_string(), limit_mib: state.budget.limit_mib };
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::Timeout { plugin: plugin.to_string(), limit: limits.timeout },
        Some(trap) => {
            let stderr = state.stderr.text();
            let message = if stderr.is_empty() { trap.to_string() } else { format!("{trap} (stderr: {stderr})") };
            PluginError::Trap { plugin: plugin.to_string(), message }
        }
        None => PluginError::Trap { plugin: plugin.to_string(), message: super::text::shown(&format!("{error:#}"), super::text::MESSAGE_BYTES) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_every_memory_and_table_together() {
        let mut budget = MemoryBudget { max_bytes: 64 << 20, used_bytes: 0, limit_mib: 64, hit: false };
        assert!(budget.grow(0, 40 << 20), "a first memory of 40 MiB");
        assert!(!budget.grow(0, 40 << 20), "a second one would make 80");
        assert!(budget.hit);
        assert!(budget.grow(40 << 20, 60 << 20), "the first grows to 60");
        assert!(!budget.table_growing(0, 1 << 20, None).expect("no error"), "16 MiB of table entries do not fit beside it");
    }

    #[test]
    fn stderr_keeps_the_end_of_what_was_written() {
        let tail = StderrTail::default();
        for i in 0..1000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        assert_eq!(tail.text(), "line 995 | line 996 | line 997 | line 998 | line 999");
        tail.push(&vec![b'x'; 10 * STDERR_TAIL]);
        assert_eq!(tail.0.lock().len(), STDERR_TAIL);
        tail.clear();
        tail.push(b"\x1b[2Jpanicked\n");
        assert_eq!(tail.text(), "\\u{1b}[2Jpanicked");
    }
}
