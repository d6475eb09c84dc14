//! Simulation mode: the bundled stand-in `libnvidia-ml.so.1` (crate `nvml-sim`), written beside
//! its configuration and loaded through the same nvml-wrapper path as a real driver. Jobs that
//! gantry starts in this mode carry the environment that makes the fake count their memory.

use super::GpuError;
use std::path::{Path, PathBuf};

/// The fake library, built from `nvml-sim/` by `build.rs`.
pub const BUNDLED_FAKE_NVML: &[u8] = include_bytes!(env!("GANTRY_NVML_SIM"));

/// `--simulate N[xMODEL]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSpec {
    pub count: u32,
    pub model: SimModel,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimModel {
    pub name: &'static str,
    pub memory_mib: u64,
    pub power_limit_w: u32,
}

const MODELS: &[(&str, SimModel)] = &[
    ("RTX4090", SimModel { name: "NVIDIA GeForce RTX 4090", memory_mib: 24_564, power_limit_w: 450 }),
    ("RTX3090", SimModel { name: "NVIDIA GeForce RTX 3090", memory_mib: 24_576, power_limit_w: 350 }),
    ("A6000", SimModel { name: "NVIDIA RTX A6000", memory_mib: 49_140, power_limit_w: 300 }),
    ("L40S", SimModel { name: "NVIDIA L40S", memory_mib: 46_068, power_limit_w: 350 }),
    ("V100", SimModel { name: "Tesla V100-SXM2-32GB", memory_mib: 32_768, power_limit_w: 300 }),
    ("T4", SimModel { name: "Tesla T4", memory_mib: 15_360, power_limit_w: 70 }),
    ("A100-40G", SimModel { name: "NVIDIA A100-SXM4-40GB", memory_mib: 40_960, power_limit_w: 400 }),
    ("A100", SimModel { name: "NVIDIA A100-SXM4-80GB", memory_mib: 81_920, power_limit_w: 400 }),
    ("H100", SimModel { name: "NVIDIA H100 80GB HBM3", memory_mib: 81_559, power_limit_w: 700 }),
    ("H200", SimModel { name: "NVIDIA H200", memory_mib: 143_771, power_limit_w: 700 }),
];

impl Default for SimSpec {
    /// Four 24 GiB GPUs: a typical shared workstation.
    fn default() -> Self {
        SimSpec { count: 4, model: MODELS[0].1.clone() }
    }
}

/// As `--simulate` takes it (`8xH100`), so that it parses back to the same machine.
impl std::fmt::Display for SimSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match MODELS.iter().find(|(_, model)| *model == self.model) {
            Some((key, _)) => write!(f, "{}x{key}", self.count),
            None => write!(f, "{}", self.count),
        }
    }
}

impl std::str::FromStr for SimSpec {
    type Err = GpuError;

    fn from_str(spec: &str) -> Result<Self, GpuError> {
        let error = |message: String| GpuError::SimSpec { spec: spec.to_string(), message };
        let (count, model) = match spec.split_once(['x', 'X', '×']) {
            Some((count, model)) => (count, Some(model)),
            None => (spec, None),
        };
        let count: u32 = count.trim().parse().map_err(|_| error("expected a GPU count, e.g. 4 or 8xH100".into()))?;
        if !(1..=64).contains(&count) {
            return Err(error(format!("GPU count must be 1..=64, got {count}")));
        }
        let model = match model {
            None => SimSpec::default().model,
            Some(wanted) => {
                let key = wanted.trim().to_ascii_uppercase().replace(' ', "");
                let key = key.trim_start_matches("NVIDIA").trim_start_matches("GEFORCE");
                MODELS.iter().find(|(k, _)| *k == key || k.trim_start_matches("RTX") == key).map(|(_, m)| m.clone()).ok_or_else(
                    || error(format!("unknown model '{wanted}'; known: {}", MODELS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "))),
                )?
            }
        };
        Ok(SimSpec { count, model })
    }
}

impl SimSpec {
    /// `count` GPUs of the known model whose memory is nearest `memory_mib`: how a trace names
    /// a machine it was recorded on.
    pub fn nearest(count: u32, memory_mib: u64) -> SimSpec {
        let model = MODELS.iter().min_by_key(|(_, m)| m.memory_mib.abs_diff(memory_mib)).map_or_else(|| SimSpec::default().model, |(_, m)| m.clone());
        SimSpec { count, model }
    }
}

/// Writes the fake library and its configuration into `dir` and returns the library's path.
/// A configuration already there is kept (a user may have edited it), unless `spec` is given.
pub fn prepare_simulation(dir: &Path, spec: Option<&SimSpec>) -> Result<PathBuf, GpuError> {
    let io = |what: &str, e: std::io::Error| GpuError::Simulation(format!("{what} in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;

    let lib = dir.join("libnvidia-ml.so.1");
    let current = std::fs::read(&lib).ok();
    if current.as_deref() != Some(BUNDLED_FAKE_NVML) {
        // Written aside and renamed: a process that has the old file mapped keeps it intact.
        let tmp = dir.join(format!(".libnvidia-ml.so.1.{}", std::process::id()));
        std::fs::write(&tmp, BUNDLED_FAKE_NVML).map_err(|e| io("writing the simulated driver", e))?;
        std::fs::rename(&tmp, &lib).map_err(|e| io("installing the simulated driver", e))?;
    }

    let config = dir.join("nvml-sim.json");
    if spec.is_some() || !config.exists() {
        let spec = spec.cloned().unwrap_or_default();
        let json = serde_json::json!({
            "count": spec.count,
            "model": {
                "name": spec.model.name,
                "memory_mib": spec.model.memory_mib,
                "power_limit_w": spec.model.power_limit_w,
            },
        });
        std::fs::write(&config, format!("{json:#}\n")).map_err(|e| io("writing nvml-sim.json", e))?;
    }
    Ok(lib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("4".parse::<SimSpec>().expect("valid"), SimSpec::default());
        let h100: SimSpec = "8xH100".parse().expect("valid");
        assert_eq!((h100.count, h100.model.memory_mib), (8, 81_559));
        assert_eq!("2x4090".parse::<SimSpec>().expect("valid").model.name, "NVIDIA GeForce RTX 4090");
        assert_eq!("1xa100-40g".parse::<SimSpec>().expect("valid").model.memory_mib, 40_960);
        assert_eq!(h100.to_string().parse::<SimSpec>().expect("its own text"), h100);
        assert_eq!(SimSpec::nearest(8, 81_559), h100);
        assert_eq!(SimSpec::nearest(2, 24_000).model.name, "NVIDIA GeForce RTX 4090");
    }

    #[test]
    fn bad_specs_say_why() {
        let err = "0".parse::<SimSpec>().expect_err("zero GPUs").to_string();
        assert!(err.contains("1..=64"), "{err}");
        let err = "2xB9000".parse::<SimSpec>().expect_err("unknown model").to_string();
        assert!(err.contains("B9000") && err.contains("H100"), "{err}");
        assert!("many".parse::<SimSpec>().is_err());
    }
}
