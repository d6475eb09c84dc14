//! `gantry serve`: run the daemon in the foreground until SIGINT or SIGTERM. Jobs keep running
//! under their shims when it stops; the next `gantry serve` adopts them.

use crate::cli::local::{ServeArgs, SYSTEM_SOCKET};
use anyhow::Context;
use gantry::config::Config;
use gantry::daemon::{serve, ServeOptions, SocketOptions};
use parking_lot::Mutex;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::process::ExitCode;

/// A taken port moves to the next free one (saying so), as seed 001's server does.
const PORT_TRIES: u16 = 20;

/// `socket`: where to listen besides TCP (default: `gantry.sock` in the state directory, or
/// /run/gantry/gantry.sock with --system).
pub fn run(config: Config, args: ServeArgs, socket: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if args.system && gantry::unix::euid() != 0 {
        anyhow::bail!("--system serves every local user and runs their jobs as them, which needs root; run `gantry serve` for a daemon of your own");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("gantry-async").build().context("starting the async runtime")?;
    // Seed 001's PORT, when nothing more specific says where.
    let port = std::env::var("PORT").ok().map(|p| p.parse::<u16>().with_context(|| format!("PORT={p} is not a port number"))).transpose()?;
    let wanted = args.listen.unwrap_or_else(|| match port {
        Some(port) => SocketAddr::new(config.listen.ip(), port),
        None => config.listen,
    });
    let mode = args.mode.mode(&config);
    let run_log = open_run_log(&config)?;
    let say = {
        let run_log = run_log.clone();
        move |line: &str| {
            eprintln!("gantry: {line}");
            let _ = writeln!(run_log.lock(), "gantry: {line}");
        }
    };
    runtime.block_on(async move {
        let listener = bind(wanted).await?;
        let addr = listener.local_addr()?;
        if addr.port() != wanted.port() && wanted.port() != 0 {
            say(&format!("port {} is taken; listening on {} instead", wanted.port(), addr.port()));
        }
        say(&format!("serving http://{addr} (state in {})", config.state_dir.display()));
        if config.auth.mode == gantry::auth::AuthMode::None {
            let token = config.state_dir.join(gantry::auth::LOCAL_TOKEN_FILE);
            // The token itself stays out of the run log; its file is private to this user.
            say(&format!(
                "dashboard: http://{addr}/ui/#token=$(cat {}) logs in at once (or paste the token there); scripts send it as `Authorization: Bearer`",
                token.display()
            ));
        }
        let socket = SocketOptions {
            path: socket.unwrap_or_else(|| if args.system { PathBuf::from(SYSTEM_SOCKET) } else { config.state_dir.join("gantry.sock") }),
            shared: args.system,
        };
        say(&format!("serving {} for {}", socket.path.display(), if args.system { "every local user" } else { "this user" }));
        let options = ServeOptions { gpu_mode: mode, shim_program: None, compiler: std::env::current_exe().ok(), notices: std::sync::Arc::new(say.clone()), socket: Some(socket) };
        serve(config, options, listener, shutdown_signal()).await?;
        say("stopped; running jobs continue under their shims");
        Ok(ExitCode::SUCCESS)
    })
}

/// Seed 001's `logs/run.log`: what the daemon says and logs, also kept in its log directory.
/// `GANTRY_LOG` overrides `server.log_level`.
fn open_run_log(config: &Config) -> anyhow::Result<Arc<Mutex<std::fs::File>>> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let dir = &config.server.log_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating the log directory {}", dir.display()))?;
    let path = dir.join("run.log");
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    let file = Arc::new(Mutex::new(file));
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.server.log_level));
    let to_file = SharedFile(file.clone());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr.and(to_file)).try_init();
    Ok(file)
}

/// The run log as a tracing writer, shared with the notices.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<std::fs::File>>);

impl std::io::Write for &SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedFile {
    type Writer = &'a SharedFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

async fn bind(wanted: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let mut addr = wanted;
    for _ in 0..PORT_TRIES {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 && addr.port() < u16::MAX => {
                addr.set_port(addr.port() + 1);
            }
            Err(e) => return Err(e).with_context(|| format!("listening on {addr}")),
        }
    }
    anyhow::bail!("ports {} to {} are all taken", wanted.port(), addr.port())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
