//! `gantry.toml` as the API changes it: scheduling rules (seed 001/004's `/api/config`, hot) and
//! settings (seed 001's `/api/settings`, at the next start). An edit touches only the keys it
//! names, keeps every comment and the layout, is checked as a whole configuration before it is
//! written, and is written atomically: a refused edit leaves the file as it was.

use super::{Config, ConfigError};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("`{key}`: {message}")]
    Field { key: String, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn field(key: &str, message: impl Into<String>) -> EditError {
    EditError::Field { key: key.to_string(), message: message.into() }
}

/// What a key's value must be.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bool,
    Count,
    Seconds,
    Text,
    Counts,
    Texts,
    TextMap,
}

impl Kind {
    fn check(self, key: &str, value: &Value) -> Result<(), EditError> {
        let ok = match self {
            Kind::Bool => value.is_boolean(),
            Kind::Count => value.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
            Kind::Seconds => value.as_f64().is_some_and(|n| n >= 0.0),
            Kind::Text => value.is_string(),
            Kind::Counts => value.as_array().is_some_and(|a| a.iter().all(|v| v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)))),
            Kind::Texts => value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::TextMap => value.as_object().is_some_and(|o| o.values().all(Value::is_string)),
        };
        let wanted = match self {
            Kind::Bool => "true or false",
            Kind::Count => "a whole number >= 0",
            Kind::Seconds => "a number of seconds >= 0",
            Kind::Text => "a string",
            Kind::Counts => "a list of whole numbers",
            Kind::Texts => "a list of strings",
            Kind::TextMap => "an object of strings",
        };
        if ok || value.is_null() { Ok(()) } else { Err(field(key, format!("must be {wanted} (or null for the default), got {value}"))) }
    }
}

/// Seed 004's rule keys (and gantry's), each stored under `[scheduler]` with the same name.
/// `retry_config` is seed 004's nesting of two of them.
const RULES: &[(&str, Kind)] = &[
    ("check_time", Kind::Seconds),
    ("maximize_resource_utilization", Kind::Bool),
    ("memory_save_mode", Kind::Bool),
    ("compete_gpus", Kind::Counts),
    ("use_all_gpus", Kind::Bool),
    ("gpu_left", Kind::Count),
    ("min_gpu", Kind::Count),
    ("max_gpu", Kind::Count),
    ("work_dir", Kind::Text),
    ("gpu_command_file", Kind::Text),
    ("gpus_command_file", Kind::Text),
    ("max_retry_before_backoff", Kind::Count),
    ("backoff_duration", Kind::Seconds),
    ("memory_margin_mib", Kind::Count),
    ("retries", Kind::Count),
    ("cancel_grace_s", Kind::Seconds),
    ("log_max_mib", Kind::Count),
    ("log_keep", Kind::Count),
    ("params", Kind::TextMap),
];

/// The rules in seed 004's shape, from a validated configuration.
pub fn rules_json(config: &Config) -> Value {
    let r = &config.scheduler;
    json!({
        "check_time": config.check_time_s,
        "maximize_resource_utilization": r.allow_sharing,
        "memory_save_mode": r.memory_save_mode,
        "compete_gpus": r.eligible_gpus,
        "use_all_gpus": r.eligible_gpus.is_none(),
        "gpu_left": r.gpu_left,
        "min_gpu": r.min_gpu,
        "max_gpu": r.max_gpu,
        "work_dir": config.work_dir,
        "gpu_command_file": config.command_files.single,
        "gpus_command_file": config.command_files.multi,
        "retry_config": {
            "max_retry_before_backoff": r.max_retry_before_backoff,
            "backoff_duration": r.backoff.as_secs_f64(),
        },
        "memory_margin_mib": r.memory_margin_mib,
        "retries": r.default_retries,
        "cancel_grace_s": r.cancel_grace.as_secs_f64(),
        "log_max_mib": r.log_max_bytes >> 20,
        "log_keep": r.log_keep,
        "params": r.params,
    })
}

/// One configurable setting as seed 001 lists it.
struct Setting {
    name: &'static str,
    /// Where it lives in the file; `None` for the derived ones (`port`, `bind-address`,
    /// `allow-lan` are parts of `server.listen`; `target-yaml-path` is the file itself).
    key: Option<(&'static str, &'static str)>,
    kind: Kind,
    warning: Option<&'static str>,
    description: &'static str,
}

const SETTINGS: &[Setting] = &[
    Setting { name: "target-yaml-path", key: None, kind: Kind::Text, warning: None, description: "The configuration file these settings and the rules are written to (read-only: start gantry with --config to use another)" },
    Setting { name: "log-dir", key: Some(("server", "log_dir")), kind: Kind::Text, warning: None, description: "Directory of the daemon's pid file and run log" },
    Setting { name: "port", key: None, kind: Kind::Count, warning: Some("the new port is used from the next start; the CLI finds it in daemon.json"), description: "Port the API listens on (the next free one if it is taken)" },
    Setting { name: "bind-address", key: None, kind: Kind::Text, warning: Some("an address beyond loopback needs auth mode secret or users"), description: "Address the API listens on" },
    Setting { name: "allow-lan", key: None, kind: Kind::Bool, warning: Some("listening on the network needs auth mode secret or users"), description: "Listen on every interface (0.0.0.0) instead of loopback" },
    Setting { name: "log-level", key: Some(("server", "log_level")), kind: Kind::Text, warning: None, description: "Daemon log level: error, warn, info, debug or trace" },
    Setting { name: "secret", key: Some(("auth", "secret")), kind: Kind::Text, warning: Some("a new secret ends every session"), description: "Access secret of auth mode secret (empty: no login, as in seed 001)" },
    Setting { name: "auth-mode", key: Some(("auth", "mode")), kind: Kind::Text, warning: Some("changing how people log in ends every session"), description: "none, secret or users" },
    Setting { name: "allow-register", key: Some(("auth", "allow_register")), kind: Kind::Bool, warning: None, description: "Users mode: anyone may register (else admins create accounts)" },
    Setting {
        name: "accounts-may-submit",
        key: Some(("auth", "accounts_may_submit")),
        kind: Kind::Bool,
        warning: Some("every account that may submit then runs commands as the daemon's own Unix user, with its rights"),
        description: "Unless this is a system daemon (jobs run as their submitter), let web accounts that are not admins submit jobs, which run as the daemon's user",
    },
    Setting { name: "privacy", key: Some(("auth", "privacy")), kind: Kind::Text, warning: None, description: "closed: users see that others' jobs exist, not their commands, environments or logs; open: everyone sees everything" },
    Setting { name: "tls-cert", key: Some(("server", "tls_cert")), kind: Kind::Text, warning: Some("set with tls-key; clients then name this daemon https://"), description: "Certificate chain (PEM) the TCP listener serves HTTPS with" },
    Setting { name: "tls-key", key: Some(("server", "tls_key")), kind: Kind::Text, warning: Some("set with tls-cert"), description: "Private key (PEM) of tls-cert" },
    Setting { name: "cors-origins", key: Some(("server", "cors_origins")), kind: Kind::Texts, warning: None, description: "Origins a browser may call the API from (* for any)" },
    Setting { name: "max-body-kib", key: Some(("server", "max_body_kib")), kind: Kind::Count, warning: None, description: "Largest request body accepted, KiB" },
    Setting { name: "policy", key: Some(("plugins", "policy")), kind: Kind::Text, warning: None, description: "The GPU selection policy plugin" },
    Setting { name: "parser", key: Some(("plugins", "parser")), kind: Kind::Text, warning: None, description: "The command-file parser plugin" },
    Setting { name: "plugin-timeout-ms", key: Some(("plugins", "timeout_ms")), kind: Kind::Count, warning: None, description: "Time limit of each plugin call" },
    Setting { name: "plugin-memory-mib", key: Some(("plugins", "memory_mib")), kind: Kind::Count, warning: None, description: "Memory limit of each plugin instance" },
    Setting { name: "gpu-simulate", key: Some(("gpu", "simulate")), kind: Kind::Text, warning: Some("switching between real and simulated GPUs changes what running jobs are matched against"), description: "auto, off, N or NxMODEL" },
    Setting { name: "sample-interval-ms", key: Some(("gpu", "sample_interval_ms")), kind: Kind::Count, warning: None, description: "How often every GPU is sampled" },
];

/// The settings that apply at once: the scheduler asks the policy it is told of per pass.
const HOT: &[&str] = &["policy"];

/// Every setting with its saved value, `requires_restart`, warning and description. Settings
/// take effect at the next start, except [`HOT`] ones (and rules, the hot part of the file).
pub fn settings_json(config: &Config) -> Value {
    let mut out = Map::new();
    for s in SETTINGS {
        let value = match s.name {
            "target-yaml-path" => json!(config.path()),
            "log-dir" => json!(config.server.log_dir),
            "port" => json!(config.listen.port()),
            "bind-address" => json!(config.listen.ip().to_string()),
            "allow-lan" => json!(config.listen.ip().is_unspecified()),
            "log-level" => json!(config.server.log_level),
            // Never shown: only whether there is one.
            "secret" => json!(if config.auth.secret.is_some() { "******" } else { "" }),
            "auth-mode" => json!(config.auth.mode),
            "allow-register" => json!(config.auth.allow_register),
            "accounts-may-submit" => json!(config.auth.accounts_may_submit),
            "privacy" => json!(config.auth.privacy),
            "tls-cert" => json!(config.server.tls.as_ref().map(|t| &t.cert)),
            "tls-key" => json!(config.server.tls.as_ref().map(|t| &t.key)),
            "cors-origins" => json!(config.server.cors_origins),
            "max-body-kib" => json!(config.server.max_body_bytes / 1024),
            "policy" => json!(config.plugins.policy),
            "parser" => json!(config.plugins.parser),
            "plugin-timeout-ms" => json!(config.plugins.defaults.limits.timeout.as_millis() as u64),
            "plugin-memory-mib" => json!(config.plugins.defaults.limits.memory_mib),
            "gpu-simulate" => json!(config.gpu.simulate),
            "sample-interval-ms" => json!(config.gpu.sampler.interval.as_millis() as u64),
            _ => Value::Null,
        };
        out.insert(
            s.name.into(),
            json!({ "value": value, "requires_restart": !HOT.contains(&s.name) && (s.key.is_some() || s.name != "target-yaml-path"), "warning": s.warning, "description": s.description }),
        );
    }
    Value::Object(out)
}

/// What a settings change said: which keys wait for a restart, and their warnings.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SettingsChange {
    pub message: String,
    pub requires_restart: Vec<String>,
    pub warnings: Vec<String>,
}

/// The configuration file, and one edit at a time.
pub struct ConfigFile {
    path: PathBuf,
    lock: parking_lot::Mutex<()>,
}

impl ConfigFile {
    pub fn new(path: PathBuf) -> Self {
        ConfigFile { path, lock: parking_lot::Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as the next start would read it (the embedded defaults while it does not exist).
    pub fn load(&self, fallback: &Config) -> Result<Config, EditError> {
        if self.path.exists() { Ok(Config::load(&self.path)?) } else { Ok(Config { source: Some(self.path.clone()), ..fallback.clone() }) }
    }

    fn file_error(&self, e: impl std::fmt::Display) -> EditError {
        EditError::File { path: self.path.clone(), message: e.to_string() }
    }

    /// Applies `change` to the document, checks the result as a whole configuration, and only
    /// then replaces the file.
    fn edit(&self, change: impl FnOnce(&mut DocumentMut) -> Result<(), EditError>) -> Result<Config, EditError> {
        let _one_at_a_time = self.lock.lock();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(self.file_error(e)),
        };
        let mut doc: DocumentMut = text.parse().map_err(|e| self.file_error(e))?;
        change(&mut doc)?;
        let text = doc.to_string();
        let config = Config::parse(&self.path, &text)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.file_error(e))?;
        }
        let temp = self.path.with_extension("toml.tmp");
        std::fs::write(&temp, text).map_err(|e| self.file_error(e))?;
        if config.auth.secret.is_some() {
            // The secret is a credential: only the daemon's user may read the file holding it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).map_err(|e| self.file_error(e))?;
        }
        std::fs::rename(&temp, &self.path).map_err(|e| self.file_error(e))?;
        Ok(config)
    }

    /// Seed 004's rules: each key given is set (null: back to its default), the rest untouched.
    pub fn put_rules(&self, changes: &Map<String, Value>) -> Result<Config, EditError> {
        let mut flat = Vec::new();
        for (key, value) in changes {
            if key == "retry_config" {
                let nested = value.as_object().ok_or_else(|| field(key, "must be an object with max_retry_before_backoff and backoff_duration"))?;
                for (inner, value) in nested {
                    if !matches!(inner.as_str(), "max_retry_before_backoff" | "backoff_duration") {
                        return Err(field(&format!("retry_config.{inner}"), "not a retry setting (max_retry_before_backoff, backoff_duration)"));
                    }
                    flat.push((inner.as_str(), value));
                }
                continue;
            }
            flat.push((key.as_str(), value));
        }
        let mut checked = Vec::new();
        for (key, value) in flat {
            let (name, kind) = RULES.iter().find(|(name, _)| *name == key).ok_or_else(|| {
                field(key, format!("not a rule; the rules are {} and retry_config", RULES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")))
            })?;
            kind.check(name, value)?;
            checked.push((*name, value.clone()));
        }
        self.edit(move |doc| {
            let table = section(doc, "scheduler");
            for (name, value) in checked {
                match name {
                    // Written as the flat keys, which win over the nested table.
                    "max_retry_before_backoff" | "backoff_duration" => drop_retry_key(table, name),
                    "maximize_resource_utilization" => {
                        table.remove("allow_sharing");
                    }
                    _ => {}
                }
                set(table, name, &value);
            }
            Ok(())
        })
    }

    /// Seed 001's settings, each with whether it waits for a restart.
    pub fn put_settings(&self, changes: &Map<String, Value>, current: &Config) -> Result<(Config, SettingsChange), EditError> {
        let mut requires_restart = Vec::new();
        let mut warnings = Vec::new();
        for (name, value) in changes {
            let setting = SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
                field(name, format!("not a setting; the settings are {}", SETTINGS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")))
            })?;
            if setting.name == "target-yaml-path" {
                return Err(field(name, "is read-only: start gantry with --config to edit another file"));
            }
            setting.kind.check(name, value)?;
            if !HOT.contains(&setting.name) {
                requires_restart.push(name.clone());
            }
            warnings.extend(setting.warning.map(String::from));
        }
        let mut listen = current.listen;
        let config = self.edit(|doc| {
            let mut listen_changed = false;
            for (name, value) in changes {
                let setting = SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| field(name, "not a setting"))?;
                match (setting.key, name.as_str()) {
                    (Some((section_name, key)), _) => set(section(doc, section_name), key, value),
                    (None, "port") => {
                        listen.set_port(value.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| field(name, "must be a port number 0-65535"))?);
                        listen_changed = true;
                    }
                    (None, "bind-address") => {
                        let text = value.as_str().unwrap_or_default();
                        listen.set_ip(text.parse().map_err(|_| field(name, format!("'{text}' is not an IP address")))?);
                        listen_changed = true;
                    }
                    (None, "allow-lan") => {
                        let open = value.as_bool().unwrap_or(false);
                        listen.set_ip(if open { [0, 0, 0, 0].into() } else { [127, 0, 0, 1].into() });
                        listen_changed = true;
                    }
                    _ => return Err(field(name, "is read-only")),
                }
            }
            if listen_changed {
                set(section(doc, "server"), "listen", &json!(listen.to_string()));
            }
            Ok(())
        })?;
        let message = if requires_restart.is_empty() { "settings saved and applied" } else { "settings saved; those in requires_restart apply at the next start" };
        Ok((config, SettingsChange { message: message.into(), requires_restart, warnings }))
    }
}

/// The `[name]` table, made if missing.
fn section<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut Table {
    let item = doc.entry(name).or_insert_with(toml_edit::table);
    if !item.is_table() {
        *item = toml_edit::table();
    }
    item.as_table_mut().unwrap_or_else(|| unreachable!("made a table just above"))
}

fn drop_retry_key(table: &mut Table, key: &str) {
    if let Some(retry) = table.get_mut("retry_config").and_then(Item::as_table_like_mut) {
        retry.remove(key);
        if retry.is_empty() {
            table.remove("retry_config");
        }
    }
}

/// Sets `key` (null removes it), keeping the comment that trails the old value.
fn set(table: &mut Table, key: &str, value: &Value) {
    let Some(mut new) = to_toml(value) else {
        table.remove(key);
        return;
    };
    match table.get_mut(key) {
        // Assigning the item keeps the key, and with it the comment lines above it.
        Some(item) => {
            if let Some(old) = item.as_value() {
                *new.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(new);
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
}

fn to_toml(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items {
                array.push(to_toml(item)?);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                table.insert(k, to_toml(v)?);
            }
            table.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, ConfigFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.toml");
        std::fs::write(&path, text).expect("write");
        (dir, ConfigFile::new(path))
    }

    fn obj(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn a_rule_edit_keeps_comments_and_other_keys() {
        let (_dir, file) = file("# top comment\n[scheduler]\n# how many GPUs\nmax_gpu = 8 # eight\nallow_sharing = true\n\n[server]\nlisten = \"127.0.0.1:9000\"\n");
        let config = file.put_rules(&obj(json!({"max_gpu": 4, "maximize_resource_utilization": false, "retry_config": {"backoff_duration": 12}}))).expect("edit");
        assert_eq!((config.scheduler.max_gpu, config.scheduler.allow_sharing, config.scheduler.backoff.as_secs()), (4, false, 12));
        let text = std::fs::read_to_string(file.path()).expect("read");
        for kept in ["# top comment", "# how many GPUs", "max_gpu = 4 # eight", "listen = \"127.0.0.1:9000\""] {
            assert!(text.contains(kept), "{kept} is gone from:\n{text}");
        }
        assert!(!text.contains("allow_sharing"), "the alias would clash:\n{text}");
        assert_eq!(rules_json(&config)["retry_config"]["backoff_duration"], json!(12.0));
    }

    #[test]
    fn a_refused_edit_names_the_key_and_leaves_the_file() {
        let original = "[scheduler]\nmin_gpu = 2\n";
        let (_dir, file) = file(original);
        let err = file.put_rules(&obj(json!({"min_gpu": "two"}))).expect_err("type");
        assert!(err.to_string().contains("`min_gpu`"), "{err}");
        let err = file.put_rules(&obj(json!({"max_gpu": 1}))).expect_err("max below min");
        assert!(err.to_string().contains("scheduler.max_gpu"), "{err}");
        let err = file.put_rules(&obj(json!({"gpus": 1}))).expect_err("unknown");
        assert!(err.to_string().contains("`gpus`: not a rule"), "{err}");
        assert_eq!(std::fs::read_to_string(file.path()).expect("read"), original);
    }

    #[test]
    fn settings_edit_the_listen_address_and_say_they_wait_for_a_restart() {
        let (_dir, file) = file("[server]\nlisten = \"127.0.0.1:7070\"\n");
        let current = file.load(&Config::defaults()).expect("load");
        let (config, change) = file.put_settings(&obj(json!({"port": 29215, "log-level": "debug"})), &current).expect("edit");
        assert_eq!(config.listen.port(), 29215);
        assert_eq!(config.server.log_level, "debug");
        assert_eq!(change.requires_restart, vec!["log-level".to_string(), "port".to_string()]);
        assert_eq!(settings_json(&config)["port"]["value"], json!(29215));
        let (config, change) = file.put_settings(&obj(json!({"policy": "policy-spread"})), &config).expect("policy");
        assert_eq!((config.plugins.policy.as_str(), change.requires_restart.len(), change.message.as_str()), ("policy-spread", 0, "settings saved and applied"));
        assert_eq!(settings_json(&config)["policy"]["requires_restart"], json!(false));
        assert_eq!(settings_json(&config)["port"]["requires_restart"], json!(true));
        let err = file.put_settings(&obj(json!({"log-level": "loud"})), &config).expect_err("bad level");
        assert!(err.to_string().contains("server.log_level"), "{err}");
        let err = file.put_settings(&obj(json!({"target-yaml-path": "/x"})), &config).expect_err("read-only");
        assert!(err.to_string().contains("read-only"), "{err}");
        use std::os::unix::fs::PermissionsExt;
        file.put_settings(&obj(json!({"secret": "s3cret"})), &config).expect("secret");
        assert_eq!(std::fs::metadata(file.path()).expect("meta").permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn tls_is_set_as_a_certificate_and_its_key_together() {
        let (_dir, file) = file("[server]\nlisten = \"127.0.0.1:7070\"\n");
        let current = file.load(&Config::defaults()).expect("load");
        let before = std::fs::read_to_string(file.path()).expect("read");
        let err = file.put_settings(&obj(json!({"tls-cert": "/etc/gantry/cert.pem"})), &current).expect_err("a certificate alone");
        assert!(err.to_string().contains("server.tls_key"), "{err}");
        assert_eq!(std::fs::read_to_string(file.path()).expect("read"), before, "a refused edit leaves the file");
        let (config, change) = file.put_settings(&obj(json!({"tls-cert": "/etc/gantry/cert.pem", "tls-key": "/etc/gantry/key.pem"})), &current).expect("both");
        assert_eq!(change.requires_restart, vec!["tls-cert".to_string(), "tls-key".to_string()]);
        assert_eq!(settings_json(&config)["tls-key"]["value"], json!("/etc/gantry/key.pem"));
        assert_eq!(settings_json(&current)["tls-cert"]["value"], json!(null));
    }
}
