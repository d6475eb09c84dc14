//! Hot reload: a watcher on the plugin directory that reloads a component once its file has been
//! quiet for a moment.
//!
//! Each changed path is reconciled with the file as it is once the writing is over. A
//! half-written file fails to load and leaves the old version active; the write that completes it
//! brings another event and a successful load.

use super::{is_wasm, PluginError, PluginRuntime};
use crate::watch::{watch_dir, DirWatcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(10);

impl PluginRuntime {
    /// Starts reloading components from the plugin directory as they change. The directory is
    /// created if missing.
    pub fn watch(self: &Arc<Self>) -> Result<Option<DirWatcher>, PluginError> {
        let Some(dir) = self.plugin_dir().map(PathBuf::from) else { return Ok(None) };
        let watch_error = |message: String| PluginError::Watch { path: dir.clone(), message };
        std::fs::create_dir_all(&dir).map_err(|e| watch_error(e.to_string()))?;
        let runtime = Arc::downgrade(self);
        let watcher = watch_dir(&dir, QUIET, "gantry-plugin-reload", move |paths| {
            let Some(runtime) = runtime.upgrade() else { return false };
            for path in paths.iter().filter(|p| is_wasm(p)) {
                runtime.reload_path(path);
            }
            true
        })
        .map_err(watch_error)?;
        Ok(Some(watcher))
    }
}
