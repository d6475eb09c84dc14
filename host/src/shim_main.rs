//! `gantry-shim DIR`: the supervisor of one job attempt. The daemon starts one per attempt; it is
//! a binary of its own, apart from `gantry`, so that starting it costs little (it links none of
//! the daemon, the plugin runtime or NVML).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gantry-shim DIR (started by the gantry daemon, one per job attempt)");
        return ExitCode::from(2);
    };
    match gantry::executor::shim::run(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gantry-shim: {e}");
            ExitCode::FAILURE
        }
    }
}
