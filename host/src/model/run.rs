//! Command files loaded as runs, and what a queue remembers between its jobs.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

super::number! {
    /// A run's number; a seed 001 "scheduler" shows it as its `pid`.
    RunId
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// `command_gpu*.txt`: one GPU per job.
    Single,
    /// `command_gpus*.txt`: a GPU count per job.
    Multi,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Single => "single",
            RunMode::Multi => "multi",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Finished,
    Stopped,
}

/// A command file loaded into the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    pub id: RunId,
    pub file: PathBuf,
    pub mode: RunMode,
    pub state: RunState,
    pub created_ms: u64,
    pub ended_ms: Option<u64>,
}

/// What a queue remembers between jobs (seed 004's retry and backoff).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueState {
    pub name: String,
    /// Failures in a row; reset by a success and by a backoff.
    pub consecutive_failures: u32,
    pub backoff_until_ms: Option<u64>,
    /// Jobs of this queue that may run at once.
    pub parallelism: u32,
    pub last_error: Option<String>,
}

impl QueueState {
    pub fn new(name: &str) -> QueueState {
        QueueState { name: name.to_string(), parallelism: 1, ..QueueState::default() }
    }
}
