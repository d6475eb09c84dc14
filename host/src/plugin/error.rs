//! What can go wrong loading or calling a plugin. Every variant names the plugin (or its file),
//! because an operator reading a log line must know which component to fix.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{origin}: not a valid WebAssembly component: {message}")]
    Compile { origin: String, message: String },

    #[error("{origin}: exports no gantry:plugin interface; is it a gantry plugin built for wasm32-wasip2?")]
    NotAPlugin { origin: String },

    #[error(
        "{origin}: built for gantry:plugin@{found}, but this gantry speaks gantry:plugin@{needed}; \
         rebuild the plugin against wit/gantry.wit version {needed}"
    )]
    IncompatibleVersion { origin: String, found: String, needed: String },

    #[error("{origin}: cannot be instantiated: {message}")]
    Instantiate { origin: String, message: String },

    #[error("plugin {plugin}: call exceeded its deadline of {limit:?}")]
    Timeout { plugin: String, limit: Duration },

    #[error("plugin {plugin}: exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit { plugin: String, limit_mib: u64 },

    #[error("plugin {plugin}: trapped: {message}")]
    Trap { plugin: String, message: String },

    #[error("plugin {plugin}: returned an error: {message}")]
    Returned { plugin: String, message: String },

    #[error("plugin {plugin}: returned more than it may: {what}")]
    Oversized { plugin: String, what: String },

    #[error("plugin {plugin} failed recently and is quarantined for {seconds} s more (last failure: {last})")]
    Quarantined { plugin: String, seconds: u64, last: String },

    #[error("{origin}: refused: {message}")]
    BadIdentity { origin: String, message: String },

    #[error("{origin}: says it is {name}, the name of the loaded {holder} plugin; a {kind} plugin can't replace it")]
    NameTaken { origin: String, name: String, holder: &'static str, kind: &'static str },

    #[error("{origin}: compiling took longer than {limit:?}; it was abandoned")]
    CompileTimeout { origin: String, limit: Duration },

    #[error("plugin {plugin}: failed its check after loading: {message}")]
    FailedCheck { plugin: String, message: String },

    #[error("plugin {plugin} is a {actual} plugin, not a {wanted} plugin")]
    WrongKind { plugin: String, wanted: &'static str, actual: &'static str },

    #[error("no plugin named {name} is loaded")]
    NotLoaded { name: String },

    #[error("plugin cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },

    #[error("watching {path}: {message}")]
    Watch { path: PathBuf, message: String },

    #[error("plugin engine: {0}")]
    Engine(String),
}
