//! Each section of `gantry.toml` checked into its part of [`super::Config`]; errors name the key.

use super::raw::{RawAuth, RawCap, RawGpu, RawQuotas, RawScheduler};
use super::{ConfigError, GpuConfig, MAX_MEMORY_MIB, MAX_TIMEOUT_MS};
use crate::auth::{AuthConfig, AuthMode};
use crate::gpu::{GpuMode, SamplerConfig, SimSpec};
use crate::model::{Budgets, Cap, GroupCap, Quotas, SchedulingRules};
use crate::plugin::PluginLimits;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reports a key's fault.
pub type Invalid<'a> = &'a dyn Fn(&str, String) -> ConfigError;

/// Seed 001's rule holds: a secret that is empty or `none`/`null`/`false` means no login. Without
/// a `mode`, a real secret means secret mode.
pub fn auth_config(raw: RawAuth, invalid: Invalid<'_>) -> Result<AuthConfig, ConfigError> {
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
        admin_group: raw.admin_group.filter(|g| !g.trim().is_empty()),
        privacy: raw.privacy.unwrap_or_default(),
        accounts_may_submit: raw.accounts_may_submit.unwrap_or(defaults.accounts_may_submit),
    })
}

/// A bare library name is left to the dynamic loader; a path is relative to the config file.
pub fn resolve_library(lib: PathBuf, base: &Path) -> PathBuf {
    if lib.components().count() > 1 && lib.is_relative() { base.join(lib) } else { lib }
}

pub fn gpu_config(raw: RawGpu, invalid: Invalid<'_>) -> Result<GpuConfig, ConfigError> {
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
    if raw.hpc_job_mapping_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(invalid("gpu.hpc_job_mapping_dir", "an empty path; leave the key out to write no mapping".into()));
    }
    Ok(GpuConfig { mode, simulate, nvml_library, sampler: SamplerConfig { interval, window, history }, hpc_job_mapping_dir: raw.hpc_job_mapping_dir })
}

pub fn scheduler_rules(raw: RawScheduler, invalid: Invalid<'_>) -> Result<SchedulingRules, ConfigError> {
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
        burst_max_wait: seconds("scheduler.burst_max_wait_s", raw.burst_max_wait_s, defaults.burst_max_wait)?,
        burst_max_price: match raw.burst_max_price_per_hour {
            Some(p) if !p.is_finite() || p < 0.0 => return Err(invalid("scheduler.burst_max_price_per_hour", format!("must be an amount >= 0, got {p}"))),
            Some(p) => Some((p, raw.burst_price_currency.unwrap_or_else(|| "USD".into()))),
            None => None,
        },
        burst_queues: raw.burst_queues,
        params: raw.params,
        quotas: Quotas::default(),
    })
}

/// A plugin's limits as written: `timeout_ms`, `memory_mib`, `max_jobs`.
pub struct RawLimits {
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_jobs: Option<usize>,
}

pub fn limits(key: &str, raw: RawLimits, inherited: &PluginLimits, invalid: Invalid<'_>) -> Result<PluginLimits, ConfigError> {
    let RawLimits { timeout_ms, memory_mib, max_jobs } = raw;
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
    let most = crate::model::limits::JOBS_PER_BATCH;
    let max_jobs = match max_jobs {
        Some(n) if n == 0 || n > most => return Err(invalid(&format!("{key}.max_jobs"), format!("must be 1..={most}, got {n}"))),
        Some(n) => n,
        None => inherited.max_jobs,
    };
    Ok(PluginLimits { timeout, memory_mib, max_jobs })
}


/// `[quotas]`. Groups are Unix groups, looked up when the file is read (a group created later
/// counts from the next reload).
pub fn quotas(raw: RawQuotas, invalid: Invalid<'_>) -> Result<Quotas, ConfigError> {
    let defaults = Quotas::default();
    let cap = |key: String, raw: RawCap| -> Result<Cap, ConfigError> {
        let memory_mib = match raw.memory_gib {
            Some(g) if !g.is_finite() || g < 0.0 => return Err(invalid(&format!("{key}.memory_gib"), format!("must be a number of GiB >= 0, got {g}"))),
            Some(g) => Some((g * 1024.0).round() as u64),
            None => None,
        };
        Ok(Cap { gpus: raw.gpus, memory_mib })
    };
    let half_life = match raw.half_life_hours {
        Some(h) if !h.is_finite() || h <= 0.0 => return Err(invalid("quotas.half_life_hours", format!("must be a number of hours > 0, got {h}"))),
        Some(h) => Duration::from_secs_f64(h * 3600.0),
        None => defaults.half_life,
    };
    let max_jobs_per_user = match raw.max_jobs_per_user {
        Some(0) => return Err(invalid("quotas.max_jobs_per_user", "must be at least 1".into())),
        Some(n) => n,
        None => defaults.max_jobs_per_user,
    };
    let budget = |key: &str, raw: &RawCap| match raw.monthly_budget {
        Some(b) if !b.is_finite() || b < 0.0 => Err(invalid(&format!("{key}.monthly_budget"), format!("must be an amount >= 0, got {b}"))),
        other => Ok(other),
    };
    let currency = raw.budget_currency.unwrap_or_else(|| "USD".into());
    if !(1..=16).contains(&currency.len()) || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid("quotas.budget_currency", format!("'{currency}' is not a currency code like USD")));
    }
    let mut budgets = Budgets { currency, default: budget("quotas.default", &raw.default)?, ..Budgets::default() };
    let mut users = std::collections::BTreeMap::new();
    for (name, raw_cap) in raw.users {
        let key = format!("quotas.users.{name}");
        if let Some(b) = budget(&key, &raw_cap)? {
            budgets.users.insert(name.clone(), b);
        }
        users.insert(name.clone(), cap(key, raw_cap)?);
    }
    let mut groups = Vec::new();
    for (name, raw_cap) in raw.groups {
        let key = format!("quotas.groups.{name}");
        let gid = crate::unix::users::group_gid(&name).map_err(|e| invalid(&key, e.to_string()))?;
        if let Some(b) = budget(&key, &raw_cap)? {
            budgets.groups.push((name.clone(), gid, b));
        }
        groups.push(GroupCap { name, gid, cap: cap(key, raw_cap)? });
    }
    Ok(Quotas { default: cap("quotas.default".into(), raw.default)?, users, groups, half_life, max_jobs_per_user, budgets })
}

/// `[federation]`, with `ca_cert` already resolved against the configuration file's directory.
pub fn federation(raw: super::raw::RawFederation, ca_cert: Option<std::path::PathBuf>, invalid: Invalid<'_>) -> Result<crate::federation::FederationConfig, ConfigError> {
    let defaults = crate::federation::FederationConfig::default();
    let seconds = |key: &str, value: Option<f64>, default: Duration| match value {
        Some(s) if !s.is_finite() || !(0.1..=3600.0).contains(&s) => Err(invalid(key, format!("must be 0.1 to 3600 seconds, got {s}"))),
        Some(s) => Ok(Duration::from_secs_f64(s)),
        None => Ok(default),
    };
    if let Some(master) = &raw.master
        && let Err(e) = crate::model::BaseUrl::parse(master)
    {
        return Err(invalid("federation.master", e));
    }
    if raw.master.is_some() && raw.token.is_none() {
        return Err(invalid("federation.token", "a node reports with the token its master issued (`gantry node add NAME` on the master)".into()));
    }
    if raw.accept_from_master {
        let clear = raw.master.as_deref().and_then(|m| crate::model::BaseUrl::parse(m).ok()).is_none_or(|url| !url.secure && !url.is_loopback());
        if clear {
            return Err(invalid(
                "federation.accept_from_master",
                "needs a master to report to over https:// (or on loopback): the key that lets the master act for this node's users travels in the reports".into(),
            ));
        }
    }
    Ok(crate::federation::FederationConfig {
        accept_from_master: raw.accept_from_master,
        master: raw.master,
        node_name: raw.node_name.unwrap_or(defaults.node_name),
        token: raw.token,
        report_interval: seconds("federation.report_interval_s", raw.report_interval_s, defaults.report_interval)?,
        offline_after: seconds("federation.offline_after_s", raw.offline_after_s, defaults.offline_after)?,
        refresh_interval: seconds("federation.refresh_interval_s", raw.refresh_interval_s, defaults.refresh_interval)?,
        slaves: slaves(raw.slaves, raw.slave_port.unwrap_or(SLAVE_PORT), invalid)?,
        ca_cert,
    })
}

/// Seed 003's default slave port.
const SLAVE_PORT: u16 = 5001;
/// A federation is a handful of servers; beyond that, gantry hands work to Slurm or Kubernetes.
const MAX_SLAVES: usize = 256;

fn slaves(raw: Vec<super::raw::RawSlave>, default_port: u16, invalid: Invalid<'_>) -> Result<Vec<crate::federation::Slave>, ConfigError> {
    if raw.len() > MAX_SLAVES {
        return Err(invalid("federation.slaves", format!("{} slaves; a federation pulls at most {MAX_SLAVES}", raw.len())));
    }
    let mut slaves: Vec<crate::federation::Slave> = Vec::with_capacity(raw.len());
    for (i, slave) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("federation.slaves[{i}].{field}");
        // Seed 003 names slaves for people ("GPU server 1"); a name is also a path segment.
        if slave.name.trim().is_empty() || slave.name.len() > 64 || slave.name.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(&key("name"), format!("'{}' is not a slave name (1 to 64 characters, no '/')", slave.name)));
        }
        if slaves.iter().any(|s| s.name == slave.name) {
            return Err(invalid(&key("name"), format!("'{}' is listed twice", slave.name)));
        }
        let (address, url) = match (slave.ip, slave.url) {
            (Some(ip), None) => {
                if ip.is_empty() || ip.len() > 253 || !ip.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)) {
                    return Err(invalid(&key("ip"), format!("'{ip}' is not an address or host name")));
                }
                if slave.port == Some(0) {
                    return Err(invalid(&key("port"), "0 is not a port".into()));
                }
                let url = crate::model::BaseUrl { secure: false, host: ip.clone(), port: Some(slave.port.unwrap_or(default_port)) }.url();
                (ip, url)
            }
            (None, Some(url)) if slave.port.is_none() => {
                let host = crate::model::BaseUrl::parse(&url).map_err(|e| invalid(&key("url"), e))?.host;
                (host, url.trim_end_matches('/').to_string())
            }
            (None, Some(_)) => return Err(invalid(&key("port"), "a slave's `url` names its port".into())),
            _ => return Err(invalid(&key("ip"), "a slave has an `ip` (and maybe a `port`) or a `url`, one of the two".into())),
        };
        slaves.push(crate::federation::Slave { name: slave.name, address, url, token: slave.token });
    }
    Ok(slaves)
}

/// `[providers.NAME]`, checked: the plugin it instantiates, the URLs it may reach (its
/// `base_url`, and the cloud's own API as `api_url` where the two differ), where its credentials
/// come from (read when the daemon starts, never stored with a job), and how often it is asked
/// about its jobs.
pub fn provider(name: String, raw: super::raw::RawProvider, resolve: &dyn Fn(PathBuf) -> PathBuf, invalid: Invalid<'_>) -> Result<crate::providers::ProviderConfig, ConfigError> {
    use crate::providers::{ProviderConfig, TokenSource};
    let key = |field: &str| format!("providers.{name}.{field}");
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(&format!("providers.{name}"), "a provider's name is 1 to 64 letters, digits, '-' or '_'".into()));
    }
    let plugin = raw.plugin.ok_or_else(|| invalid(&key("plugin"), "missing: the provider plugin this instance runs, e.g. \"provider-slurm\"".into()))?;
    let base_url = raw.base_url.ok_or_else(|| invalid(&key("base_url"), "missing: the API this provider talks to, e.g. \"http://slurm-head:6820\"".into()))?;
    let url = |field: &str, url: &str| match url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => Ok(()),
        _ => Err(invalid(&key(field), format!("'{url}' is not an http(s) URL"))),
    };
    url("base_url", &base_url)?;
    if let Some(api_url) = &raw.api_url {
        url("api_url", api_url)?;
    }
    let credential = |kind: &str, file: Option<PathBuf>, var: Option<String>| match (file, var) {
        (Some(_), Some(_)) => Err(invalid(&key(&format!("{kind}_env")), format!("give {kind}_file or {kind}_env, not both"))),
        (Some(file), None) => Ok(Some(TokenSource::File(resolve(file)))),
        (None, Some(var)) => Ok(Some(TokenSource::Env(var))),
        (None, None) => Ok(None),
    };
    let token = credential("token", raw.token_file, raw.token_env)?;
    let secret = credential("secret", raw.secret_file, raw.secret_env)?;
    if raw.ca_file.is_some() && !base_url.starts_with("https://") {
        return Err(invalid(&key("ca_file"), format!("a CA is for an https base_url, and '{base_url}' is not one")));
    }
    let ca_file = raw.ca_file.map(resolve);
    let ms = |field: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| match value.unwrap_or(default) {
        v if range.contains(&v) => Ok(Duration::from_millis(v)),
        v => Err(invalid(&key(field), format!("must be {}..={}, got {v}", range.start(), range.end()))),
    };
    let timeout = ms("timeout_ms", raw.timeout_ms, 10_000, 1..=MAX_TIMEOUT_MS)?;
    let poll_min = ms("poll_ms", raw.poll_ms, 1_000, 100..=600_000)?;
    let poll_max = ms("poll_max_ms", raw.poll_max_ms, 30_000, 100..=3_600_000)?;
    if poll_max < poll_min {
        return Err(invalid(&key("poll_max_ms"), "must be at least poll_ms".into()));
    }
    for option in raw.options.keys() {
        if option.is_empty() || !option.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || RESERVED_OPTIONS.contains(&option.as_str()) {
            return Err(invalid(&key(&format!("options.{option}")), format!("an option's name is letters, digits and '_', and not {}", RESERVED_OPTIONS.join(", "))));
        }
    }
    let options = raw.options.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let api_url = raw.api_url.map(|u| u.trim_end_matches('/').to_string());
    Ok(ProviderConfig { name, plugin, base_url, api_url, token, secret, ca_file, timeout, poll_min, poll_max, options })
}

/// The names the host gives a provider plugin its own settings under: no option may take them.
const RESERVED_OPTIONS: &[&str] = &["base_url", "api_url", "token", "secret"];
