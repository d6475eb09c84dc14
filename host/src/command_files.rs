//! Seed 001/004's numbered command files: configuration 1 of a mode is `command_gpu.txt`
//! (single) or `command_gpus.txt` (multi), configuration N+1 adds `_N` to the name. Every write
//! keeps the file it replaces as `<name>.bak`, which `reset` restores. Blocking file work: the
//! daemon calls this off its async threads.

use crate::config::CommandFiles;
use crate::model::RunMode;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CommandFileError {
    #[error("{mode} configuration {index} ({path}) does not exist")]
    Missing { mode: &'static str, index: u32, path: PathBuf },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} has no backup to reset to: it is made by the first change through the API")]
    NoBackup { path: PathBuf },
    #[error("there are {count} {mode} configurations, the most a mode may have; delete one first")]
    TooMany { mode: &'static str, count: usize },
}

/// The most numbered configurations a mode may have: each is a file the daemon lists and parses
/// for every listing, and an API call makes one.
pub const MAX_PER_MODE: usize = 256;

/// One configuration as seed 001's `/api/commands/{mode}/list` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Entry {
    pub index: u32,
    pub name: String,
    pub file_name: String,
    pub exists: bool,
}

impl CommandFiles {
    fn first(&self, mode: RunMode) -> &Path {
        match mode {
            RunMode::Single => &self.single,
            RunMode::Multi => &self.multi,
        }
    }

    /// The file of configuration `index` (0 is configuration 1).
    pub fn path(&self, mode: RunMode, index: u32) -> PathBuf {
        let first = self.first(mode);
        if index == 0 {
            return first.to_path_buf();
        }
        let stem = first.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = match first.extension() {
            Some(ext) => format!("{stem}_{index}.{}", ext.to_string_lossy()),
            None => format!("{stem}_{index}"),
        };
        first.with_file_name(name)
    }

    /// The mode and index a file is, if it is one of these configurations.
    pub fn locate(&self, path: &Path) -> Option<(RunMode, u32)> {
        [RunMode::Single, RunMode::Multi].into_iter().find_map(|mode| self.indexes(mode).into_iter().find(|i| self.path(mode, *i) == path).map(|i| (mode, i)))
    }

    /// Indexes of the files that exist, configuration 1 always included.
    fn indexes(&self, mode: RunMode) -> Vec<u32> {
        let first = self.first(mode);
        let stem = first.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = first.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let mut found: Vec<u32> = first
            .parent()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_prefix(&format!("{stem}_"))?.strip_suffix(&ext)?.parse::<u32>().ok().filter(|n| *n > 0)
            })
            .collect();
        found.push(0);
        found.sort_unstable();
        found.dedup();
        found
    }

    pub fn list(&self, mode: RunMode) -> Vec<Entry> {
        self.indexes(mode)
            .into_iter()
            .map(|index| {
                let path = self.path(mode, index);
                Entry {
                    index,
                    name: format!("配置 {}", index + 1),
                    file_name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    exists: path.is_file(),
                }
            })
            .collect()
    }

    pub fn read(&self, mode: RunMode, index: u32) -> Result<String, CommandFileError> {
        let path = self.path(mode, index);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CommandFileError::Missing { mode: mode.as_str(), index, path }),
            Err(e) => Err(CommandFileError::Io { path, message: e.to_string() }),
        }
    }

    /// Replaces the file atomically, keeping the old one as the backup.
    pub fn write(&self, mode: RunMode, index: u32, text: &str) -> Result<PathBuf, CommandFileError> {
        let path = self.path(mode, index);
        let io = |e: std::io::Error| CommandFileError::Io { path: path.clone(), message: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if path.is_file() {
            std::fs::copy(&path, backup(&path)).map_err(io)?;
        }
        let temp = path.with_extension("txt.tmp");
        std::fs::write(&temp, text).map_err(io)?;
        std::fs::rename(&temp, &path).map_err(io)?;
        Ok(path)
    }

    /// The index a new configuration gets: the first, while it does not exist, else after the
    /// last.
    pub fn next_index(&self, mode: RunMode) -> Result<u32, CommandFileError> {
        let existing = self.list(mode);
        if existing.iter().filter(|e| e.exists).count() >= MAX_PER_MODE {
            return Err(CommandFileError::TooMany { mode: mode.as_str(), count: MAX_PER_MODE });
        }
        Ok(match existing.iter().find(|e| e.index == 0 && !e.exists) {
            Some(_) => 0,
            None => existing.iter().map(|e| e.index).max().unwrap_or(0) + 1,
        })
    }

    /// Deletes a configuration; its backup stays, so a `reset` can bring it back.
    pub fn delete(&self, mode: RunMode, index: u32) -> Result<(), CommandFileError> {
        let path = self.path(mode, index);
        if !path.is_file() {
            return Err(CommandFileError::Missing { mode: mode.as_str(), index, path });
        }
        std::fs::copy(&path, backup(&path)).and_then(|_| std::fs::remove_file(&path)).map_err(|e| CommandFileError::Io { path, message: e.to_string() })
    }

    /// Puts back the file as it was before the last change.
    pub fn reset(&self, mode: RunMode, index: u32) -> Result<(), CommandFileError> {
        let path = self.path(mode, index);
        let saved = backup(&path);
        if !saved.is_file() {
            return Err(CommandFileError::NoBackup { path });
        }
        std::fs::copy(&saved, &path).map(|_| ()).map_err(|e| CommandFileError::Io { path, message: e.to_string() })
    }
}

fn backup(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_backup_and_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CommandFiles { single: dir.path().join("command_gpu.txt"), multi: dir.path().join("command_gpus.txt") };
        assert_eq!(files.path(RunMode::Multi, 2), dir.path().join("command_gpus_2.txt"));
        let listed = files.list(RunMode::Single);
        assert_eq!((listed.len(), listed[0].exists), (1, false));
        assert_eq!(files.next_index(RunMode::Single).expect("room"), 0);
        files.write(RunMode::Single, 0, "1\ntrue\n1\n").expect("create");
        assert_eq!(files.next_index(RunMode::Single).expect("room"), 1);
        files.write(RunMode::Single, 1, "2\ntrue\n1\n").expect("create");
        assert_eq!(files.list(RunMode::Single).iter().map(|e| e.file_name.as_str()).collect::<Vec<_>>(), ["command_gpu.txt", "command_gpu_1.txt"]);
        assert_eq!(files.locate(&dir.path().join("command_gpu_1.txt")), Some((RunMode::Single, 1)));
        files.write(RunMode::Single, 1, "3\nfalse\n1\n").expect("write");
        files.reset(RunMode::Single, 1).expect("reset");
        assert_eq!(files.read(RunMode::Single, 1).expect("read"), "2\ntrue\n1\n");
        files.delete(RunMode::Single, 1).expect("delete");
        assert!(matches!(files.read(RunMode::Single, 1), Err(CommandFileError::Missing { index: 1, .. })));
        assert!(matches!(files.reset(RunMode::Multi, 0), Err(CommandFileError::NoBackup { .. })));
        for index in 0..MAX_PER_MODE as u32 {
            files.write(RunMode::Multi, index, "1\ntrue\n1\n").expect("create");
        }
        assert!(matches!(files.next_index(RunMode::Multi), Err(CommandFileError::TooMany { count: MAX_PER_MODE, .. })));
    }
}
