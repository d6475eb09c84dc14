//! What `gantryd` runs itself: the commands that need the runtime (the daemon, wasmtime for
//! plugins and parsers, NVML). Their arguments are defined with the rest of the command line in
//! `cli::local`, so both binaries know them.

mod gpus;
mod parse;
mod plugin;
mod project;
mod replay;
mod serve;
mod trace;

use crate::cli::local::{Local, LocalCommand};
use crate::cli::{init_tracing, load_config};
use std::process::ExitCode;

/// Where a system daemon keeps its state.
const SYSTEM_STATE_DIR: &str = "/var/lib/gantry";

pub fn run(local: Local) -> anyhow::Result<ExitCode> {
    // The daemon's compiler process needs no configuration (the daemon's may be elsewhere), and
    // its standard error is its answer: nothing else is said there.
    if let LocalCommand::Plugin(crate::cli::local::PluginCommand::Precompile { cache_dir }) = &local.command {
        return plugin::precompile(cache_dir);
    }
    if let LocalCommand::Serve(args) = &local.command
        && args.system
        && std::env::var_os("GANTRY_STATE_DIR").is_none()
    {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("GANTRY_STATE_DIR", SYSTEM_STATE_DIR) };
    }
    // The daemon sets up its own logging, to its run log as well, once its configuration is read.
    // A replay says nothing per pass unless asked (`GANTRY_LOG`): what the daemon would warn of
    // (dropped placements) is counted in its figures instead.
    let quiet = matches!(local.command, LocalCommand::Replay(_)) && std::env::var_os("GANTRY_LOG").is_none();
    if !matches!(local.command, LocalCommand::Serve(_)) && !quiet {
        init_tracing();
    }
    let config = load_config(local.config.as_deref())?;
    match local.command {
        LocalCommand::Serve(args) => serve::run(config, args, local.socket),
        LocalCommand::Plugin(command) => plugin::run(&config, command),
        LocalCommand::Parse(args) => parse::run(&config, args),
        LocalCommand::Gpus(args) => gpus::run(&config, args),
        LocalCommand::Replay(args) => replay::run(&config, args),
        LocalCommand::Trace(command) => trace::run(&config, command),
    }
}
