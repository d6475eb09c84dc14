//! Setting gantry up on a machine: the systemd unit of a system or user daemon, shell
//! completions, and the man page.

use anyhow::Context;
use clap::{Args, CommandFactory};
use std::path::PathBuf;
use std::process::ExitCode;

const SYSTEM_UNIT: &str = include_str!("../../../dist/gantry.service");
const USER_UNIT: &str = include_str!("../../../dist/gantry-user.service");

#[derive(Args)]
pub struct InstallArgs {
    /// The system daemon (as root): serves every local user, jobs run as their submitters.
    /// Without it, a daemon of your own under `systemctl --user`.
    #[arg(long)]
    system: bool,
    /// Print the unit instead of writing it.
    #[arg(long)]
    print: bool,
}

/// Writes the unit with this binary's path in it, and says how to start it.
pub fn install_service(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the gantry binary")?;
    let template = if args.system { SYSTEM_UNIT } else { USER_UNIT };
    let unit = template.replace("@GANTRY@", &exe.to_string_lossy());
    if args.print {
        print!("{unit}");
        return Ok(ExitCode::SUCCESS);
    }
    let (path, systemctl) = if args.system {
        if gantry::unix::euid() != 0 {
            anyhow::bail!("the system daemon's unit goes to /etc/systemd/system, which needs root (or use --print)");
        }
        (PathBuf::from("/etc/systemd/system/gantry.service"), "systemctl")
    } else {
        let config = match std::env::var_os("XDG_CONFIG_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
        };
        (config.join("systemd/user/gantry.service"), "systemctl --user")
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, unit).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("start it now and at every boot: {systemctl} daemon-reload && {systemctl} enable --now gantry");
    if !args.system {
        println!("keep it running when you are logged out: loginctl enable-linger $USER");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut command = super::Cli::command();
    clap_complete::generate(shell, &mut command, "gantry", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `gantry.1` in roff, to stdout: `gantry man > /usr/local/share/man/man1/gantry.1`.
pub fn man() -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(super::Cli::command()).render(&mut std::io::stdout()).context("writing the man page")?;
    Ok(ExitCode::SUCCESS)
}
