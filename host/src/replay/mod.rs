//! `gantry replay`: a workload (a trace, or a generated one) run through the real scheduler and
//! policy code on a virtual clock, once per policy, on simulated GPUs, and scored side by side.
//! Nothing runs and nothing sleeps: each policy gets a scratch store of its own, the same
//! machine and the same rules from the configuration.
//!
//! - `trace`: the trace format (docs/TRACES.md);
//! - `generate`: synthetic traces with a documented distribution;
//! - `score`: the figures, and the side-by-side table;
//! - `export`: a daemon's finished jobs as a trace;
//! - `foreign`: other people's GPU use over time, as the daemon records it for export.

pub mod export;
pub mod foreign;
pub mod generate;
pub mod score;
pub mod trace;

use crate::config::Config;
use crate::gpu::{open_gpus, GpuMode, GpuMonitor, SamplerConfig};
use crate::model::Clock;
use crate::plugin::{PluginKind, PluginRuntime};
use crate::policy::PolicyService;
use crate::scheduler::SchedulerOptions;
use crate::store::Store;
use score::Score;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use trace::Trace;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error("--policy {given}: {message}")]
    Policy { given: String, message: String },
    #[error("the replay's simulated GPUs: {0}")]
    Gpus(#[from] crate::gpu::GpuError),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("replaying with {policy}: {source}")]
    Scheduler { policy: String, source: crate::scheduler::SchedulerError },
    #[error("the replay's scratch store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the replay's scratch directory: {0}")]
    Scratch(std::io::Error),
}

/// When a replay's clock starts (2026-01-01T00:00:00Z): its figures never depend on the day it
/// runs.
const START_MS: u64 = 1_767_225_600_000;

/// Replays `trace` once with each of `policies` (names of `plugins`' policies, or component
/// files, which are loaded into it), with the rules of `config`. Blocking: compiles components,
/// calls them.
pub fn run(config: &Config, plugins: &Arc<PluginRuntime>, trace: &Trace, policies: &[String]) -> Result<Vec<Score>, ReplayError> {
    let chosen: Vec<(String, String)> = policies.iter().map(|given| Ok((label(given), policy_name(plugins, given)?))).collect::<Result<_, ReplayError>>()?;
    let scratch = tempfile::Builder::new().prefix("gantry-replay-").tempdir().map_err(ReplayError::Scratch)?;
    let (reader, _) = open_gpus(&GpuMode::Simulate(trace.machine.clone()), Path::new("/nonexistent/libnvidia-ml.so.1"), &scratch.path().join("sim"))?;
    // One reading for the whole replay: a trace says nothing of temperatures or utilisation over
    // time, and a sampler moving on the wall clock would make two runs' figures differ. Other
    // people's memory, which a trace does carry, the replay lays over this reading.
    let once = SamplerConfig { interval: Duration::from_secs(366 * 86_400), ..SamplerConfig::default() };
    let gpus = Arc::new(GpuMonitor::start(reader, once).map_err(ReplayError::Scratch)?);
    let workload = trace.workload(START_MS);
    let mut scores = Vec::with_capacity(chosen.len());
    for (i, (given, name)) in chosen.iter().enumerate() {
        let dir = scratch.path().join(format!("replay-{i}"));
        std::fs::create_dir(&dir).map_err(ReplayError::Scratch)?;
        let options = SchedulerOptions {
            rules: config.scheduler.clone(),
            state_dir: dir.clone(),
            shim_program: Path::new("/nonexistent/gantry-shim").to_path_buf(),
            simulation: None,
            work_dir: None,
            job_umask: 0o022,
            job_token: None,
            metrics: Arc::new(crate::metrics::SchedulerMetrics::default()),
            clock: Clock::starting_at(START_MS),
            providers: None,
        };
        let store = Store::open(&dir.join("gantry.db"))?;
        let policy = PolicyService::new(plugins.clone(), name.clone());
        let replayed = crate::scheduler::replay(options, store, gpus.clone(), policy, &workload).map_err(|source| ReplayError::Scheduler { policy: given.clone(), source })?;
        scores.push(Score::of(given, &replayed, trace.machine.count));
    }
    Ok(scores)
}

/// The component file a `--policy` argument names, if it names one rather than a plugin.
fn as_file(given: &str) -> Option<&Path> {
    let path = Path::new(given);
    (given.ends_with(".wasm") || path.is_file()).then_some(path)
}

/// What a policy's column is headed with: its name, or a component's file name.
fn label(given: &str) -> String {
    as_file(given).and_then(Path::file_name).map_or_else(|| given.to_string(), |name| name.to_string_lossy().into_owned())
}

/// The name a `--policy` argument stands for: a component file (loaded for this replay), or a
/// policy plugin that is loaded (bundled, or in the plugin directory).
fn policy_name(runtime: &PluginRuntime, given: &str) -> Result<String, ReplayError> {
    let refuse = |message: String| ReplayError::Policy { given: given.to_string(), message };
    let info = if let Some(path) = as_file(given) {
        runtime.add_file(path)?
    } else {
        match runtime.get(given) {
            Some(plugin) => plugin.info.clone(),
            None => {
                let known: Vec<String> = runtime.list().into_iter().filter(|p| p.kind == Some(PluginKind::Policy)).map(|p| p.name).collect();
                return Err(refuse(format!("no policy plugin has this name, and it is not a component file; the policies are {}", known.join(", "))));
            }
        }
    };
    if info.kind != PluginKind::Policy {
        return Err(refuse(format!("{} is a {} plugin, not a policy", info.name, info.kind)));
    }
    Ok(info.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(trace: &str, rules: &str, policies: &[&str]) -> Vec<Score> {
        let config = Config::parse(Path::new("gantry.toml"), rules).expect("config");
        let trace = Trace::parse("test", trace).expect("trace");
        let policies: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
        run(&config, &crate::testing::bundled_plugins(), &trace, &policies).expect("replays")
    }

    /// One GPU held by one job at a time: the second job waits exactly as long as the first runs,
    /// on the virtual clock, and the figures follow from that.
    #[test]
    fn a_replay_runs_on_the_virtual_clock() {
        let trace = "{\"gantry_trace\": 1, \"machine\": \"1xA100\"}\n{\"at_s\": 0, \"duration_s\": 3600}\n{\"at_s\": 600, \"duration_s\": 1800, \"owner\": \"bob\"}\n{\"at_s\": 601, \"duration_s\": 1, \"gpus\": 2}\n";
        let [score] = &replay(trace, "", &["policy-best-fit"])[..] else { panic!("one policy, one score") };
        assert_eq!((score.jobs, score.started, score.succeeded, score.never_started), (3, 2, 2, 1), "{score:#?}");
        // Bob's job waits from 600 s to 3600 s.
        assert_eq!((score.wait_p95_s, score.wait_mean_s), (3000.0, 1500.0));
        assert_eq!(score.wait_mean_s_by_owner.get("bob"), Some(&3000.0));
        assert_eq!(score.makespan_s, 5400.0);
        assert!((score.utilisation_pct - 100.0).abs() < 1e-9, "{}", score.utilisation_pct);
        assert_eq!(score.decided_by.as_deref(), Some("policy-best-fit 0.1.0"));
    }

    /// A failing attempt is retried after its queue's backoff, on the same clock: both attempts
    /// count, and the job ends failed.
    #[test]
    fn failures_are_retried_after_their_backoff_in_virtual_time() {
        let trace = "{\"gantry_trace\": 1, \"machine\": \"1\"}\n{\"at_s\": 0, \"duration_s\": 600, \"exit_code\": 3, \"retries\": 1}\n";
        let rules = "[scheduler]\nmax_retry_before_backoff = 1\nbackoff_duration = 3600\n";
        let [score] = &replay(trace, rules, &["policy-best-fit"])[..] else { panic!("one score") };
        assert_eq!((score.started, score.failed, score.succeeded), (1, 1, 0), "{score:#?}");
        // 600 s, an hour's backoff, 600 s again.
        assert_eq!(score.makespan_s, 4800.0, "{score:#?}");
        assert!((score.gpu_hours_used - 1200.0 / 3600.0).abs() < 1e-9, "{score:#?}");
    }

    /// Someone else holds most of GPU 0 for the first hour: a job that needs more than is left
    /// there goes to GPU 1, and one that arrives while GPU 1 is busy waits for the hour's end,
    /// not for a GPU that would have looked empty without the trace's foreign lines.
    #[test]
    fn other_peoples_use_takes_memory_for_as_long_as_the_trace_says() {
        let trace = "{\"gantry_trace\": 2, \"machine\": \"2xA100\"}\n{\"at_s\": 0, \"foreign\": {\"gpu\": 0, \"memory_mib\": 70000}}\n{\"at_s\": 0, \"duration_s\": 7200, \"memory_mib\": 20000}\n{\"at_s\": 60, \"duration_s\": 60, \"memory_mib\": 20000}\n{\"at_s\": 3600, \"foreign\": {\"gpu\": 0, \"memory_mib\": 0}}\n";
        let [score] = &replay(trace, "", &["policy-best-fit"])[..] else { panic!("one score") };
        assert_eq!(score.placements, vec![Some(vec![1]), Some(vec![0])], "{score:#?}");
        assert_eq!((score.wait_p95_s, score.succeeded), (3540.0, 2), "{score:#?}");
        let without = trace.lines().filter(|l| !l.contains("foreign")).collect::<Vec<_>>().join("\n");
        let [score] = &replay(&without, "", &["policy-best-fit"])[..] else { panic!("one score") };
        assert_eq!((score.placements[1].as_ref().map(Vec::len), score.wait_p95_s), (Some(1), 0.0), "{score:#?}");
    }

    #[test]
    fn a_policy_is_a_loaded_policys_name_or_a_component_file() {
        let plugins = crate::testing::bundled_plugins();
        assert_eq!(policy_name(&plugins, "policy-spread").expect("bundled"), "policy-spread");
        let missing = policy_name(&plugins, "policy-nope").expect_err("no such policy").to_string();
        assert!(missing.starts_with("--policy policy-nope: no policy plugin") && missing.contains("policy-best-fit"), "{missing}");
        let parser = policy_name(&plugins, "parser-compete").expect_err("a parser").to_string();
        assert!(parser.contains("is a parser plugin, not a policy"), "{parser}");
        let file = policy_name(&plugins, "/nonexistent/p.wasm").expect_err("no file").to_string();
        assert!(file.contains("/nonexistent/p.wasm"), "{file}");
    }
}
