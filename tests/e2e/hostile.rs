//! Hostile plugins dropped into a running daemon's plugin directory (`plugins/fixtures/`, built
//! from source): whatever they do, the daemon keeps scheduling — with the native best fit when
//! its policy fails — and keeps answering. Each test says which failure of the sandbox it guards.

use super::*;
use serde_json::json;

/// A request unanswered after this is a hang: the daemon answers in milliseconds, and before
/// the sandbox held a sleeping plugin stalled the scheduler until the 30 s request timeout.
const ANSWER: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> &'static str {
    match name {
        "misbehave" => env!("GANTRY_WASM_POLICY_MISBEHAVE"),
        "slow-info" => env!("GANTRY_WASM_POLICY_SLOW_INFO"),
        "many-memories" => env!("GANTRY_WASM_POLICY_MANY_MEMORIES"),
        "impostor" => env!("GANTRY_WASM_POLICY_IMPOSTOR"),
        "bad-name" => env!("GANTRY_WASM_POLICY_BAD_NAME"),
        "hostile-parser" => env!("GANTRY_WASM_PARSER_HOSTILE"),
        "hostile-provider" => env!("GANTRY_WASM_PROVIDER_HOSTILE"),
        "echo-provider" => env!("GANTRY_WASM_PROVIDER_ECHO"),
        other => panic!("no fixture {other}"),
    }
}

/// A daemon whose plugin directory holds `plugins` from the start, with `config` added.
fn daemon_with(g: &Gantry, plugins: &[&str], config: &str) -> Daemon {
    let dir = g.state.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    for name in plugins {
        std::fs::copy(fixture(name), dir.join(format!("{name}.wasm"))).expect("copy fixture");
    }
    g.serve(&format!("{FAST}{config}"), &["--simulate", "2"])
}

/// The policy is the misbehaving fixture, doing what `fixture` says on every pass.
fn misbehaving(fixture: &str) -> String {
    format!("[plugins]\npolicy = \"policy-misbehave\"\n[scheduler.params]\nfixture = \"{fixture}\"\n")
}

/// Status and health answer within [`ANSWER`]; the status, for the caller to look at.
fn answers(d: &Daemon) -> serde_json::Value {
    let agent = ureq::AgentBuilder::new().timeout(ANSWER).build();
    for path in ["/api/v1/health", "/api/v1/plugins"] {
        d.authorized(agent.get(&format!("{}{path}", d.url))).call().unwrap_or_else(|e| panic!("{path} did not answer within {ANSWER:?}: {e}"));
    }
    d.authorized(agent.get(&format!("{}/api/v1/status", d.url))).call().unwrap_or_else(|e| panic!("status did not answer within {ANSWER:?}: {e}")).into_json().expect("json")
}

/// Jobs submitted now all run to success.
fn keeps_scheduling(d: &Daemon) {
    let ids = d.submit(json!({ "jobs": [{ "commands": ["true"] }, { "commands": ["true"] }, { "commands": ["true"] }] }));
    for id in ids {
        assert_eq!(d.finished(id)["state"], "succeeded");
    }
}

/// Waits until a quarantined plugin is called again.
fn out_of_quarantine(d: &Daemon, source_suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while plugin(d, source_suffix)["state"] == "quarantined" {
        assert!(Instant::now() < deadline, "{source_suffix} stayed quarantined");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn plugin(d: &Daemon, source_suffix: &str) -> serde_json::Value {
    let list = d.get("/api/v1/plugins");
    list.as_array().and_then(|rows| rows.iter().find(|r| r["source"].as_str().is_some_and(|s| s.ends_with(source_suffix))).cloned()).unwrap_or_else(|| panic!("{source_suffix} listed: {list:#}"))
}

#[test]
fn a_policy_sleeping_in_place_leaves_scheduling_to_the_fallback() {
    // Failure 1: a WASI clock poll in place() blocked the scheduler thread for good.
    let g = Gantry::new();
    let d = daemon_with(&g, &["misbehave"], &misbehaving("sleep"));
    keeps_scheduling(&d);
    let status = answers(&d);
    assert!(status["last_decider"].as_str().is_some_and(|s| s.starts_with("native best fit")), "{status:#}");
    let policy = plugin(&d, "misbehave.wasm");
    assert!(policy["failures"].as_u64() >= Some(1), "{policy:#}");
    assert!(policy["last_failure"].as_str().is_some_and(|f| f.contains("deadline")), "{policy:#}");
}

#[test]
fn a_plugin_whose_info_sleeps_does_not_keep_the_daemon_from_serving() {
    // Failure 1: the same in info() hung the reload thread, and a restart never answered.
    let g = Gantry::new();
    let d = daemon_with(&g, &["slow-info"], "");
    keeps_scheduling(&d);
    answers(&d);
    let failed = plugin(&d, "slow-info.wasm");
    assert_eq!(failed["state"], "failed", "{failed:#}");
    // A reload asked for over the API answers too.
    let agent = ureq::AgentBuilder::new().timeout(ANSWER).build();
    d.authorized(agent.post(&format!("{}/api/v1/plugins/reload", d.url))).call().expect("reload answers");
    let out = g.run(&["plugin", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("slow-info"), "{}", stdout(&out));
}

#[test]
fn a_plugin_spreading_memory_over_several_memories_is_refused() {
    // Failure 2: four 60 MiB memories each passed a 64 MiB cap meant for the plugin.
    let g = Gantry::new();
    let d = daemon_with(&g, &["many-memories"], "[plugins]\npolicy = \"policy-many-memories\"\n");
    keeps_scheduling(&d);
    let failed = plugin(&d, "many-memories.wasm");
    assert!(failed["last_error"].as_str().is_some_and(|e| e.contains("memory limit of 64 MiB")), "{failed:#}");
    assert!(answers(&d)["last_decider"].as_str().is_some_and(|s| s.contains("is not loaded")));
}

#[test]
fn a_flood_of_placements_is_a_failure_and_the_logs_stay_small() {
    // Failure 4: a million placements counted as success and wrote a million warnings per pass.
    let g = Gantry::new();
    let d = daemon_with(&g, &["misbehave"], &misbehaving("flood"));
    keeps_scheduling(&d);
    answers(&d);
    assert!(plugin(&d, "misbehave.wasm")["failures"].as_u64() >= Some(1));
    for log in [g.state.path().join("daemon.log"), g.state.path().join("logs/run.log")] {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert!(size < 1 << 20, "{} is {size} bytes", log.display());
    }
}

#[test]
fn a_huge_error_is_cut_and_escaped_everywhere_it_shows() {
    // Failure 4 and 7: a 60 MiB err became one log line and a 63 MB status; escapes reached terminals.
    let g = Gantry::new();
    let d = daemon_with(&g, &["misbehave"], &misbehaving("huge-error"));
    keeps_scheduling(&d);
    for path in ["/api/v1/status", "/api/v1/plugins", "/metrics"] {
        let text = d.get_text(path);
        assert!(text.len() < 64 * 1024, "{path}: {} bytes", text.len());
        assert!(!text.contains('\u{1b}') && !text.contains("\\u001b"), "{path} carries an escape character");
    }
}

#[test]
fn a_dropped_placement_tells_its_job_why() {
    // Failure 9: the reason was only in the daemon's log.
    let g = Gantry::new();
    let d = daemon_with(&g, &["misbehave"], &misbehaving("bad-index"));
    let id = d.submit(json!({ "commands": ["true"] }))[0];
    let job = d.wait_job(id, Duration::from_secs(30), |j| j["reason"].as_str().is_some_and(|r| r.contains("not placed")));
    assert!(job["reason"].as_str().is_some_and(|r| r.contains("does not exist")), "{job:#}");
    assert_eq!(job["state"], "waiting");
    answers(&d);
}

#[test]
fn impostors_and_unplain_names_change_nothing_and_print_nothing_raw() {
    // Failures 6 and 7: a policy took the parser's name; a name cleared the screen of `plugin list`.
    let g = Gantry::new();
    let d = daemon_with(&g, &["impostor", "bad-name"], "");
    for (file, why) in [("impostor.wasm", "a policy plugin can't replace it"), ("bad-name.wasm", "is not 1 to 64 of a-z")] {
        let row = plugin(&d, file);
        assert_eq!(row["state"], "failed", "{row:#}");
        assert!(row["last_error"].as_str().is_some_and(|e| e.contains(why)), "{row:#}");
    }
    let command = g.state.path().join("command_gpu.txt");
    std::fs::write(&command, "1\necho parsed by the bundled parser\n1\n").expect("command file");
    let (status, run) = d.request("POST", "/api/v1/runs", Some(json!({ "file": command })));
    assert_eq!(status, 201, "{run}");
    let out = g.run(&["plugin", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.contains(&0x1b), "an escape reached the terminal: {}", stdout(&out));
    let rows = stdout(&out);
    assert_eq!(rows.lines().filter(|l| l.starts_with("parser-compete ")).count(), 1, "{rows}");
    assert!(!d.get_text("/metrics").contains('\u{1b}'));
}

#[test]
fn a_hostile_parser_fails_its_calls_and_the_daemon_answers() {
    // Failures 4 (a million jobs from a file, 100 MB of diagnostics), 5 (stderr filling up after
    // 20 calls) and 8 (render output written unchecked).
    let g = Gantry::new();
    let d = daemon_with(&g, &["hostile-parser"], "[plugins]\nparser = \"parser-hostile\"\ntimeout_ms = 2000\n");
    let file = |name: &str, text: &str| {
        let path = g.state.path().join(name).join("command_gpu.txt");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
        std::fs::write(&path, text).expect("command file");
        path
    };
    for (name, text, status) in [("flood", "#flood", 503), ("diagnostics", "#diagnostics", 422)] {
        out_of_quarantine(&d, "hostile-parser.wasm");
        let (code, body) = d.request("POST", "/api/v1/runs", Some(json!({ "file": file(name, text) })));
        assert_eq!(code, status, "{name}: {body:.300}");
        assert!(body.to_string().len() < 1 << 20, "{name}: {} bytes", body.to_string().len());
        answers(&d);
    }
    assert_eq!(d.get("/api/v1/jobs")["total"], 0, "nothing of a refused file was kept");

    out_of_quarantine(&d, "hostile-parser.wasm");
    let (code, body) = d.request("PUT", "/api/v1/command-files/single/0", Some(json!({ "text": "#stderr" })));
    assert_eq!(code, 200, "{body}");
    for read in 0..30 {
        let (code, body) = d.request("GET", "/api/v1/command-files/single/0", None);
        assert_eq!(code, 200, "read {read}: {body}");
    }

    let (code, body) = d.request("POST", "/api/v1/command-files/single", Some(json!({ "queues": [{ "id": 1, "processes": [{ "commands": ["echo a"], "memory": 1 }] }] })));
    assert_eq!(code, 503, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("does not parse back")), "{body}");
    assert!(!g.state.path().join("command/command_gpu_1.txt").exists(), "a render that does not parse back is not written");
    keeps_scheduling(&d);
    answers(&d);
}

/// `[providers.h]`: the hostile provider; `[providers.e]`: the echo provider, whose only
/// allowed address is a port nothing listens on.
const HOSTILE_PROVIDERS: &str = "[providers.h]\nplugin = \"provider-hostile\"\nbase_url = \"http://127.0.0.1:9/h\"\ntimeout_ms = 500\npoll_ms = 100\npoll_max_ms = 200\n\
[providers.e]\nplugin = \"provider-echo\"\nbase_url = \"http://127.0.0.1:9/e\"\ntimeout_ms = 2000\n";

/// A job for a provider, doing what `env` tells the plugin.
fn remote_job(provider: &str, env: serde_json::Value) -> serde_json::Value {
    json!({ "commands": ["true"], "provider": provider, "env": env, "cwd": "/tmp" })
}

#[test]
fn a_provider_that_hangs_or_reaches_outside_its_base_url_leaves_the_daemon_scheduling_here() {
    // The address the echo provider is told to fetch, outside its base URL: nothing may reach it.
    let outside = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    outside.set_nonblocking(true).expect("nonblocking");
    let target = format!("http://{}/secret", outside.local_addr().expect("addr"));
    let g = Gantry::new();
    let d = daemon_with(&g, &["hostile-provider", "echo-provider"], HOSTILE_PROVIDERS);
    let ids = d.submit(json!({ "jobs": [remote_job("h", json!({ "HOSTILE": "hang" })), remote_job("e", json!({ "URL": target }))] }));
    let (hung, reached) = (ids[0], ids[1]);
    keeps_scheduling(&d);
    answers(&d);
    let waiting = |id: u64, says: &str| {
        d.wait_job(id, Duration::from_secs(30), |j| j["state"] == "waiting" && j["reason"].as_str().is_some_and(|r| r.contains(says)));
    };
    waiting(hung, "deadline");
    waiting(reached, "it is not under");
    assert!(matches!(outside.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "a request reached {target}");
    let providers = d.get("/api/v1/providers");
    let h = providers.as_array().and_then(|p| p.iter().find(|p| p["name"] == "h")).cloned().unwrap_or_default();
    assert!(matches!(h["state"].as_str(), Some("failing" | "quarantined")) && h["failures"].as_u64() >= Some(1), "{providers:#}");
    for id in [hung, reached] {
        ok(g.run(&["cancel", &id.to_string()]));
        assert_eq!(d.finished(id)["state"], "cancelled");
    }
    keeps_scheduling(&d);
}

#[test]
fn a_provider_answering_nonsense_is_not_believed() {
    let g = Gantry::new();
    let d = daemon_with(&g, &["hostile-provider"], HOSTILE_PROVIDERS);
    let ids = d.submit(json!({ "jobs": [remote_job("h", json!({ "HOSTILE": "bad-id" })), remote_job("h", json!({ "HOSTILE": "nonsense" }))] }));
    let bad_id = d.finished(ids[0]);
    assert_eq!(bad_id["state"], "failed", "{bad_id:#}");
    let reason = bad_id["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not printable text of at most 256 bytes") && reason.len() < 1024 && !reason.contains('\u{1b}'), "{reason}");

    let nonsense = d.finished(ids[1]);
    assert_eq!(nonsense["state"], "succeeded", "{nonsense:#}");
    let attempt = &nonsense["attempts"][0];
    let (started, ended) = (attempt["started_ms"].as_u64().unwrap_or(0), attempt["ended_ms"].as_u64().unwrap_or(0));
    let submitted = nonsense["submitted_ms"].as_u64().unwrap_or(u64::MAX);
    let now = u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis()).expect("ms fit");
    assert!(submitted <= started && started <= ended && ended <= now, "times from the far future or before the epoch's first second were not believed: {attempt:#}");
    assert_eq!(attempt["remote"]["id"], "nonsense", "the id gantry asked about, not the one the status claimed");
    let said = attempt["remote"]["state"].as_str().unwrap_or_default();
    assert!(said.len() <= 4096 + 8 && !said.contains('\u{1b}'), "a 1 MiB message with an escape is cut and escaped: {} bytes", said.len());
    assert!(!d.log(ids[1]).contains("root:"), "a relative log path is not read from the daemon's directory");
    keeps_scheduling(&d);
    answers(&d);
}
