//! `gantryd`: the binary with the runtime. It runs the daemon and the other commands that need
//! wasmtime or NVML, and every other command as `gantry` does.

mod cli;
mod local;

fn main() -> std::process::ExitCode {
    cli::main(local::run)
}
