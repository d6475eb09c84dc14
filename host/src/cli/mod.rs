//! The command line, shared by both binaries. Each subcommand is a thin layer over the library;
//! errors reach the user here, once, as one clear message. The commands that ask a daemon run
//! here; the local ones (`serve`, `plugin`, `parse`, `gpus`) go to the binary's own runner:
//! `gantryd` runs them, the small `gantry` hands them to `gantryd`.

mod client;
mod http1;
mod jobs;
pub mod local;
mod nodes;
mod providers;
mod setup;
mod units;
mod users;

use local::{Local, LocalCommand};

use clap::{Parser, Subcommand};
use gantry::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gantry", version, about = "GPU scheduling runtime with WebAssembly strategy plugins")]
pub struct Cli {
    /// Configuration file; without one gantry runs on its embedded defaults.
    #[arg(long, global = true, env = "GANTRY_CONFIG")]
    config: Option<PathBuf>,

    /// The daemon to talk to over TCP, `http://` or `https://` (default: your own daemon's
    /// socket, else the system daemon's, /run/gantry/gantry.sock).
    #[arg(long, global = true, env = "GANTRY_SERVER", value_name = "URL")]
    server: Option<String>,

    /// A CA certificate (PEM) to trust, beyond the public ones, for an `https://` daemon.
    #[arg(long, global = true, env = "GANTRY_CA_CERT", value_name = "PATH")]
    ca_cert: Option<PathBuf>,

    /// A daemon's Unix socket: where `serve` listens, and where the other commands connect.
    #[arg(long, global = true, env = "GANTRY_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// A token for a daemon that needs a login: an API token (`gty_…`, from POST /api/v1/tokens)
    /// or the token a login returns.
    #[arg(long, global = true, env = "GANTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Local(LocalCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that ask a daemon, or need none and no runtime either.
// `defer`: a command's arguments are built only when that command is the one typed (help,
// completions and the man page still build them all). Building every command's arguments, to
// then use one, was most of the CPU that `gantry submit` spent in its own code.
#[derive(Subcommand)]
#[command(defer = true)]
enum ClientCommand {
    /// Queue a command.
    Submit(Box<jobs::SubmitArgs>),
    /// Load a command file as a run of jobs.
    Run(jobs::RunArgs),
    /// Stop a run: its waiting jobs are cancelled, its running ones stopped.
    Stop { run: u64 },
    /// List jobs.
    Jobs(jobs::JobsArgs),
    /// Runs, queues, running jobs and their GPUs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print a job's output.
    Logs(jobs::LogsArgs),
    /// Cancel a job (its whole process group, if it runs); NODE:ID on a federation master.
    Cancel {
        #[arg(value_name = "ID|NODE:ID")]
        id: jobs::JobRef,
    },
    /// Keep a waiting job from starting.
    Hold {
        #[arg(value_name = "ID|NODE:ID")]
        id: jobs::JobRef,
    },
    /// Let a held job start.
    Release {
        #[arg(value_name = "ID|NODE:ID")]
        id: jobs::JobRef,
    },
    /// Stop the daemon; running jobs carry on and the next `gantry serve` adopts them.
    Shutdown,
    /// Your GPU quota, what you hold and your recent use (admins: --user NAME).
    Quota {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A federation master's nodes: `gantry node add NAME` issues one (and prints its token).
    #[command(subcommand)]
    Node(nodes::NodeCommand),
    /// Every node reporting to this daemon and its GPUs, with who is on them.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// The configured providers (`[providers.NAME]`: Slurm, Kubernetes, the clouds) and the health
    /// of each.
    Providers {
        #[arg(long)]
        json: bool,
    },
    /// Wait here or pay there: how long GPUs would wait on this server, beside what each
    /// provider charges for them now, cheapest first.
    Offers {
        /// Part of a GPU type's name (A100, H100); any type if absent.
        #[arg(long, default_value = "")]
        gpu: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// GPU memory needed on each GPU: 40G, 512M.
        #[arg(long, value_parser = units::parse_memory)]
        mem: Option<u64>,
        /// Also every fitting row of the offline price catalog, for clouds not configured here.
        #[arg(long)]
        catalog: bool,
        /// Write the providers' live offers to FILE as price catalog rows, dated today, for
        /// `[prices] file` in gantry.toml.
        #[arg(long, value_name = "FILE")]
        save_catalog: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Accounts of a daemon in auth mode `users`: the first admin is made here, by the daemon's
    /// owner over its socket.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Install the systemd unit of a system daemon (--system) or of your own daemon.
    InstallService(setup::InstallArgs),
    /// Shell completions: `gantry completions bash > /etc/bash_completion.d/gantry`.
    Completions { shell: clap_complete::Shell },
    /// The man page, in roff: `gantry man > /usr/local/share/man/man1/gantry.1`.
    Man,
    /// Call any route of the daemon's HTTP API as yourself (over its socket, as the other
    /// commands do) and print the answer: `gantry api GET /api/v1/node`.
    Api(jobs::ApiArgs),
}

/// `local` runs the commands that need the runtime.
pub fn main(local: impl FnOnce(Local) -> anyhow::Result<ExitCode>) -> ExitCode {
    // Output piped into `head` should end the program quietly, as it does for other Unix tools,
    // rather than as a panic on the next print.
    // SAFETY: called before any thread exists; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let (server, socket, token, ca_cert) = (cli.server, cli.socket, cli.token, cli.ca_cert);
    let result = match cli.command {
        Command::Local(command) => local(Local { config: cli.config, socket, command }),
        Command::Client(command) => {
            init_tracing();
            let client = |config: &Config| client::Client::connect(config, server.as_deref(), socket.as_deref(), token.clone(), ca_cert.as_deref());
            load_config(cli.config.as_deref()).and_then(|config| ask(&config, command, client))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gantry: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each said once: gantry's errors name their cause in their own
/// message, and a context added above one must not make it said twice.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1).map(ToString::to_string) {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A command that asks a daemon (or needs none: completions, the man page, the unit file).
fn ask(config: &Config, command: ClientCommand, client: impl Fn(&Config) -> anyhow::Result<client::Client>) -> anyhow::Result<ExitCode> {
    match command {
        ClientCommand::Submit(args) => jobs::submit(&client(config)?, *args),
        ClientCommand::Run(args) => jobs::run(&client(config)?, args),
        ClientCommand::Stop { run } => jobs::stop(&client(config)?, run),
        ClientCommand::Jobs(args) => jobs::jobs(&client(config)?, args),
        ClientCommand::Status { json } => jobs::status(&client(config)?, json),
        ClientCommand::Logs(args) => jobs::logs(&client(config)?, args),
        ClientCommand::Cancel { id } => jobs::act(&client(config)?, "cancel", &id),
        ClientCommand::Hold { id } => jobs::act(&client(config)?, "hold", &id),
        ClientCommand::Release { id } => jobs::act(&client(config)?, "release", &id),
        ClientCommand::Shutdown => jobs::shutdown(&client(config)?),
        ClientCommand::Api(args) => jobs::api(&client(config)?, args),
        ClientCommand::InstallService(args) => setup::install_service(args),
        ClientCommand::Completions { shell } => setup::completions(shell),
        ClientCommand::Man => setup::man(),
        ClientCommand::Quota { user, json } => jobs::quota(&client(config)?, user, json),
        ClientCommand::User(command) => users::run(&client(config)?, command),
        ClientCommand::Node(command) => nodes::run(&client(config)?, command),
        ClientCommand::Nodes { json } => nodes::list(&client(config)?, json),
        ClientCommand::Providers { json } => providers::providers(&client(config)?, json),
        ClientCommand::Offers { gpu, count, mem, catalog, save_catalog, json } => {
            providers::offers(&client(config)?, &providers::Question { gpu, count, memory_mib: mem.unwrap_or(0), catalog }, save_catalog.as_deref(), json)
        }
    }
}

pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::discover()?,
    })
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
