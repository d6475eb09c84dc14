//! `gantry-shim`: the spawner's loop ([`serve`]), and the supervisor each attempt runs under,
//! forked from it ([`run`]; see the module overview). The supervisor must not fail silently:
//! anything that goes wrong before the job starts is printed to its stderr (the job's
//! `output.log`) and makes it exit non-zero without a record.
//!
//! Its stdin is the attempt's lock, held for as long as it lives; its stdout is the pipe on
//! which it tells the daemon that it has recorded itself.

use super::attempt::{read_json, write_json_atomically, AttemptSpec, ExitRecord, ShimInfo, EXIT, LOG, SHIM, SPEC};
use super::logfile::RotatingLog;
use super::spawner::FDS;
use super::ExecutorError;
use crate::model::now_ms;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// After the shell exits, how long leftover output may keep draining before the shim stops
/// reading (a process that escaped the job's group could hold the pipe open forever).
const DRAIN: Duration = Duration::from_secs(2);


/// Makes `call` (a wait) until it succeeds, again when a signal interrupts it.
fn until_done(dir: &Path, mut call: impl FnMut() -> bool) -> Result<(), ExecutorError> {
    while !call() {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(ExecutorError::Io { path: dir.to_path_buf(), source: error });
        }
    }
    Ok(())
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

    let (out_r, out_w) = super::launch::pipe().map_err(io(LOG))?;
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
    let job_start_ticks = u32::try_from(job_pgid).ok().and_then(crate::procfs::start_ticks).unwrap_or(0);
    // Recorded before the gate opens: a job never runs unrecorded.
    write_json_atomically(&dir.join(SHIM), &ShimInfo { pid, start_ticks: start, job_pgid, job_start_ticks })?;
    if let Err(e) = gated.open() {
        let _ = std::fs::remove_file(dir.join(SHIM));
        return Err(ExecutorError::Start(start_failure(&spec, account.as_ref(), &e)));
    }
    let started_ms = now_ms();
    tell_daemon_recorded();

    // One thread copies the output and notices the shell's exit: a pidfd and the pipe, polled
    // together. (A thread of its own for the copy cost each job a stack, a malloc arena and
    // their page faults.)
    let mut output = Output { pipe: Some(std::fs::File::from(out_r)), log, buf: vec![0u8; 64 * 1024] };
    let exited = super::attempt::pidfd_open(job_pgid);
    while !output.copy_while(job_pgid, exited.as_ref(), None) {
        if exited.is_none() && output.pipe.is_none() {
            break;
        }
    }

    // The shell is waited for without being reaped: while it is a zombie its pid (the group's
    // number) can't be given to another process, so the group signalled here is the job's.
    // SAFETY: siginfo is plain data filled by waitid, for our own child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, into `info`.
    until_done(dir, || unsafe { libc::waitid(libc::P_PID, job_pgid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) } == 0)?;
    let ended_ms = now_ms();
    // What the shell left behind in its group goes with it: a job's background process must not
    // keep holding GPU memory after the job is over.
    // SAFETY: signalling the job's own process group, whose leader is not yet reaped.
    unsafe { libc::kill(-job_pgid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaping our own child, which has exited, into `status` and `usage`.
    until_done(dir, || unsafe { libc::wait4(job_pgid, &mut status, 0, &mut usage) } == job_pgid)?;
    let drained_by = std::time::Instant::now() + DRAIN;
    while output.pipe.is_some() && std::time::Instant::now() < drained_by {
        output.copy_while(job_pgid, None, Some(drained_by));
    }

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

/// The job's output on its way from the pipe to the log.
struct Output {
    /// `None` once the pipe has ended (every writer closed it) or failed.
    pipe: Option<std::fs::File>,
    log: RotatingLog,
    buf: Vec<u8>,
}

impl Output {
    /// Copies what the pipe has until the shell `child` exits, which it says with `true`, or the
    /// pipe ends, or `until` passes; then returns. The exit is seen on `exited`, its pidfd; without
    /// one (a kernel before 5.3) it is checked at every wake, and at least once a second.
    fn copy_while(&mut self, child: i32, exited: Option<&OwnedFd>, until: Option<std::time::Instant>) -> bool {
        let idle = libc::pollfd { fd: -1, events: 0, revents: 0 };
        let mut all = [idle; 2];
        let mut len = 0;
        for fd in [self.pipe.as_ref().map(|p| p.as_raw_fd()), exited.map(|e| e.as_raw_fd())].into_iter().flatten() {
            all[len] = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            len += 1;
        }
        if len == 0 {
            return false;
        }
        let fds = &mut all[..len];
        let timeout = match (until, exited) {
            (Some(until), _) => i32::try_from(until.saturating_duration_since(std::time::Instant::now()).as_millis()).unwrap_or(i32::MAX),
            (None, None) => 1000,
            (None, Some(_)) => -1,
        };
        // SAFETY: polling descriptors we own, through a live buffer of `fds.len()` entries.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n > 0 && self.pipe.is_some() && fds[0].revents != 0 {
            self.read_once();
        }
        match (exited, until) {
            (Some(_), _) => n > 0 && fds.last().is_some_and(|f| f.revents != 0),
            (None, None) => has_exited(child),
            (None, Some(_)) => false,
        }
    }

    fn read_once(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else { return };
        match pipe.read(&mut self.buf) {
            Ok(0) => self.pipe = None,
            Ok(n) => {
                if let Err(e) = self.log.write(&self.buf[..n]) {
                    eprintln!("gantry-shim: writing the log: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.pipe = None,
        }
    }
}

/// Whether our child `pid` has exited, without reaping it.
fn has_exited(pid: i32) -> bool {
    // SAFETY: siginfo is plain data filled by waitid; WNOHANG | WNOWAIT neither blocks nor reaps.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, for our own child.
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    // SAFETY: si_pid is set by a successful waitid, and 0 when the child has not exited.
    r == 0 && unsafe { info.si_pid() } != 0
}

/// The spawner's life: `gantry-shim` started with a socket as its stdin. Returns when the
/// daemon closes its end (or dies).
pub fn serve() -> Result<(), ExecutorError> {
    let socket = 0;
    let io = |source| ExecutorError::Io { path: PathBuf::from("the daemon's socket (stdin)"), source };
    // SAFETY: plain setsid/signal calls on our own process.
    unsafe {
        // Out of the daemon's process group and terminal: an interrupt meant for the daemon
        // must not reach a shim before it has a session of its own.
        libc::setsid();
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    // The user database's modules (nsswitch's `systemd`, `sss`, …) are loaded by a process's
    // first lookup: made here once, each shim inherits them instead of loading them again for its
    // job's user (a dlopen and its relocations per job).
    let _ = crate::unix::Account::by_uid(crate::unix::euid());
    while let Some((dir, fds)) = super::spawner::receive(socket).map_err(io)? {
        let Ok(fds) = <[OwnedFd; FDS]>::try_from(fds) else {
            eprintln!("gantry-shim: a message for {} without its {FDS} descriptors, ignored", dir.display());
            continue;
        };
        // SAFETY: this process has one thread, so the child may run anything; it never returns
        // into this loop.
        match unsafe { libc::fork() } {
            0 => become_shim(&dir, fds),
            pid if pid < 0 => {
                let error = std::io::Error::last_os_error();
                let line = format!("gantry-shim: cannot fork the shim: {error}\n");
                // SAFETY: writing a buffer we own to the attempt's log.
                unsafe { libc::write(fds[2].as_raw_fd(), line.as_ptr().cast(), line.len()) };
            }
            _ => {}
        }
        // The parent's copies go: from here only the shim holds the lock and the pipe.
    }
    Ok(())
}

/// In the forked child: the descriptors take the places of stdin, stdout and stderr, then the
/// attempt runs as under a shim started on its own.
fn become_shim(dir: &Path, fds: [OwnedFd; FDS]) -> ! {
    // SAFETY: arranging our own descriptors and signal disposition.
    unsafe {
        for (target, fd) in fds.iter().enumerate() {
            libc::dup2(fd.as_raw_fd(), target as RawFd);
        }
        // Inherited dispositions: the shim waits for its job, and a job must not start with
        // SIGCHLD ignored (exec keeps an ignored signal ignored).
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
    drop(fds);
    let code = match run(dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gantry-shim: {e}");
            1
        }
    };
    std::process::exit(code)
}
