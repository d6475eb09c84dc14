//! The plugin SDK end to end: a policy and a parser made by `gantry plugin new`, built by `gantry
//! plugin build --install` (cargo for wasm32-wasip2; componentize-py or jco for policies in Python
//! or JavaScript) into a daemon's plugin directory, are loaded and used: a policy at once by a
//! running daemon, the parser by `gantry parse` and `gantry run`.

use crate::{stderr, stdout, Gantry, FAST};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn gpus(job: &Value) -> Value {
    job["attempts"].as_array().and_then(|a| a.last()).map(|a| a["gpus"].clone()).unwrap_or_default()
}

#[test]
fn a_policy_made_by_plugin_new_and_installed_by_plugin_build_places_the_daemons_jobs() {
    let g = Gantry::new();
    hot_and_cool(&g);
    let d = g.serve(&format!("{FAST}[plugins]\npolicy = \"cool-gpus\"\n"), &[]);

    // Until the policy exists, the native best fit places: on the hot GPU.
    let before = d.finished(d.submit(json!({ "commands": ["true"], "memory_mib": 8192 }))[0]);
    assert_eq!(gpus(&before), json!([0]), "{before:#}");
    assert!(d.get("/api/v1/status")["last_decider"].as_str().is_some_and(|s| s.contains("policy cool-gpus is not loaded")));

    let work = tempfile::tempdir().expect("work dir");
    let made = g.command().current_dir(work.path()).args(["plugin", "new", "policy", "cool-gpus"]).output().expect("plugin new");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let again = g.command().current_dir(work.path()).args(["plugin", "new", "policy", "cool-gpus"]).output().expect("plugin new");
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("is not empty"), "a second new must not overwrite the first");

    let project = work.path().join("cool-gpus");
    let built = g.command().current_dir(&project).arg("--config").arg(g.state.path().join("gantry.toml")).args(["plugin", "build", "--install"]).output().expect("plugin build");
    let out = String::from_utf8_lossy(&built.stdout);
    assert!(built.status.success(), "{out}\n{}", String::from_utf8_lossy(&built.stderr));
    assert!(out.contains("built cool-gpus 0.1.0 (policy plugin, gantry:plugin@"), "{out}");
    assert!(g.state.path().join("plugins/cool-gpus.wasm").is_file(), "{out}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.get("/api/v1/plugins").as_array().is_some_and(|rows| rows.iter().any(|r| r["name"] == "cool-gpus" && r["state"] == "active")) {
        assert!(Instant::now() < deadline, "the daemon did not load the installed policy: {:#}", d.get("/api/v1/plugins"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = d.finished(d.submit(json!({ "commands": ["true"], "memory_mib": 8192 }))[0]);
    assert_eq!(gpus(&after), json!([1]), "the cool GPU, though the hot one fits tighter: {after:#}");
    assert_eq!(d.get("/api/v1/status")["last_decider"], "cool-gpus 0.1.0");

    // Switching back needs no restart: the next pass asks the policy the settings name.
    let (status, change) = d.request("PUT", "/api/v1/settings", Some(json!({ "policy": "policy-best-fit" })));
    assert_eq!((status, &change["requires_restart"]), (200, &json!([])), "{change:#}");
    let back = d.finished(d.submit(json!({ "commands": ["true"], "memory_mib": 8192 }))[0]);
    assert_eq!(gpus(&back), json!([0]), "{back:#}");
    assert!(d.get("/api/v1/status")["last_decider"].as_str().is_some_and(|s| s.starts_with("policy-best-fit ")));

    // And an edit of the file itself, as the watcher reads it.
    let path = g.state.path().join("gantry.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains("policy = \"policy-best-fit\""), "the settings edit is in the file: {text}");
    std::fs::write(&path, text.replace("policy = \"policy-best-fit\"", "policy = \"cool-gpus\"")).expect("edit");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !g.daemon_log().contains("scheduling rules reloaded, policy cool-gpus") {
        assert!(Instant::now() < deadline, "the daemon never reloaded: {}", g.daemon_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let edited = d.finished(d.submit(json!({ "commands": ["true"], "memory_mib": 8192 }))[0]);
    assert_eq!(gpus(&edited), json!([1]), "{edited:#}");
}

#[test]
fn plugin_build_outside_a_project_says_what_it_builds() {
    let g = Gantry::new();
    let empty = tempfile::tempdir().expect("dir");
    let out = g.command().current_dir(empty.path()).args(["plugin", "build"]).output().expect("plugin build");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no Cargo.toml, pyproject.toml or package.json: `gantry plugin build` builds a project made by `gantry plugin new`"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_parser_made_by_plugin_new_reads_command_files_for_parse_and_for_a_daemons_run() {
    let g = Gantry::new();
    std::fs::write(g.state.path().join("gantry.toml"), format!("{FAST}[plugins]\nparser = \"my-lines\"\n")).expect("config");
    let work = tempfile::tempdir().expect("work dir");
    let made = g.command().current_dir(work.path()).args(["plugin", "new", "parser", "my-lines"]).output().expect("plugin new");
    assert!(made.status.success() && stdout(&made).contains("made the parser plugin my-lines"), "{}", stderr(&made));
    let built = g.command().current_dir(work.path().join("my-lines")).args(["plugin", "build", "--install"]).output().expect("plugin build");
    assert!(built.status.success(), "{}\n{}", stdout(&built), stderr(&built));
    assert!(stdout(&built).contains("built my-lines 0.1.0 (parser plugin") && stdout(&built).contains("`parser = \"my-lines\"`"), "{}", stdout(&built));

    let file = g.state.path().join("jobs.txt");
    let marker = g.state.path().join("ran");
    std::fs::write(&file, format!("# one job per line\n0 1 0.5 touch {}\n1 1 0.5 true\n", marker.display())).expect("jobs");
    let parsed = g.run(&["parse", file.to_str().expect("utf-8"), "--json"]);
    assert!(parsed.status.success(), "{}", stderr(&parsed));
    let jobs: Value = serde_json::from_str(&stdout(&parsed)).expect("json");
    assert_eq!(jobs["jobs"][1], json!({ "queue": 1, "commands": ["true"], "gpu_count": 1, "memory_gb": 0.5, "line": 3, "provider": null, "burst": null }), "{jobs:#}");
    let bad = g.state.path().join("bad.txt");
    std::fs::write(&bad, "0 1 many python a.py\n").expect("bad");
    let refused = g.run(&["parse", bad.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains(&format!("{}:1:5: the memory 'many' is not a number of GB", bad.display())), "{}", stderr(&refused));

    let d = g.serve(&format!("{FAST}[plugins]\nparser = \"my-lines\"\n"), &["--simulate", "2"]);
    let run = g.run(&["run", file.to_str().expect("utf-8")]);
    assert!(run.status.success() && stdout(&run).starts_with("run 1 started: 2 job(s)"), "{}{}", stdout(&run), stderr(&run));
    for id in [1, 2] {
        assert_eq!(d.finished(id)["state"], "succeeded");
    }
    assert!(marker.exists(), "the first line's command ran");
}

/// GPU 0 fits an 8 GiB job more tightly, and runs hot; GPU 1 is big and cool.
fn hot_and_cool(g: &Gantry) {
    std::fs::create_dir_all(g.sim_dir()).expect("sim dir");
    std::fs::write(g.sim_dir().join("nvml-sim.json"), r#"{"count": 2, "gpus": [{"memory_mib": 16384, "base_temperature_c": 80}, {"memory_mib": 49152, "base_temperature_c": 40}]}"#)
        .expect("sim config");
}

/// `gantry plugin new policy NAME --lang LANG`, the project's own tests (`test`, run in it with
/// `path` before the PATH), then `gantry plugin build --install` into a running daemon, which
/// places with it at once; then a replay of a generated trace, where the example (the tightest
/// of the GPUs below 70 °C, and the replay's GPUs are all cool) must score exactly as the bundled
/// Rust best fit: the language's `place_by` books as the host's does.
fn a_policy_in(lang: &str, name: &str, path: &Path, test: &[&[&str]]) {
    let g = Gantry::new();
    hot_and_cool(&g);
    let d = g.serve(&format!("{FAST}[plugins]\npolicy = \"{name}\"\n"), &[]);
    let search = format!("{}:{}", path.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let work = tempfile::tempdir().expect("work dir");
    let made = g.command().current_dir(work.path()).args(["plugin", "new", "policy", name, "--lang", lang]).output().expect("plugin new");
    assert!(made.status.success(), "{}", stderr(&made));
    let project = work.path().join(name);
    for step in test {
        let ran = Command::new(step[0]).args(&step[1..]).current_dir(&project).env("PATH", &search).env("PYTHONPATH", path).output();
        let ran = ran.unwrap_or_else(|e| panic!("{} ({e}): install it (tests/deps.sh does)", step[0]));
        assert!(ran.status.success(), "{step:?} in the new project: {}{}", stdout(&ran), stderr(&ran));
    }
    let built = g.command().current_dir(&project).env("PATH", &search).env("PYTHONPATH", path).args(["plugin", "build", "--install"]).output().expect("plugin build");
    let out = stdout(&built);
    assert!(built.status.success(), "{out}\n{}", stderr(&built));
    assert!(out.contains(&format!("built {name} 0.1.0 (policy plugin, gantry:plugin@")), "{out}");

    let deadline = Instant::now() + Duration::from_secs(120);
    let row = loop {
        let rows = d.get("/api/v1/plugins");
        if let Some(row) = rows.as_array().and_then(|rows| rows.iter().find(|r| r["name"] == name && r["state"] == "active")) {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "the daemon did not load the installed policy: {rows:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The build compiled it into the daemon's cache: the daemon loaded that, not a second compile.
    let sha = row["sha256"].as_str().expect("sha256");
    let cached = std::fs::read_dir(g.state.path().join("cache/plugins")).expect("cache").flatten().any(|e| e.file_name().to_string_lossy().starts_with(sha));
    assert!(cached, "no artifact of {sha} in the cache");
    let placed = d.finished(d.submit(json!({ "commands": ["true"], "memory_mib": 8192 }))[0]);
    assert_eq!(gpus(&placed), json!([1]), "the cool GPU, though the hot one fits tighter: {placed:#}");
    assert_eq!(d.get("/api/v1/status")["last_decider"], format!("{name} 0.1.0"));

    let component = project.join("target").join(format!("{name}.wasm"));
    let config = g.state.path().join("replay.toml");
    std::fs::write(&config, "[scheduler]\nallow_sharing = true\n").expect("config");
    let replay = g.run(&["--config", config.to_str().expect("utf-8"), "replay", "--generate", "150", "--seed", "5", "--policy", "policy-best-fit", "--policy", component.to_str().expect("utf-8"), "--json"]);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let mut scores: Value = serde_json::from_slice(&replay.stdout).expect("json");
    let [rust, other] = [scores["policies"][0].take(), scores["policies"][1].take()].map(|mut s| {
        let decided = s["decided_by"].take();
        s["policy"] = json!("-");
        (s, decided)
    });
    assert!(other.1.as_str().is_some_and(|d| d.starts_with(name)), "the {lang} policy decided, not the fallback: {other:?}");
    assert_eq!(rust.0, other.0, "the {lang} policy replays as the Rust best fit");
}

#[test]
fn a_python_policy_made_by_plugin_new_is_built_with_componentize_py_and_places_the_daemons_jobs() {
    let tools = crate::pip_install("componentize-py==0.25.1", "python-tools");
    let bindings: &[&str] = &["componentize-py", "-d", "wit", "-w", "policy-plugin", "bindings", "target/bindings"];
    let test: &[&str] = &["sh", "-c", "PYTHONPATH=target/bindings python3 -m unittest test_app"];
    // The SDK's reads say which grant would allow them, where `os.environ` and `open` can't.
    let grants = r#"
from gantry_plugin import grants
for read, what, wanted in [(grants.env, "GANTRY_NEVER_SET", 'env = { GANTRY_NEVER_SET = "..." } under [plugins.settings.cool-py]'),
                           (grants.read_text, "/nonexistent/w.csv", "read_only_dirs under [plugins.settings.cool-py]")]:
    try:
        read("cool-py", what)
        raise SystemExit(what + " was read")
    except grants.NotGranted as e:
        assert wanted in str(e), str(e)
"#;
    let refused: &[&str] = &["env", "PYTHONPATH=target/bindings", "python3", "-c", grants];
    a_policy_in("python", "cool-py", &tools, &[bindings, test, refused]);
}

#[test]
fn a_javascript_policy_made_by_plugin_new_is_built_with_jco_and_places_the_daemons_jobs() {
    let none = tempfile::tempdir().expect("dir");
    a_policy_in("js", "cool-js", none.path(), &[&["npm", "install", "--no-audit", "--no-fund"], &["npm", "test"]]);
}

#[test]
fn a_provider_made_by_plugin_new_hands_a_job_to_the_service_it_adapts() {
    use crate::stub_api::{Answer, Request};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    // The example's job service: a job is queued at its first look, done at its second, and its
    // log is its command. Asked again with the same key, it answers the same id.
    let jobs: Arc<Mutex<BTreeMap<String, (String, u32)>>> = Arc::default();
    let seen = jobs.clone();
    let url = crate::stub_api::serve(
        None,
        Arc::new(move |r: &Request| {
            if r.header("authorization") != Some("Bearer s3cret") {
                return Answer::json(401, &json!({ "error": "no token" }));
            }
            let mut jobs = seen.lock().expect("jobs");
            let id = r.path.strip_prefix("/api/jobs/").map(|rest| rest.trim_end_matches("/log").to_string());
            match (r.method.as_str(), id) {
                ("POST", None) if r.path == "/api/jobs" => {
                    let body: Value = serde_json::from_slice(&r.body).expect("json body");
                    let key = body["key"].as_str().expect("key").to_string();
                    jobs.entry(key.clone()).or_insert_with(|| (body["command"].as_str().unwrap_or_default().to_string(), 0));
                    Answer::json(201, &json!({ "id": key }))
                }
                ("GET", Some(id)) if r.path.ends_with("/log") => match jobs.get(&id) {
                    Some((command, _)) => Answer::text(200, "text/plain", format!("ran: {command}\n")),
                    None => Answer::json(404, &json!({ "error": "no such job" })),
                },
                ("GET", Some(id)) => match jobs.get_mut(&id) {
                    Some((_, looks)) => {
                        *looks += 1;
                        Answer::json(200, &if *looks < 2 { json!({ "state": "queued" }) } else { json!({ "state": "succeeded", "exit_code": 0 }) })
                    }
                    None => Answer::json(404, &json!({ "error": "no such job" })),
                },
                _ => Answer::json(405, &json!({ "error": "not here" })),
            }
        }),
    );

    let g = Gantry::new();
    let work = tempfile::tempdir().expect("work dir");
    let made = g.command().current_dir(work.path()).args(["plugin", "new", "provider", "lab-jobs"]).output().expect("plugin new");
    assert!(made.status.success() && stdout(&made).contains("made the provider plugin lab-jobs"), "{}", stderr(&made));
    let built = g.command().current_dir(work.path().join("lab-jobs")).args(["plugin", "build", "--install"]).output().expect("plugin build");
    assert!(built.status.success(), "{}\n{}", stdout(&built), stderr(&built));
    assert!(stdout(&built).contains("built lab-jobs 0.1.0 (provider plugin") && stdout(&built).contains("under [providers.NAME]"), "{}", stdout(&built));

    let token = g.token_file("lab.token", "s3cret");
    let d = g.serve(&format!("{FAST}[providers.lab]\nplugin = \"lab-jobs\"\nbase_url = \"{url}/api\"\ntoken_file = \"{}\"\npoll_ms = 100\npoll_max_ms = 200\n", token.display()), &[]);
    let id = d.submit(json!({ "commands": ["python train.py --seed 1"], "provider": "lab" }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let attempt = &job["attempts"][0];
    assert_eq!((&attempt["remote"]["provider"], &attempt["exit_code"]), (&json!("lab"), &json!(0)), "{job:#}");
    assert_eq!(d.log(id), "ran: python train.py --seed 1\n");
    assert_eq!(jobs.lock().expect("jobs").len(), 1, "one job made there");
}
