//! `gantry gpus`: a gpustat-like view of this machine's GPUs, read through NVML directly (no
//! daemon needed).

use crate::cli::local::{GpuModeArgs, GpusArgs};
use anyhow::Context;
use gantry::config::Config;
use gantry::gpu::{open_gpus, GpuMode, GpuReading, NodeGpus};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

impl GpuModeArgs {
    pub fn mode(&self, config: &Config) -> GpuMode {
        match (&self.simulate, self.no_simulate) {
            (Some(spec), _) => GpuMode::Simulate(spec.clone()),
            (None, true) => GpuMode::Hardware,
            (None, false) => config.gpu.mode.clone(),
        }
    }
}

pub fn run(config: &Config, args: GpusArgs) -> anyhow::Result<ExitCode> {
    let (mut reader, notice) = open_gpus(&args.mode.mode(config), &config.gpu.nvml_library, &config.sim_dir()).context("opening GPUs")?;
    if let Some(notice) = notice {
        eprintln!("gantry: {notice}");
    }
    let Some(seconds) = args.watch else {
        let node = reader.read_all()?;
        print(&node, args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    let interval = Duration::from_secs_f64(seconds.max(0.1));
    let tty = std::io::stdout().is_terminal();
    loop {
        let node = reader.read_all()?;
        if tty {
            // Home and clear: redraw in place, as `watch` does.
            print!("\x1b[H\x1b[2J");
        }
        print(&node, args.json)?;
        std::io::stdout().flush()?;
        std::thread::sleep(interval);
    }
}

fn print(node: &NodeGpus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(node)?);
        return Ok(());
    }
    let host = sysinfo::System::host_name().unwrap_or_default();
    let driver = node.driver.driver_version.as_deref().unwrap_or("unknown driver");
    let cuda = node.driver.cuda_driver_version.as_deref().map(|v| format!("  CUDA {v}")).unwrap_or_default();
    let simulated = if node.simulated { "  [simulated]" } else { "" };
    println!("{host}  driver {driver}{cuda}{simulated}");
    for reading in &node.gpus {
        match reading {
            GpuReading::Unavailable { index, error } => println!("[{index}] unavailable: {error}"),
            GpuReading::Available(g) => {
                let dash = || "-".to_string();
                let temp = g.temperature_c.map(|t| format!("{t}°C")).unwrap_or_else(dash);
                let util = g.utilization_gpu.map(|u| format!("{u} %")).unwrap_or_else(dash);
                // Whole watts cut, not rounded, as gpustat shows them.
                let power = match (g.power_draw_w.map(f64::floor), g.power_limit_w.map(f64::floor)) {
                    (Some(d), Some(l)) => format!("{d} / {l} W"),
                    (Some(d), None) => format!("{d} W"),
                    _ => dash(),
                };
                println!(
                    "[{}] {:<24} {:>5} {:>5}  {} {:>6} / {:>6} MiB  {}",
                    g.index,
                    g.name,
                    temp,
                    util,
                    bar(g.memory_used_mib, g.memory_total_mib),
                    g.memory_used_mib,
                    g.memory_total_mib,
                    power
                );
                for p in &g.processes {
                    println!(
                        "     {:<10} {:>8} {:>8}  {}",
                        p.user.as_deref().unwrap_or("?"),
                        p.pid,
                        p.used_memory_mib.map(|m| format!("{m} MiB")).unwrap_or_else(dash),
                        p.command.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
    Ok(())
}

fn bar(used: u64, total: u64) -> String {
    const WIDTH: u64 = 20;
    let filled = if total == 0 { 0 } else { (used * WIDTH).div_ceil(total).min(WIDTH) };
    format!("[{}{}]", "█".repeat(filled as usize), "░".repeat((WIDTH - filled) as usize))
}
