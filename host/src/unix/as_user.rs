//! Opening a file with a caller's rights. A daemon running as root would otherwise read for
//! anyone what only root may read (`/etc/shadow`, another user's 0600 file).
//!
//! Linux keeps credentials per thread, and the file-system uid and gid (`setfsuid`,
//! `setfsgid`) and the supplementary groups decide what `open` may reach. A short-lived thread
//! takes the caller's, opens the file and ends: the descriptor it hands back stays usable and
//! no other thread ever runs with borrowed credentials. (The raw `setgroups` system call is used
//! because glibc's wrapper applies the groups to every thread of the process.)

use super::users::Account;
use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: not a regular file")]
    NotRegular(PathBuf),
    #[error("{path}: {size} bytes; at most {limit} bytes are read")]
    TooLarge { path: PathBuf, size: u64, limit: u64 },
    #[error("{0}: it has more than one name (a hard link); a log or command file must have one")]
    HardLink(PathBuf),
    #[error("{path}: this daemon runs as uid {daemon} and cannot read as uid {caller}")]
    NotPossible { path: PathBuf, daemon: u32, caller: u32 },
    #[error("{0}: is not UTF-8 text")]
    NotText(PathBuf),
}

/// What may be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimit {
    /// Largest file accepted; `None`: any size (the reader reads only part of it).
    pub max_bytes: Option<u64>,
    /// Refuse a file with more than one hard link.
    pub single_link: bool,
}

/// Opens `path` read-only as `caller` (`None`: with the daemon's own rights), without following
/// it into a FIFO or device: only a regular file within `limit` is accepted.
pub fn open_as(path: &Path, caller: Option<&Account>, limit: ReadLimit) -> Result<(File, Metadata), OpenError> {
    let daemon = super::euid();
    let file = match caller {
        None => open(path)?,
        // The caller is the daemon's own user, or root using a daemon that has less than root's
        // rights: nothing the daemon reads is beyond them.
        Some(who) if who.uid == daemon || who.uid == 0 => open(path)?,
        Some(who) if daemon == 0 => open_on_thread(path, who.clone())?,
        Some(who) => return Err(OpenError::NotPossible { path: path.to_path_buf(), daemon, caller: who.uid }),
    };
    let meta = file.metadata().map_err(|source| OpenError::Io { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(path.to_path_buf()));
    }
    if limit.single_link && meta.nlink() > 1 {
        return Err(OpenError::HardLink(path.to_path_buf()));
    }
    if let Some(max) = limit.max_bytes.filter(|&max| meta.len() > max) {
        return Err(OpenError::TooLarge { path: path.to_path_buf(), size: meta.len(), limit: max });
    }
    Ok((file, meta))
}

/// The whole of a text file of at most `max_bytes`, opened as `caller` (see [`open_as`]).
pub fn read_text(path: &Path, caller: Option<&Account>, max_bytes: u64) -> Result<String, OpenError> {
    use std::io::Read;
    let (file, meta) = open_as(path, caller, ReadLimit { max_bytes: Some(max_bytes), single_link: false })?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // A file that grows while it is read stops at the limit all the same.
    file.take(max_bytes).read_to_end(&mut bytes).map_err(|source| OpenError::Io { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| OpenError::NotText(path.to_path_buf()))
}

/// Non-blocking, so that a FIFO opens at once (and is then refused as not a regular file)
/// instead of waiting for a writer.
fn open(path: &Path) -> Result<File, OpenError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| OpenError::Io { path: path.to_path_buf(), source })
}

fn open_on_thread(path: &Path, who: Account) -> Result<File, OpenError> {
    let owned = path.to_path_buf();
    let thread = std::thread::Builder::new().name("gantry-open-as".into()).spawn(move || {
        let groups: Vec<libc::gid_t> = who.groups.clone();
        // SAFETY: these calls change only this thread's credentials (raw setgroups, setfsgid,
        // setfsuid); the thread ends right after the open below.
        unsafe {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setfsgid(who.gid);
            libc::setfsuid(who.uid);
            // setfsuid reports the previous value, never an error: check the change took.
            if libc::setfsuid(u32::MAX) as u32 != who.uid {
                return Err(std::io::Error::other("could not take the caller's file-system uid"));
            }
        }
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(&owned)
    });
    let handle = thread.map_err(|source| OpenError::Io { path: path.to_path_buf(), source })?;
    handle
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread failed")))
        .map_err(|source| OpenError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: ReadLimit = ReadLimit { max_bytes: None, single_link: false };

    #[test]
    fn fifos_devices_large_files_and_hard_links_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo on a path in our own temporary directory.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(open_as(&fifo, None, ANY), Err(OpenError::NotRegular(_))));
        assert!(matches!(open_as(Path::new("/dev/zero"), None, ANY), Err(OpenError::NotRegular(_))));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).expect("write");
        assert!(matches!(open_as(&big, None, ReadLimit { max_bytes: Some(99), single_link: false }), Err(OpenError::TooLarge { size: 100, .. })));
        assert!(open_as(&big, None, ReadLimit { max_bytes: Some(100), single_link: true }).is_ok());
        std::fs::hard_link(&big, dir.path().join("second-name")).expect("link");
        assert!(matches!(open_as(&big, None, ReadLimit { max_bytes: None, single_link: true }), Err(OpenError::HardLink(_))));
    }
}
