//! The job's output log: capped in size, rotated (`output.log` → `output.log.1` → …), so a job
//! that prints forever cannot fill the disk.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    written: u64,
    /// The user the files belong to, when that is not the writer.
    owner: Option<(u32, u32)>,
}

impl RotatingLog {
    /// Appends to `path` (created if missing): the daemon creates it first, as the shim's own
    /// stderr, so anything the shim has to say is in the job's log too.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> std::io::Result<RotatingLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingLog { path: path.to_path_buf(), max_bytes: max_bytes.max(1), keep, file, written, owner: None })
    }

    /// Hands the log, and every file it rotates into, to `uid`:`gid`, readable by them alone.
    pub fn give_to(&mut self, uid: u32, gid: u32) -> std::io::Result<()> {
        self.owner = Some((uid, gid));
        self.own(&self.file)
    }

    fn own(&self, file: &File) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
    }

    fn create(&self) -> std::io::Result<File> {
        let file = File::create(&self.path)?;
        self.own(&file)?;
        Ok(file)
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.keep == 0 {
            self.file = self.create()?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.path, self.rotated(1))?;
            self.file = self.create()?;
        }
        self.written = 0;
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.written > 0 && self.written + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Reads up to `max` bytes of the current log file from `offset`; the second value is where the
/// next read continues. A log that rotated since the last read starts again from 0.
pub fn read_log(path: &Path, offset: u64, max: usize) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let offset = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(max.min(1 << 20));
    file.take(max as u64).read_to_end(&mut buf)?;
    let next = offset + buf.len() as u64;
    Ok((buf, next))
}

/// The last `bytes` of the log, lossily decoded: where a failing job says why.
pub fn log_tail(path: &Path, bytes: u64) -> std::io::Result<String> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let (tail, _) = read_log(path, len.saturating_sub(bytes), usize::try_from(bytes).unwrap_or(usize::MAX))?;
    Ok(String::from_utf8_lossy(&tail).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_the_cap_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("output.log");
        let mut log = RotatingLog::open(&path, 10, 2).expect("open");
        for chunk in ["aaaaaa", "bbbbbb", "cccccc", "dddddd"] {
            log.write(chunk.as_bytes()).expect("write");
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(path.clone()), "dddddd");
        assert_eq!(read(dir.path().join("output.log.1")), "cccccc");
        assert_eq!(read(dir.path().join("output.log.2")), "bbbbbb");
        assert!(!dir.path().join("output.log.3").exists());
    }
}
