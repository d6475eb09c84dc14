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

/// The daemon's own effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no failure and touches no memory.
    unsafe { libc::geteuid() }
}
