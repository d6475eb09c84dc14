//! `gantry trace export`: the daemon's finished jobs, from its store, as a trace.

use crate::cli::local::{TraceCommand, TraceExportArgs};
use anyhow::Context;
use gantry::config::Config;
use gantry::gpu::{open_gpus, SimSpec};
use gantry::replay::foreign::ForeignLog;
use gantry::store::Store;
use std::process::ExitCode;

pub fn run(config: &Config, command: TraceCommand) -> anyhow::Result<ExitCode> {
    match command {
        TraceCommand::Export(args) => export(config, args),
    }
}

fn export(config: &Config, args: TraceExportArgs) -> anyhow::Result<ExitCode> {
    let db = config.state_dir.join("gantry.db");
    // Opened with the caller's rights (a system daemon's store is root's to read), and first
    // looked for: opening a store that is not there would make an empty one.
    std::fs::File::open(&db).with_context(|| format!("reading {} (has a daemon run with this state directory?)", db.display()))?;
    let jobs = Store::open(&db).and_then(|store| store.load()).with_context(|| format!("reading {}", db.display()))?.jobs;
    let machine = match args.machine {
        Some(machine) => machine,
        None => this_machine(config)?,
    };
    let since_ms = gantry::model::now_ms().saturating_sub(u64::try_from(args.since.as_millis()).unwrap_or(u64::MAX));
    let foreign = ForeignLog::open(&db).and_then(|log| log.read(since_ms)).with_context(|| format!("reading {}", db.display()))?;
    let (trace, unfinished) = gantry::replay::export::export(&jobs, &foreign, since_ms, &machine);
    match &args.output {
        Some(path) => std::fs::write(path, trace.to_lines()).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", trace.to_lines()),
    }
    let unfinished = if unfinished > 0 { format!("; {unfinished} not yet ended are left out") } else { String::new() };
    eprintln!("gantry: {} jobs and {} changes of other people's GPU use exported on {machine}{unfinished}", trace.jobs.len(), trace.foreign.len());
    Ok(ExitCode::SUCCESS)
}

/// This machine's GPUs as a trace names them: their count, and the known model nearest the
/// first one's memory (a simulated machine's own, where the daemon simulates).
fn this_machine(config: &Config) -> anyhow::Result<SimSpec> {
    let (mut reader, _) = open_gpus(&config.gpu.mode, &config.gpu.nvml_library, &config.sim_dir()).context("opening GPUs (or give --machine)")?;
    let node = reader.read_all()?;
    let memory = node.gpus.iter().find_map(|g| g.snapshot()).map(|g| g.memory_total_mib).context("no GPU answered (give --machine)")?;
    Ok(SimSpec::nearest(u32::try_from(node.gpus.len()).unwrap_or(u32::MAX).clamp(1, 64), memory))
}
