//! `gantry-shim`: the spawner that forks the supervisor of every job attempt (see
//! `executor::spawner`). A binary of its own, apart from `gantry`, so that it is small: it links
//! none of the daemon, the plugin runtime or NVML, and forking it copies little.

use std::process::ExitCode;

fn main() -> ExitCode {
    let stdin_is_socket = {
        // SAFETY: fstat fills a plain struct for a descriptor we only inspect.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        unsafe { libc::fstat(0, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK }
    };
    if std::env::args_os().len() > 1 || !stdin_is_socket {
        eprintln!("usage: gantry-shim (started by the gantry daemon, with its socket as stdin; it forks one supervisor per job attempt)");
        return ExitCode::from(2);
    }
    match gantry::executor::serve_spawner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gantry-shim: {e}");
            ExitCode::FAILURE
        }
    }
}
