//! End-to-end tests: the real `gantry` binary, each run with its own temporary state directory.
//!
//! No test here may see a real NVIDIA driver by accident: every run points `GANTRY_NVML_LIBRARY`
//! at a path that does not exist unless the test says otherwise.

mod cli;
mod executor;
mod gpus;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const NO_DRIVER: &str = "/nonexistent/libnvidia-ml.so.1";

/// A state directory and the commands that run in it.
pub struct Gantry {
    pub state: tempfile::TempDir,
}

impl Gantry {
    pub fn new() -> Gantry {
        Gantry { state: tempfile::tempdir().expect("state dir") }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.env("GANTRY_STATE_DIR", self.state.path())
            .env("GANTRY_NVML_LIBRARY", NO_DRIVER)
            .env_remove("GANTRY_CONFIG")
            .env_remove("GANTRY_SIM_CONFIG")
            .env_remove("GANTRY_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("gantry runs")
    }

    pub fn sim_dir(&self) -> PathBuf {
        self.state.path().join("sim")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}
