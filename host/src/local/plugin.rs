//! `gantry plugin list | check | new | build`.

use crate::cli::local::PluginCommand;
use anyhow::Context;
use gantry::config::Config;
use gantry::plugin::{PluginRuntime, RuntimeOptions};
use std::process::ExitCode;

pub fn run(config: &Config, cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::List { json } => {
            let runtime = PluginRuntime::new(config.plugins.runtime_options()).context("starting the plugin runtime")?;
            let rows = runtime.list();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<20} {:<9} {:<9} {:<6} {:<11} SOURCE", "NAME", "KIND", "VERSION", "WIT", "STATE");
            for r in rows {
                let dash = || "-".to_string();
                println!(
                    "{:<20} {:<9} {:<9} {:<6} {:<11} {}",
                    plain(&r.name),
                    r.kind.map(|k| k.to_string()).unwrap_or_else(dash),
                    plain(&r.version.unwrap_or_else(dash)),
                    plain(&r.wit_version.unwrap_or_else(dash)),
                    r.state,
                    plain(&r.source)
                );
                if let Some(error) = r.last_error {
                    println!("  last error: {}", plain(&error));
                }
                if let Some(failure) = r.last_failure {
                    println!("  last failure: {}", plain(&failure));
                }
                if let Some(may) = r.may {
                    println!("  may: {}", plain(&capabilities(&may)));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { file } => {
            let runtime = PluginRuntime::new(RuntimeOptions::checking(config.plugins.defaults.clone())).context("starting the plugin runtime")?;
            match runtime.check_file(&file) {
                Ok(info) => {
                    println!("{}: {} {} ({} plugin, gantry:plugin@{})", plain(&file.display().to_string()), info.name, info.version, info.kind, plain(&info.wit_version));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}", plain(&e.to_string()));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PluginCommand::New { kind, name, dir, lang } => super::project::new(kind, lang, &name, dir),
        PluginCommand::Build { dir, install } => super::project::build(config, &dir, install),
        PluginCommand::Precompile { cache_dir } => precompile(&cache_dir),
    }
}

/// The daemon's compiler process: the component on standard input into the cache. What a
/// failed compile says goes to standard error as it is, for the daemon to report.
pub fn precompile(cache_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin().take(MAX_COMPONENT_BYTES).read_to_end(&mut bytes).context("reading the component")?;
    let engine = gantry::plugin::PluginEngine::new(Some(cache_dir.to_path_buf()))?;
    match engine.precompile("the component", &gantry::plugin::Wasm::new(&bytes)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(gantry::plugin::PluginError::Compile { message, .. }) => {
            eprintln!("{message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// More than any component compiles within the daemon's compile limit.
const MAX_COMPONENT_BYTES: u64 = 512 << 20;

/// One line of what a plugin may do: its bounds, then each grant, or that it has none.
fn capabilities(may: &gantry::plugin::Capabilities) -> String {
    let mut parts = vec![format!("{} ms a call", may.timeout_ms), format!("{} MiB", may.memory_mib)];
    parts.extend(may.max_jobs.map(|n| format!("{n} jobs a file")));
    let grants = [("env", &may.env), ("read", &may.read_only_dirs), ("http", &may.http_base_urls)];
    let granted: Vec<String> = grants.iter().filter(|(_, v)| !v.is_empty()).map(|(what, v)| format!("{what} {}", v.join(" "))).collect();
    if granted.is_empty() {
        parts.push("no files, network or environment".into());
    }
    parts.extend(granted);
    parts.join("; ")
}

/// Text from a plugin or a file name, with control characters shown, not obeyed: whatever the
/// runtime already escaped, a terminal never gets an escape sequence from this listing.
fn plain(text: &str) -> String {
    gantry::plugin::text::shown(text, usize::MAX)
}
