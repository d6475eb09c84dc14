//! Hot reload: a watcher on the plugin directory that reloads a component once its file has been
//! quiet for a moment.
//!
//! Editors and `cp` write a file in several steps and renames report both names, so events are
//! gathered until [`QUIET`] passes with none, deduplicated by path, and each path is reconciled
//! with the file as it is then. A half-written file fails to load and leaves the old version
//! active; the write that completes it brings another event and a successful load.

use super::{is_wasm, PluginError, PluginRuntime};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(10);

/// Stops watching when dropped.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl PluginRuntime {
    /// Starts reloading components from the plugin directory as they change. The directory is
    /// created if missing.
    pub fn watch(self: &Arc<Self>) -> Result<Option<PluginWatcher>, PluginError> {
        let Some(dir) = self.plugin_dir().map(PathBuf::from) else { return Ok(None) };
        let watch_error = |message: String| PluginError::Watch { path: dir.clone(), message };
        std::fs::create_dir_all(&dir).map_err(|e| watch_error(e.to_string()))?;

        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        })
        .map_err(|e| watch_error(e.to_string()))?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| watch_error(e.to_string()))?;

        let runtime = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("gantry-plugin-reload".into())
            .spawn(move || {
                // Ends when the watcher (and with it the sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut paths = BTreeSet::from([first]);
                    while let Ok(path) = rx.recv_timeout(QUIET) {
                        paths.insert(path);
                    }
                    let Some(runtime) = runtime.upgrade() else { return };
                    for path in paths.iter().filter(|p| is_wasm(p)) {
                        runtime.reload_path(path);
                    }
                }
            })
            .map_err(|e| watch_error(e.to_string()))?;
        Ok(Some(PluginWatcher { _watcher: watcher }))
    }
}
