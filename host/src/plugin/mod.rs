//! The plugin runtime: loads the WebAssembly components that hold gantry's strategies (GPU
//! selection policies, command-file parsers, provider adapters), runs every call in a bounded
//! sandbox, and swaps in a new version when its file changes.
//!
//! - `bindings`: host bindings generated from `wit/gantry.wit`;
//! - `engine`: the one wasmtime engine, its epoch ticker, the precompiled-artifact cache, a
//!   bounded compile;
//! - `sandbox`: the store of one instance: no ambient authority, one memory budget, a stderr
//!   that keeps the end of one call's output, a deadline;
//! - `loaded`: one checked plugin version, and how a call into it is bounded and quarantined;
//! - `calls`: the calls, and the bounds on what each may return;
//! - `text`: plugin names, versions and messages made safe to show;
//! - `provider`: the `wasi:http` allow-list of provider plugins;
//! - `watch`: hot reload from the plugin directory;
//! - `convert`: WIT types to gantry's types.
//!
//! Calls of policies and parsers block the calling thread until their answer or their deadline;
//! async code reaches them through `spawn_blocking`. Provider calls are async.

pub mod bindings;
mod bundled;
mod calls;
mod convert;
mod engine;
mod error;
mod loaded;
mod provider;
mod sandbox;
pub mod text;
mod watch;

pub use bindings::host_wit_version as wit_version;
pub use convert::{burst_from_file, burst_to_file};
pub use calls::{describe, unlined, CostEstimate, Diagnostic, GpuSpec, JobConfig, JobFile, JobResult, JobSpec, JobState, Offer, ParseMode, ProviderCall, ProviderError, ProviderReply, LOG_BYTES as PROVIDER_LOG_BYTES, RENDER_BYTES};
pub use engine::{PluginEngine, Wasm};
pub use error::PluginError;
pub use loaded::LoadedPlugin;
pub use provider::{AllowListHooks, HttpsTrust};

use arc_swap::ArcSwap;
use loaded::{LoadContext, Linkers};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Policy,
    Parser,
    Provider,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Policy => "policy",
            PluginKind::Parser => "parser",
            PluginKind::Provider => "provider",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about itself through `info()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub wit_version: String,
}

/// Where a loaded component came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Compiled into the `gantry` binary.
    Bundled(&'static str),
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Bundled(name) => write!(f, "bundled:{name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Bounds on every call of one plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginLimits {
    pub timeout: Duration,
    /// All the memories and tables of one instance together.
    pub memory_mib: u64,
    /// Parsers: most jobs one command file may hold.
    pub max_jobs: usize,
}

impl PluginLimits {
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits { timeout: Duration::from_millis(100), memory_mib: 64, max_jobs: crate::model::limits::JOBS_PER_BATCH }
    }
}

/// Authority a plugin has only when its configuration grants it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginGrants {
    pub env: Vec<(String, String)>,
    pub read_only_dirs: Vec<PathBuf>,
    /// Provider plugins: the only URLs their `wasi:http` requests may go to.
    pub http_base_urls: Vec<String>,
    /// Provider plugins: whom their `https` requests trust instead of the public roots (a
    /// cluster's own CA).
    pub https_trust: Option<HttpsTrust>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginSettings {
    pub limits: PluginLimits,
    pub grants: PluginGrants,
}

/// Counters per plugin name; they survive reloads so a flapping plugin's history stays visible.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    pub total_micros: AtomicU64,
}

impl PluginStats {
    fn record_duration(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Components here are loaded at start and reloaded when they change. One that reports the
    /// name of a bundled plugin replaces it.
    pub plugin_dir: Option<PathBuf>,
    /// Precompiled artifacts; without it every start compiles every component.
    pub cache_dir: Option<PathBuf>,
    /// The program that compiles components into the cache in a process of its own (the
    /// daemon's `gantryd`, see [`PluginEngine::compiling_in`]); none: in this process.
    pub compiler: Option<PathBuf>,
    pub defaults: PluginSettings,
    /// Per plugin name: limits and grants that differ from the defaults.
    pub per_plugin: HashMap<String, PluginSettings>,
}

impl RuntimeOptions {
    /// For checking a file the way the daemon would load it: nothing is loaded from a plugin
    /// directory and nothing is cached.
    pub fn checking(defaults: PluginSettings) -> Self {
        RuntimeOptions { defaults, ..RuntimeOptions::default() }
    }
}

/// One row of `gantry plugin list` and of the plugins API.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PluginStatus {
    pub name: String,
    pub version: Option<String>,
    pub kind: Option<PluginKind>,
    pub wit_version: Option<String>,
    pub source: String,
    /// `active`; `quarantined` while callers skip it after a failure; `failed` for a file that
    /// never loaded.
    pub state: &'static str,
    /// The last load error of this plugin's file, also when an older version stays active.
    pub last_error: Option<String>,
    /// The last failure of a call into it.
    pub last_failure: Option<String>,
    /// SHA-256 of the active component, and when it was loaded (ms since the Unix epoch).
    pub sha256: Option<String>,
    pub loaded_ms: Option<u64>,
    pub calls: u64,
    pub failures: u64,
    /// Time spent in calls, all of them together.
    pub call_seconds: f64,
    /// What the active plugin may do and use; `None` for a file that provides no plugin.
    pub may: Option<Capabilities>,
}

/// A plugin's bounds and grants as an operator reads them: what `[plugins]` and its
/// `[plugins.settings.NAME]` allow it. Environment values are not shown (they may be keys).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Capabilities {
    pub timeout_ms: u64,
    pub memory_mib: u64,
    /// Parsers: most jobs one command file may hold.
    pub max_jobs: Option<usize>,
    /// The environment variables it sees, by name.
    pub env: Vec<String>,
    pub read_only_dirs: Vec<String>,
    /// Providers: the only URLs its HTTP requests may go to.
    pub http_base_urls: Vec<String>,
}

impl Capabilities {
    fn of(settings: &PluginSettings, kind: PluginKind) -> Self {
        let grants = &settings.grants;
        Capabilities {
            timeout_ms: u64::try_from(settings.limits.timeout.as_millis()).unwrap_or(u64::MAX),
            memory_mib: settings.limits.memory_mib,
            max_jobs: (kind == PluginKind::Parser).then_some(settings.limits.max_jobs),
            env: grants.env.iter().map(|(k, _)| k.clone()).collect(),
            read_only_dirs: grants.read_only_dirs.iter().map(|d| d.display().to_string()).collect(),
            http_base_urls: if kind == PluginKind::Provider { grants.http_base_urls.clone() } else { Vec::new() },
        }
    }
}

impl PluginStatus {
    /// A file that provides no active plugin: it failed to load, or is loading now.
    fn of_file(path: &Path, state: &'static str, note: String) -> PluginStatus {
        PluginStatus {
            name: text::shown(&path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), 64),
            version: None,
            kind: None,
            wit_version: None,
            source: text::shown(&path.display().to_string(), 512),
            state,
            last_error: Some(note),
            last_failure: None,
            sha256: None,
            loaded_ms: None,
            calls: 0,
            failures: 0,
            call_seconds: 0.0,
            may: None,
        }
    }
}

#[derive(Clone, Debug)]
enum FileState {
    Loaded { hash: String },
    Failed { hash: String, error: String },
}

#[derive(Clone, Default)]
struct Registry {
    active: HashMap<String, Arc<LoadedPlugin>>,
    files: BTreeMap<PathBuf, FileState>,
}

pub struct PluginRuntime {
    engine: PluginEngine,
    linkers: Linkers,
    options: RuntimeOptions,
    bundled: HashMap<String, Arc<LoadedPlugin>>,
    registry: ArcSwap<Registry>,
    stats: Mutex<HashMap<String, Arc<PluginStats>>>,
    /// Held only to read and swap the registry, never while a component loads: how many loads of
    /// each path have begun, so a load finishing after a newer one began is dropped.
    reloads: Mutex<HashMap<PathBuf, u64>>,
    /// Files being loaded now, since when, and by how many loads (the watcher's and a rescan's
    /// may overlap): shown by `list` while they are.
    loading: Mutex<HashMap<PathBuf, (Instant, u32)>>,
}

impl PluginRuntime {
    /// Loads the bundled plugins and every component in the plugin directory. A bundled plugin
    /// that fails is fatal (the binary is broken); a file that fails is recorded and skipped.
    /// Blocking, and bounded: each load by the compile limit and the plugin's deadline.
    pub fn new(options: RuntimeOptions) -> Result<Arc<Self>, PluginError> {
        let engine = PluginEngine::new(options.cache_dir.clone())?.compiling_in(options.compiler.clone());
        let linkers = Linkers::new(engine.engine())?;
        let mut runtime = PluginRuntime {
            engine,
            linkers,
            options,
            bundled: HashMap::new(),
            registry: ArcSwap::from_pointee(Registry::default()),
            stats: Mutex::new(HashMap::new()),
            reloads: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        };
        for bundled in bundled::BUNDLED {
            let plugin = Arc::new(runtime.load(PluginSource::Bundled(bundled.name), &Wasm::known(bundled.bytes, bundled.sha256))?);
            runtime.bundled.insert(plugin.info.name.clone(), plugin);
        }
        let registry = Registry { active: runtime.bundled.clone(), files: BTreeMap::new() };
        runtime.registry.store(Arc::new(registry));

        let runtime = Arc::new(runtime);
        runtime.rescan();
        Ok(runtime)
    }

    /// Reconciles every component of the plugin directory, and every one that was there, with
    /// the files as they are now (what a missed watcher event would have done), then waits for
    /// the loads the watcher has in flight: a listing after it shows every file's outcome, not
    /// "loading" for one whose newer load superseded this one's. Blocking, and bounded by the
    /// compile limit.
    pub fn rescan(&self) {
        let Some(dir) = self.options.plugin_dir.clone() else { return };
        let mut paths: std::collections::BTreeSet<PathBuf> = wasm_files(&dir).into_iter().collect();
        paths.extend(self.registry.load().files.keys().cloned());
        for path in paths {
            self.reload_path(&path);
        }
        let until = Instant::now() + loaded::COMPILE_LIMIT;
        while !self.loading.lock().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn load(&self, source: PluginSource, wasm: &Wasm<'_>) -> Result<LoadedPlugin, PluginError> {
        let context = LoadContext {
            engine: &self.engine,
            linkers: &self.linkers,
            defaults: &self.options.defaults,
            settings_for: &|name| self.settings_for(name),
            stats_for: &|name| self.stats.lock().entry(name.to_string()).or_default().clone(),
        };
        LoadedPlugin::load(&context, source, wasm)
    }

    fn settings_for(&self, name: &str) -> PluginSettings {
        self.options.per_plugin.get(name).cloned().unwrap_or_else(|| self.options.defaults.clone())
    }

    pub fn plugin_dir(&self) -> Option<&Path> {
        self.options.plugin_dir.as_deref()
    }

    /// The active version of a plugin. Callers hold the `Arc` for the length of a call, so a
    /// reload never pulls a plugin out from under a call in flight.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.registry.load().active.get(name).cloned()
    }

    /// Loads a component without registering it: `gantry plugin check`.
    pub fn check_file(&self, path: &Path) -> Result<PluginInfo, PluginError> {
        self.load_file(path).map(|p| p.info.clone())
    }

    fn load_file(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.to_path_buf(), source })?;
        self.load(PluginSource::File(path.to_path_buf()), &Wasm::new(&bytes))
    }

    /// Loads a component from anywhere and makes it active under its name, for this process
    /// only (`gantry replay --policy FILE`): nothing watches the file and no daemon sees it.
    pub fn add_file(&self, path: &Path) -> Result<PluginInfo, PluginError> {
        let plugin = Arc::new(self.load_file(path)?);
        let info = plugin.info.clone();
        let mut next = (*self.registry.load_full()).clone();
        next.active.insert(info.name.clone(), plugin);
        self.registry.store(Arc::new(next));
        Ok(info)
    }

    /// Marks a new load of `path` as begun; the mark it gets is current until another begins.
    fn begin(&self, path: &Path) -> u64 {
        let mut reloads = self.reloads.lock();
        let generation = reloads.entry(path.to_path_buf()).or_insert(0);
        *generation += 1;
        *generation
    }

    /// Changes the registry if no load of `path` began after `generation`.
    fn commit(&self, path: &Path, generation: u64, change: impl FnOnce(&mut Registry)) {
        let reloads = self.reloads.lock();
        if reloads.get(path) != Some(&generation) {
            tracing::info!(file = %path.display(), "a newer load of this file began; this one is dropped");
            return;
        }
        let mut next = (*self.registry.load_full()).clone();
        change(&mut next);
        self.registry.store(Arc::new(next));
    }

    /// Brings the registry in line with the file at `path`: loads it if it is new or changed,
    /// forgets it if it is gone. A failed load leaves the version already active in place and
    /// records the error. The component loads with no lock held, so a slow or hanging one delays
    /// no other reload and no caller. Blocking.
    pub fn reload_path(&self, path: &Path) {
        let generation = self.begin(path);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.commit(path, generation, |next| self.forget(next, path));
                return;
            }
            Err(source) => {
                let error = PluginError::Read { path: path.to_path_buf(), source };
                self.commit(path, generation, |next| record_failure(next, path, String::new(), &error));
                return;
            }
        };
        let wasm = Wasm::new(&bytes);
        let hash = wasm.hash.to_string();
        let unchanged = match self.registry.load().files.get(path) {
            Some(FileState::Loaded { hash: h } | FileState::Failed { hash: h, .. }) => *h == hash,
            None => false,
        };
        if unchanged {
            return;
        }
        self.loading.lock().entry(path.to_path_buf()).or_insert((Instant::now(), 0)).1 += 1;
        let loaded = self.load(PluginSource::File(path.to_path_buf()), &wasm);
        {
            let mut loading = self.loading.lock();
            if let Some((_, count)) = loading.get_mut(path) {
                *count -= 1;
                if *count == 0 {
                    loading.remove(path);
                }
            }
        }
        self.commit(path, generation, |next| match loaded {
            Ok(plugin) => match next.active.get(&plugin.info.name).filter(|held| held.info.kind != plugin.info.kind) {
                Some(held) => {
                    let error = PluginError::NameTaken { origin: path.display().to_string(), name: plugin.info.name.clone(), holder: held.info.kind.as_str(), kind: plugin.info.kind.as_str() };
                    record_failure(next, path, hash, &error);
                }
                None => {
                    let name = plugin.info.name.clone();
                    tracing::info!(plugin = %name, version = %plugin.info.version, file = %path.display(), "plugin loaded");
                    next.files.insert(path.to_path_buf(), FileState::Loaded { hash });
                    next.active.insert(name, Arc::new(plugin));
                }
            },
            Err(error) => record_failure(next, path, hash, &error),
        });
    }

    /// A file is gone: whatever state it was last in (it may have failed to load a newer
    /// version), the version it provided goes with it, and a bundled plugin of that name comes
    /// back.
    fn forget(&self, next: &mut Registry, path: &Path) {
        next.files.remove(path);
        let source = PluginSource::File(path.to_path_buf());
        let provided: Vec<String> = next.active.iter().filter(|(_, p)| p.source == source).map(|(n, _)| n.clone()).collect();
        for name in provided {
            match self.bundled.get(&name) {
                Some(bundled) => next.active.insert(name.clone(), bundled.clone()),
                None => next.active.remove(&name),
            };
            tracing::info!(plugin = %name, file = %path.display(), "plugin file removed");
        }
    }

    /// The files being loaded now.
    pub fn loading(&self) -> Vec<PathBuf> {
        self.loading.lock().keys().cloned().collect()
    }

    /// Every active plugin, every file that failed to load, and every file being loaded.
    pub fn list(&self) -> Vec<PluginStatus> {
        let registry = self.registry.load();
        let mut rows: Vec<PluginStatus> = registry
            .active
            .values()
            .map(|p| {
                let last_error = match &p.source {
                    PluginSource::File(path) => match registry.files.get(path) {
                        Some(FileState::Failed { error, .. }) => Some(error.clone()),
                        _ => None,
                    },
                    PluginSource::Bundled(_) => None,
                };
                PluginStatus {
                    name: p.info.name.clone(),
                    version: Some(p.info.version.clone()),
                    kind: Some(p.info.kind),
                    wit_version: Some(p.info.wit_version.clone()),
                    source: text::shown(&p.source.to_string(), 512),
                    state: if p.quarantined() { "quarantined" } else { "active" },
                    last_error,
                    last_failure: p.last_failure(),
                    sha256: Some(p.hash.clone()),
                    loaded_ms: Some(p.loaded_ms),
                    calls: p.stats().calls.load(Ordering::Relaxed),
                    failures: p.stats().failures.load(Ordering::Relaxed),
                    call_seconds: p.stats().total_micros.load(Ordering::Relaxed) as f64 / 1e6,
                    may: Some(Capabilities::of(&p.settings, p.info.kind)),
                }
            })
            .collect();
        for (path, state) in &registry.files {
            let FileState::Failed { error, .. } = state else { continue };
            let source = PluginSource::File(path.clone());
            if registry.active.values().any(|p| p.source == source) {
                continue;
            }
            rows.push(PluginStatus::of_file(path, "failed", error.clone()));
        }
        for (path, (since, _)) in self.loading.lock().iter() {
            rows.push(PluginStatus::of_file(path, "loading", format!("loading for {} ms", since.elapsed().as_millis())));
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.source.cmp(&b.source)));
        rows
    }
}

fn record_failure(next: &mut Registry, path: &Path, hash: String, error: &PluginError) {
    tracing::error!(file = %path.display(), error = %error, "plugin not loaded; any version already active stays");
    next.files.insert(path.to_path_buf(), FileState::Failed { hash, error: error.to_string() });
}

#[cfg(test)]
mod tests;

fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_wasm(p)).collect();
    files.sort();
    files
}

fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}
