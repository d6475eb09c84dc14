//! Provider instances (`[providers.NAME]`): a provider plugin, the one base URL it may reach, the
//! credential the host gives it, and how often its jobs are asked about. The plugin is the same
//! component for every instance; each call runs under the instance's own grants, so two Slurm
//! clusters configured side by side never see each other's token.
//!
//! This part knows nothing of jobs or the scheduler: it answers calls and keeps each instance's
//! health. The scheduler's remote jobs (`scheduler/remote.rs`) drives attempts with it.

pub mod catalog;

use crate::plugin::{HttpsTrust, PluginError, PluginGrants, PluginLimits, PluginRuntime, PluginSettings, ProviderCall, ProviderError, ProviderReply};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where an instance's credential comes from. Read once, when the daemon starts.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenSource {
    File(PathBuf),
    Env(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub plugin: String,
    pub base_url: String,
    /// A second URL the plugin may reach: the cloud's own API, where the jobs go elsewhere
    /// (Tencent Cloud TKE's API beside the cluster's API server at `base_url`).
    pub api_url: Option<String>,
    pub token: Option<TokenSource>,
    /// A second credential: the key that signs calls to `api_url`.
    pub secret: Option<TokenSource>,
    /// PEM: the CA the instance's `https` base URL is checked against instead of the public
    /// roots (a cluster's own); `api_url` is checked against the public roots.
    pub ca_file: Option<PathBuf>,
    /// Each call's deadline.
    pub timeout: Duration,
    /// A job's status is asked after `poll_min`, then less often while nothing changes, up to
    /// `poll_max`: 200 jobs in flight cost a few calls a second, not a storm.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Given to the plugin as environment variables, names in upper case (`partition` →
    /// `PARTITION`).
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("providers.{provider}.{kind}_file: {path}: {source}")]
    TokenFile { provider: String, kind: &'static str, path: PathBuf, source: std::io::Error },
    #[error("providers.{provider}.{kind}_file: {path} can be read by other users (mode {mode:o}); make it 0600 or 0400")]
    TokenReadable { provider: String, kind: &'static str, path: PathBuf, mode: u32 },
    #[error("providers.{provider}.{kind}_env: the daemon's environment has no {var}")]
    TokenEnv { provider: String, kind: &'static str, var: String },
    #[error("providers.{provider}.ca_file: {source}")]
    Ca { provider: String, source: crate::tls::TlsError },
}

/// Why a call did not get the provider's answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no provider '{0}' is configured")]
    Unknown(String),
    #[error("provider {provider}: plugin {plugin} is not loaded")]
    NoPlugin { provider: String, plugin: String },
    #[error("provider {provider}: {source}")]
    Plugin { provider: String, source: PluginError },
}

struct Instance {
    config: ProviderConfig,
    settings: PluginSettings,
    health: Mutex<Health>,
}

#[derive(Clone, Debug, Default)]
struct Health {
    calls: u64,
    failures: u64,
    last_error: Option<String>,
    last_ok_ms: Option<u64>,
}

/// One row of `gantry providers` and `GET /api/v1/providers`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ProviderStatus {
    pub name: String,
    pub plugin: String,
    pub base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// `ok` after a call answered; `failing` after the last call failed; `quarantined` while the
    /// plugin is; `unknown` before the first call; `missing` when the plugin is not loaded.
    pub state: &'static str,
    pub calls: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// When a call last answered (ms since the Unix epoch).
    pub last_ok_ms: Option<u64>,
    pub poll_ms: u64,
    pub poll_max_ms: u64,
    /// The options given to the plugin, by name (their values may be site details, not secrets,
    /// and are shown; the token and the secret never are).
    pub options: BTreeMap<String, String>,
}

pub struct Providers {
    runtime: Arc<PluginRuntime>,
    instances: BTreeMap<String, Instance>,
    /// This node's name in attempt keys, so two daemons sharing a cluster never take each
    /// other's jobs for their own.
    node: String,
}

impl Providers {
    /// Reads each instance's credential and CA. Blocking (file reads).
    pub fn new(runtime: Arc<PluginRuntime>, configs: &[ProviderConfig], node: &str) -> Result<Providers, ProvidersError> {
        let mut instances = BTreeMap::new();
        for config in configs {
            let mut env: Vec<(String, String)> = config.options.iter().map(|(k, v)| (k.to_ascii_uppercase(), v.clone())).collect();
            env.push(("BASE_URL".into(), config.base_url.clone()));
            env.extend(config.api_url.iter().map(|url| ("API_URL".to_string(), url.clone())));
            for (name, kind, source) in [("TOKEN", "token", &config.token), ("SECRET", "secret", &config.secret)] {
                if let Some(source) = source {
                    env.push((name.into(), read_token(&config.name, kind, source)?));
                }
            }
            let https_trust = match &config.ca_file {
                Some(ca) => {
                    let ca = crate::tls::client_config_only(ca).map_err(|source| ProvidersError::Ca { provider: config.name.clone(), source })?;
                    Some(HttpsTrust { ca, base_url: config.base_url.clone() })
                }
                None => None,
            };
            let http_base_urls = std::iter::once(config.base_url.clone()).chain(config.api_url.clone()).collect();
            let settings = PluginSettings {
                limits: PluginLimits { timeout: config.timeout, ..PluginLimits::default() },
                grants: PluginGrants { env, read_only_dirs: Vec::new(), http_base_urls, https_trust },
            };
            instances.insert(config.name.clone(), Instance { config: config.clone(), settings, health: Mutex::new(Health::default()) });
        }
        let node: String = node.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).take(40).collect();
        Ok(Providers { runtime, instances, node })
    }

    pub fn names(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The key of one attempt of one job on this node. Its random tail keeps a state directory
    /// made afresh (job 1 again) from taking a job an earlier one left on the cluster for its own;
    /// the key is committed with the attempt, so a restart asks with the same one.
    pub fn key(&self, job: u64, attempt: u32) -> String {
        let mut tail = [0u8; 4];
        // An all-zero tail, if the system's randomness fails, only loses that protection.
        let _ = getrandom::getrandom(&mut tail);
        let tail: String = tail.iter().map(|b| format!("{b:02x}")).collect();
        format!("gantry-{}-{job}-{attempt}-{tail}", self.node)
    }

    /// How often an instance's jobs are asked about: first, and at most.
    pub fn poll(&self, name: &str) -> (Duration, Duration) {
        self.instances.get(name).map_or((Duration::from_secs(1), Duration::from_secs(30)), |i| (i.config.poll_min, i.config.poll_max))
    }

    /// One call to an instance. The provider's own errors are in the reply; a failure of the
    /// plugin (a trap, a deadline, its quarantine) is the error.
    pub async fn call(&self, name: &str, call: ProviderCall) -> Result<ProviderReply, CallError> {
        let instance = self.instances.get(name).ok_or_else(|| CallError::Unknown(name.to_string()))?;
        let plugin = self.runtime.get(&instance.config.plugin).ok_or_else(|| CallError::NoPlugin { provider: name.to_string(), plugin: instance.config.plugin.clone() })?;
        let result = plugin.provider_with(call, &instance.settings).await;
        let mut health = instance.health.lock();
        health.calls += 1;
        match &result {
            Ok(reply) => match reply_error(reply) {
                Some(ProviderError::Transport(message)) => {
                    health.failures += 1;
                    health.last_error = Some(message.clone());
                }
                _ => {
                    health.last_error = None;
                    health.last_ok_ms = Some(crate::model::now_ms());
                }
            },
            Err(e) => {
                health.failures += 1;
                health.last_error = Some(e.to_string());
            }
        }
        result.map_err(|source| CallError::Plugin { provider: name.to_string(), source })
    }

    pub fn list(&self) -> Vec<ProviderStatus> {
        self.instances
            .values()
            .map(|i| {
                let health = i.health.lock().clone();
                let plugin = self.runtime.get(&i.config.plugin);
                let state = match plugin {
                    None => "missing",
                    Some(p) if p.quarantined() => "quarantined",
                    Some(_) if health.last_error.is_some() => "failing",
                    Some(_) if health.last_ok_ms.is_some() => "ok",
                    Some(_) => "unknown",
                };
                ProviderStatus {
                    name: i.config.name.clone(),
                    plugin: i.config.plugin.clone(),
                    base_url: i.config.base_url.clone(),
                    api_url: i.config.api_url.clone(),
                    state,
                    calls: health.calls,
                    failures: health.failures,
                    last_error: health.last_error,
                    last_ok_ms: health.last_ok_ms,
                    poll_ms: u64::try_from(i.config.poll_min.as_millis()).unwrap_or(u64::MAX),
                    poll_max_ms: u64::try_from(i.config.poll_max.as_millis()).unwrap_or(u64::MAX),
                    options: i.config.options.clone(),
                }
            })
            .collect()
    }
}

fn reply_error(reply: &ProviderReply) -> Option<&ProviderError> {
    match reply {
        ProviderReply::Job(Err(e)) | ProviderReply::Logs(Err(e)) | ProviderReply::Cost(Err(e)) | ProviderReply::Offers(Err(e)) | ProviderReply::Released(Err(e)) => Some(e),
        _ => None,
    }
}

/// A credential file must be the daemon's alone: a token for SlurmUser submits as anyone.
/// A credential of `provider`'s (`kind`: `token` or `secret`, as its keys are named).
fn read_token(provider: &str, kind: &'static str, source: &TokenSource) -> Result<String, ProvidersError> {
    match source {
        TokenSource::File(path) => {
            use std::os::unix::fs::PermissionsExt;
            let failed = |source| ProvidersError::TokenFile { provider: provider.to_string(), kind, path: path.clone(), source };
            let meta = std::fs::metadata(path).map_err(failed)?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(ProvidersError::TokenReadable { provider: provider.to_string(), kind, path: path.clone(), mode });
            }
            let text = std::fs::read_to_string(path).map_err(failed)?;
            Ok(text.trim().trim_start_matches("SLURM_JWT=").to_string())
        }
        TokenSource::Env(var) => std::env::var(var).map_err(|_| ProvidersError::TokenEnv { provider: provider.to_string(), kind, var: var.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwt");
        std::fs::write(&path, "SLURM_JWT=abc\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let source = TokenSource::File(path.clone());
        let refused = read_token("slurm", "token", &source).expect_err("refused");
        assert!(refused.to_string().contains("can be read by other users (mode 644)"), "{refused}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_token("slurm", "token", &source).expect("read"), "abc", "scontrol token's output is taken as it prints it");
    }
}
