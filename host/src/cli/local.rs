//! The arguments of the commands that run on this machine rather than ask a daemon: `serve`,
//! `plugin`, `parse`, `gpus`, `replay` and `trace`. They need the runtime (wasmtime, NVML, the daemon itself),
//! which only `gantryd` links; `gantry` parses them (so `--help` and mistakes are reported the
//! same everywhere) and hands the command line to `gantryd` unchanged.

use super::units::duration;
use clap::{Args, Subcommand, ValueEnum};
use gantry::gpu::SimSpec;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a system daemon listens.
pub const SYSTEM_SOCKET: &str = "/run/gantry/gantry.sock";

/// A local command with the global options it reads.
#[allow(dead_code, reason = "read by gantryd; gantry hands gantryd its command line instead")]
pub struct Local {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub command: LocalCommand,
}

// Deferred, as `super::ClientCommand` is: built only when typed.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum LocalCommand {
    /// Run the daemon: sample GPUs, schedule and supervise jobs, serve the HTTP API.
    Serve(ServeArgs),
    /// Inspect and check plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Parse a command file and print its jobs, or the problems with their lines (exit code 1).
    Parse(ParseArgs),
    /// This machine's GPUs, their memory, utilisation and processes (no daemon needed).
    Gpus(GpusArgs),
    /// Replay a workload through the scheduler on a virtual clock, once per policy, and compare
    /// queue waits, utilisation, fragmentation and memory risks side by side (nothing runs).
    Replay(ReplayArgs),
    /// Traces of this machine's jobs, for `gantry replay`.
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Subcommand)]
pub enum TraceCommand {
    /// Write the jobs this machine's daemon ran, and other people's GPU use as it recorded it,
    /// as a trace (JSON lines, docs/TRACES.md), read from its state directory with your own
    /// rights.
    Export(TraceExportArgs),
}

#[derive(Args)]
pub struct TraceExportArgs {
    /// The jobs submitted in the last DURATION: N followed by s, m, h or d (e.g. 7d, 12h).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = duration)]
    pub since: std::time::Duration,
    /// The machine to name in the trace (N or NxMODEL); by default this machine's GPUs, as the
    /// known model nearest in memory.
    #[arg(long, value_name = "N[xMODEL]")]
    pub machine: Option<SimSpec>,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// A trace: JSON lines, a header naming the machine, then a line per job or change of other
    /// people's GPU use (docs/TRACES.md).
    #[arg(required_unless_present = "generate", conflicts_with = "generate")]
    pub trace: Option<PathBuf>,
    /// Replay N synthetic jobs instead (their distribution is in docs/TRACES.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub generate: Option<u32>,
    /// The generator's seed: the same seed gives the same jobs and the same figures.
    #[arg(long, default_value_t = 1, requires = "generate")]
    pub seed: u64,
    /// The machine of a generated trace: N or NxMODEL, as --simulate takes it.
    #[arg(long, value_name = "N[xMODEL]", default_value = "8xH100", requires = "generate")]
    pub machine: SimSpec,
    /// Write the generated trace to FILE, to replay it again or change it.
    #[arg(long, value_name = "FILE", requires = "generate")]
    pub save: Option<PathBuf>,
    /// A policy to replay with: a policy plugin's name (bundled or installed) or a component
    /// file; repeat it to compare policies. Default: the configured policy.
    #[arg(long = "policy", value_name = "NAME|FILE")]
    pub policies: Vec<String>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `server.listen` from the config, with the port from $PORT if
    /// set, else 127.0.0.1:7070). Port 0 picks a free one.
    #[arg(long, env = "GANTRY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve every local user, as root (the systemd unit's way): state in /var/lib/gantry, a
    /// socket every user may connect to, each known by their uid, and jobs run as their
    /// submitter.
    #[arg(long)]
    pub system: bool,
    #[command(flatten)]
    pub mode: GpuModeArgs,
}

#[derive(Args)]
pub struct GpusArgs {
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
    pub watch: Option<f64>,
    #[command(flatten)]
    pub mode: GpuModeArgs,
}

// Shared by the commands that open GPUs. Not a doc comment: with the commands' arguments
// deferred, clap would take a flattened struct's doc for the command's own description.
#[derive(Args)]
pub struct GpuModeArgs {
    /// Use simulated GPUs even if a driver is present: N or NxMODEL (e.g. 8xH100).
    #[arg(long, value_name = "N[xMODEL]", conflicts_with = "no_simulate")]
    pub simulate: Option<SimSpec>,
    /// Fail rather than fall back to simulated GPUs when no driver loads.
    #[arg(long)]
    pub no_simulate: bool,
}

#[derive(Args)]
pub struct ParseArgs {
    pub file: PathBuf,
    /// The format; by default taken from the file name (command_gpu*.txt or command_gpus*.txt).
    #[arg(long, value_enum)]
    pub mode: Option<ParseModeArg>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ParseModeArg {
    Single,
    Multi,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// The bundled plugins and those in the plugin directory, with their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Load a component as the daemon would and print what it reports, or why it was refused.
    Check { file: PathBuf },
    /// Make a plugin project in a new directory NAME (or --dir): the example policy, parser or
    /// provider adapter and its tests, a README, and the SDK and WIT it builds against.
    New {
        kind: NewKind,
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Policies may also be written in Python (componentize-py) or JavaScript (jco).
        #[arg(long, value_enum, default_value = "rust")]
        lang: NewLang,
    },
    /// Build the plugin project in DIR (cargo for wasm32-wasip2, componentize-py or jco, by its
    /// manifest) and check the component as the daemon would load it; --install then puts it in
    /// the plugin directory, where the daemon loads it.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        install: bool,
    },
    /// Compile the component on standard input into the artifact cache CACHE_DIR, and load
    /// nothing: the daemon's compiles, in a process of their own.
    #[command(hide = true)]
    Precompile { cache_dir: PathBuf },
}

/// The kinds of plugin `gantry plugin new` can start.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewKind {
    Policy,
    Parser,
    Provider,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewLang {
    Rust,
    Python,
    Js,
}
