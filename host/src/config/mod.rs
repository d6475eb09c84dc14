//! `gantry.toml`: read raw, then validated into [`Config`]. Every error names the file and the
//! key (TOML syntax errors also the line), and a missing file means the embedded defaults.

use crate::auth::AuthConfig;
use crate::gpu::{GpuMode, SamplerConfig};
use crate::model::SchedulingRules;
use crate::plugin::{PluginGrants, PluginLimits, PluginSettings, RuntimeOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod edit;
mod raw;
mod sections;

use raw::RawConfig;
use sections::{auth_config, gpu_config, limits, quotas, resolve_library, scheduler_rules, RawLimits};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
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
    pub federation: crate::federation::FederationConfig,
    /// `[providers.NAME]`, by name.
    pub providers: Vec<crate::providers::ProviderConfig>,
    /// `[prices] file`: the owner's rows of the price catalog, read at every `offers` question.
    pub prices_file: Option<PathBuf>,
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
    /// Names a request's `Host` may carry besides IP addresses, `localhost` and this machine's
    /// host name; `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Connections served at once on each listener; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// The TCP listener serves HTTPS with these, if set.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The configuration file's name in the state directory.
pub const DEFAULT_FILE: &str = "gantry.toml";

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Loopback only: a daemon that runs commands is not offered to the network unless asked.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Enough for a batch of thousands of jobs; anything larger is refused with 413.
const DEFAULT_MAX_BODY_KIB: u64 = 8192;

/// Far more than the dashboards and scripts of a group use, far fewer than the file descriptors
/// a daemon has (1024 by default).
const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Plenty for a client on a slow link; short enough that half-sent requests can't pile up.
const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;

#[derive(Clone, Debug)]
pub struct GpuConfig {
    pub mode: GpuMode,
    /// `gpu.simulate` as written (`auto` when absent), to be shown back.
    pub simulate: String,
    /// `gpu.nvml_library`, else `$GANTRY_NVML_LIBRARY`, else the system's `libnvidia-ml.so.1`.
    pub nvml_library: PathBuf,
    pub sampler: SamplerConfig,
    /// Where the files of DCGM's HPC job mapping go (one per GPU index, the ids of the jobs on
    /// it), for a dcgm-exporter started with `--hpc-job-mapping-dir`; none if unset.
    pub hpc_job_mapping_dir: Option<PathBuf>,
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
            compiler: None,
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
            limits: limits("plugins", RawLimits { timeout_ms: plugins.timeout_ms, memory_mib: plugins.memory_mib, max_jobs: plugins.max_jobs }, &PluginLimits::default(), &invalid)?,
            grants: PluginGrants::default(),
        };
        let mut per_plugin = HashMap::new();
        for (name, s) in plugins.settings {
            let key = format!("plugins.settings.{name}");
            let limits = limits(&key, RawLimits { timeout_ms: s.timeout_ms, memory_mib: s.memory_mib, max_jobs: s.max_jobs }, &defaults.limits, &invalid)?;
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
                https_trust: None,
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
        let mut scheduler = scheduler_rules(raw.scheduler, &invalid)?;
        scheduler.quotas = quotas(raw.quotas, &invalid)?;
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
        let max_connections = raw.server.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1".into()));
        }
        let header_timeout_s = raw.server.header_timeout_s.unwrap_or(DEFAULT_HEADER_TIMEOUT_S);
        if !(1..=3600).contains(&header_timeout_s) {
            return Err(invalid("server.header_timeout_s", format!("must be 1 to 3600 seconds, got {header_timeout_s}")));
        }
        let log_level = raw.server.log_level.unwrap_or_else(|| "warn".into());
        if !LOG_LEVELS.contains(&log_level.as_str()) {
            return Err(invalid("server.log_level", format!("'{log_level}' is not one of {}", LOG_LEVELS.join(", "))));
        }
        let tls = match (raw.server.tls_cert, raw.server.tls_key) {
            (Some(cert), _) if cert.as_os_str().is_empty() => return Err(invalid("server.tls_cert", "is empty: name the certificate's file, or leave the key out".into())),
            (_, Some(key)) if key.as_os_str().is_empty() => return Err(invalid("server.tls_key", "is empty: name the key's file, or leave the key out".into())),
            (Some(cert), Some(key)) => Some(TlsFiles { cert: resolve(cert), key: resolve(key) }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("server.tls_key", "a certificate (server.tls_cert) needs its private key".into())),
            (None, Some(_)) => return Err(invalid("server.tls_cert", "a private key (server.tls_key) needs its certificate".into())),
        };
        let server = ServerConfig {
            log_dir: raw.server.log_dir.map(resolve).unwrap_or_else(|| state_dir.join("logs")),
            log_roots: raw.server.log_roots.unwrap_or_default().into_iter().map(resolve).collect(),
            log_level,
            cors_origins,
            max_body_bytes: usize::try_from(max_body_kib.saturating_mul(1024)).unwrap_or(usize::MAX),
            allowed_hosts: raw.server.allowed_hosts.unwrap_or_default().into_iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
            max_connections,
            header_timeout: Duration::from_secs(header_timeout_s),
            tls,
        };
        let gpu = GpuConfig { nvml_library: resolve_library(gpu.nvml_library, base), hpc_job_mapping_dir: gpu.hpc_job_mapping_dir.clone().map(resolve), ..gpu };
        let auth = auth_config(raw.auth, &invalid)?;
        let ca_cert = raw.federation.ca_cert.clone().map(resolve);
        let federation = sections::federation(raw.federation, ca_cert, &invalid)?;
        let providers = raw.providers.into_iter().map(|(name, p)| sections::provider(name, p, &resolve, &invalid)).collect::<Result<Vec<_>, _>>()?;
        if !scheduler.burst_queues.is_empty() && providers.is_empty() {
            return Err(invalid("scheduler.burst_queues", "nowhere to burst to: no [providers.NAME] is configured".into()));
        }
        if let Some(empty) = scheduler.burst_queues.iter().find(|q| q.trim_end_matches('*').is_empty()) {
            return Err(invalid("scheduler.burst_queues", format!("'{empty}' names no queue (a name, or a prefix ending in *)")));
        }
        let prices_file = raw.prices.file.map(resolve);

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
            federation,
            providers,
            prices_file,
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
    use crate::auth::AuthMode;
    use std::time::Duration;

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gantry.toml"));
        let config = Config::load(path).expect("config/gantry.toml parses");
        assert_eq!(config.plugins.policy, "policy-best-fit");
        assert_eq!(config.plugins.defaults.limits, PluginLimits::default());
    }

    fn tke_instance(extra: &str) -> Result<crate::providers::ProviderConfig, String> {
        let config = format!("[providers.tke]\nplugin = \"provider-tencent-tke\"\nbase_url = \"https://cls-a.example:443\"\n{extra}");
        Config::parse(std::path::Path::new("/etc/gantry/gantry.toml"), &config).map_err(|e| e.to_string()).map(|c| c.providers[0].clone())
    }

    #[test]
    fn a_second_url_and_a_second_secret_are_read_and_checked() {
        let tke = tke_instance("api_url = \"https://tke.tencentcloudapi.com/\"\nsecret_file = \"tencent.key\"\n").expect("valid");
        assert_eq!(tke.api_url.as_deref(), Some("https://tke.tencentcloudapi.com"));
        assert_eq!(tke.secret, Some(crate::providers::TokenSource::File("/etc/gantry/tencent.key".into())));
        let both = tke_instance("secret_file = \"k\"\nsecret_env = \"K\"\n").expect_err("both");
        assert!(both.contains("providers.tke.secret_env") && both.contains("not both"), "{both}");
        let bad = tke_instance("api_url = \"tke.tencentcloudapi.com\"\n").expect_err("no scheme");
        assert!(bad.contains("providers.tke.api_url") && bad.contains("not an http(s) URL"), "{bad}");
        let taken = tke_instance("[providers.tke.options]\nsecret = \"x\"\n").expect_err("reserved");
        assert!(taken.contains("providers.tke.options.secret") && taken.contains("api_url"), "{taken}");
    }

    #[test]
    fn example_providers_config_is_valid() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/providers.toml"));
        let config = Config::load(path).expect("config/providers.toml parses");
        let [ecs, k8s, runpod, slurm, tke] = config.providers.as_slice() else { panic!("five providers: {:?}", config.providers) };
        assert_eq!((tke.api_url.as_deref(), tke.secret.clone()), (Some("https://tke.tencentcloudapi.com"), Some(crate::providers::TokenSource::File(path.with_file_name("tencent.key")))));
        assert_eq!((ecs.plugin.as_str(), ecs.options.get("region_id").map(String::as_str)), ("provider-aliyun-ecs", Some("cn-hangzhou")));
        assert_eq!((runpod.plugin.as_str(), runpod.options.get("cloud").map(String::as_str)), ("provider-runpod", Some("SECURE")));
        assert_eq!(config.scheduler.burst_max_price, Some((8.0, "USD".to_string())));
        let budgets = &config.scheduler.quotas.budgets;
        assert_eq!((budgets.currency.as_str(), budgets.default, budgets.users.get("alice").copied()), ("USD", Some(200.0), Some(1000.0)));
        let err = Config::parse(Path::new("g.toml"), "[quotas.default]\nmonthly_budget = -1\n").expect_err("refused").to_string();
        assert!(err.contains("quotas.default.monthly_budget"), "{err}");
        assert_eq!((k8s.name.as_str(), k8s.plugin.as_str(), k8s.options.get("ttl_s").map(String::as_str)), ("k8s", "provider-k8s", Some("3600")));
        assert_eq!((slurm.name.as_str(), slurm.plugin.as_str()), ("slurm", "provider-slurm"));
        assert_eq!(slurm.token, Some(crate::providers::TokenSource::File(path.with_file_name("slurm.jwt"))));
        assert_eq!(slurm.options.get("partition").map(String::as_str), Some("gpu"));
        assert_eq!(slurm.options.get("time_limit_min").map(String::as_str), Some("1440"), "a number is given as its text");
        assert_eq!(k8s.ca_file, Some(path.with_file_name("k8s-ca.pem")), "relative to the file");
        assert!(config.scheduler.bursts_queue("big") && config.scheduler.bursts_queue("sweep-lr") && !config.scheduler.bursts_queue("small"), "{:?}", config.scheduler.burst_queues);
        let err = Config::parse(Path::new("g.toml"), "[scheduler]\nburst_queues = [\"big\"]\n").expect_err("refused").to_string();
        assert!(err.contains("scheduler.burst_queues") && err.contains("no [providers.NAME]"), "{err}");
        let err = Config::parse(Path::new("g.toml"), "[providers.k]\nplugin = \"provider-k8s\"\nbase_url = \"http://k:8001\"\nca_file = \"ca.pem\"\n").expect_err("refused").to_string();
        assert!(err.contains("providers.k.ca_file") && err.contains("https"), "{err}");
    }

    #[test]
    fn quotas_per_user_and_group_with_errors_that_name_the_key() {
        let parse = |text: &str| Config::parse(Path::new("g.toml"), text);
        let quotas = parse("[quotas]\nhalf_life_hours = 12\n[quotas.default]\ngpus = 4\n[quotas.users.ada]\ngpus = 1\nmemory_gib = 1.5\n[quotas.groups.root]\ngpus = 2\n").expect("valid").scheduler.quotas;
        assert_eq!(quotas.half_life, std::time::Duration::from_secs(12 * 3600));
        assert_eq!(quotas.user_cap("ada"), crate::model::Cap { gpus: Some(1), memory_mib: Some(1536) });
        assert_eq!(quotas.user_cap("bob"), crate::model::Cap { gpus: Some(4), memory_mib: None });
        assert_eq!((quotas.groups[0].name.as_str(), quotas.groups[0].gid), ("root", 0));
        for (text, key) in [
            ("[quotas.groups.no-such-group-gantry]\ngpus = 1\n", "quotas.groups.no-such-group-gantry"),
            ("[quotas]\nhalf_life_hours = 0\n", "quotas.half_life_hours"),
            ("[quotas.users.ada]\nmemory_gib = -1\n", "quotas.users.ada.memory_gib"),
        ] {
            let err = parse(text).expect_err("refused").to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn seed_003s_slaves_with_errors_that_name_the_slave() {
        let parse = |text: &str| Config::parse(Path::new("g.toml"), text);
        let federation = parse("[federation]\nrefresh_interval = 2\nslave_port = 5002\nslaves = [{ name = \"GPU server 1\", ip = \"192.168.217.180\" }, { name = \"b\", ip = \"fe80::1\", port = 7070, token = \"t\" }]\n").expect("valid").federation;
        assert_eq!(federation.refresh_interval, Duration::from_secs(2));
        let urls: Vec<&str> = federation.slaves.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(urls, ["http://192.168.217.180:5002", "http://[fe80::1]:7070"]);
        assert_eq!((federation.slaves[0].address.as_str(), federation.slaves[1].token.as_deref()), ("192.168.217.180", Some("t")));
        assert_eq!(parse("").expect("valid").federation.slaves.len(), 0);
        // Over HTTPS: a slave by URL (found by its host), a master, the lab's CA and this
        // daemon's own certificate, relative to the configuration file.
        let config = parse("[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/etc/k.pem\"\n[federation]\nmaster = \"https://m.lab:7070/\"\ntoken = \"t\"\nca_cert = \"ca.pem\"\n[[federation.slaves]]\nname = \"c\"\nurl = \"https://[fe80::2]:7443/\"\n").expect("valid");
        let slave = &config.federation.slaves[0];
        assert_eq!((slave.address.as_str(), slave.url.as_str()), ("fe80::2", "https://[fe80::2]:7443"));
        assert_eq!(config.federation.ca_cert.as_deref(), Some(Path::new("ca.pem")));
        assert!(!config.federation.accept_from_master);
        assert!(parse("[federation]\nmaster = \"https://m.lab:7070\"\ntoken = \"t\"\naccept_from_master = true\n").expect("over https").federation.accept_from_master);
        assert!(parse("[federation]\nmaster = \"http://127.0.0.1:7070\"\ntoken = \"t\"\naccept_from_master = true\n").expect("on loopback").federation.accept_from_master);
        assert_eq!(config.server.tls, Some(TlsFiles { cert: "tls/cert.pem".into(), key: "/etc/k.pem".into() }));
        for (text, key) in [
            ("[[federation.slaves]]\nname = \"a/b\"\nip = \"h\"\n", "federation.slaves[0].name"),
            ("[[federation.slaves]]\nname = \"a\"\nip = \"h\"\n[[federation.slaves]]\nname = \"a\"\nip = \"i\"\n", "federation.slaves[1].name"),
            ("[[federation.slaves]]\nname = \"a\"\nip = \"http://h/\"\n", "federation.slaves[0].ip"),
            ("[[federation.slaves]]\nname = \"a\"\nip = \"h\"\nport = 0\n", "federation.slaves[0].port"),
            ("[federation]\nrefresh_interval_s = 0\n", "federation.refresh_interval_s"),
            ("[[federation.slaves]]\nname = \"a\"\n", "federation.slaves[0].ip"),
            ("[[federation.slaves]]\nname = \"a\"\nurl = \"ftp://h\"\n", "federation.slaves[0].url"),
            ("[[federation.slaves]]\nname = \"a\"\nurl = \"https://h:1/api\"\n", "federation.slaves[0].url"),
            ("[[federation.slaves]]\nname = \"a\"\nurl = \"https://h:1\"\nport = 2\n", "federation.slaves[0].port"),
            ("[federation]\nmaster = \"gpu1:7070\"\ntoken = \"t\"\n", "federation.master"),
            ("[federation]\naccept_from_master = true\n", "federation.accept_from_master"),
            ("[federation]\nmaster = \"http://10.0.0.1:7070\"\ntoken = \"t\"\naccept_from_master = true\n", "federation.accept_from_master"),
            ("[server]\ntls_cert = \"c.pem\"\n", "server.tls_key"),
            ("[server]\ntls_key = \"k.pem\"\n", "server.tls_cert"),
            ("[server]\ntls_cert = \"\"\ntls_key = \"k.pem\"\n", "server.tls_cert"),
        ] {
            let err = parse(text).expect_err("refused").to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
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
        assert_eq!(runpod.limits, PluginLimits { timeout: Duration::from_secs(5), memory_mib: 32, ..PluginLimits::default() });
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
