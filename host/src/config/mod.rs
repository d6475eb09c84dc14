//! `gantry.toml`: read raw, then validated into [`Config`]. Every error names the file and the
//! key (TOML syntax errors also the line), and a missing file means the embedded defaults.

use crate::auth::{AuthConfig, AuthMode};
use crate::gpu::{GpuMode, SamplerConfig, SimSpec};
use crate::model::SchedulingRules;
use crate::plugin::{PluginGrants, PluginLimits, PluginSettings, RuntimeOptions};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod edit;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    gpu: RawGpu,
    #[serde(default)]
    scheduler: RawScheduler,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    auth: RawAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    mode: Option<String>,
    secret: Option<String>,
    allow_register: Option<bool>,
    allow_open_network: Option<bool>,
    session_hours: Option<u64>,
    access_minutes: Option<u64>,
    refresh_days: Option<u64>,
    login_attempts_per_minute: Option<u32>,
}

/// Seed 004's `gpu_manage.yaml` keys are accepted under their own names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    compete_gpus: Option<Vec<u32>>,
    use_all_gpus: Option<bool>,
    gpu_left: Option<u32>,
    min_gpu: Option<u32>,
    max_gpu: Option<u32>,
    memory_margin_mib: Option<u64>,
    #[serde(alias = "maximize_resource_utilization")]
    allow_sharing: Option<bool>,
    memory_save_mode: Option<bool>,
    retries: Option<u32>,
    max_retry_before_backoff: Option<u32>,
    /// Seconds.
    backoff_duration: Option<f64>,
    retry_config: Option<RawRetry>,
    cancel_grace_s: Option<f64>,
    log_max_mib: Option<u64>,
    log_keep: Option<u32>,
    /// Seed 001's polling period. gantry schedules on events, so it has nothing to set; it is
    /// accepted so that a converted `gpu_manage.yaml` loads.
    check_time: Option<f64>,
    /// Seed 001's working directory: the default `cwd` of jobs.
    work_dir: Option<PathBuf>,
    /// Seed 001's command files: configuration 1 of each mode; configuration N+1 adds `_N`.
    gpu_command_file: Option<PathBuf>,
    gpus_command_file: Option<PathBuf>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_retry_before_backoff: Option<u32>,
    backoff_duration: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    log_dir: Option<PathBuf>,
    log_level: Option<String>,
    log_roots: Option<Vec<PathBuf>>,
    cors_origins: Option<Vec<String>>,
    max_body_kib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpu {
    /// `auto`, `off` (the driver or nothing), or `N[xMODEL]`.
    simulate: Option<String>,
    /// The NVIDIA library to load; default `libnvidia-ml.so.1` from the loader's path.
    nvml_library: Option<PathBuf>,
    sample_interval_ms: Option<u64>,
    window_s: Option<u64>,
    history_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: Option<PathBuf>,
    policy: Option<String>,
    parser: Option<String>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    #[serde(default)]
    settings: BTreeMap<String, RawPluginSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPluginSettings {
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    read_only_dirs: Vec<PathBuf>,
    #[serde(default)]
    http_base_urls: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The file this came from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub plugins: PluginConfig,
    pub gpu: GpuConfig,
    pub scheduler: SchedulingRules,
    /// Default working directory of jobs that name none.
    pub work_dir: Option<PathBuf>,
    /// Where `gantry serve` listens.
    pub listen: std::net::SocketAddr,
    /// Seed 001's `check_time`, kept only to be shown back: gantry schedules on events.
    pub check_time_s: Option<f64>,
    pub command_files: CommandFiles,
    pub server: ServerConfig,
    pub auth: AuthConfig,
}

/// The first command file of each mode (seed 001/004's `command_gpu.txt`, `command_gpus.txt`).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandFiles {
    pub single: PathBuf,
    pub multi: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// The daemon's pid file and run log (seed 001's `logs/`).
    pub log_dir: PathBuf,
    /// The daemon's log filter (`error` … `trace`), unless `GANTRY_LOG` says otherwise.
    pub log_level: String,
    /// Directories whose files the API may read as logs, beyond job logs and `log_dir`.
    pub log_roots: Vec<PathBuf>,
    /// Origins a browser may call the API from; `*` for any. Empty: same origin only.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

/// The configuration file's name in the state directory.
pub const DEFAULT_FILE: &str = "gantry.toml";

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Loopback only: a daemon that runs commands is not offered to the network unless asked.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Enough for a batch of thousands of jobs; anything larger is refused with 413.
const DEFAULT_MAX_BODY_KIB: u64 = 8192;

#[derive(Clone, Debug)]
pub struct GpuConfig {
    pub mode: GpuMode,
    /// `gpu.simulate` as written (`auto` when absent), to be shown back.
    pub simulate: String,
    /// `gpu.nvml_library`, else `$GANTRY_NVML_LIBRARY`, else the system's `libnvidia-ml.so.1`.
    pub nvml_library: PathBuf,
    pub sampler: SamplerConfig,
}

impl Config {
    /// The file the API edits: the one this came from, else `gantry.toml` in the state
    /// directory, where the next start without `--config` finds it.
    pub fn path(&self) -> PathBuf {
        self.source.clone().unwrap_or_else(|| self.state_dir.join(DEFAULT_FILE))
    }

    /// Where simulation mode keeps its stand-in driver and `nvml-sim.json`.
    pub fn sim_dir(&self) -> PathBuf {
        self.state_dir.join("sim")
    }
}

#[derive(Clone, Debug)]
pub struct PluginConfig {
    pub dir: PathBuf,
    pub cache_dir: PathBuf,
    /// Name of the active policy plugin.
    pub policy: String,
    /// Name of the parser plugin for command files.
    pub parser: String,
    pub defaults: PluginSettings,
    pub per_plugin: HashMap<String, PluginSettings>,
}

impl PluginConfig {
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            plugin_dir: Some(self.dir.clone()),
            cache_dir: Some(self.cache_dir.clone()),
            defaults: self.defaults.clone(),
            per_plugin: self.per_plugin.clone(),
        }
    }
}

/// Upper bounds that catch a typo (a timeout in microseconds, memory in bytes) before it silently
/// disarms a limit.
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_MEMORY_MIB: u64 = 4096;

impl Config {
    /// Without `--config`: `gantry.toml` in the default state directory if the API (or someone)
    /// wrote one there, else the embedded defaults.
    pub fn discover() -> Result<Config, ConfigError> {
        let path = default_state_dir().join(DEFAULT_FILE);
        if path.is_file() { Config::load(&path) } else { Ok(Config::defaults()) }
    }

    /// The embedded defaults, with the state directory from `GANTRY_STATE_DIR` or the XDG state dir.
    pub fn defaults() -> Config {
        Config::validate(None, RawConfig::default()).unwrap_or_else(|e| unreachable!("embedded defaults are valid: {e}"))
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        Config::validate(Some(path), raw)
    }

    fn validate(path: Option<&Path>, raw: RawConfig) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("<defaults>")),
            key: key.to_string(),
            message,
        };
        let base = path.and_then(Path::parent).unwrap_or_else(|| Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let state_dir = raw.state_dir.map(resolve).unwrap_or_else(default_state_dir);
        let plugins = raw.plugins;
        let defaults = PluginSettings {
            limits: limits("plugins", plugins.timeout_ms, plugins.memory_mib, &PluginLimits::default(), &invalid)?,
            grants: PluginGrants::default(),
        };
        let mut per_plugin = HashMap::new();
        for (name, s) in plugins.settings {
            let key = format!("plugins.settings.{name}");
            let limits = limits(&key, s.timeout_ms, s.memory_mib, &defaults.limits, &invalid)?;
            for url in &s.http_base_urls {
                match url.parse::<http::Uri>() {
                    Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
                    _ => return Err(invalid(&format!("{key}.http_base_urls"), format!("'{url}' is not an http(s) URL"))),
                }
            }
            let grants = PluginGrants {
                env: s.env.into_iter().collect(),
                read_only_dirs: s.read_only_dirs.into_iter().map(resolve).collect(),
                http_base_urls: s.http_base_urls,
            };
            per_plugin.insert(name, PluginSettings { limits, grants });
        }

        let gpu = gpu_config(raw.gpu, &invalid)?;
        let work_dir = raw.scheduler.work_dir.clone().map(resolve);
        let check_time_s = raw.scheduler.check_time;
        // Relative to the configuration file, or to the state directory without one.
        let command_base = if path.is_some() { base.to_path_buf() } else { state_dir.clone() };
        let command_file = |p: Option<PathBuf>, default: &str| match p {
            Some(p) if p.is_absolute() => p,
            Some(p) => command_base.join(p),
            None => command_base.join("command").join(default),
        };
        let command_files = CommandFiles {
            single: command_file(raw.scheduler.gpu_command_file.clone(), "command_gpu.txt"),
            multi: command_file(raw.scheduler.gpus_command_file.clone(), "command_gpus.txt"),
        };
        let scheduler = scheduler_rules(raw.scheduler, &invalid)?;
        let listen = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen.parse().map_err(|e| invalid("server.listen", format!("'{listen}' is not HOST:PORT: {e}")))?;
        // Seed 000's CORS_ORIGINS (comma-separated) when the file says nothing.
        let cors_origins = raw.server.cors_origins.unwrap_or_else(|| {
            std::env::var("CORS_ORIGINS").map(|v| v.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect()).unwrap_or_default()
        });
        for origin in cors_origins.iter().filter(|o| o.as_str() != "*") {
            if origin.parse::<http::HeaderValue>().is_err() || !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid("server.cors_origins", format!("'{origin}' is not an origin like https://host:port")));
            }
        }
        let max_body_kib = raw.server.max_body_kib.unwrap_or(DEFAULT_MAX_BODY_KIB);
        if max_body_kib == 0 {
            return Err(invalid("server.max_body_kib", "must be at least 1".into()));
        }
        let log_level = raw.server.log_level.unwrap_or_else(|| "warn".into());
        if !LOG_LEVELS.contains(&log_level.as_str()) {
            return Err(invalid("server.log_level", format!("'{log_level}' is not one of {}", LOG_LEVELS.join(", "))));
        }
        let server = ServerConfig {
            log_dir: raw.server.log_dir.map(resolve).unwrap_or_else(|| state_dir.join("logs")),
            log_roots: raw.server.log_roots.unwrap_or_default().into_iter().map(resolve).collect(),
            log_level,
            cors_origins,
            max_body_bytes: usize::try_from(max_body_kib.saturating_mul(1024)).unwrap_or(usize::MAX),
        };
        let gpu = GpuConfig { nvml_library: resolve_library(gpu.nvml_library, base), ..gpu };
        let auth = auth_config(raw.auth, &invalid)?;

        Ok(Config {
            source: path.map(Path::to_path_buf),
            gpu,
            scheduler,
            work_dir,
            listen,
            check_time_s,
            command_files,
            server,
            auth,
            plugins: PluginConfig {
                dir: plugins.dir.map(resolve).unwrap_or_else(|| state_dir.join("plugins")),
                cache_dir: state_dir.join("cache").join("plugins"),
                policy: plugins.policy.unwrap_or_else(|| "policy-best-fit".into()),
                parser: plugins.parser.unwrap_or_else(|| "parser-compete".into()),
                defaults,
                per_plugin,
            },
            state_dir,
        })
    }
}

/// Seed 001's rule holds: a secret that is empty or `none`/`null`/`false` means no login. Without
/// a `mode`, a real secret means secret mode.
fn auth_config(raw: RawAuth, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<AuthConfig, ConfigError> {
    let defaults = AuthConfig::default();
    let secret = raw.secret.filter(|s| !matches!(s.trim().to_lowercase().as_str(), "" | "none" | "null" | "false"));
    let mode = match raw.mode.as_deref() {
        None if secret.is_some() => AuthMode::Secret,
        None | Some("none") => AuthMode::None,
        Some("secret") => AuthMode::Secret,
        Some("users") => AuthMode::Users,
        Some(other) => return Err(invalid("auth.mode", format!("'{other}' is not one of none, secret, users"))),
    };
    let positive = |key: &str, value: Option<u64>, default: std::time::Duration, unit: u64| match value {
        Some(0) => Err(invalid(key, "must be at least 1".into())),
        Some(v) => Ok(std::time::Duration::from_secs(v.saturating_mul(unit))),
        None => Ok(default),
    };
    Ok(AuthConfig {
        mode,
        secret,
        allow_register: raw.allow_register.unwrap_or(defaults.allow_register),
        allow_open_network: raw.allow_open_network.unwrap_or(defaults.allow_open_network),
        session_ttl: positive("auth.session_hours", raw.session_hours, defaults.session_ttl, 3600)?,
        access_ttl: positive("auth.access_minutes", raw.access_minutes, defaults.access_ttl, 60)?,
        refresh_ttl: positive("auth.refresh_days", raw.refresh_days, defaults.refresh_ttl, 24 * 3600)?,
        login_attempts_per_minute: match raw.login_attempts_per_minute {
            Some(0) => return Err(invalid("auth.login_attempts_per_minute", "must be at least 1".into())),
            Some(n) => n,
            None => defaults.login_attempts_per_minute,
        },
    })
}

/// A bare library name is left to the dynamic loader; a path is relative to the config file.
fn resolve_library(lib: PathBuf, base: &Path) -> PathBuf {
    if lib.components().count() > 1 && lib.is_relative() { base.join(lib) } else { lib }
}

fn gpu_config(raw: RawGpu, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<GpuConfig, ConfigError> {
    let simulate = raw.simulate.as_deref().map_or_else(|| "auto".to_string(), |s| s.trim().to_string());
    let mode = match raw.simulate.as_deref().map(str::trim) {
        None | Some("auto") => GpuMode::Auto,
        Some("off") => GpuMode::Hardware,
        Some(spec) => GpuMode::Simulate(spec.parse::<SimSpec>().map_err(|e| invalid("gpu.simulate", e.to_string()))?),
    };
    let defaults = SamplerConfig::default();
    let min_ms = u64::try_from(SamplerConfig::MIN_INTERVAL.as_millis()).unwrap_or(100);
    let interval = match raw.sample_interval_ms {
        Some(ms) if ms < min_ms => return Err(invalid("gpu.sample_interval_ms", format!("must be at least {min_ms}, got {ms}"))),
        Some(ms) => Duration::from_millis(ms),
        None => defaults.interval,
    };
    let window = raw.window_s.map(Duration::from_secs).unwrap_or(defaults.window);
    let history = raw.history_s.map(Duration::from_secs).unwrap_or(defaults.history);
    if window < interval {
        return Err(invalid("gpu.window_s", format!("must cover at least one sample interval ({interval:?})")));
    }
    if history < window {
        return Err(invalid("gpu.history_s", "must be at least gpu.window_s".into()));
    }
    let nvml_library = raw
        .nvml_library
        .or_else(|| std::env::var_os("GANTRY_NVML_LIBRARY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::gpu::SYSTEM_LIBRARY));
    Ok(GpuConfig { mode, simulate, nvml_library, sampler: SamplerConfig { interval, window, history } })
}

fn scheduler_rules(raw: RawScheduler, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<SchedulingRules, ConfigError> {
    let defaults = SchedulingRules::default();
    let seconds = |key: &str, value: Option<f64>, default: Duration| match value {
        Some(s) if !s.is_finite() || s < 0.0 => Err(invalid(key, format!("must be a number of seconds >= 0, got {s}"))),
        Some(s) => Ok(Duration::from_secs_f64(s)),
        None => Ok(default),
    };
    if raw.check_time.is_some() {
        tracing::info!("scheduler.check_time is ignored: gantry schedules when something changes, not on a timer");
    }
    let retry = raw.retry_config.unwrap_or_default();
    let (min_gpu, max_gpu) = (raw.min_gpu.unwrap_or(defaults.min_gpu), raw.max_gpu.unwrap_or(defaults.max_gpu));
    if min_gpu == 0 {
        return Err(invalid("scheduler.min_gpu", "must be at least 1".into()));
    }
    if max_gpu < min_gpu {
        return Err(invalid("scheduler.max_gpu", format!("must be at least min_gpu ({min_gpu}), got {max_gpu}")));
    }
    // `use_all_gpus` wins over `compete_gpus`, as in seed 004.
    let eligible_gpus = match (raw.use_all_gpus, raw.compete_gpus) {
        (Some(true), _) | (None, None) => None,
        (Some(false), None) => return Err(invalid("scheduler.compete_gpus", "needed when use_all_gpus is false".into())),
        (_, Some(list)) => Some(list),
    };
    let log_max_mib = raw.log_max_mib.unwrap_or(defaults.log_max_bytes >> 20);
    if log_max_mib == 0 {
        return Err(invalid("scheduler.log_max_mib", "must be at least 1".into()));
    }
    Ok(SchedulingRules {
        eligible_gpus,
        gpu_left: raw.gpu_left.unwrap_or(defaults.gpu_left),
        min_gpu,
        max_gpu,
        memory_margin_mib: raw.memory_margin_mib.unwrap_or(defaults.memory_margin_mib),
        allow_sharing: raw.allow_sharing.unwrap_or(defaults.allow_sharing),
        memory_save_mode: raw.memory_save_mode.unwrap_or(defaults.memory_save_mode),
        default_retries: raw.retries.unwrap_or(defaults.default_retries),
        max_retry_before_backoff: raw
            .max_retry_before_backoff
            .or(retry.max_retry_before_backoff)
            .unwrap_or(defaults.max_retry_before_backoff),
        backoff: seconds("scheduler.backoff_duration", raw.backoff_duration.or(retry.backoff_duration), defaults.backoff)?,
        cancel_grace: seconds("scheduler.cancel_grace_s", raw.cancel_grace_s, defaults.cancel_grace)?,
        log_max_bytes: log_max_mib << 20,
        log_keep: raw.log_keep.unwrap_or(defaults.log_keep),
        params: raw.params,
    })
}

fn limits(
    key: &str,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    inherited: &PluginLimits,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<PluginLimits, ConfigError> {
    let timeout = match timeout_ms {
        Some(ms) if ms == 0 || ms > MAX_TIMEOUT_MS => {
            return Err(invalid(&format!("{key}.timeout_ms"), format!("must be 1..={MAX_TIMEOUT_MS}, got {ms}")));
        }
        Some(ms) => Duration::from_millis(ms),
        None => inherited.timeout,
    };
    let memory_mib = match memory_mib {
        Some(m) if m == 0 || m > MAX_MEMORY_MIB => {
            return Err(invalid(&format!("{key}.memory_mib"), format!("must be 1..={MAX_MEMORY_MIB}, got {m}")));
        }
        Some(m) => m,
        None => inherited.memory_mib,
    };
    Ok(PluginLimits { timeout, memory_mib })
}

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GANTRY_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("gantry");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/gantry"),
        None => PathBuf::from(".gantry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gantry.toml"));
        let config = Config::load(path).expect("config/gantry.toml parses");
        assert_eq!(config.plugins.policy, "policy-best-fit");
        assert_eq!(config.plugins.defaults.limits, PluginLimits::default());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::parse(Path::new("g.toml"), "[plugins]\ntimeout_ms = 100\npolicyy = \"x\"\n").expect_err("refused");
        let text = err.to_string();
        assert!(text.starts_with("g.toml:"), "{text}");
        assert!(text.contains("policyy"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn out_of_range_limit_names_the_key() {
        let err = Config::parse(Path::new("g.toml"), "[plugins.settings.policy-spread]\ntimeout_ms = 0\n").expect_err("refused");
        assert_eq!(err.to_string(), "g.toml: `plugins.settings.policy-spread.timeout_ms`: must be 1..=60000, got 0");
    }

    #[test]
    fn per_plugin_settings_inherit_defaults() {
        let config = Config::parse(
            Path::new("/etc/gantry/gantry.toml"),
            "[plugins]\nmemory_mib = 32\n[plugins.settings.runpod]\ntimeout_ms = 5000\nhttp_base_urls = [\"https://api.runpod.io/v2\"]\nread_only_dirs = [\"data\"]\n",
        )
        .expect("valid");
        let runpod = &config.plugins.per_plugin["runpod"];
        assert_eq!(runpod.limits, PluginLimits { timeout: Duration::from_secs(5), memory_mib: 32 });
        assert_eq!(runpod.grants.read_only_dirs, vec![PathBuf::from("/etc/gantry/data")]);
    }

    #[test]
    fn gpu_section() {
        let config = Config::parse(Path::new("g.toml"), "[gpu]\nsimulate = \"8xH100\"\nsample_interval_ms = 100\n").expect("valid");
        assert!(matches!(config.gpu.mode, GpuMode::Simulate(ref s) if s.count == 8));
        assert_eq!(config.gpu.sampler.interval, Duration::from_millis(100));
        let err = Config::parse(Path::new("g.toml"), "[gpu]\nsample_interval_ms = 10\n").expect_err("too fast");
        assert!(err.to_string().contains("gpu.sample_interval_ms"), "{err}");
        let err = Config::parse(Path::new("g.toml"), "[gpu]\nsimulate = \"lots\"\n").expect_err("bad spec");
        assert!(err.to_string().contains("gpu.simulate"), "{err}");
    }

    #[test]
    fn scheduler_section_takes_seed_004_names() {
        let config = Config::parse(
            Path::new("g.toml"),
            "[scheduler]\nmaximize_resource_utilization = true\ncompete_gpus = [0, 2]\nuse_all_gpus = false\ngpu_left = 1\n\
             check_time = 60\n[scheduler.retry_config]\nmax_retry_before_backoff = 2\nbackoff_duration = 1.5\n",
        )
        .expect("valid");
        let rules = &config.scheduler;
        assert!(rules.allow_sharing);
        assert_eq!(rules.eligible_gpus, Some(vec![0, 2]));
        assert!(rules.eligible(2) && !rules.eligible(1));
        assert_eq!((rules.gpu_left, rules.max_retry_before_backoff), (1, 2));
        assert_eq!(rules.backoff, Duration::from_millis(1500));
        let err = Config::parse(Path::new("g.toml"), "[scheduler]\nmin_gpu = 3\nmax_gpu = 2\n").expect_err("refused");
        assert_eq!(err.to_string(), "g.toml: `scheduler.max_gpu`: must be at least min_gpu (3), got 2");
        let err = Config::parse(Path::new("g.toml"), "[scheduler]\nbackoff_duration = -1\n").expect_err("refused");
        assert!(err.to_string().contains("scheduler.backoff_duration"), "{err}");
    }

    #[test]
    fn server_section_is_checked() {
        let config = Config::parse(Path::new("g.toml"), "[server]\nlisten = \"0.0.0.0:8080\"\ncors_origins = [\"*\"]\n").expect("valid");
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.server.cors_origins, vec!["*".to_string()]);
        let err = Config::parse(Path::new("g.toml"), "[server]\ncors_origins = [\"ui.example\"]\n").expect_err("refused");
        assert!(err.to_string().contains("server.cors_origins"), "{err}");
        let err = Config::parse(Path::new("g.toml"), "[server]\nlisten = \"localhost\"\n").expect_err("refused");
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn auth_section_follows_seed_001s_secret_rule() {
        let parse = |text: &str| Config::parse(Path::new("g.toml"), text);
        assert_eq!(parse("").expect("valid").auth.mode, AuthMode::None);
        let secret = parse("[auth]\nsecret = \"s3cret\"\n").expect("valid").auth;
        assert_eq!((secret.mode, secret.secret.as_deref()), (AuthMode::Secret, Some("s3cret")));
        assert_eq!(parse("[auth]\nsecret = \"none\"\n").expect("valid").auth.mode, AuthMode::None);
        let generated = parse("[auth]\nmode = \"secret\"\n").expect("valid").auth;
        assert_eq!((generated.mode, generated.secret), (AuthMode::Secret, None));
        let err = parse("[auth]\nmode = \"ldap\"\n").expect_err("refused");
        assert!(err.to_string().contains("auth.mode"), "{err}");
    }

    #[test]
    fn bad_base_url_is_refused() {
        let err = Config::parse(Path::new("g.toml"), "[plugins.settings.p]\nhttp_base_urls = [\"ftp://x\"]\n").expect_err("refused");
        assert!(err.to_string().contains("http_base_urls"), "{err}");
    }
}
