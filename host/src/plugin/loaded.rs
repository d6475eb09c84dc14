//! One compiled, checked plugin version, and how a call into it is bounded.
//!
//! Every call is a future, driven from the caller's (blocking) thread and dropped at the
//! plugin's deadline by a host timer: whatever the guest waits on inside a host function — a
//! clock it sleeps on, a file — the caller gets its answer in time. A guest that computes
//! instead is stopped by epoch interruption at the same deadline. Either way the instance is
//! dropped with its store, the failure is counted and logged, and the plugin is quarantined
//! (1 s, doubling to 60 s while it keeps failing): callers skip it meanwhile.
//!
//! Instances are pooled: a call takes a warm instance, or instantiates one, and gives it back
//! only if the call returned normally.

use super::bindings::{parser, policy, provider};
use super::engine::{Wasm, EPOCH_TICK};
use super::sandbox::{arm_deadline, classify, new_store, StoreState};
use super::{text, PluginError, PluginInfo, PluginKind, PluginSettings, PluginSource, PluginStats};
use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// Warm instances kept per plugin version: enough for the scheduler and a few API calls at once.
const MAX_WARM: usize = 4;

/// After a failure a plugin is skipped (a policy's callers use the native fallback) for this
/// long, doubling up to [`MAX_QUARANTINE`] while it keeps failing, so a plugin that times out
/// does not cost a full deadline on every scheduling pass.
const FIRST_QUARANTINE: Duration = Duration::from_secs(1);
const MAX_QUARANTINE: Duration = Duration::from_secs(60);

/// Longest a component may take to compile before its load is abandoned. Compiling takes tens
/// of milliseconds for the plugins people write; this only stops one made to take forever.
pub const COMPILE_LIMIT: Duration = Duration::from_secs(60);

pub(super) enum Prepared {
    Policy(policy::PolicyPluginPre<StoreState>),
    Parser(parser::ParserPluginPre<StoreState>),
    Provider(provider::ProviderPluginPre<StoreState>),
}

/// An instance of one of the three worlds.
pub(super) enum Instance {
    Policy(policy::PolicyPlugin),
    Parser(parser::ParserPlugin),
    Provider(provider::ProviderPlugin),
}

/// The linkers of the three worlds, built once per runtime. WASI is linked asynchronously, so a
/// guest waiting in it is a future the deadline can drop; `wasi:http` only for providers.
pub struct Linkers {
    plain: Linker<StoreState>,
    http: Linker<StoreState>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> Result<Self, PluginError> {
        let err = |e: wasmtime::Error| PluginError::Engine(format!("linking WASI: {e:#}"));
        let mut plain = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut plain).map_err(err)?;
        let mut http = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut http).map_err(err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut http).map_err(err)?;
        Ok(Linkers { plain, http })
    }
}

#[derive(Default)]
struct Quarantine {
    until: Option<Instant>,
    next: Duration,
    last: Option<String>,
}

pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub source: PluginSource,
    /// SHA-256 of the component: which build is active.
    pub hash: String,
    /// When it was loaded, in milliseconds since the Unix epoch.
    pub loaded_ms: u64,
    pub(super) settings: PluginSettings,
    engine: Engine,
    pub(super) prepared: Prepared,
    pool: Mutex<Vec<(Store<StoreState>, Instance)>>,
    stats: Arc<PluginStats>,
    quarantine: Mutex<Quarantine>,
}

/// The interfaces a component exports from `gantry:plugin`, and the package version they carry.
fn exported_plugin_interfaces(engine: &Engine, component: &Component, origin: &str) -> Result<(Vec<String>, String), PluginError> {
    let mut interfaces = Vec::new();
    let mut version = None;
    for (name, _) in component.component_type().exports(engine) {
        let Some(rest) = name.strip_prefix("gantry:plugin/") else { continue };
        let (interface, v) = rest.split_once('@').unwrap_or((rest, ""));
        interfaces.push(interface.to_string());
        version.get_or_insert_with(|| v.to_string());
    }
    match version {
        Some(v) => Ok((interfaces, v)),
        None => Err(PluginError::NotAPlugin { origin: origin.to_string() }),
    }
}

/// Semver compatibility as Cargo reads it: `0.x` versions must agree on `x`, later ones on the
/// major version, with the component no newer than the host.
fn compatible(found: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(found), parse(host)) {
        (Some((0, fm)), Some((0, hm))) => fm == hm,
        (Some((fmaj, fmin)), Some((hmaj, hmin))) => fmaj == hmaj && fmin <= hmin,
        _ => false,
    }
}

/// Drives `call` from a blocking thread until it finishes or `limit` passes (a tick beyond the
/// epoch deadline, so a guest that computes is reported by its epoch trap). `None`: abandoned.
///
/// Most calls never wait in a host function: they finish when first polled, and need no timer.
/// Only one that is still pending then (it sleeps, or waits on a file) is driven on with a timer
/// for the rest of its time; registering a timer wakes the runtime's driver thread, which on
/// every call would cost the daemon more CPU than the call itself.
fn within<T>(limit: Duration, call: impl Future<Output = wasmtime::Result<T>>) -> Option<wasmtime::Result<T>> {
    let _ticking = super::engine::Ticking::start();
    let deadline = tokio::time::Instant::now() + limit + EPOCH_TICK;
    let mut call = std::pin::pin!(call);
    // Host functions the first poll reaches (a clock's subscription) need a runtime to register with.
    if let Some(done) = wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| wasmtime_wasi::runtime::poll_noop(call.as_mut())) {
        return Some(done);
    }
    wasmtime_wasi::runtime::in_tokio(async { tokio::time::timeout_at(deadline, call).await }).ok()
}

/// What the caller knows when loading a component.
pub struct LoadContext<'a> {
    pub engine: &'a super::engine::PluginEngine,
    pub linkers: &'a Linkers,
    /// The limits the identity call (`info()`) runs under, before the name that selects the
    /// plugin's own settings is known.
    pub defaults: &'a PluginSettings,
    pub settings_for: &'a dyn Fn(&str) -> PluginSettings,
    pub stats_for: &'a dyn Fn(&str) -> Arc<PluginStats>,
}

/// The shortest deadline of the calls a load makes (a first instance, `info()`, the smoke call).
/// A load happens once per file, and on a machine busy with jobs a component's first instance
/// can take longer than a scheduling call may: that must not fail a good plugin's load, nor a
/// bundled one's, without which the daemon does not start. A hanging `info()` is still cut.
const LOAD_CALL_LIMIT: Duration = Duration::from_secs(2);

/// `settings` with the load's deadline where theirs is shorter.
fn loading(settings: &PluginSettings) -> PluginSettings {
    let mut settings = settings.clone();
    settings.limits.timeout = settings.limits.timeout.max(LOAD_CALL_LIMIT);
    settings
}

impl LoadedPlugin {
    /// Compiles, links and checks a component: its `gantry:plugin` version, its `info()` (under
    /// the default limits, in an instance that is then dropped), a plain name and version that
    /// agree with what it exports, and a smoke call with empty input in its first instance
    /// under its own limits. Blocking, and bounded: compiling by [`COMPILE_LIMIT`], every call by
    /// the plugin's deadline or [`LOAD_CALL_LIMIT`], whichever is longer.
    pub fn load(context: &LoadContext<'_>, source: PluginSource, wasm: &Wasm<'_>) -> Result<LoadedPlugin, PluginError> {
        let origin = super::text::shown(&source.to_string(), 512);
        let component = context.engine.compile_within(&origin, wasm, COMPILE_LIMIT)?;
        let engine = context.engine.engine().clone();
        let (interfaces, version) = exported_plugin_interfaces(&engine, &component, &origin)?;
        let needed = super::wit_version();
        if !compatible(&version, needed) {
            return Err(PluginError::IncompatibleVersion { origin, found: text::shown(&version, 64), needed: needed.to_string() });
        }

        let instantiate_err = |e: wasmtime::Error| PluginError::Instantiate { origin: origin.clone(), message: text::shown(&format!("{e:#}"), text::MESSAGE_BYTES) };
        let has = |i: &str| interfaces.iter().any(|x| x == i);
        let prepared = if has("policy") {
            Prepared::Policy(policy::PolicyPluginPre::new(context.linkers.plain.instantiate_pre(&component).map_err(instantiate_err)?).map_err(instantiate_err)?)
        } else if has("parser") {
            Prepared::Parser(parser::ParserPluginPre::new(context.linkers.plain.instantiate_pre(&component).map_err(instantiate_err)?).map_err(instantiate_err)?)
        } else if has("provider") {
            Prepared::Provider(provider::ProviderPluginPre::new(context.linkers.http.instantiate_pre(&component).map_err(instantiate_err)?).map_err(instantiate_err)?)
        } else {
            return Err(PluginError::NotAPlugin { origin });
        };
        let kind = prepared.kind();

        let mut plugin = LoadedPlugin {
            info: PluginInfo { name: origin.clone(), version: String::new(), kind, wit_version: version },
            source,
            hash: wasm.hash.to_string(),
            loaded_ms: crate::model::now_ms(),
            settings: loading(context.defaults),
            engine,
            prepared,
            pool: Mutex::new(Vec::new()),
            stats: Arc::new(PluginStats::default()),
            quarantine: Mutex::new(Quarantine::default()),
        };
        let info = plugin.identity()?;
        let refused = |message: String| PluginError::BadIdentity { origin: origin.clone(), message };
        text::check_name(&info.name).map_err(refused)?;
        text::check_version(&info.version).map_err(refused)?;
        if info.kind != kind {
            return Err(PluginError::FailedCheck { plugin: info.name, message: format!("info() says {} but the component exports the {kind} interface", info.kind) });
        }
        let own = (context.settings_for)(&info.name);
        plugin.settings = loading(&own);
        plugin.stats = (context.stats_for)(&info.name);
        plugin.info = PluginInfo { wit_version: text::shown(&info.wit_version, 64), ..info };
        plugin.smoke_check()?;
        plugin.settings = own;
        Ok(plugin)
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    fn store(&self, settings: &PluginSettings) -> Result<Store<StoreState>, PluginError> {
        let mut store = new_store(&self.engine, &self.info.name, &settings.limits, &settings.grants)?;
        arm_deadline(&mut store, &settings.limits);
        Ok(store)
    }

    pub(super) async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Instance> {
        Ok(match &self.prepared {
            Prepared::Policy(pre) => Instance::Policy(pre.instantiate_async(store).await?),
            Prepared::Parser(pre) => Instance::Parser(pre.instantiate_async(store).await?),
            Prepared::Provider(pre) => Instance::Provider(pre.instantiate_async(store).await?),
        })
    }

    /// `info()` in an instance of its own under the default limits, dropped afterwards.
    fn identity(&self) -> Result<PluginInfo, PluginError> {
        let mut store = self.store(&self.settings)?;
        let limit = self.settings.limits.timeout;
        let answer = within(limit, async {
            let instance = self.instantiate(&mut store).await?;
            instance.info(&mut store).await
        });
        match answer {
            Some(Ok(info)) => Ok(info),
            Some(Err(e)) => Err(classify(&self.info.name, &self.settings.limits, &store, e)),
            None => Err(PluginError::Timeout { plugin: self.info.name.clone(), limit }),
        }
    }

    /// One bounded call on a pooled instance: `call` gets the store and the instance. Refused
    /// without calling while the plugin is quarantined.
    pub(super) fn run<R>(&self, call: impl AsyncFnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<R>) -> Result<R, PluginError> {
        self.check_quarantine()?;
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let limits = self.settings.limits.clone();
        let warm = self.pool.lock().pop();
        let (mut store, instance) = match warm {
            Some(warm) => warm,
            None => {
                let mut store = self.store(&self.settings)?;
                match within(limits.timeout, self.instantiate(&mut store)) {
                    Some(Ok(instance)) => (store, instance),
                    Some(Err(e)) => return Err(self.failed(classify(&self.info.name, &limits, &store, e))),
                    None => return Err(self.failed(PluginError::Timeout { plugin: self.info.name.clone(), limit: limits.timeout })),
                }
            }
        };
        store.data().stderr.clear();
        arm_deadline(&mut store, &limits);
        let answer = within(limits.timeout, call(&mut store, &instance));
        self.stats.record_duration(started.elapsed());
        match answer {
            Some(Ok(r)) => {
                let mut pool = self.pool.lock();
                if pool.len() < MAX_WARM {
                    pool.push((store, instance));
                }
                Ok(r)
            }
            Some(Err(e)) => Err(self.failed(classify(&self.info.name, &limits, &store, e))),
            None => Err(self.failed(PluginError::Timeout { plugin: self.info.name.clone(), limit: limits.timeout })),
        }
    }

    /// A store for one provider call, under `settings`.
    pub(super) fn call_store(&self, settings: &super::PluginSettings) -> Result<Store<StoreState>, PluginError> {
        self.store(settings)
    }

    /// Counts, logs and quarantines a failure; every failure of a call passes here.
    pub(super) fn failed(&self, error: PluginError) -> PluginError {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.info.name, version = %self.info.version, error = %error, "plugin call failed; quarantined");
        let mut q = self.quarantine.lock();
        let next = if q.next.is_zero() { FIRST_QUARANTINE } else { q.next };
        q.until = Some(Instant::now() + next);
        q.next = (next * 2).min(MAX_QUARANTINE);
        q.last = Some(error.to_string());
        error
    }

    /// A call returned what it should: the quarantine starts over at its shortest.
    pub(super) fn succeeded(&self) {
        let mut q = self.quarantine.lock();
        q.until = None;
        q.next = Duration::ZERO;
    }

    fn check_quarantine(&self) -> Result<(), PluginError> {
        let q = self.quarantine.lock();
        match q.until.map(|until| until.saturating_duration_since(Instant::now())) {
            Some(left) if !left.is_zero() => Err(PluginError::Quarantined {
                plugin: self.info.name.clone(),
                seconds: left.as_secs().max(1),
                last: q.last.clone().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether callers should skip this plugin for now because it failed recently.
    pub fn quarantined(&self) -> bool {
        self.check_quarantine().is_err()
    }

    /// The last failure of a call, if any.
    pub fn last_failure(&self) -> Option<String> {
        self.quarantine.lock().last.clone()
    }

    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    pub(super) fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        PluginError::WrongKind { plugin: self.info.name.clone(), wanted: wanted.as_str(), actual: self.info.kind.as_str() }
    }
}

impl Prepared {
    fn kind(&self) -> PluginKind {
        match self {
            Prepared::Policy(_) => PluginKind::Policy,
            Prepared::Parser(_) => PluginKind::Parser,
            Prepared::Provider(_) => PluginKind::Provider,
        }
    }
}

impl Instance {
    async fn info(&self, store: &mut Store<StoreState>) -> wasmtime::Result<PluginInfo> {
        Ok(match self {
            Instance::Policy(b) => b.gantry_plugin_meta().call_info(store).await?.into(),
            Instance::Parser(b) => b.gantry_plugin_meta().call_info(store).await?.into(),
            Instance::Provider(b) => b.gantry_plugin_meta().call_info(store).await?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn version_compatibility_follows_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("9.0.0", "0.1.0"));
        assert!(compatible("1.2.0", "1.3.0"));
        assert!(!compatible("1.4.0", "1.3.0"));
        assert!(!compatible("", "0.1.0"));
    }
}
