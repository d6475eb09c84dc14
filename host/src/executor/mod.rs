//! Running one attempt of a job so that it outlives the daemon.
//!
//! Every attempt runs under a shim, in a session of its own, so a daemon that crashes, is killed
//! or restarts takes no job with it. Shims are forked by the [`Spawner`], `gantry-shim`, a small
//! binary installed beside `gantry` that the daemon starts with its first attempt (see
//! `spawner`). The shim starts the job's process (`launch`: its shell, or a plain command's
//! program) in a process group of its own, behind a gate that opens once the shim has recorded
//! it, copies its output into a size-capped, rotated log, waits for it, and writes the outcome
//! to `exit.json` in the attempt's directory. Everything the daemon needs to find the attempt
//! again lives in that directory:
//!
//! - `spec.json`: what to run (written by the daemon before the shim starts), and the attempt's
//!   lock: held (flock) from before the shim is spawned until it exits: locked ⇔ shim alive, with
//!   no window in which a starting shim looks dead;
//! - `shim.json`: the shim's pid, its start time (against pid reuse) and the job's process group;
//! - `output.log` (+ `output.log.1`, …): the job's stdout and stderr, and anything the shim
//!   itself has to say;
//! - `exit.json`: exit code or signal, start and end time, peak RSS.
//!
//! A daemon that starts again calls [`adopt`] on each attempt it believes is running: alive, it
//! watches it again; finished while the daemon was down, it gets the recorded outcome; shim gone
//! without a record, it kills what is left of the job and reports it lost.

mod attempt;
mod launch;
mod logfile;
mod shim;
mod spawner;

pub use attempt::{adopt, cancel, spawn, wait, Adoption, AttemptSpec, ExitRecord, ExecutorError, RunningAttempt, ShimInfo};
pub use logfile::{log_tail, read_log, RotatingLog};
pub use shim::serve as serve_spawner;
pub use spawner::Spawner;

/// The current log file of the attempt in `dir`.
pub fn log_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(attempt::LOG)
}
