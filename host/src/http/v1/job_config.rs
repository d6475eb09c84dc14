//! Seed 002's `JobConfig` (with its `GpuSpec`) as a body of `POST /api/v1/jobs`, so what that
//! platform's clients send runs here unchanged: side by side with gantry's own fields,
//!
//! | seed 002 | gantry |
//! |---|---|
//! | `name` | label `name` |
//! | `image` | `image` (needs `provider`) |
//! | `command` (argv) | `commands`: one shell line, each word quoted |
//! | `gpu_spec.gpu_type` | `gpu_type` |
//! | `gpu_spec.gpu_count` | `gpus` |
//! | `gpu_spec.memory_gb` | `memory_mib` (× 1024) |
//! | `gpu_spec.vcpus`, `gpu_spec.ram_gb` | `cpus`, `ram_gib` |
//! | `environment` | `env` |
//! | `timeout_minutes` | `time_limit_s` (× 60) |
//!
//! The seed picked its cloud by adapter; here the body names the provider instance
//! (`provider`), or may `burst` to one. A job runs under gantry's own states, retries and logs;
//! its `JobResult` is in the job view, on the last attempt: `provider_job_id` as `remote.id`,
//! state and message as `remote.state`, `exit_code`, `started_ms` and `ended_ms` as the
//! attempt's own, `log_path` as `remote.log_path`.

use crate::model::{Burst, GpuCount, JobSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    name: String,
    #[schemars(length(min = 1, max = 512))]
    image: Option<String>,
    /// The program and its arguments, not a shell line.
    #[schemars(length(min = 1))]
    command: Vec<String>,
    #[serde(default)]
    gpu_spec: Option<GpuSpec>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[schemars(range(min = 1, max = 525_600))]
    timeout_minutes: Option<u64>,
    /// The configured provider that runs it (`gantry providers` lists them).
    provider: Option<String>,
    burst: Option<Burst>,
    queue: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GpuSpec {
    gpu_type: Option<String>,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    gpu_count: u32,
    memory_gb: Option<u64>,
    vcpus: Option<u32>,
    ram_gb: Option<u32>,
}

fn one() -> u32 {
    1
}

/// `word` as one word of a POSIX shell line.
fn quoted(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

impl JobConfig {
    pub fn into_spec(self) -> JobSpec {
        let gpu = self.gpu_spec.unwrap_or(GpuSpec { gpu_type: None, gpu_count: 1, memory_gb: None, vcpus: None, ram_gb: None });
        JobSpec {
            commands: vec![self.command.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(" ")],
            labels: BTreeMap::from([("name".to_string(), self.name)]),
            image: self.image,
            gpu_type: gpu.gpu_type,
            gpus: Some(GpuCount { min: gpu.gpu_count, max: gpu.gpu_count }),
            memory_mib: gpu.memory_gb.map_or(0, |g| g.saturating_mul(1024)),
            cpus: gpu.vcpus,
            ram_gib: gpu.ram_gb,
            env: self.environment,
            time_limit_s: self.timeout_minutes.map(|m| m.saturating_mul(60)),
            provider: self.provider,
            burst: self.burst,
            queue: self.queue,
            ..JobSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{quoted, JobConfig};

    #[test]
    fn seed_002s_example_becomes_a_job_for_a_provider() {
        let body = serde_json::json!({
            "name": "pytorch-training",
            "image": "nvcr.io/nvidia/pytorch:24.02-py3",
            "command": ["python", "-c", "import torch; print(f'CUDA available: {torch.cuda.is_available()}')"],
            "gpu_spec": { "gpu_type": "A100", "gpu_count": 1, "memory_gb": 40, "vcpus": 12, "ram_gb": 48 },
            "environment": { "NVIDIA_VISIBLE_DEVICES": "all" },
            "timeout_minutes": 30,
            "provider": "runpod",
        });
        let spec = serde_json::from_value::<JobConfig>(body).expect("the seed's shape").into_spec();
        assert_eq!(spec.commands, vec![r#"python -c 'import torch; print(f'\''CUDA available: {torch.cuda.is_available()}'\'')'"#]);
        assert_eq!((spec.memory_mib, spec.time_limit_s, spec.cpus, spec.ram_gib), (40 * 1024, Some(1800), Some(12), Some(48)));
        assert_eq!((spec.gpu_type.as_deref(), spec.image.as_deref(), spec.provider.as_deref()), (Some("A100"), Some("nvcr.io/nvidia/pytorch:24.02-py3"), Some("runpod")));
        assert_eq!(spec.labels["name"], "pytorch-training");
        assert_eq!([quoted(""), quoted("a b"), quoted("--lr=3e-4")], ["''", "'a b'", "--lr=3e-4"]);
    }
}
