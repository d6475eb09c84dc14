//! `gantry replay`: the workload, the policies, and the figures printed side by side.

use crate::cli::local::ReplayArgs;
use anyhow::Context;
use gantry::config::Config;
use gantry::plugin::PluginRuntime;
use gantry::replay::{generate::generate, score, trace::Trace};
use std::process::ExitCode;

pub fn run(config: &Config, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let trace = match (&args.trace, args.generate) {
        (Some(path), _) => Trace::read(path)?,
        (None, Some(count)) => generate(count as usize, args.seed, &args.machine),
        (None, None) => anyhow::bail!("give a trace file or --generate N"),
    };
    if let Some(path) = &args.save {
        std::fs::write(path, trace.to_lines()).with_context(|| format!("writing the trace to {}", path.display()))?;
    }
    let policies = if args.policies.is_empty() { vec![config.plugins.policy.clone()] } else { args.policies };
    let plugins = PluginRuntime::new(config.plugins.runtime_options()).context("starting the plugin runtime")?;
    let scores = gantry::replay::run(config, &plugins, &trace, &policies)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "trace": trace.header, "jobs": trace.jobs.len(), "policies": scores }))?);
        return Ok(ExitCode::SUCCESS);
    }
    let source = trace.header.source.as_deref().or(args.trace.as_ref().and_then(|p| p.to_str())).unwrap_or("a trace");
    println!("{} jobs on {} × {} ({source})\n", trace.jobs.len(), trace.machine.count, trace.machine.model.name);
    print!("{}", score::table(&scores));
    Ok(ExitCode::SUCCESS)
}
