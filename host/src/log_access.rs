//! Which files the API may read as logs: those inside the configured roots (job logs, the
//! daemon's log directory, `server.log_roots`), and files an authorised user bound to a process
//! of a command file (seed 001/004's log bindings, kept in `<state>/log_bindings.json`). A path
//! is judged after resolving it: `..` is refused outright, and a symlink that leads out of a root
//! is out. Blocking file work.
//!
//! Every file is opened with the reader's rights ([`crate::unix::open_as`]): through gantry a
//! user reads only what they could read themselves. A bound log is the file (device and inode)
//! that was bound, with one name: a file put in its place, or a hard link to another file, is
//! refused.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LogAccessError {
    #[error("`{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    /// Also what a missing file or a directory gets: the answer must not tell a caller whether
    /// a path they may not read exists.
    #[error("{0} is not a log gantry may read: outside the log roots and not bound, or missing")]
    Outside(PathBuf),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("no log is bound to {0}")]
    Unbound(String),
    #[error(transparent)]
    Open(#[from] crate::unix::OpenError),
    #[error("{0} is no longer the file that was bound to this process; bind it again")]
    Replaced(PathBuf),
    #[error("there are {0} log bindings, the most kept; remove one first")]
    TooMany(usize),
}

/// The most log bindings kept: each is checked on every log read, and all are rewritten to disk
/// on every change.
pub const MAX_BINDINGS: usize = 4096;

/// A log file bound to one process of a command file (seed 001's fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Binding {
    pub mode: String,
    pub config_index: u32,
    pub queue_id: u32,
    pub process_index: u32,
    pub log_path: PathBuf,
    pub bound_at: String,
    /// Who bound it.
    #[serde(default)]
    pub owner: Option<String>,
    /// The file as bound: its device and inode.
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
}

impl Binding {
    /// Seed 001's key: `{mode}_{config_index}_{queue_id}_{process_index}`.
    pub fn key(mode: &str, config_index: u32, queue_id: u32, process_index: u32) -> String {
        format!("{mode}_{config_index}_{queue_id}_{process_index}")
    }
}

pub struct LogAccess {
    roots: Vec<PathBuf>,
    file: PathBuf,
    bindings: parking_lot::Mutex<BTreeMap<String, Binding>>,
}

/// Most of a log one request returns.
pub const MAX_READ: u64 = 1 << 20;

fn io(path: &Path) -> impl Fn(std::io::Error) -> LogAccessError + '_ {
    move |e| LogAccessError::Io { path: path.to_path_buf(), message: e.to_string() }
}

/// A log is read as its one name; a file with another name could be anything.
const LOG_FILE: crate::unix::ReadLimit = crate::unix::ReadLimit { max_bytes: None, single_link: true };

/// The last `max` bytes of an opened file.
fn tail_of(file: std::fs::File, len: u64, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An absolute path without `..`, resolved (symlinks too) to the file it names.
fn resolve(path: &Path) -> Result<PathBuf, LogAccessError> {
    if !path.is_absolute() {
        return Err(LogAccessError::Invalid { field: "path", message: format!("{} is not an absolute path", path.display()) });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(LogAccessError::Invalid { field: "path", message: format!("{}: `..` is not allowed", path.display()) });
    }
    let real = std::fs::canonicalize(path).map_err(|_| LogAccessError::Outside(path.to_path_buf()))?;
    if !real.is_file() {
        return Err(LogAccessError::Outside(path.to_path_buf()));
    }
    Ok(real)
}

impl LogAccess {
    /// Roots that do not exist yet are made, so that they can be resolved once and for all.
    pub fn open(roots: &[PathBuf], bindings_file: PathBuf) -> Result<LogAccess, LogAccessError> {
        let mut resolved = Vec::new();
        for root in roots {
            std::fs::create_dir_all(root).map_err(io(root))?;
            resolved.push(std::fs::canonicalize(root).map_err(io(root))?);
        }
        let bindings = match std::fs::read_to_string(&bindings_file) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| LogAccessError::Io { path: bindings_file.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&bindings_file)(e)),
        };
        Ok(LogAccess { roots: resolved, file: bindings_file, bindings: parking_lot::Mutex::new(bindings) })
    }

    fn save(&self, bindings: &BTreeMap<String, Binding>) -> Result<(), LogAccessError> {
        let text = serde_json::to_vec_pretty(bindings).map_err(|e| LogAccessError::Io { path: self.file.clone(), message: e.to_string() })?;
        let temp = self.file.with_extension("json.tmp");
        std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, &self.file)).map_err(io(&self.file))
    }

    /// Binds a file `reader` may read (`None`: the daemon's rights).
    pub fn bind(&self, mut binding: Binding, reader: Option<&crate::unix::Account>) -> Result<Binding, LogAccessError> {
        use std::os::unix::fs::MetadataExt;
        binding.log_path = resolve(&binding.log_path)?;
        let (_, meta) = crate::unix::open_as(&binding.log_path, reader, LOG_FILE)?;
        (binding.dev, binding.ino) = (meta.dev(), meta.ino());
        let key = Binding::key(&binding.mode, binding.config_index, binding.queue_id, binding.process_index);
        let mut bindings = self.bindings.lock();
        if bindings.len() >= MAX_BINDINGS && !bindings.contains_key(&key) {
            return Err(LogAccessError::TooMany(MAX_BINDINGS));
        }
        let mut next = bindings.clone();
        next.insert(key, binding.clone());
        self.save(&next)?;
        *bindings = next;
        Ok(binding)
    }

    pub fn unbind(&self, key: &str) -> Result<(), LogAccessError> {
        let mut bindings = self.bindings.lock();
        let mut next = bindings.clone();
        next.remove(key).ok_or_else(|| LogAccessError::Unbound(key.to_string()))?;
        self.save(&next)?;
        *bindings = next;
        Ok(())
    }

    pub fn bindings(&self) -> BTreeMap<String, Binding> {
        self.bindings.lock().clone()
    }

    pub fn bound(&self, key: &str) -> Result<PathBuf, LogAccessError> {
        self.bindings.lock().get(key).map(|b| b.log_path.clone()).ok_or_else(|| LogAccessError::Unbound(key.to_string()))
    }

    /// The file behind `path` if it may be read, and the file it must be if it is a bound log.
    fn permitted(&self, path: &Path) -> Result<(PathBuf, Option<(u64, u64)>), LogAccessError> {
        let real = resolve(path)?;
        let bound = self.bindings.lock().values().find(|b| b.log_path == real).map(|b| (b.dev, b.ino));
        if bound.is_some() || self.roots.iter().any(|root| real.starts_with(root)) { Ok((real, bound)) } else { Err(LogAccessError::Outside(path.to_path_buf())) }
    }

    /// The last `lines` lines of a permitted file (at most [`MAX_READ`] bytes of it), opened as
    /// `reader` (`None`: with the daemon's rights).
    pub fn tail(&self, path: &Path, lines: usize, reader: Option<&crate::unix::Account>) -> Result<String, LogAccessError> {
        use std::os::unix::fs::MetadataExt;
        let (real, bound) = self.permitted(path)?;
        let (file, meta) = crate::unix::open_as(&real, reader, LOG_FILE)?;
        // Bindings made before gantry recorded inodes have none to compare.
        if bound.is_some_and(|(dev, ino)| ino != 0 && (dev, ino) != (meta.dev(), meta.ino())) {
            return Err(LogAccessError::Replaced(real));
        }
        let text = tail_of(file, meta.len(), MAX_READ).map_err(io(&real))?;
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines)..].join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_bounded_and_a_bound_process_may_be_bound_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let access = LogAccess::open(&[], dir.path().join("log_bindings.json")).expect("open");
        let log = dir.path().join("a.log");
        std::fs::write(&log, "x\n").expect("write");
        let binding = |queue_id: u32| Binding { mode: "single".into(), config_index: 0, queue_id, process_index: 0, log_path: log.clone(), bound_at: "now".into(), owner: None, dev: 0, ino: 0 };
        *access.bindings.lock() = (0..MAX_BINDINGS as u32).map(|q| (Binding::key("single", 0, q, 0), binding(q))).collect();
        assert!(matches!(access.bind(binding(MAX_BINDINGS as u32), None), Err(LogAccessError::TooMany(MAX_BINDINGS))));
        access.bind(binding(7), None).expect("a process already bound is bound anew");
    }

    #[test]
    fn roots_bindings_and_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("jobs");
        let access = LogAccess::open(std::slice::from_ref(&root), dir.path().join("log_bindings.json")).expect("open");
        std::fs::write(root.join("a.log"), "1\n2\n3\n").expect("write");
        assert_eq!(access.tail(&root.join("a.log"), 2, None).expect("inside"), "2\n3");

        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, "key").expect("write");
        assert!(matches!(access.tail(&secret, 10, None), Err(LogAccessError::Outside(_))));
        assert!(matches!(access.tail(&root.join("../secret.txt"), 10, None), Err(LogAccessError::Invalid { .. })));
        // Missing, a directory, or outside: one answer, so existence is not told.
        for path in [root.join("missing.log"), dir.path().join("missing.log"), root.clone()] {
            assert!(matches!(access.tail(&path, 10, None), Err(LogAccessError::Outside(_))), "{}", path.display());
        }
        assert!(matches!(access.tail(Path::new("jobs/a.log"), 10, None), Err(LogAccessError::Invalid { .. })));
        std::os::unix::fs::symlink(&secret, root.join("link.log")).expect("symlink");
        assert!(matches!(access.tail(&root.join("link.log"), 10, None), Err(LogAccessError::Outside(_))));

        // Bound, it may be read, and the binding survives a restart.
        let binding = Binding { mode: "single".into(), config_index: 0, queue_id: 1, process_index: 0, log_path: secret.clone(), bound_at: "now".into(), owner: Some("ada".into()), dev: 0, ino: 0 };
        access.bind(binding.clone(), None).expect("bind");
        assert_eq!(access.tail(&secret, 10, None).expect("bound"), "key");
        let again = LogAccess::open(&[root], dir.path().join("log_bindings.json")).expect("reopen");
        assert_eq!(again.bound("single_0_1_0").expect("kept"), std::fs::canonicalize(&secret).expect("real"));

        // Another file put in its place is not what was bound; nor is a file with two names.
        let replacement = dir.path().join("replacement");
        std::fs::write(&replacement, "other").expect("write");
        std::fs::rename(&replacement, &secret).expect("replace");
        assert!(matches!(again.tail(&secret, 10, None), Err(LogAccessError::Replaced(_))));
        std::fs::hard_link(&secret, dir.path().join("second-name")).expect("link");
        assert!(matches!(again.bind(binding, None), Err(LogAccessError::Open(crate::unix::OpenError::HardLink(_)))));
        again.unbind("single_0_1_0").expect("unbind");
        assert!(matches!(again.tail(&secret, 10, None), Err(LogAccessError::Outside(_))));
    }
}
