//! GPU layer costs: one full sample of 8 GPUs through the stand-in NVML, and the sampler's CPU
//! use at 1 s and 100 ms intervals.
//!
//! `cargo bench -p gantry --bench gpu`; results go to docs/BENCHMARKS.md.

use criterion::Criterion;
use gantry::gpu::{GpuMonitor, NvmlReader, SamplerConfig};
use std::time::{Duration, Instant};

fn machine() -> (tempfile::TempDir, NvmlReader) {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(env!("GANTRY_NVML_SIM"), dir.path().join("libnvidia-ml.so.1")).expect("copy fake");
    std::fs::write(dir.path().join("nvml-sim.json"), r#"{"count": 8, "model": {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}}"#)
        .expect("config");
    let reader = NvmlReader::open(&dir.path().join("libnvidia-ml.so.1"), true).expect("fake loads");
    (dir, reader)
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn sampler_cpu(interval: Duration, run_for: Duration) {
    let (_dir, reader) = machine();
    let monitor = GpuMonitor::start(reader, SamplerConfig { interval, ..Default::default() }).expect("sampler");
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    std::thread::sleep(run_for);
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    drop(monitor);
    println!(
        "sampler, 8 GPUs, interval {interval:?}: {:.3} % of one core ({:?} CPU over {:?})",
        cpu.as_secs_f64() * 100.0 / wall.as_secs_f64(),
        cpu,
        wall
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let (_dir, mut reader) = machine();
    c.bench_function("gpu/full_sample_8_gpus", |b| b.iter(|| reader.read_all().expect("reads")));
    c.final_summary();

    let quick = std::env::args().any(|a| a == "--test");
    let run_for = if quick { Duration::from_millis(300) } else { Duration::from_secs(30) };
    sampler_cpu(Duration::from_secs(1), run_for);
    sampler_cpu(Duration::from_millis(100), run_for);
}
