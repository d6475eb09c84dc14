//! The `gantry` binary: a shim over the library and the command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
