//! `gantry.toml` as written: every key optional, unknown keys refused (serde names the key and
//! the line). [`super::Config`] is what these become once checked.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub gpu: RawGpu,
    #[serde(default)]
    pub scheduler: RawScheduler,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub quotas: RawQuotas,
    #[serde(default)]
    pub federation: RawFederation,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub prices: RawPrices,
}

/// `[prices]`: the owner's price catalog, beside the shipped one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrices {
    pub file: Option<PathBuf>,
}

/// `[providers.NAME]`: one instance of a provider plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub plugin: Option<String>,
    pub base_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub poll_ms: Option<u64>,
    pub poll_max_ms: Option<u64>,
    #[serde(default)]
    pub options: BTreeMap<String, OptionValue>,
}

/// A provider option as TOML writes it; the plugin gets its text (`time_limit_min = 60` or
/// `"60"` alike).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Text(t) => f.write_str(t),
            OptionValue::Integer(n) => write!(f, "{n}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFederation {
    pub master: Option<String>,
    pub node_name: Option<String>,
    pub token: Option<String>,
    #[serde(alias = "report_interval")]
    pub report_interval_s: Option<f64>,
    pub offline_after_s: Option<f64>,
    #[serde(alias = "refresh_interval")]
    pub refresh_interval_s: Option<f64>,
    pub slave_port: Option<u16>,
    #[serde(default)]
    pub slaves: Vec<RawSlave>,
    pub ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub accept_from_master: bool,
}

/// A slave a master pulls, as seed 003's `master.json` lists it (`ip`), or by `url` (for
/// `https://`); `port`, `url` and `token` are gantry's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlave {
    pub name: String,
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub url: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotas {
    pub half_life_hours: Option<f64>,
    pub budget_currency: Option<String>,
    pub max_jobs_per_user: Option<usize>,
    #[serde(default)]
    pub default: RawCap,
    #[serde(default)]
    pub users: BTreeMap<String, RawCap>,
    #[serde(default)]
    pub groups: BTreeMap<String, RawCap>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCap {
    pub gpus: Option<u32>,
    pub memory_gib: Option<f64>,
    pub monthly_budget: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub mode: Option<String>,
    pub secret: Option<String>,
    pub allow_register: Option<bool>,
    pub allow_open_network: Option<bool>,
    pub session_hours: Option<u64>,
    pub access_minutes: Option<u64>,
    pub refresh_days: Option<u64>,
    pub login_attempts_per_minute: Option<u32>,
    pub admin_group: Option<String>,
    pub privacy: Option<crate::auth::Privacy>,
    pub accounts_may_submit: Option<bool>,
}

/// Seed 004's `gpu_manage.yaml` keys are accepted under their own names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    pub compete_gpus: Option<Vec<u32>>,
    pub use_all_gpus: Option<bool>,
    pub gpu_left: Option<u32>,
    pub min_gpu: Option<u32>,
    pub max_gpu: Option<u32>,
    pub memory_margin_mib: Option<u64>,
    #[serde(alias = "maximize_resource_utilization")]
    pub allow_sharing: Option<bool>,
    pub memory_save_mode: Option<bool>,
    pub retries: Option<u32>,
    pub max_retry_before_backoff: Option<u32>,
    /// Seconds.
    pub backoff_duration: Option<f64>,
    pub retry_config: Option<RawRetry>,
    pub cancel_grace_s: Option<f64>,
    pub log_max_mib: Option<u64>,
    pub log_keep: Option<u32>,
    pub burst_max_wait_s: Option<f64>,
    pub burst_max_price_per_hour: Option<f64>,
    pub burst_price_currency: Option<String>,
    #[serde(default)]
    pub burst_queues: Vec<String>,
    /// Seed 001's polling period. gantry schedules on events, so it has nothing to set; it is
    /// accepted so that a converted `gpu_manage.yaml` loads.
    pub check_time: Option<f64>,
    /// Seed 001's working directory: the default `cwd` of jobs.
    pub work_dir: Option<PathBuf>,
    /// Seed 001's command files: configuration 1 of each mode; configuration N+1 adds `_N`.
    pub gpu_command_file: Option<PathBuf>,
    pub gpus_command_file: Option<PathBuf>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_retry_before_backoff: Option<u32>,
    pub backoff_duration: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_roots: Option<Vec<PathBuf>>,
    pub cors_origins: Option<Vec<String>>,
    pub max_body_kib: Option<u64>,
    pub allowed_hosts: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub header_timeout_s: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGpu {
    /// `auto`, `off` (the driver or nothing), or `N[xMODEL]`.
    pub simulate: Option<String>,
    /// The NVIDIA library to load; default `libnvidia-ml.so.1` from the loader's path.
    pub nvml_library: Option<PathBuf>,
    pub sample_interval_ms: Option<u64>,
    pub window_s: Option<u64>,
    pub history_s: Option<u64>,
    pub hpc_job_mapping_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub dir: Option<PathBuf>,
    pub policy: Option<String>,
    pub parser: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_jobs: Option<usize>,
    #[serde(default)]
    pub settings: BTreeMap<String, RawPluginSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginSettings {
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_jobs: Option<usize>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub read_only_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub http_base_urls: Vec<String>,
}

