//! The daemon's files in its log directory (seed 001's `logs/`): `pid.json` while it serves, and
//! one log per run (`run_<id>.log`, seed 001's scheduler log) with every change of its jobs.

use crate::model::{iso_time, now_ms, Event, RunId};
use crate::scheduler::Scheduler;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn path(dir: &Path, run: RunId) -> PathBuf {
    dir.join(format!("run_{run}.log"))
}

/// Writes run logs on a thread of its own (file writes are blocking) until the scheduler stops.
pub fn start(scheduler: &Scheduler, dir: PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let mut events = scheduler.subscribe();
    std::thread::Builder::new().name("gantry-run-log".into()).spawn(move || loop {
        let event = match events.blocking_recv() {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "run logs missed events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let now = iso_time(now_ms());
        let (run, line) = match &event {
            Event::Job { id, state, queue, run: Some(run), attempt, gpus, reason } => {
                let why = reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                (*run, format!("{now} job {id} queue {queue} attempt {attempt} {} gpus {gpus:?}{why}", state.as_str()))
            }
            Event::Run(run) => (run.id, format!("{now} run {} {:?} ({})", run.id, run.state, run.file.display())),
            Event::Job { run: None, .. } => continue,
        };
        let written = std::fs::OpenOptions::new().create(true).append(true).open(path(&dir, run)).and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(run = %run, error = %e, "cannot write the run log");
        }
    })?;
    Ok(())
}

/// `pid.json`: who serves, where; removed when the daemon stops.
pub fn write_pid_file(dir: &Path, url: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("pid.json");
    let info = serde_json::json!({ "pid": std::process::id(), "url": url, "started_at": iso_time(now_ms()) });
    crate::unix::write_atomically(&file, info.to_string().as_bytes())?;
    Ok(file)
}
