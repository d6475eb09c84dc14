//! Watching a directory for files that changed, once each, after the writing is over.
//!
//! Editors and `cp` write a file in several steps and renames report both names, so events are
//! gathered until a quiet period passes with none and handed over deduplicated by path.

use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Stops watching when dropped.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Calls `on_change` on a thread of its own with each batch of changed paths in `dir`, until it
/// returns false or the watcher is dropped.
pub fn watch_dir(
    dir: &Path,
    quiet: Duration,
    thread_name: &str,
    mut on_change: impl FnMut(BTreeSet<PathBuf>) -> bool + Send + 'static,
) -> Result<DirWatcher, String> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading a file is not changing it, and the reader may be the callback itself.
        if let Some(event) = event.ok().filter(|e| !e.kind.is_access()) {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    watcher.watch(dir, RecursiveMode::NonRecursive).map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while let Ok(first) = rx.recv() {
                let mut paths = BTreeSet::from([first]);
                while let Ok(path) = rx.recv_timeout(quiet) {
                    paths.insert(path);
                }
                if !on_change(paths) {
                    return;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(DirWatcher { _watcher: watcher })
}
