//! Log files beyond a job's own: seed 001's bindings of a log file to a process of a command
//! file, reading files inside the log roots, and the run logs the daemon writes. Which files may
//! be read is decided by [`crate::log_access`]; file work runs off the async threads.

use super::{off_thread, Service, ServiceError};
use crate::log_access::Binding;
use crate::model::{iso_time, now_ms, Principal, RunId, RunMode};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Lines returned when a request names none.
pub const DEFAULT_LINES: usize = 200;

impl Service {
    /// The log a run's job changes are written to.
    pub fn run_log_path(&self, run: RunId) -> PathBuf {
        super::run_log::path(&self.config.read().server.log_dir, run)
    }

    /// Binds `log_path` to process `process_index` of queue `queue_id` of a command file: a file
    /// the caller may read.
    pub async fn bind_log(&self, who: &Principal, mode: RunMode, config_index: u32, queue_id: u32, process_index: u32, log_path: PathBuf) -> Result<Binding, ServiceError> {
        let owner = Some(who.name.clone());
        let binding = Binding { mode: mode.as_str().into(), config_index, queue_id, process_index, log_path, bound_at: iso_time(now_ms()), owner, dev: 0, ino: 0 };
        let (logs, reader) = (self.logs.clone(), self.reader(who).await?);
        off_thread(move || logs.bind(binding, reader.as_ref())).await
    }

    pub async fn unbind_log(&self, mode: RunMode, config_index: u32, queue_id: u32, process_index: u32) -> Result<(), ServiceError> {
        let key = Binding::key(mode.as_str(), config_index, queue_id, process_index);
        let logs = self.logs.clone();
        off_thread(move || logs.unbind(&key)).await
    }

    pub fn log_bindings(&self) -> BTreeMap<String, Binding> {
        self.logs.bindings()
    }

    /// The end of the log bound to a process of a command file: its path and last `lines` lines.
    pub async fn bound_log(&self, who: &Principal, mode: RunMode, config_index: u32, queue_id: u32, process_index: u32, lines: Option<usize>) -> Result<(PathBuf, String), ServiceError> {
        let key = Binding::key(mode.as_str(), config_index, queue_id, process_index);
        let path = self.logs.bound(&key)?;
        let content = self.read_log_file(who, path.clone(), lines).await?;
        Ok((path, content))
    }

    /// The last `lines` lines of a log file gantry may serve (see [`crate::log_access`]) and
    /// the caller may read.
    pub async fn read_log_file(&self, who: &Principal, path: PathBuf, lines: Option<usize>) -> Result<String, ServiceError> {
        let (logs, reader) = (self.logs.clone(), self.reader(who).await?);
        off_thread(move || logs.tail(&path, lines.unwrap_or(DEFAULT_LINES), reader.as_ref())).await
    }
}
