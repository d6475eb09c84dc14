//! `gantry`: the command line people type, once per `gantry submit` and often hundreds of times
//! in a loop. It links no async runtime, plugin engine, database or NVML, because a binary's
//! start grows with what it links: `gantryd`'s 39 MB cost 2 ms of dynamic relocation on every
//! call. The local commands (`serve`, `plugin`, `parse`, `gpus`) are handed, command line and
//! all, to `gantryd` installed beside it.

mod cli;

// GCC's unwinder, linked in rather than loaded: see `static_unwinder` in `build.rs`. Named by
// the binary itself, its `_Unwind_*` symbols resolve here before the `-lgcc_s` of std.
#[cfg(gantry_static_unwinder)]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}

use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main(|_| gantryd())
}

/// Becomes `gantryd` with the same arguments; the process (and so a daemon's pid) stays the same.
fn gantryd() -> anyhow::Result<ExitCode> {
    let program = std::env::current_exe().context("finding the gantry binary")?.with_file_name("gantryd");
    let error = std::process::Command::new(&program).args(std::env::args_os().skip(1)).exec();
    Err(error).with_context(|| format!("starting {} (it is installed beside gantry, and runs serve, plugin, parse and gpus)", program.display()))
}
