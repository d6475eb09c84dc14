//! The Unix side of identity: accounts from the password and group databases, and files opened
//! with a caller's rights rather than the daemon's.
//!
//! - `users`: who a uid is (name, groups, home, shell), as `id` and `login` would say;
//! - `as_user`: opening a file as a given user, so that a root daemon reads for a caller only
//!   what the caller could read.

pub mod as_user;
pub mod users;

pub use as_user::{open_as, read_text, OpenError, ReadLimit};
pub use users::{Account, UsersError};

/// A reader never sees half a file (an artifact, `daemon.json`): written beside it, then renamed
/// over. The temporary name is unique per write because two threads may write the same file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The daemon's own effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no failure and touches no memory.
    unsafe { libc::geteuid() }
}
