//! Starting, watching and cancelling the shims of attempts. The scheduling thread must never wait
//! on a process, so each of these runs on the async runtime and reports back as a message.
//!
//! The engine sees only the [`Launcher`] trait: its unit tests drive the state machine with a
//! launcher that records what it was asked instead of starting processes; the daemon uses
//! [`Shims`], which the end-to-end tests exercise.

use super::messages::Msg;
use crate::executor::{self, AttemptSpec, RunningAttempt, ShimInfo, Spawner};
use crate::model::JobId;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

pub trait Launcher: Send {
    /// Starts the attempt's shim; `Started`, and once it ends `Ended`, arrive on `tx`.
    fn launch(&self, job: JobId, attempt: u32, dir: PathBuf, spec: AttemptSpec, tx: Sender<Msg>);
    /// Waits for an attempt adopted after a restart; `Ended` arrives on `tx`.
    fn watch(&self, job: JobId, attempt: u32, running: RunningAttempt, tx: Sender<Msg>);
    /// SIGTERM to the job's process group, SIGKILL after `grace`.
    fn cancel(&self, shim: ShimInfo, grace: Duration);
}

/// Attempts under shims forked by the spawner, handed to it on a blocking thread and waited for
/// with a pidfd on the runtime.
pub struct Shims {
    spawner: Arc<Spawner>,
    runtime: tokio::runtime::Handle,
}

impl Shims {
    pub fn new(spawner: Spawner, runtime: tokio::runtime::Handle) -> Self {
        Shims { spawner: Arc::new(spawner), runtime }
    }
}

impl Launcher for Shims {
    fn launch(&self, job: JobId, attempt: u32, dir: PathBuf, spec: AttemptSpec, tx: Sender<Msg>) {
        let spawner = self.spawner.clone();
        let runtime = self.runtime.clone();
        self.runtime.spawn_blocking(move || match executor::spawn(&spawner, &dir, &spec) {
            Ok(running) => {
                let _ = tx.send(Msg::Started { job, attempt, shim: Ok(running.shim.clone()) });
                runtime.spawn(async move {
                    let outcome = executor::wait(running).await.map_err(|e| e.to_string());
                    let _ = tx.send(Msg::Ended { job, attempt, outcome });
                });
            }
            Err(e) => {
                let _ = tx.send(Msg::Started { job, attempt, shim: Err(e.to_string()) });
            }
        });
    }

    fn watch(&self, job: JobId, attempt: u32, running: RunningAttempt, tx: Sender<Msg>) {
        self.runtime.spawn(async move {
            let outcome = executor::wait(running).await.map_err(|e| e.to_string());
            let _ = tx.send(Msg::Ended { job, attempt, outcome });
        });
    }

    fn cancel(&self, shim: ShimInfo, grace: Duration) {
        self.runtime.spawn(async move { executor::cancel(&shim, grace).await });
    }
}
