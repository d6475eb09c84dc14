//! What unit tests across the crate share: one plugin runtime over the bundled components (each
//! compiled once per test binary), and GPUs simulated through the real NVML path.

use crate::gpu::{open_gpus, prepare_simulation, GpuMode, GpuMonitor, NvmlReader, SamplerConfig};
use crate::plugin::{PluginRuntime, PluginSettings, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// One artifact cache for the whole test binary, so each component is compiled once, not per test.
pub fn shared_cache() -> PathBuf {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE.get_or_init(|| tempfile::tempdir().expect("cache dir")).path().to_path_buf()
}

/// The bundled plugins, loaded once; nothing from a plugin directory.
pub fn bundled_plugins() -> Arc<PluginRuntime> {
    static RUNTIME: OnceLock<Arc<PluginRuntime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let options = RuntimeOptions { plugin_dir: None, cache_dir: Some(shared_cache()), compiler: None, defaults: PluginSettings::default(), per_plugin: Default::default() };
            PluginRuntime::new(options).expect("the bundled plugins load")
        })
        .clone()
}

/// `count` simulated 24 GiB GPUs, their stand-in library and configuration in `dir`, sampled
/// as the daemon samples them.
pub fn simulated_gpus(dir: &Path, count: u32) -> Arc<GpuMonitor> {
    let spec: crate::gpu::SimSpec = count.to_string().parse().expect("a GPU count");
    let (reader, _) = open_gpus(&GpuMode::Simulate(spec), Path::new("/nonexistent/libnvidia-ml.so.1"), &dir.join("sim")).expect("simulated GPUs open");
    Arc::new(GpuMonitor::start(reader, SamplerConfig::default()).expect("sampler starts"))
}

/// A simulated machine as `nvml-sim.json` describes it (reserved memory, odd GPUs), in `dir`.
pub fn simulated_machine(dir: &Path, config: serde_json::Value) -> Arc<GpuMonitor> {
    let sim = dir.join("sim");
    std::fs::create_dir_all(&sim).expect("sim dir");
    std::fs::write(sim.join("nvml-sim.json"), config.to_string()).expect("nvml-sim.json");
    let lib = prepare_simulation(&sim, None).expect("the stand-in library");
    Arc::new(GpuMonitor::start(NvmlReader::open(&lib, true).expect("it loads"), SamplerConfig::default()).expect("sampler starts"))
}
