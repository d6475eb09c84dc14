//! The spawner: one small long-lived process, `gantry-shim`, that forks the shim of every attempt;
//! here the daemon's handle on it and the messages between them (its loop is `shim::serve`).
//!
//! Starting a fresh `gantry-shim` per attempt cost a process start from an executable (the
//! loader, relocations, the runtime's start) on top of the job's own: about a third of what a
//! trivial job cost. The spawner is started once, with the first attempt, and forks a copy of
//! itself per attempt, which becomes that attempt's shim without executing anything: a fork of a
//! process of a few megabytes, not of the daemon (which maps the plugin runtime and would copy
//! far larger page tables).
//!
//! Nothing of a job's safety depends on the spawner: each shim it forks leaves for a session of
//! its own at once and is waited for by nobody but the kernel (the spawner ignores `SIGCHLD`, so
//! its children are reaped as they exit); the daemon watches shims through pidfds as before. A
//! spawner that dies (killed, or at the daemon's end) takes no shim with it; the daemon starts
//! another the next time it needs one.
//!
//! The daemon talks to it over a `SOCK_SEQPACKET` socket pair (its stdin): one message per
//! attempt, the attempt's directory as bytes and three descriptors, which become the shim's
//! stdin, stdout and stderr exactly as when the daemon started it itself: the attempt's lock,
//! the "recorded" pipe, and the log. An in-flight descriptor keeps the lock held, so an attempt
//! is locked without a gap from the daemon's `flock` to the shim's exit, whichever of the
//! three processes dies when.

use super::ExecutorError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// The descriptors a message carries: lock, recorded pipe, log.
pub(super) const FDS: usize = 3;
/// The longest directory path a message may carry (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// The daemon's handle on its spawner.
#[derive(Debug)]
pub struct Spawner {
    program: PathBuf,
    current: Mutex<Current>,
}

#[derive(Debug, Default)]
struct Current {
    connection: Option<Connection>,
    /// Counts the spawners started, so that a sender can tell whether its message's is gone.
    started: u64,
}

/// Which spawner a message went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sent(u64);

#[derive(Debug)]
struct Connection {
    socket: OwnedFd,
    process: Child,
    number: u64,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing the socket is the spawner's sign to go; reaping it here leaves no zombie
        // behind a spawner that was replaced.
        // SAFETY: shutting down a socket we own.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = self.process.wait();
    }
}

fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors, which we take ownership of.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Spawner {
    /// The spawner `program` (the `gantry-shim` binary), started with no arguments when the
    /// first attempt needs it: a daemon that runs no job starts no process.
    pub fn new(program: &Path) -> Spawner {
        Spawner { program: program.to_path_buf(), current: Mutex::new(Current::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connect(&self, current: &mut Current) -> Result<Connection, ExecutorError> {
        let spawn_error = |source| ExecutorError::Spawn { program: self.program.clone(), source };
        let (socket, theirs) = socket_pair().map_err(spawn_error)?;
        let process = Command::new(&self.program).stdin(Stdio::from(theirs)).stdout(Stdio::null()).spawn().map_err(spawn_error)?;
        current.started += 1;
        Ok(Connection { socket, process, number: current.started })
    }

    /// Whether the spawner a message went to is gone (then the next send starts another),
    /// waiting up to `wait` for its end of the socket to close. One that died with the message
    /// unread, or read and not yet forked, took its descriptors with it: the attempt's recorded
    /// pipe ends with no shim behind it. The kernel releases a dying process's descriptors in
    /// no order to rely on (those it had received can go before the socket), so the pipe may say
    /// so a moment before the socket does.
    pub(super) fn gone(&self, sent: Sent, wait: std::time::Duration) -> bool {
        // Polled on a copy, outside the lock: the wait holds up no other attempt's start.
        let socket = {
            let current = self.lock();
            let Some(connection) = current.connection.as_ref().filter(|c| c.number == sent.0) else { return true };
            match connection.socket.try_clone() {
                Ok(socket) => socket,
                Err(_) => return false,
            }
        };
        let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
        let timeout = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one pollfd for a descriptor we own.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout) };
        let hung_up = ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0;
        if hung_up {
            let mut current = self.lock();
            if current.connection.as_ref().is_some_and(|c| c.number == sent.0) {
                current.connection = None;
            }
        }
        hung_up
    }

    /// Hands an attempt to the spawner: the shim it forks gets `fds` as its stdin, stdout and
    /// stderr. The spawner is started if there is none yet, and once more if it is found gone.
    pub(super) fn send(&self, dir: &Path, fds: [&OwnedFd; FDS]) -> Result<Sent, ExecutorError> {
        let mut current = self.lock();
        for _ in 0..2 {
            let connection = match current.connection.take() {
                Some(connection) => connection,
                None => self.connect(&mut current)?,
            };
            match send_message(&connection.socket, dir.as_os_str().as_bytes(), fds) {
                Ok(()) => {
                    let sent = Sent(connection.number);
                    current.connection = Some(connection);
                    return Ok(sent);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)) => drop(connection),
                Err(source) => {
                    current.connection = Some(connection);
                    return Err(ExecutorError::Spawn { program: self.program.clone(), source });
                }
            }
        }
        Err(ExecutorError::Spawn { program: self.program.clone(), source: std::io::Error::other("the spawner exits as soon as it is started") })
    }
}

/// Room for one control message carrying [`FDS`] descriptors.
fn control_buffer() -> Vec<u8> {
    // SAFETY: CMSG_SPACE only computes a size.
    vec![0u8; unsafe { libc::CMSG_SPACE((FDS * std::mem::size_of::<RawFd>()) as u32) } as usize]
}

/// A message header over one buffer and a control buffer; both must outlive its use.
fn header(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data, all zeroes a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    msg
}

/// A system call's byte count, made again while a signal interrupts it.
fn retrying(mut call: impl FnMut() -> isize) -> std::io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn send_message(socket: &OwnedFd, bytes: &[u8], fds: [&OwnedFd; FDS]) -> std::io::Result<()> {
    let raw: [RawFd; FDS] = fds.map(AsRawFd::as_raw_fd);
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    let mut control = control_buffer();
    let msg = header(&mut iov, &mut control);
    // SAFETY: the control buffer has room for one header with FDS descriptors (CMSG_SPACE).
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&raw) as u32) as _;
        std::ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(header).cast::<RawFd>(), FDS);
    }
    // SAFETY: msg points at live buffers; MSG_NOSIGNAL turns a gone peer into EPIPE.
    retrying(|| unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }).map(drop)
}

/// One attempt as received: its directory and its descriptors, or `None` at end-of-file.
pub(super) fn receive(socket: RawFd) -> std::io::Result<Option<(PathBuf, Vec<OwnedFd>)>> {
    let mut bytes = vec![0u8; MAX_PATH];
    let mut iov = libc::iovec { iov_base: bytes.as_mut_ptr().cast(), iov_len: bytes.len() };
    let mut control = control_buffer();
    let mut msg = header(&mut iov, &mut control);
    // SAFETY: msg points at live buffers; received descriptors are close-on-exec, though the
    // shim never executes.
    let n = retrying(|| unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into our buffer; each SCM_RIGHTS
    // descriptor is new and ours.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                fds.extend((0..count).map(|i| OwnedFd::from_raw_fd(data.add(i).read_unaligned())));
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    bytes.truncate(n);
    Ok(Some((PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)), fds)))
}
