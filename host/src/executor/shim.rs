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
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
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

/// What a job finds in `PATH` before its own environment says otherwise (Debian's login default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The Unix account the job runs as: the spec's user, else the shim's own.
fn login(spec: &AttemptSpec) -> Result<Option<crate::unix::Account>, ExecutorError> {
    let uid = spec.user.unwrap_or_else(crate::unix::euid);
    match crate::unix::Account::by_uid(uid) {
        Ok(account) => Ok(Some(account)),
        // The shim's own user without a password entry (a container's arbitrary uid) still
        // runs its jobs, without login variables; another user must exist.
        Err(crate::unix::UsersError::NoUid(_)) if spec.user.is_none() => Ok(None),
        Err(e) => Err(ExecutorError::Start(format!("the job's user: {e}"))),
    }
}

/// Why the job's shell did not start, in the user's terms.
fn start_failure(spec: &AttemptSpec, account: Option<&crate::unix::Account>, error: &std::io::Error) -> String {
    let user = account.map_or_else(String::new, |a| format!(" as {}", a.name));
    match &spec.cwd {
        Some(cwd) => format!("cannot start the job{user} in {}: {error}", cwd.display()),
        None => format!("cannot start the job{user}: {error}"),
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

    let account = login(&spec)?;
    if let Some(account) = account.as_ref().filter(|a| a.uid != crate::unix::euid()) {
        // The job's output belongs to the user it runs as, and to nobody else.
        log.give_to(account.uid, account.gid).map_err(io(LOG))?;
    }

    let (out_r, out_w) = pipe().map_err(io(LOG))?;
    let script = format!("set -e\n{}\n", spec.commands.join("\n"));
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    // Nothing of the daemon's environment: the login variables of the user, then the job's own.
    let mut env: std::collections::BTreeMap<String, String> = [("PATH".to_string(), DEFAULT_PATH.to_string())].into();
    if let Some(account) = &account {
        env.insert("HOME".into(), account.home.display().to_string());
        env.extend([("USER", &account.name), ("LOGNAME", &account.name), ("SHELL", &account.shell)].map(|(k, v)| (k.to_string(), v.clone())));
    }
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let program = super::launch::program(&spec.commands, &script, Path::new(shell), &env["PATH"]);
    // Another user's job takes their groups and ids, then enters the working directory as them,
    // so a directory they may not enter fails the start.
    let identity = account.as_ref().filter(|a| a.uid != crate::unix::euid()).map(|a| super::launch::Identity { uid: a.uid, gid: a.gid, groups: a.groups.clone() });
    let launch = super::launch::Launch { program: &program, env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(), cwd: spec.cwd.as_deref(), identity, umask: spec.umask, output: &out_w };
    let gated = super::launch::start(&launch).map_err(|e| ExecutorError::Start(start_failure(&spec, account.as_ref(), &e)))?;
    drop(out_w);
    let pid = std::process::id();
    let job_pgid = gated.pid;
    let start = crate::procfs::start_ticks(pid).unwrap_or(0);
    // Recorded before the gate opens: a job never runs unrecorded.
    write_json_atomically(&dir.join(SHIM), &ShimInfo { pid, start_ticks: start, job_pgid })?;
    if let Err(e) = gated.open() {
        let _ = std::fs::remove_file(dir.join(SHIM));
        return Err(ExecutorError::Start(start_failure(&spec, account.as_ref(), &e)));
    }
    let started_ms = now_ms();
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
