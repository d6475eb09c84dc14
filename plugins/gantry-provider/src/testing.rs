//! What an adapter's native tests start from.

use crate::{GpuSpec, JobConfig};

/// A job as the host sends one: alice's two-GPU training run, attempt 2 of gantry job 7, with a
/// 90 s time limit, no image and no CPU or memory request.
pub fn job() -> JobConfig {
    JobConfig {
        name: "train".into(),
        key: "gantry-7-2".into(),
        user: "alice".into(),
        working_dir: "/home/alice/run".into(),
        image: String::new(),
        command: vec!["cd src".into(), "python train.py".into()],
        gpu: GpuSpec { gpu_type: String::new(), count: 2, memory_gib: 40 },
        cpus: 0,
        ram_gib: 0,
        env: vec![("GANTRY_JOB_ID".into(), "7".into())],
        timeout_s: Some(90),
        region: None,
    }
}
