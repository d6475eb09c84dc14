//! `gantry parse FILE`: what the parser plugin makes of a command file.

use crate::cli::local::{ParseArgs, ParseModeArg};
use anyhow::{anyhow, Context};
use gantry::config::Config;
use gantry::plugin::{ParseMode, PluginRuntime};
use std::process::ExitCode;

pub fn run(config: &Config, args: ParseArgs) -> anyhow::Result<ExitCode> {
    // The same bounds as the daemon's: a regular file (not /dev/zero, not a FIFO) of at most 16 MiB.
    let text = gantry::unix::read_text(&args.file, None, gantry::model::limits::COMMAND_FILE_BYTES)?;
    let runtime = PluginRuntime::new(config.plugins.runtime_options()).context("starting the plugin runtime")?;
    let parser = runtime.get(&config.plugins.parser).ok_or_else(|| anyhow!("parser plugin {} is not loaded", config.plugins.parser))?;
    let mode = args.mode.map(|m| match m {
        ParseModeArg::Single => ParseMode::Single,
        ParseModeArg::Multi => ParseMode::Multi,
    });
    let name = args.file.to_string_lossy();
    match parser.parse(&name, mode, &text)? {
        Ok(file) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&file)?);
            } else {
                for job in &file.jobs {
                    let place = match (&job.provider, &job.burst) {
                        (Some(provider), _) => format!("  [on {provider}]"),
                        (None, Some(b)) if b.providers.is_empty() => "  [burst]".to_string(),
                        (None, Some(b)) => format!("  [burst to {}]", b.providers.join(", ")),
                        (None, None) => String::new(),
                    };
                    println!("queue {:<4} gpus {:<2} memory {:>6} GB  {}{place}", job.queue, job.gpu_count, job.memory_gb, job.commands.join(" && "));
                }
                eprintln!("{}: {} job(s)", name, file.jobs.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&diagnostics)?);
            } else {
                for d in &diagnostics {
                    eprintln!("{}:{}:{}: {}", name, d.line, d.column, d.message);
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
