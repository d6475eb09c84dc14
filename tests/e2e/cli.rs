//! `gantry parse` and `gantry plugin`.

use crate::{repo, stderr, stdout, Gantry};

#[test]
fn parse_prints_jobs_and_json() {
    let g = Gantry::new();
    let out = g.run(&["parse", repo("command/command_gpus.txt").to_str().expect("utf-8 path"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["jobs"][0]["gpu_count"], 2);
    assert_eq!(json["jobs"][0]["memory_gb"], 10.0);
}

#[test]
fn parse_errors_name_file_and_line_and_exit_1() {
    let g = Gantry::new();
    let file = g.state.path().join("command_gpu.txt");
    std::fs::write(&file, "1\npython a.py\n20\n\nq2\npython b.py\n8\n").expect("write");
    let out = g.run(&["parse", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:5:1:", file.display())), "{err}");
    assert!(err.contains("'q2'"), "{err}");
}

#[test]
fn plugin_list_shows_the_bundled_plugins() {
    let out = Gantry::new().run(&["plugin", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let names: Vec<&str> = rows.as_array().expect("list").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, vec!["parser-compete", "policy-best-fit", "policy-spread", "provider-aliyun-ecs", "provider-k8s", "provider-runpod", "provider-slurm", "provider-tencent-tke"]);
}

#[test]
fn plugin_list_says_what_each_plugin_may_do_and_never_an_environment_value() {
    let g = Gantry::new();
    let config = g.state.path().join("gantry.toml");
    let dir = g.state.path().display().to_string();
    std::fs::write(&config, format!("[plugins.settings.parser-compete]\ntimeout_ms = 250\nenv = {{ REGION = \"secret-value\" }}\nread_only_dirs = [\"{dir}\"]\n")).expect("config");
    let out = g.command().arg("--config").arg(&config).args(["plugin", "list"]).output().expect("list");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains(&format!("  may: 250 ms a call; 64 MiB; 10000 jobs a file; env REGION; read {dir}\n")), "{text}");
    assert!(text.contains("  may: 100 ms a call; 64 MiB; no files, network or environment\n"), "{text}");
    assert!(!text.contains("secret-value"), "{text}");
    let json = g.command().arg("--config").arg(&config).args(["plugin", "list", "--json"]).output().expect("list");
    let rows: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    let parser = rows.as_array().and_then(|r| r.iter().find(|r| r["name"] == "parser-compete")).expect("parser");
    assert_eq!(parser["may"], serde_json::json!({ "timeout_ms": 250, "memory_mib": 64, "max_jobs": 10000, "env": ["REGION"], "read_only_dirs": [dir], "http_base_urls": [] }));
}

#[test]
fn plugin_check_accepts_a_plugin_and_refuses_another_wit_version() {
    let g = Gantry::new();
    let ok = g.run(&["plugin", "check", env!("GANTRY_WASM_POLICY_SPREAD")]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("policy-spread 0.1.0 (policy plugin, gantry:plugin@0.5.0)"), "{}", stdout(&ok));

    let refused = g.run(&["plugin", "check", env!("GANTRY_WASM_POLICY_FUTURE")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("built for gantry:plugin@9.0.0, but this gantry speaks gantry:plugin@0.5.0"), "{}", stderr(&refused));
}

#[test]
fn a_bad_config_file_is_named_with_the_key() {
    let g = Gantry::new();
    let config = g.state.path().join("gantry.toml");
    std::fs::write(&config, "[plugins]\ntimeout_ms = 0\n").expect("write");
    let out = g.command().args(["--config", config.to_str().expect("utf-8"), "plugin", "list"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("plugins.timeout_ms"), "{}", stderr(&out));
}

#[test]
fn completions_man_page_and_service_units() {
    let g = Gantry::new();
    let bash = g.run(&["completions", "bash"]);
    assert!(bash.status.success() && stdout(&bash).contains("submit") && stdout(&bash).contains("complete -F"), "{}", stderr(&bash));
    let man = g.run(&["man"]);
    assert!(man.status.success() && stdout(&man).contains(".TH gantry 1"), "{}", stderr(&man));
    let system = g.run(&["install-service", "--system", "--print"]);
    let unit = stdout(&system);
    assert!(unit.contains(&format!("ExecStart={} serve --system", env!("CARGO_BIN_EXE_gantry"))), "{unit}");
    assert!(unit.contains("KillMode=process") && unit.contains("StateDirectory=gantry"), "{unit}");
    let user = g.run(&["install-service", "--print"]);
    assert!(stdout(&user).contains(&format!("ExecStart={} serve\n", env!("CARGO_BIN_EXE_gantry"))), "{}", stdout(&user));
}

#[test]
fn parse_reads_only_a_regular_file_of_bounded_size() {
    let g = Gantry::new();
    let zero = g.run(&["parse", "/dev/zero"]);
    assert_eq!(zero.status.code(), Some(2), "it was OOM-killed once");
    assert!(stderr(&zero).contains("/dev/zero: not a regular file"), "{}", stderr(&zero));
    let big = g.state.path().join("command_gpu.txt");
    std::fs::write(&big, vec![b'#'; 17 << 20]).expect("write");
    let out = g.run(&["parse", big.to_str().expect("utf-8")]);
    assert!(stderr(&out).contains("at most 16777216 bytes"), "{}", stderr(&out));
}

/// `gantry` links no runtime: the local commands are run by the `gantryd` beside it, and one
/// installed without it says so rather than failing obscurely.
#[test]
fn the_small_gantry_hands_local_commands_to_the_gantryd_beside_it_and_says_when_it_is_missing() {
    let built = std::path::PathBuf::from(env!("CARGO_BIN_EXE_gantry"));
    let dir = tempfile::tempdir().expect("tempdir");
    let alone = dir.path().join("gantry");
    std::fs::copy(&built, &alone).expect("copy gantry alone");
    let g = Gantry::new();
    let out = std::process::Command::new(&alone).args(["plugin", "list"]).env("GANTRY_STATE_DIR", g.state.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&dir.path().join("gantryd").display().to_string()) && err.contains("installed beside gantry"), "{err}");
    // The client commands need no gantryd.
    let help = std::process::Command::new(&alone).args(["submit", "--help"]).output().expect("run");
    assert!(help.status.success() && stdout(&help).contains("--gpus"), "{}", stderr(&help));
    // Beside it, the same command is run by gantryd.
    std::fs::copy(built.with_file_name("gantryd"), dir.path().join("gantryd")).expect("copy gantryd");
    let out = std::process::Command::new(&alone).args(["plugin", "list", "--json"]).env("GANTRY_STATE_DIR", g.state.path()).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"kind\": \"policy\""), "{}", stdout(&out));
}
