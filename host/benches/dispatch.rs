//! End-to-end scheduler benchmark: the real daemon (release build) on 8 simulated GPUs, 5,000
//! trivial jobs (`true`) over 32 queues, submitted over HTTP in one batch.
//!
//! Prints, for docs/BENCHMARKS.md:
//! - throughput: jobs finished per second of wall time, submission to last exit;
//! - dispatch latency: within a queue, from one job's exit (recorded by its shim) to the next
//!   job's start (recorded by its shim), p50 / p99 / max, both under that load and on an idle
//!   machine (one queue of 300 jobs, so nothing else competes for the CPU);
//! - the daemon's CPU time per job, and that of the shims it reaped.
//!
//! `cargo bench --bench dispatch [-- JOBS QUEUES GPUS]`

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let jobs = args.first().copied().unwrap_or(5000);
    let queues = args.get(1).copied().unwrap_or(32);
    let gpus = args.get(2).copied().unwrap_or(8);

    let state = tempfile::tempdir().expect("state dir");
    let config = state.path().join("gantry.toml");
    // Sharing on and no memory asked: all 32 queues can run at once on 8 GPUs.
    std::fs::write(&config, "[scheduler]\nallow_sharing = true\n").expect("config");
    let daemon = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .env("GANTRY_STATE_DIR", state.path())
        .env("GANTRY_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1")
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0", "--simulate", &gpus.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(state.path().join("daemon.log")).expect("daemon log"))
        .spawn()
        .expect("gantry serve");
    // Killed however the benchmark ends, so a failed run leaves no daemon loading the machine.
    let mut daemon = KillOnDrop(daemon);
    let info = state.path().join("daemon.json");
    let url = loop {
        if let Some(url) = std::fs::read_to_string(&info).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()).and_then(|v| v["url"].as_str().map(String::from)) {
            break url;
        }
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("the daemon exited ({status}) before serving: {}", std::fs::read_to_string(state.path().join("daemon.log")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
    // Over TCP the daemon knows its user by the token only that user can read.
    let token = format!("Bearer {}", std::fs::read_to_string(state.path().join("local.token")).expect("the local token").trim());
    let get = |path: &str| -> Value { agent.get(&format!("{url}{path}")).set("Authorization", &token).call().expect(path).into_json().expect("json") };
    let submit = |count: u64, queues: u64| {
        let batch: Vec<Value> = (0..count).map(|i| json!({ "commands": ["true"], "queue": format!("q{}", i % queues) })).collect();
        agent.post(&format!("{url}/api/v1/jobs")).set("Authorization", &token).send_json(json!({ "jobs": batch })).expect("submit");
    };
    let wait_all = |total: u64| loop {
        let status = get("/api/v1/status");
        if status["counts"]["succeeded"].as_u64() == Some(total) {
            return;
        }
        assert_eq!(status["counts"]["failed"].as_u64(), Some(0), "{status}");
        // About as often as a dashboard would look; the daemon's answer costs it CPU.
        std::thread::sleep(Duration::from_millis(100));
    };
    let latencies = |offset: u64| -> Vec<u64> {
        let listing = get(&format!("/api/v1/jobs?offset={offset}"));
        let mut per_queue: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for job in listing["jobs"].as_array().expect("jobs") {
            let attempt = &job["attempts"][0];
            let (start, end) = (attempt["started_ms"].as_u64().expect("start"), attempt["ended_ms"].as_u64().expect("end"));
            per_queue.entry(job["queue"].as_str().unwrap_or_default().to_string()).or_default().push((start, end));
        }
        let mut gaps: Vec<u64> = per_queue.values().flat_map(|spans| spans.windows(2).map(|w| w[1].0.saturating_sub(w[0].1))).collect();
        gaps.sort_unstable();
        gaps
    };
    let describe = |gaps: &[u64]| {
        let pick = |q: f64| gaps[((gaps.len() as f64 - 1.0) * q).round() as usize];
        format!("p50 {} ms, p99 {} ms, max {} ms over {} gaps", pick(0.5), pick(0.99), pick(1.0), gaps.len())
    };

    // Warm up: the first attempts page in the shim binary.
    submit(queues, queues);
    wait_all(queues);

    let pid = daemon.0.id();
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    submit(jobs, queues);
    wait_all(jobs + queues);
    let wall = started.elapsed();
    let cpu_after = cpu_ticks(pid);
    let loaded = latencies(queues);

    let serial = 300;
    submit(serial, 1);
    wait_all(jobs + queues + serial);
    let idle = latencies(jobs + queues);

    let tick = clock_ticks_per_second();
    let own = (cpu_after.0 - cpu_before.0) as f64 / tick;
    let reaped = (cpu_after.1 - cpu_before.1) as f64 / tick;
    println!("machine: {} × {}", std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model());
    println!("{jobs} jobs (`true`) over {queues} queues on {gpus} simulated GPUs");
    println!("wall {:.2} s → {:.0} jobs/s", wall.as_secs_f64(), jobs as f64 / wall.as_secs_f64());
    println!("dispatch latency (exit → next start in the queue, ms resolution) under that load: {}", describe(&loaded));
    println!("dispatch latency, one queue of {serial} on an idle daemon: {}", describe(&idle));
    println!("daemon CPU {:.3} s = {:.0} µs/job; shims and jobs reaped {:.3} s = {:.0} µs/job", own, own * 1e6 / jobs as f64, reaped, reaped * 1e6 / jobs as f64);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (utime + stime, cutime + cstime) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<u64> = stat[stat.rfind(')').expect("comm") + 2..].split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // Fields 14-17 of proc(5), counted here from field 3.
    (fields[11] + fields[12], fields[13] + fields[14])
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_else(|| "unknown CPU".into())
}
