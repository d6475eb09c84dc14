//! `gantry replay`: workloads through the real scheduler and policies on a virtual clock.

use super::*;

/// Rules under which the choice of GPU matters: jobs share GPUs by memory.
const SHARING: &str = "[scheduler]\nallow_sharing = true\n";

fn replay(g: &Gantry, config: &str, args: &[&str]) -> Output {
    let path = g.state.path().join("replay.toml");
    std::fs::write(&path, config).expect("config");
    let mut all = vec!["--config", path.to_str().expect("utf-8"), "replay"];
    all.extend_from_slice(args);
    g.run(&all)
}

fn figures(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "replay: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn two_policies_on_a_generated_trace_give_different_figures_and_the_same_seed_the_same() {
    let g = Gantry::new();
    let args = ["--generate", "400", "--seed", "7", "--policy", "policy-best-fit", "--policy", "policy-spread", "--json"];
    let first = figures(&replay(&g, SHARING, &args));
    let again = figures(&replay(&g, SHARING, &args));
    assert_eq!(first, again, "the same seed replays the same");
    let [best, spread] = [&first["policies"][0], &first["policies"][1]];
    assert_eq!((best["policy"].as_str(), spread["policy"].as_str()), (Some("policy-best-fit"), Some("policy-spread")));
    for score in [best, spread] {
        assert_eq!(score["jobs"], 400, "{score:#}");
        assert_eq!(score["started"], 400, "every generated job fits the machine: {score:#}");
        assert!(score["utilisation_pct"].as_f64().is_some_and(|u| u > 10.0 && u <= 100.0), "{score:#}");
        assert!(score["decided_by"].as_str().is_some_and(|d| d.starts_with(score["policy"].as_str().unwrap_or("?"))), "the policy decided, not the fallback: {score:#}");
    }
    assert_ne!(best["wait_mean_s"], spread["wait_mean_s"], "packing and spreading wait differently: {first:#}");
    let other = figures(&replay(&g, SHARING, &["--generate", "400", "--seed", "8", "--policy", "policy-best-fit", "--json"]));
    assert_ne!(other["policies"][0], *best, "another seed, another workload");
}

#[test]
fn a_saved_trace_replays_as_it_was_generated_and_a_bad_line_is_named() {
    let g = Gantry::new();
    let saved = g.state.path().join("week.jsonl");
    let generated = figures(&replay(&g, SHARING, &["--generate", "150", "--seed", "3", "--save", saved.to_str().expect("utf-8"), "--json"]));
    let text = std::fs::read_to_string(&saved).expect("saved");
    assert!(text.starts_with("{\"gantry_trace\":2,\"machine\":\"8xH100\""), "{text}");
    assert_eq!(text.lines().count(), 151, "a header and a line per job");
    let from_file = figures(&replay(&g, SHARING, &[saved.to_str().expect("utf-8"), "--json"]));
    assert_eq!(from_file["policies"], generated["policies"], "the configured policy on the same jobs");

    let mut lines: Vec<&str> = text.lines().collect();
    lines[5] = "{\"at_s\": 999999, \"duration_s\": 1, \"gpus\": 0}";
    std::fs::write(&saved, lines.join("\n")).expect("write");
    let out = replay(&g, SHARING, &[saved.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("{}:6: gpus", saved.display())), "{}", stderr(&out));
    // A cause is said once, however many layers pass it up.
    let out = replay(&g, SHARING, &["/nonexistent/trace.jsonl"]);
    assert_eq!((out.status.code(), stderr(&out).matches("No such file or directory").count()), (Some(2), 1), "{}", stderr(&out));
}

#[test]
fn a_policy_that_overbooks_is_caught_by_the_hosts_check_and_the_replay_says_so() {
    let g = Gantry::new();
    let config = format!("{SHARING}[scheduler.params]\nfixture = \"overbook\"\n");
    let scores = figures(&replay(&g, &config, &["--generate", "100", "--seed", "1", "--policy", env!("GANTRY_WASM_POLICY_MISBEHAVE"), "--policy", "policy-best-fit", "--json"]));
    let (overbooking, fitting) = (&scores["policies"][0], &scores["policies"][1]);
    assert!(overbooking["dropped_placements"].as_u64().is_some_and(|n| n > 0), "{overbooking:#}");
    assert_eq!(fitting["dropped_placements"], 0, "{fitting:#}");
    assert!(overbooking["decided_by"].as_str().is_some_and(|d| d.starts_with("policy-misbehave")), "{overbooking:#}");
    // What the check let through ran, on the first GPU; a job needing more GPUs never got them.
    assert!(overbooking["started"].as_u64().is_some_and(|n| n > 0) && overbooking["never_started"].as_u64().is_some_and(|n| n > 0), "{overbooking:#}");
    assert_eq!(fitting["never_started"], 0, "{fitting:#}");
    let table = replay(&g, &config, &["--generate", "100", "--seed", "1", "--policy", env!("GANTRY_WASM_POLICY_MISBEHAVE")]);
    assert!(stdout(&table).lines().any(|l| l.starts_with("placements dropped by the host") && !l.trim_end().ends_with(" 0")), "{}", stdout(&table));
    assert_eq!(stderr(&table), "", "counted in the figures, not warned of pass by pass");
}

/// Jobs a daemon ran (on simulated GPUs, sharing them), exported and replayed with the daemon's
/// policy, land where they landed: the replay is the daemon's scheduling, not a model of it.
/// Best fit, which ranks GPUs by memory alone: a trace has no utilisation over time, which
/// spread breaks ties by (docs/TRACES.md).
#[test]
fn a_trace_exported_from_a_daemon_replays_with_the_same_placements() {
    let g = Gantry::new();
    let config = format!("{FAST}{SHARING}[plugins]\npolicy = \"policy-best-fit\"\n");
    let d = g.serve(&config, &["--simulate", "4"]);
    // Two phases, far enough apart that the daemon's start latency (the replay starts a job at
    // its submission) can't reorder anything, even on a loaded machine: four jobs that overlap,
    // then, well after all four ended, two more that find the GPUs empty again.
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    let mut submit = |memory_mib: u64, at_s: f64| {
        let wait = Duration::from_secs_f64(at_s).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
        ids.push(d.submit(serde_json::json!({ "commands": ["sleep 3"], "memory_mib": memory_mib }))[0]);
    };
    for (memory, at) in [(16_384, 0.0), (8_192, 0.3), (12_288, 0.6), (4_096, 0.9), (20_480, 7.5), (8_192, 7.8)] {
        submit(memory, at);
    }
    let ran: Vec<serde_json::Value> = ids.iter().map(|&id| d.finished(id)).collect();
    let placed: Vec<serde_json::Value> = ran.iter().map(|j| j["attempts"][0]["gpus"].clone()).collect();
    assert!(ran.iter().all(|j| j["state"] == "succeeded"), "{ran:#?}");
    let gpus_used: std::collections::BTreeSet<String> = placed.iter().map(|p| p.to_string()).collect();
    // Best fit packs: 16 GiB on GPU 0, 8 and 12 on GPU 1, 4 back on GPU 0; later 20 GiB on an
    // empty GPU 0 (had the first four not ended, GPU 2) and 8 beside it on GPU 1.
    assert!(gpus_used.len() > 1, "{placed:?}");

    let trace = g.state.path().join("exported.jsonl");
    let out = g.run(&["trace", "export", "--since", "1h", "--output", trace.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("6 jobs and "), "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(text.lines().filter(|l| !l.contains("\"foreign\"")).count(), 7, "a header and six jobs: {text}");
    // Nobody else used the GPUs: what the daemon recorded says so for each.
    let foreign: Vec<&str> = text.lines().filter(|l| l.contains("\"foreign\"")).collect();
    assert!(foreign.len() >= 4 && foreign.iter().all(|l| l.contains("\"memory_mib\":0}")), "{text}");
    let replayed = figures(&replay(&g, SHARING, &[trace.to_str().expect("utf-8"), "--policy", "policy-best-fit", "--json"]));
    let score = &replayed["policies"][0];
    assert_eq!(score["placements"], serde_json::Value::Array(placed.clone()), "the daemon placed {placed:?}; the replay: {score:#}");
    assert_eq!(score["succeeded"], 6, "{score:#}");
}

/// Someone else's process on GPU 0 of a daemon, then gone: the daemon records their use, the
/// export carries it, and the replay places around it where the daemon did. Without it the
/// replay would have put the first job on the GPU that looked empty.
#[test]
fn other_peoples_use_is_recorded_exported_and_replayed() {
    let g = Gantry::new();
    let config = format!("{FAST}[plugins]\npolicy = \"policy-best-fit\"\n");
    let d = g.serve(&config, &["--simulate", "2"]);
    let trace = g.state.path().join("exported.jsonl");
    let export = || {
        let out = g.run(&["trace", "export", "--since", "1h", "--output", trace.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(&trace).expect("trace")
    };
    let wait_for_line = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = export();
            if text.lines().any(|l| l.contains(wanted)) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no {wanted} in the export: {text}\n{}", g.daemon_log());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let stranger = crate::gpus::Reaped(crate::gpus::gpu_user(&g, "0", 20_000));
    wait_for_line("\"foreign\":{\"gpu\":0,\"memory_mib\":20000}");
    // 8 GiB doesn't fit beside 20 GB on a 24 GiB GPU: both go to GPU 1, one after the other.
    let job = serde_json::json!({ "commands": ["sleep 1"], "memory_mib": 8192 });
    let mut ids = d.submit(job.clone());
    ids.extend(d.submit(job.clone()));
    for &id in &ids {
        d.finished(id);
    }
    drop(stranger);
    wait_for_line("\"foreign\":{\"gpu\":0,\"memory_mib\":0}");
    ids.extend(d.submit(job));
    let ran: Vec<serde_json::Value> = ids.iter().map(|&id| d.finished(id)).collect();
    let placed: Vec<serde_json::Value> = ran.iter().map(|j| j["attempts"][0]["gpus"].clone()).collect();
    assert_eq!(placed, [serde_json::json!([1]), serde_json::json!([1]), serde_json::json!([0])], "{ran:#?}");

    let text = export();
    assert!(text.starts_with("{\"gantry_trace\":2"), "{text}");
    let replayed = figures(&replay(&g, "", &[trace.to_str().expect("utf-8"), "--policy", "policy-best-fit", "--json"]));
    assert_eq!(replayed["policies"][0]["placements"], serde_json::Value::Array(placed), "{text}");
    let without: Vec<&str> = text.lines().filter(|l| !l.contains("\"foreign\"")).collect();
    std::fs::write(&trace, without.join("\n")).expect("write");
    let blind = figures(&replay(&g, "", &[trace.to_str().expect("utf-8"), "--policy", "policy-best-fit", "--json"]));
    assert_eq!(blind["policies"][0]["placements"][0], serde_json::json!([0]), "{blind:#}");
}
