//! The daemon's side: start a shim for an attempt, find it again after a restart, wait for it,
//! cancel it.

use super::spawner::{Sent, Spawner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("starting the shim {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Start(String),
    #[error("attempt {path} is already running")]
    AlreadyRunning { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExecutorError + '_ {
    move |source| ExecutorError::Io { path: path.to_path_buf(), source }
}

/// What an attempt runs. The caller decides the environment, GPU variables included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptSpec {
    pub job_id: u64,
    pub attempt: u32,
    /// Shell lines run in sequence in one shell; the first that fails ends the attempt.
    pub commands: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The job's environment, over the login variables of the user it runs as (`HOME`, `USER`,
    /// `LOGNAME`, `SHELL`, a default `PATH`); nothing of the daemon's own environment.
    pub env: BTreeMap<String, String>,
    /// The Unix user it runs as; `None`: the shim's own. A root shim drops to this user before
    /// the job starts.
    #[serde(default)]
    pub user: Option<u32>,
    /// The job's file-creation mask (the daemon keeps a stricter one for its own files).
    #[serde(default = "default_umask")]
    pub umask: u32,
    /// The log rotates past this size, keeping `log_keep` older files.
    pub log_max_bytes: u64,
    pub log_keep: u32,
}

fn default_umask() -> u32 {
    0o022
}

/// How an attempt ended, as its shim recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Set when the shell exited; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started_ms: u64,
    pub ended_ms: u64,
    /// Largest resident set of the job's processes that were waited for.
    pub peak_rss_kib: u64,
}

impl ExitRecord {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Written by the shim before the job may start, so a job never runs unrecorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimInfo {
    pub pid: u32,
    /// The shim's start time in clock ticks since boot (`/proc/PID/stat` field 22): a pid alone
    /// may be reused after the shim is gone.
    pub start_ticks: u64,
    /// The job's process group, which cancellation signals.
    pub job_pgid: i32,
    /// The start time of the group's leader (the job's shell), so that a group whose number
    /// was given again after the job ended is never signalled; 0 in records made before it was
    /// kept.
    #[serde(default)]
    pub job_start_ticks: u64,
}

pub(super) const SPEC: &str = "spec.json";
/// The attempt's lock is its spec file: one file fewer to create per job.
pub(super) const LOCK: &str = SPEC;
pub(super) const SHIM: &str = "shim.json";
pub(super) const EXIT: &str = "exit.json";
pub(super) const LOG: &str = "output.log";

/// An attempt whose shim is alive.
#[derive(Debug)]
pub struct RunningAttempt {
    pub dir: PathBuf,
    pub shim: ShimInfo,
}

/// What a daemon finds when it looks at an attempt it believed was running.
#[derive(Debug)]
pub enum Adoption {
    Running(RunningAttempt),
    Finished(ExitRecord),
    /// No shim and no record. `ran` tells whether the job may have started (then what was left of
    /// it has been killed), or certainly never did (then it may simply be started again).
    Lost { ran: bool, reason: String },
}

/// Written whole or not at all, as a crash of the writer (or of the daemon) can leave it. Not
/// flushed to disk: surviving a power loss is the store's business, at the same level as its
/// `synchronous = NORMAL`, and an fsync here would sit on every job's start and end.
pub(super) fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), ExecutorError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(|e| ExecutorError::Corrupt { path: path.to_path_buf(), message: e.to_string() })?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ExecutorError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ExecutorError::Corrupt { path: path.to_path_buf(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExecutorError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// Takes the attempt's lock without waiting: `Ok(None)` if someone (a live shim) holds it.
fn try_lock(dir: &Path) -> Result<Option<File>, ExecutorError> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new().read(true).open(&path).map_err(io(&path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(None) } else { Err(ExecutorError::Io { path, source: err }) }
}

/// How long a recorded pipe that ended with no shim behind it, and no word from one, waits for
/// its spawner to be seen dead before the shim is taken to have died on its own. Only a start
/// that failed without a word waits.
const SPAWNER_DEATH: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the shim of a new attempt in `dir` (created if needed), forked by `spawner`.
/// Blocking, but brief: it returns once the shim has recorded itself.
///
/// The shim gets the attempt's lock as its stdin and a "recorded" pipe as its stdout; its
/// death before it recorded itself reads as end-of-file on that pipe.
pub fn spawn(spawner: &Spawner, dir: &Path, spec: &AttemptSpec) -> Result<RunningAttempt, ExecutorError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if dir.join(EXIT).exists() || dir.join(SHIM).exists() {
        return Err(ExecutorError::AlreadyRunning { path: dir.to_path_buf() });
    }
    // Written in place: a spec cut short by a crash belongs to an attempt whose shim never
    // recorded itself, which adoption treats as never started, and the next spawn rewrites it.
    let spec_path = dir.join(SPEC);
    let text = serde_json::to_vec(spec).map_err(|e| ExecutorError::Corrupt { path: spec_path.clone(), message: e.to_string() })?;
    std::fs::write(&spec_path, text).map_err(io(&spec_path))?;
    let (sent, mut answered) = hand_over(spawner, dir)?;
    // A spawner that dies with the message (killed, or out of memory) forks no shim for it: no
    // shim recorded itself or said why it could not, the lock is free again, so nothing ran; a
    // new spawner is asked, once.
    let silent = || std::fs::metadata(dir.join(LOG)).map_or(true, |m| m.len() == 0);
    if !answered && !dir.join(SHIM).exists() && silent() && spawner.gone(sent, SPAWNER_DEATH) && try_lock(dir)?.is_some() {
        tracing::warn!(dir = %dir.display(), "the spawner died before forking the attempt's shim; asking a new one");
        answered = hand_over(spawner, dir)?.1;
    }
    match read_json::<ShimInfo>(&dir.join(SHIM))? {
        Some(shim) if answered => Ok(RunningAttempt { dir: dir.to_path_buf(), shim }),
        _ => {
            let log = std::fs::read_to_string(dir.join(LOG)).unwrap_or_default();
            Err(ExecutorError::Start(format!("the shim ended before starting the job: {}", log.trim())))
        }
    }
}

/// Sends the attempt to the spawner and waits for its shim to say it has recorded itself:
/// whether it did, and to which spawner it went.
fn hand_over(spawner: &Spawner, dir: &Path) -> Result<(Sent, bool), ExecutorError> {
    // The lock is taken here and handed on to the shim, so it is held without a gap from before the
    // shim exists until it exits: a daemon that dies meanwhile can't make it look abandoned.
    let lock = try_lock(dir)?.ok_or_else(|| ExecutorError::AlreadyRunning { path: dir.to_path_buf() })?;
    // The shim's own stderr is the job's log, appended to as the shim's own writes are: what it
    // has to say reaches the user.
    let log_path = dir.join(LOG);
    let shim_err = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io(&log_path))?;
    let (mut recorded, recorded_w) = std::io::pipe().map_err(io(dir))?;
    let sent = spawner.send(dir, [&OwnedFd::from(lock), &OwnedFd::from(recorded_w), &OwnedFd::from(shim_err)])?;
    // Our copies of the lock and the pipe's write end are gone: from here only the shim holds
    // them (or the message on its way to the spawner does).
    let mut byte = [0u8; 1];
    loop {
        match recorded.read(&mut byte) {
            Ok(n) => return Ok((sent, n == 1)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok((sent, false)),
        }
    }
}

/// Finds out what became of an attempt while this daemon was not watching it.
pub fn adopt(dir: &Path) -> Result<Adoption, ExecutorError> {
    // The daemon records an attempt before it creates its directory and starts its shim.
    if !dir.join(SPEC).exists() {
        return Ok(Adoption::Lost { ran: false, reason: "the daemon stopped before starting the attempt".into() });
    }
    // A held lock means a live shim, or one about to be: the lock is also held by the message
    // that carries it to the spawner, by the spawner until it has forked the shim, and by any
    // process the daemon forks meanwhile until that execs. So a lock held while no live shim is
    // recorded is waited for.
    for _ in 0..LOCK_WAIT_TRIES {
        if let Some(_unlocked) = try_lock(dir)? {
            return judge_ended(dir);
        }
        match read_json::<ShimInfo>(&dir.join(SHIM))? {
            Some(shim) if crate::procfs::start_ticks(shim.pid) == Some(shim.start_ticks) => {
                return Ok(Adoption::Running(RunningAttempt { dir: dir.to_path_buf(), shim }));
            }
            // Not recorded yet (a shim that holds the lock records itself before its job starts),
            // or gone with the lock still shared: look again in a moment.
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    Err(ExecutorError::Corrupt { path: dir.join(LOCK), message: "held, but no live shim recorded itself".into() })
}

/// How long (in milliseconds, roughly) [`adopt`] waits for a lock without a live shim.
const LOCK_WAIT_TRIES: u32 = 2000;

/// What became of an attempt whose shim is no longer running.
fn judge_ended(dir: &Path) -> Result<Adoption, ExecutorError> {
    if let Some(record) = read_json::<ExitRecord>(&dir.join(EXIT))? {
        return Ok(Adoption::Finished(record));
    }
    match read_json::<ShimInfo>(&dir.join(SHIM))? {
        None => Ok(Adoption::Lost { ran: false, reason: "the shim never started the job".into() }),
        Some(shim) => {
            signal_job(&shim, libc::SIGKILL);
            Ok(Adoption::Lost { ran: true, reason: "the shim died without recording how the job ended".into() })
        }
    }
}

/// Signals the job's process group, if it is still the job's. A group's number is a pid, which
/// the kernel gives again once the group is empty and its leader reaped: a leader alive under
/// that pid with another start time is somebody else's (a browser, another daemon's job), and is
/// left alone. A leader gone while members remain is the job's: the number is not given again
/// while they hold it.
fn signal_job(shim: &ShimInfo, signal: i32) -> bool {
    let pgid = shim.job_pgid;
    let leader = u32::try_from(pgid).ok().and_then(crate::procfs::start_ticks);
    if pgid <= 1 || (shim.job_start_ticks != 0 && leader.is_some_and(|ticks| ticks != shim.job_start_ticks)) {
        return false;
    }
    // SAFETY: kill with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// A descriptor that readies for reading when process `pid` exits; `None` where the kernel has
/// none (before 5.3) or the process is gone.
pub(super) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: the kernel just returned this descriptor to us.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The shim's pidfd, checked against its recorded start time so a reused pid is never mistaken
/// for the shim.
fn pidfd(shim: &ShimInfo) -> Option<OwnedFd> {
    let fd = pidfd_open(i32::try_from(shim.pid).ok()?)?;
    (crate::procfs::start_ticks(shim.pid) == Some(shim.start_ticks)).then_some(fd)
}

/// Waits for the shim to exit and returns what it recorded. The pidfd makes this a readiness
/// wait on the async runtime: no thread per job, no polling.
pub async fn wait(attempt: RunningAttempt) -> Result<Adoption, ExecutorError> {
    if let Some(fd) = pidfd(&attempt.shim) {
        // SAFETY: the AsyncFd owns the pidfd and nothing else closes or replaces it meanwhile.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| ExecutorError::Io { path: attempt.dir.clone(), source: e.into() })?;
        let _ = fd.readable().await.map_err(io(&attempt.dir))?;
    }
    let dir = attempt.dir.clone();
    tokio::task::spawn_blocking(move || adopt(&dir))
    .await
    .unwrap_or_else(|e| {
        Err(ExecutorError::Io { path: attempt.dir.clone(), source: std::io::Error::other(e.to_string()) })
    })
}

/// Asks the job to stop (SIGTERM to its process group, grandchildren included), then forces it
/// (SIGKILL) if it is still there after `grace`. The shim survives both and records the signal.
pub async fn cancel(shim: &ShimInfo, grace: Duration) {
    if !signal_job(shim, libc::SIGTERM) {
        return;
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Signal 0 probes: is any process of the group left?
    while signal_job(shim, 0) {
        if tokio::time::Instant::now() >= deadline {
            signal_job(shim, libc::SIGKILL);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
