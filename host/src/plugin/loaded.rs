//! One compiled, checked plugin version, and the bounded calls into it.
//!
//! Instances are pooled: a call takes a warm instance, or instantiates one from the `InstancePre`,
//! and gives it back only if the call returned normally. An instance that trapped, timed out or
//! hit its memory cap is dropped with its store, because it cannot be entered again.

use super::bindings::{parser, policy, provider};
use super::engine::content_hash;
use super::sandbox::{arm_deadline, classify, new_store, StoreState};
use super::{convert, PluginError, PluginInfo, PluginKind, PluginSettings, PluginSource, PluginStats};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// Warm instances kept per plugin version: enough for the scheduler and a few API calls at once.
const MAX_WARM: usize = 4;

/// After a failure a policy is skipped (callers use the native fallback) for this long, doubling
/// up to [`MAX_QUARANTINE`] while it keeps failing, so a plugin that times out does not cost a
/// full deadline on every scheduling pass.
const FIRST_QUARANTINE: Duration = Duration::from_secs(1);
const MAX_QUARANTINE: Duration = Duration::from_secs(60);

type Pool<B> = Mutex<Vec<(Store<StoreState>, B)>>;

enum Prepared {
    Policy { pre: policy::PolicyPluginPre<StoreState>, pool: Pool<policy::PolicyPlugin> },
    Parser { pre: parser::ParserPluginPre<StoreState>, pool: Pool<parser::ParserPlugin> },
    Provider { pre: provider::ProviderPluginPre<StoreState> },
}

/// The linkers of the three worlds, built once per runtime.
pub struct Linkers {
    sync: Linker<StoreState>,
    http: Linker<StoreState>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> Result<Self, PluginError> {
        let err = |e: wasmtime::Error| PluginError::Engine(format!("linking WASI: {e:#}"));
        let mut sync = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut sync).map_err(err)?;
        let mut http = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut http).map_err(err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut http).map_err(err)?;
        Ok(Linkers { sync, http })
    }
}

#[derive(Default)]
struct Quarantine {
    until: Option<Instant>,
    next: Duration,
}

pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub source: PluginSource,
    pub hash: String,
    pub loaded_at: std::time::SystemTime,
    settings: PluginSettings,
    engine: Engine,
    prepared: Prepared,
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

impl LoadedPlugin {
    /// Compiles, links and checks a component: its `gantry:plugin` version, its `info()`, and a
    /// smoke call with empty input. Blocking.
    pub fn load(
        engine: &super::engine::PluginEngine,
        linkers: &Linkers,
        source: PluginSource,
        bytes: &[u8],
        settings_for: impl Fn(&str) -> PluginSettings,
        stats_for: impl Fn(&str) -> Arc<PluginStats>,
    ) -> Result<LoadedPlugin, PluginError> {
        let origin = source.to_string();
        let component = engine.compile(&origin, bytes)?;
        let wasmtime_engine = engine.engine().clone();
        let (interfaces, version) = exported_plugin_interfaces(&wasmtime_engine, &component, &origin)?;
        let needed = super::bindings::host_wit_version();
        if !compatible(&version, needed) {
            return Err(PluginError::IncompatibleVersion { origin, found: version, needed: needed.to_string() });
        }

        let instantiate_err = |e: wasmtime::Error| PluginError::Instantiate { origin: origin.clone(), message: format!("{e:#}") };
        let has = |i: &str| interfaces.iter().any(|x| x == i);
        let prepared = if has("policy") {
            let pre = linkers.sync.instantiate_pre(&component).map_err(instantiate_err)?;
            Prepared::Policy { pre: policy::PolicyPluginPre::new(pre).map_err(instantiate_err)?, pool: Mutex::new(Vec::new()) }
        } else if has("parser") {
            let pre = linkers.sync.instantiate_pre(&component).map_err(instantiate_err)?;
            Prepared::Parser { pre: parser::ParserPluginPre::new(pre).map_err(instantiate_err)?, pool: Mutex::new(Vec::new()) }
        } else if has("provider") {
            let pre = linkers.http.instantiate_pre(&component).map_err(instantiate_err)?;
            Prepared::Provider { pre: provider::ProviderPluginPre::new(pre).map_err(instantiate_err)? }
        } else {
            return Err(PluginError::NotAPlugin { origin });
        };

        let mut plugin = LoadedPlugin {
            info: PluginInfo { name: origin.clone(), version: String::new(), kind: prepared.kind(), wit_version: version },
            source,
            hash: content_hash(bytes),
            loaded_at: std::time::SystemTime::now(),
            settings: PluginSettings::default(),
            engine: wasmtime_engine,
            prepared,
            stats: Arc::new(PluginStats::default()),
            quarantine: Mutex::new(Quarantine::default()),
        };
        let info = plugin.call_info()?;
        if info.kind != plugin.info.kind {
            return Err(PluginError::FailedCheck {
                plugin: info.name,
                message: format!("info() says {} but the component exports the {} interface", info.kind, plugin.info.kind),
            });
        }
        plugin.settings = settings_for(&info.name);
        plugin.stats = stats_for(&info.name);
        plugin.info = info;
        plugin.smoke_check()?;
        Ok(plugin)
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    fn call_info(&self) -> Result<PluginInfo, PluginError> {
        match &self.prepared {
            Prepared::Policy { pre, pool } => self.run(pool, |s| pre.instantiate(s), |s, b| b.gantry_plugin_meta().call_info(s)).map(Into::into),
            Prepared::Parser { pre, pool } => self.run(pool, |s| pre.instantiate(s), |s, b| b.gantry_plugin_meta().call_info(s)).map(Into::into),
            Prepared::Provider { pre } => {
                let mut store = self.store()?;
                let result = wasmtime_wasi::runtime::in_tokio(async {
                    let bindings = pre.instantiate_async(&mut store).await?;
                    bindings.gantry_plugin_meta().call_info(&mut store).await
                });
                result.map(Into::into).map_err(|e| classify(&self.info.name, &self.settings.limits, &store, e))
            }
        }
    }

    fn smoke_check(&self) -> Result<(), PluginError> {
        let failed = |message: String| PluginError::FailedCheck { plugin: self.info.name.clone(), message };
        match self.info.kind {
            PluginKind::Policy => {
                let rules = placement::Rules {
                    gpu_left: 0,
                    min_gpu: 1,
                    max_gpu: 1,
                    memory_margin_mib: 0,
                    allow_sharing: false,
                    memory_save_mode: false,
                    params: vec![],
                };
                let placed = self.place(&[], &[], &rules).map_err(|e| failed(e.to_string()))?;
                if !placed.is_empty() {
                    return Err(failed(format!("placed {} job(s) when none were pending", placed.len())));
                }
            }
            PluginKind::Parser => {
                let parsed = self.parse("command_gpu.txt", None, "").map_err(|e| failed(e.to_string()))?;
                match parsed {
                    Ok(file) if file.jobs.is_empty() => {}
                    Ok(file) => return Err(failed(format!("found {} job(s) in an empty file", file.jobs.len()))),
                    Err(d) => return Err(failed(format!("rejected an empty file: {d:?}"))),
                }
            }
            // A provider's calls reach the network; `info()` is its check.
            PluginKind::Provider => {}
        }
        Ok(())
    }

    fn store(&self) -> Result<Store<StoreState>, PluginError> {
        let mut store = new_store(&self.engine, &self.info.name, &self.settings.limits, &self.settings.grants)?;
        arm_deadline(&mut store, &self.settings.limits);
        Ok(store)
    }

    /// One bounded call on a pooled instance.
    fn run<B, R>(
        &self,
        pool: &Pool<B>,
        instantiate: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<B>,
        call: impl FnOnce(&mut Store<StoreState>, &B) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let warm = pool.lock().pop();
        let (mut store, bindings) = match warm {
            Some(warm) => warm,
            None => {
                let mut store = self.store()?;
                match instantiate(&mut store) {
                    Ok(b) => (store, b),
                    Err(e) => return Err(self.failed(classify(&self.info.name, &self.settings.limits, &store, e))),
                }
            }
        };
        arm_deadline(&mut store, &self.settings.limits);
        let result = call(&mut store, &bindings);
        self.stats.record_duration(started.elapsed());
        match result {
            Ok(r) => {
                let mut pool = pool.lock();
                if pool.len() < MAX_WARM {
                    pool.push((store, bindings));
                }
                Ok(r)
            }
            Err(e) => Err(self.failed(classify(&self.info.name, &self.settings.limits, &store, e))),
        }
    }

    fn failed(&self, error: PluginError) -> PluginError {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.info.name, version = %self.info.version, error = %error, "plugin call failed");
        error
    }

    /// Asks the policy for placements. A plugin `err` result is an error here too: either way the
    /// caller falls back for this pass.
    pub fn place(
        &self,
        pending: &[placement::PendingJob],
        gpus: &[placement::GpuState],
        rules: &placement::Rules,
    ) -> Result<Vec<placement::Placement>, PluginError> {
        let Prepared::Policy { pre, pool } = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Policy));
        };
        let pending: Vec<_> = pending.iter().map(convert::pending_job).collect();
        let gpus: Vec<_> = gpus.iter().map(convert::gpu_state).collect();
        let rules = convert::rules(rules);
        let answer = self.run(pool, |s| pre.instantiate(s), |s, b| b.gantry_plugin_policy().call_place(s, &pending, &gpus, &rules))?;
        match answer {
            Ok(placements) => Ok(placements.into_iter().map(convert::placement).collect()),
            Err(message) => Err(self.failed(PluginError::Returned { plugin: self.info.name.clone(), message })),
        }
    }

    pub fn parse(
        &self,
        file_name: &str,
        mode: Option<ParseMode>,
        text: &str,
    ) -> Result<Result<JobFile, Vec<Diagnostic>>, PluginError> {
        let Prepared::Parser { pre, pool } = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Parser));
        };
        self.run(pool, |s| pre.instantiate(s), |s, b| b.gantry_plugin_parser().call_parse(s, file_name, mode, text))
    }

    pub fn render(&self, file: &JobFile) -> Result<String, PluginError> {
        let Prepared::Parser { pre, pool } = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Parser));
        };
        self.run(pool, |s| pre.instantiate(s), |s, b| b.gantry_plugin_parser().call_render(s, file))
    }

    /// One provider call. Providers wait on the network, so the call is async; it is bounded by the
    /// plugin's deadline both inside the guest (epochs) and around host I/O (a timer).
    pub async fn provider(&self, call: ProviderCall) -> Result<ProviderReply, PluginError> {
        let Prepared::Provider { pre } = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Provider));
        };
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut store = self.store()?;
        let limit = self.settings.limits.timeout;
        let result = tokio::time::timeout(limit, async {
            let bindings = pre.instantiate_async(&mut store).await?;
            let p = bindings.gantry_plugin_provider();
            Ok(match &call {
                ProviderCall::Submit(job) => ProviderReply::Job(p.call_submit(&mut store, job).await?),
                ProviderCall::Status(id) => ProviderReply::Job(p.call_status(&mut store, id).await?),
                ProviderCall::Cancel(id) => ProviderReply::Job(p.call_cancel(&mut store, id).await?),
                ProviderCall::Logs { id, tail_lines } => ProviderReply::Logs(p.call_logs(&mut store, id, *tail_lines).await?),
                ProviderCall::EstimateCost(job) => ProviderReply::Cost(p.call_estimate_cost(&mut store, job).await?),
                ProviderCall::Offers(gpu) => ProviderReply::Offers(p.call_offers(&mut store, gpu).await?),
            })
        })
        .await;
        self.stats.record_duration(started.elapsed());
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(self.failed(classify(&self.info.name, &self.settings.limits, &store, e))),
            Err(_) => Err(self.failed(PluginError::Timeout { plugin: self.info.name.clone(), limit })),
        }
    }

    fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        PluginError::WrongKind { plugin: self.info.name.clone(), wanted: wanted.as_str(), actual: self.info.kind.as_str() }
    }

    /// Whether callers should skip this policy for now because it failed recently.
    pub fn quarantined(&self) -> bool {
        self.quarantine.lock().until.is_some_and(|until| Instant::now() < until)
    }

    pub fn note_failure(&self) {
        let mut q = self.quarantine.lock();
        let next = if q.next.is_zero() { FIRST_QUARANTINE } else { q.next };
        q.until = Some(Instant::now() + next);
        q.next = (next * 2).min(MAX_QUARANTINE);
    }

    pub fn note_success(&self) {
        *self.quarantine.lock() = Quarantine::default();
    }

    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }
}

impl Prepared {
    fn kind(&self) -> PluginKind {
        match self {
            Prepared::Policy { .. } => PluginKind::Policy,
            Prepared::Parser { .. } => PluginKind::Parser,
            Prepared::Provider { .. } => PluginKind::Provider,
        }
    }
}

pub use parser::exports::gantry::plugin::parser::{Diagnostic, JobFile, JobSpec, Mode as ParseMode};
pub use provider::exports::gantry::plugin::provider::{
    CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, ProviderError,
};

/// A request to a provider plugin: seed 002's adapter interface.
#[derive(Clone, Debug)]
pub enum ProviderCall {
    Submit(JobConfig),
    Status(String),
    Logs { id: String, tail_lines: u32 },
    Cancel(String),
    EstimateCost(JobConfig),
    Offers(GpuSpec),
}

/// A provider's answer; its own errors (`ProviderError`) are answers too, not plugin failures.
#[derive(Clone, Debug)]
pub enum ProviderReply {
    Job(Result<JobResult, ProviderError>),
    Logs(Result<String, ProviderError>),
    Cost(Result<CostEstimate, ProviderError>),
    Offers(Result<Vec<Offer>, ProviderError>),
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
