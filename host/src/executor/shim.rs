//! `gantry-shim DIR`: the small supervisor each attempt runs under (see the module overview).
//! It must not fail silently: anything that goes wrong before the job starts is printed to its
//! stderr (the job's `output.log`) and makes it exit non-zero without a record.
//!
//! Its stdin is the attempt's lock, held for as long as it lives; its stdout is the pipe on
//! which it tells the daemon that it has recorded itself.

use super::attempt::{read_json, write_json_atomically, AttemptSpec, ExitRecord, ShimInfo, EXIT, LOG, SHIM, SPEC};
use super::logfile::RotatingLog;
use super::ExecutorError;
use crate::model::now_ms;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// After the shell exits, how long leftover output may keep draining before the shim stops
/// reading (a process that escaped the job's group could hold the pipe open forever).
const DRAIN: Duration = Duration::from_secs(2);


fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we take ownership of.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

extern "C" fn survive(_signal: libc::c_int) {}

/// One byte on stdout, which the daemon waits for, then stdout is let go: the daemon may be gone
/// by the time the job ends, and nothing else is ever written there.
fn tell_daemon_recorded() {
    // SAFETY: writing a byte from a static to our stdout, then pointing stdout at /dev/null.
    unsafe {
        libc::write(1, b"r".as_ptr().cast(), 1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
}

/// Runs the attempt in `dir`.
pub fn run(dir: &Path) -> Result<(), ExecutorError> {
    let io = |what: &'static str| move |e: std::io::Error| ExecutorError::Io { path: dir.join(what), source: e };
    // SAFETY: plain setsid/signal calls on our own process.
    unsafe {
        // A session of its own: the daemon's terminal, process group and death don't reach it.
        // (The job's stdin is its gate, not ours, so it never holds the lock: the lock means
        // "the shim is alive".)
        libc::setsid();
        // Cancellation signals the job's group, not the shim, but a shim that shares a terminal
        // must not die of its hangup or interrupt either: it has an outcome to record. A handler
        // that does nothing, rather than ignoring them: handlers are reset by exec, so the job
        // gets the default dispositions without code between fork and exec.
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(signal, survive as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
    let spec: AttemptSpec = read_json(&dir.join(SPEC))?.ok_or_else(|| ExecutorError::Corrupt {
        path: dir.join(SPEC),
        message: "missing".into(),
    })?;
    let mut log = RotatingLog::open(&dir.join(LOG), spec.log_max_bytes, spec.log_keep).map_err(io(LOG))?;

    let (out_r, out_w) = pipe().map_err(io(LOG))?;
    let out_w2 = out_w.try_clone().map_err(io(LOG))?;
    let (go_r, go_w) = pipe().map_err(io(SHIM))?;

    // The shell waits at this gate (its stdin) until the shim has recorded the job's process
    // group, so a job never runs unrecorded; if the shim dies first, the read sees end-of-file
    // and nothing runs. Then its stdin becomes /dev/null.
    let script = format!("read -r _ || exit 125\nexec </dev/null\nset -e\n{}\n", spec.commands.join("\n"));
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let mut cmd = Command::new(shell);
    cmd.arg("-c").arg(script).envs(&spec.env).stdin(Stdio::from(go_r)).stdout(Stdio::from(out_w)).stderr(Stdio::from(out_w2));
    // Its own process group, which cancellation signals as a whole. Nothing runs between fork
    // and exec, so the standard library starts it with posix_spawn.
    cmd.process_group(0);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let child = cmd.spawn().map_err(io(SPEC))?;
    drop(cmd);
    let started_ms = now_ms();
    let pid = std::process::id();
    let job_pgid = child.id() as i32;
    let start = crate::procfs::start_ticks(pid).unwrap_or(0);
    write_json_atomically(&dir.join(SHIM), &ShimInfo { pid, start_ticks: start, job_pgid })?;
    // SAFETY: writing a line from a static to a pipe we own.
    unsafe { libc::write(go_w.as_raw_fd(), b"go\n".as_ptr().cast(), 3) };
    drop(go_w);
    tell_daemon_recorded();

    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let copier = std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(out_r);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = log.write(&buf[..n]) {
                        eprintln!("gantry-shim: writing the log: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done_tx.send(());
    });

    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::wait4(job_pgid, &mut status, 0, &mut usage) };
        if r == job_pgid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(ExecutorError::Io { path: dir.to_path_buf(), source: std::io::Error::last_os_error() });
        }
    }
    drop(child);
    let ended_ms = now_ms();
    // What the shell left behind in its group goes with it: a job's background process must not
    // keep holding GPU memory after the job is over.
    // SAFETY: signalling the job's own process group.
    unsafe { libc::kill(-job_pgid, libc::SIGKILL) };
    let _ = done_rx.recv_timeout(DRAIN);
    drop(copier);

    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let record = ExitRecord { exit_code, signal, started_ms, ended_ms, peak_rss_kib: usage.ru_maxrss.max(0) as u64 };
    write_json_atomically(&dir.join(EXIT), &record)
}
