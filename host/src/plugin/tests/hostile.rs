//! Hostile components (`plugins/fixtures/`, built from source): each way a plugin was found to
//! hang, bloat, confuse or impersonate its way past the host, and what the host does instead.
//! "Within N s" below guards against a hang (an unbounded call never returns), not speed.

use super::*;

const SLOW_INFO: &str = env!("GANTRY_WASM_POLICY_SLOW_INFO");
const MANY_MEMORIES: &str = env!("GANTRY_WASM_POLICY_MANY_MEMORIES");
const IMPOSTOR: &str = env!("GANTRY_WASM_POLICY_IMPOSTOR");
const BAD_NAME: &str = env!("GANTRY_WASM_POLICY_BAD_NAME");
const HOSTILE_PARSER: &str = env!("GANTRY_WASM_PARSER_HOSTILE");

/// Generous beside the 100 ms deadline; a call that escaped it would not return at all.
const HANG: Duration = Duration::from_secs(30);

fn with_limits(name: &str, limits: PluginLimits) -> HashMap<String, PluginSettings> {
    HashMap::from([(name.to_string(), PluginSettings { limits, grants: PluginGrants::default() })])
}

fn row(runtime: &PluginRuntime, file: &str) -> PluginStatus {
    runtime.list().into_iter().find(|r| r.source.ends_with(file)).unwrap_or_else(|| panic!("{file} is listed"))
}

#[test]
fn a_policy_sleeping_in_a_wasi_clock_is_abandoned_at_its_deadline_and_the_fallback_places() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let started = Instant::now();
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("sleep")).expect_err("abandoned");
    assert!(started.elapsed() < HANG, "{:?}", started.elapsed());
    assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
    // The scheduler's way in: quarantined, so the native best fit places without waiting.
    let outcome = PolicyService::new(runtime.clone(), "policy-misbehave").place(&jobs(1, 1), &gpus(1), &rules("sleep"));
    assert!(matches!(&outcome.decider, Decider::Fallback { reason } if reason.contains("quarantined")), "{:?}", outcome.decider);
    assert_eq!(outcome.placements.len(), 1);
    assert_eq!(row(&runtime, "misbehave.wasm").state, "quarantined");
}

#[test]
fn a_policy_whose_info_sleeps_is_refused_without_holding_up_other_reloads() {
    // A long default deadline, so the slow load is still going while the other one happens.
    let defaults = PluginSettings { limits: PluginLimits { timeout: Duration::from_secs(10), ..PluginLimits::default() }, grants: PluginGrants::default() };
    let (dir, runtime) = runtime_with_defaults(&[], defaults, HashMap::new());
    let plugins = dir.path().join("plugins");
    std::fs::copy(SLOW_INFO, plugins.join("slow.wasm")).expect("copy");
    std::fs::copy(FIXTURE_V1, plugins.join("fixture.wasm")).expect("copy");
    let slow = {
        let (runtime, path) = (runtime.clone(), plugins.join("slow.wasm"));
        std::thread::spawn(move || runtime.reload_path(&path))
    };
    wait_for("the slow load to begin", || runtime.loading().contains(&plugins.join("slow.wasm")));
    assert!(runtime.list().iter().any(|r| r.state == "loading"), "a load in progress is listed");
    runtime.reload_path(&plugins.join("fixture.wasm"));
    assert!(runtime.get("policy-fixture").is_some(), "another file loads while the slow one is in its info()");
    assert!(!slow.is_finished(), "the slow load is still in its info(): the other one did not wait for it");
    assert!(!runtime.list().is_empty(), "listing answers meanwhile");
    slow.join().expect("the slow load ends at its deadline");
    let failed = row(&runtime, "slow.wasm");
    assert_eq!(failed.state, "failed");
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("deadline")), "{failed:?}");
}

/// A rescan whose load of a file is overtaken by a newer one (the watcher's) answers once that
/// one has: its listing shows the file's outcome, not nothing. The overlapping loads once
/// cleared each other's "loading" mark.
#[test]
fn a_rescan_overtaken_by_a_newer_load_of_the_same_file_waits_for_its_outcome() {
    let defaults = PluginSettings { limits: PluginLimits { timeout: Duration::from_millis(500), ..PluginLimits::default() }, grants: PluginGrants::default() };
    let (dir, runtime) = runtime_with_defaults(&[], defaults, HashMap::new());
    let slow = dir.path().join("plugins").join("slow.wasm");
    std::fs::copy(SLOW_INFO, &slow).expect("copy");
    // Compiled once beforehand, so that both loads take as long (the deadline of the info() call)
    // and the newer one ends last.
    let bytes = std::fs::read(SLOW_INFO).expect("fixture");
    crate::plugin::PluginEngine::new(Some(crate::testing::shared_cache())).expect("engine").compile("slow.wasm", &crate::plugin::Wasm::new(&bytes)).expect("compiles");
    let rescan = {
        let runtime = runtime.clone();
        std::thread::spawn(move || {
            runtime.rescan();
            runtime.list()
        })
    };
    wait_for("the rescan's load to begin", || runtime.loading().contains(&slow));
    let newer = {
        let (runtime, path) = (runtime.clone(), slow.clone());
        std::thread::spawn(move || runtime.reload_path(&path))
    };
    let listed = rescan.join().expect("the rescan ends");
    let shown: Vec<&str> = listed.iter().filter(|r| r.source.ends_with("slow.wasm")).map(|r| r.state).collect();
    assert_eq!(shown, ["failed"], "{listed:?}");
    newer.join().expect("the newer load ends");
}

#[test]
fn a_plugin_starting_with_a_sleeping_info_does_not_hold_up_the_runtime() {
    let started = Instant::now();
    let (_dir, runtime) = runtime_with(&[("slow.wasm", SLOW_INFO)], HashMap::new());
    assert!(started.elapsed() < HANG);
    assert_eq!(row(&runtime, "slow.wasm").state, "failed");
    assert!(runtime.get("policy-best-fit").is_some());
}

#[test]
fn the_memory_budget_covers_all_memories_of_an_instance() {
    let (_dir, runtime) = runtime_with(&[("many.wasm", MANY_MEMORIES)], HashMap::new());
    let failed = row(&runtime, "many.wasm");
    assert_eq!(failed.state, "failed");
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("memory limit of 64 MiB")), "{failed:?}");
    // With a budget that holds all four it loads: the refusal was the sum, not the component.
    let (_dir, runtime) = runtime_with_defaults(
        &[("many.wasm", MANY_MEMORIES)],
        PluginSettings { limits: PluginLimits { memory_mib: 256, ..PluginLimits::default() }, grants: PluginGrants::default() },
        HashMap::new(),
    );
    assert!(runtime.get("policy-many-memories").is_some(), "{:?}", row(&runtime, "many.wasm"));
}

#[test]
fn a_plugins_own_memory_cap_holds_from_its_first_instance_and_is_the_one_quoted() {
    // Under the default cap of 64 MiB, 32 MiB fit and 100 MiB do not; the plugin's own caps
    // decide instead, from its very first call.
    let small = with_limits("policy-misbehave", PluginLimits { memory_mib: 16, timeout: Duration::from_secs(20), ..PluginLimits::default() });
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], small);
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("grow-32")).expect_err("over its own 16 MiB");
    assert!(matches!(err, PluginError::MemoryLimit { limit_mib: 16, .. }), "{err}");
    let large = with_limits("policy-misbehave", PluginLimits { memory_mib: 256, timeout: Duration::from_secs(20), ..PluginLimits::default() });
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], large);
    assert_eq!(misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("grow-100")).expect("within its own 256 MiB").len(), 1);
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("grow-200")).expect_err("100 + 200 MiB");
    assert!(matches!(err, PluginError::MemoryLimit { limit_mib: 256, .. }), "{err}");
}

#[test]
fn a_million_placements_are_a_failure_not_a_success() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let generous = with_limits("policy-misbehave", PluginLimits { timeout: Duration::from_secs(20), ..PluginLimits::default() });
    let (_dir2, patient) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], generous);
    for runtime in [runtime, patient] {
        let err = misbehave(&runtime).place(&jobs(3, 1), &gpus(2), &rules("flood")).expect_err("over the bound");
        assert!(matches!(err, PluginError::Oversized { .. } | PluginError::Timeout { .. } | PluginError::MemoryLimit { .. }), "{err}");
        assert_eq!(misbehave(&runtime).stats().failures.load(Ordering::Relaxed), 1);
        assert!(misbehave(&runtime).quarantined());
    }
}

#[test]
fn a_huge_error_string_is_cut_and_escaped() {
    let generous = with_limits("policy-misbehave", PluginLimits { timeout: Duration::from_secs(20), ..PluginLimits::default() });
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], generous);
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("huge-error")).expect_err("an err");
    let text = err.to_string();
    assert!(matches!(err, PluginError::Returned { .. }), "{text:.200}");
    assert!(text.len() < 5000, "{} bytes", text.len());
    assert!(!text.contains('\u{1b}') && text.contains("\\u{1b}[2J"), "{text:.200}");
    assert!(row(&runtime, "misbehave.wasm").last_failure.is_some_and(|f| f.len() < 5000));
}

#[test]
fn stderr_is_kept_per_call_and_never_fills() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    for call in 0..40 {
        let placed = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("chatty")).unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(placed.len(), 1);
    }
    assert_eq!(misbehave(&runtime).stats().failures.load(Ordering::Relaxed), 0);
    // A trap reports the stderr of its own call only.
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("trap")).expect_err("trapped");
    let text = err.to_string();
    assert!(text.contains("fixture trap") && !text.contains("ccc"), "{text}");
}

#[test]
fn a_component_can_take_only_the_name_of_its_own_kind() {
    let (_dir, runtime) = runtime_with(&[("impostor.wasm", IMPOSTOR)], HashMap::new());
    let parser = runtime.get("parser-compete").expect("the parser stays");
    assert_eq!((parser.info.kind, parser.source.clone()), (PluginKind::Parser, PluginSource::Bundled("parser-compete")));
    let refused = row(&runtime, "impostor.wasm");
    assert_eq!(refused.state, "failed");
    assert!(refused.last_error.as_deref().is_some_and(|e| e.contains("parser plugin; a policy plugin can't replace it")), "{refused:?}");
}

#[test]
fn a_name_that_is_not_plain_is_refused_and_shown_escaped() {
    let (_dir, runtime) = runtime_with(&[("bad.wasm", BAD_NAME)], HashMap::new());
    let rows = runtime.list();
    assert_eq!(rows.iter().filter(|r| r.name == "parser-compete").count(), 1, "no forged row");
    let refused = row(&runtime, "bad.wasm");
    assert_eq!(refused.state, "failed");
    let shown = serde_json::to_string(&rows).expect("json");
    assert!(!shown.contains("\\u001b"), "no escape character reaches a listing: {shown}");
    assert!(refused.last_error.as_deref().is_some_and(|e| e.contains("\\u{1b}[2J") && e.contains("is not 1 to 64 of a-z")), "{refused:?}");
}

fn hostile_parser(limits: PluginLimits) -> (tempfile::TempDir, Arc<LoadedPlugin>) {
    let (dir, runtime) = runtime_with(&[("hostile.wasm", HOSTILE_PARSER)], with_limits("parser-hostile", limits));
    let parser = runtime.get("parser-hostile").expect("loads: an empty file parses to nothing");
    (dir, parser)
}

#[test]
fn a_parser_is_bounded_in_jobs_command_length_and_diagnostics() {
    let patient = PluginLimits { timeout: Duration::from_secs(20), ..PluginLimits::default() };
    let (_dir, parser) = hostile_parser(patient.clone());
    let err = parser.parse("command_gpu.txt", None, "#flood").expect_err("100,000 jobs");
    assert!(matches!(&err, PluginError::Oversized { what, .. } if what.contains("100000 jobs")), "{err}");
    let (_dir, parser) = hostile_parser(patient.clone());
    let err = parser.parse("command_gpu.txt", None, "#long-command").expect_err("a 1 MiB command");
    assert!(matches!(err, PluginError::Oversized { .. }), "{err}");
    let (_dir, parser) = hostile_parser(patient.clone());
    let diagnostics = parser.parse("command_gpu.txt", None, "#diagnostics").expect("an answer").expect_err("findings");
    assert_eq!(diagnostics.len(), text::MAX_DIAGNOSTICS + 1);
    assert_eq!(diagnostics.last().map(|d| d.message.as_str()), Some("… and 199900 more"));
    assert!(diagnostics.iter().all(|d| !d.message.contains('\u{1b}')));
    // A lower bound from the configuration.
    let (_dir, parser) = hostile_parser(PluginLimits { max_jobs: 10, ..patient });
    assert!(matches!(parser.parse("command_gpu.txt", None, "#flood"), Err(PluginError::Oversized { .. })));
}

#[test]
fn a_parser_sleeping_in_a_wasi_clock_is_abandoned() {
    let (_dir, parser) = hostile_parser(PluginLimits::default());
    let started = Instant::now();
    assert!(matches!(parser.parse("command_gpu.txt", None, "#sleep"), Err(PluginError::Timeout { .. })));
    assert!(started.elapsed() < HANG);
    assert!(matches!(parser.parse("command_gpu.txt", None, ""), Err(PluginError::Quarantined { .. })), "skipped while quarantined");
}
