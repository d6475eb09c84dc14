//! Seed 001/004's console endpoints: command files, schedulers, rules, settings, log bindings,
//! called as the documents show, with their effects checked on disk and on the simulated GPUs.

use crate::{Gantry, FAST};
use serde_json::{json, Value};
use std::time::Duration;

fn queues_of(body: &Value) -> Vec<(u64, Vec<Vec<String>>)> {
    body["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            let processes = q["processes"].as_array().expect("processes").iter().map(|p| p["commands"].as_array().expect("commands").iter().map(|c| c.as_str().expect("text").to_string()).collect()).collect();
            (q["id"].as_u64().expect("id"), processes)
        })
        .collect()
}

#[test]
fn command_files_round_trip_and_a_run_started_through_the_scheduler_api_runs() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xA100"]);
    let listed = d.get("/api/commands/single/list");
    assert_eq!(listed["mode"], "single");
    assert_eq!(listed["configs"], json!([{ "index": 0, "name": "配置 1", "file_name": "command_gpu.txt", "exists": false }]));

    let config = json!({ "queues": [
        { "id": 1, "processes": [
            { "id": 1, "commands": ["echo one"], "gpu_count": 1, "memory": 1 },
            { "id": 2, "commands": ["sleep 2", "echo two"], "gpu_count": 1, "memory": 0.5 },
        ]},
        { "id": 2, "processes": [{ "id": 1, "commands": ["sleep 2; echo three"], "gpu_count": 1, "memory": 2 }] },
    ]});
    let (code, put) = d.request("PUT", "/api/commands/single?config_index=0", Some(config.clone()));
    assert_eq!((code, &put["success"]), (200, &json!(true)), "{put}");
    let got = d.get("/api/commands/single?config_index=0");
    assert_eq!(queues_of(&got), queues_of(&config));
    assert_eq!(got["queues"][0]["processes"][1]["memory"], 0.5);
    let on_disk = std::fs::read_to_string(g.state.path().join("command/command_gpu.txt")).expect("written");
    assert!(on_disk.contains("echo one") && on_disk.contains("sleep 2; echo three"), "{on_disk}");

    // A bad change names the field and leaves the file alone.
    let bad = json!({ "queues": [{ "id": 1, "processes": [{ "commands": ["x"], "gpu_count": 2, "memory": 1 }] }] });
    let (code, err) = d.request("PUT", "/api/commands/single?config_index=0", Some(bad));
    assert_eq!(code, 422, "{err}");
    assert!(err["detail"].as_str().expect("detail").contains("queues[0].processes[0].gpu_count"), "{err}");
    assert_eq!(std::fs::read_to_string(g.state.path().join("command/command_gpu.txt")).expect("kept"), on_disk);

    // A second configuration: created, changed, reset to its backup, deleted.
    let (code, created) = d.request("POST", "/api/commands/single/new", Some(json!({ "queues": [{ "id": 7, "processes": [{ "commands": ["echo a"], "memory": 1 }] }] })));
    assert_eq!((code, created["index"].as_u64()), (200, Some(1)), "{created}");
    assert_eq!(created["config"]["file_name"], "command_gpu_1.txt");
    let changed = json!({ "queues": [{ "id": 7, "processes": [{ "commands": ["echo b"], "memory": 1 }] }] });
    assert_eq!(d.request("PUT", "/api/commands/single?config_index=1", Some(changed)).0, 200);
    assert_eq!(d.request("POST", "/api/commands/single/reset?config_index=1", None).0, 200);
    assert_eq!(d.get("/api/commands/single?config_index=1")["queues"][0]["processes"][0]["commands"], json!(["echo a"]));
    let all = d.get("/api/commands/single/all");
    assert_eq!(all["configs"].as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(all["configs"][1]["data"]["queues"][0]["id"], 7);
    assert_eq!(d.request("DELETE", "/api/commands/single/1", None).0, 200);
    assert_eq!(d.request("GET", "/api/commands/single?config_index=1", None).0, 404);
    assert_eq!(d.get("/api/commands/single/list")["configs"].as_array().map(Vec::len), Some(1));

    // Started through the scheduler API, the file's jobs run on the simulated GPUs.
    let (code, started) = d.request("POST", "/api/scheduler/single/start?config_index=0", None);
    assert_eq!((code, &started["success"]), (200, &json!(true)), "{started}");
    let pid = started["pid"].as_u64().expect("pid");
    assert!(started["config_file"].as_str().expect("file").ends_with("command/command_gpu.txt"));
    let (code, again) = d.request("POST", "/api/scheduler/single/start?config_index=0", None);
    assert_eq!((code, &again["success"]), (409, &json!(false)), "{again}");
    assert_eq!(d.get("/api/scheduler/single/state?config_index=0"), json!({ "running": true, "pid": pid }));
    assert_eq!(d.get("/api/scheduler/state")["single_0"]["running"], true);
    let run = d.get(&format!("/api/v1/runs/{pid}"));
    assert_eq!((run["mode"].as_str(), run["counts"]["total"].as_u64()), (Some("single"), Some(3)), "{run}");
    assert_eq!(d.request("GET", "/api/v1/runs/999", None).0, 404);

    let running = d.wait_get("/api/scheduler/running", Duration::from_secs(30), |b| b["schedulers"][0]["running_tasks"].as_u64() >= Some(1));
    let s = &running["schedulers"][0];
    assert_eq!((s["pid"].as_u64(), s["mode"].as_str(), s["config_index"].as_u64(), s["total_tasks"].as_u64()), (Some(pid), Some("single"), Some(0), Some(3)), "{s:#}");
    assert!(s["started_at"].as_str().is_some_and(|t| t.len() == 19 && t.contains('T')), "{s:#}");
    assert!(!s["gpus_used"].as_array().expect("gpus").is_empty(), "{s:#}");
    let q2 = &s["queues"]["2"];
    assert_eq!((q2["id"].as_u64(), q2["total_tasks"].as_u64(), q2["state"].as_str()), (Some(2), Some(1), Some("running")), "{s:#}");
    assert!(q2["current_task"].as_str().is_some_and(|t| t.starts_with("task 1/1: sleep 2")), "{q2}");
    assert!(q2["current_gpu"].is_u64() && q2["last_error"].is_null(), "{q2}");
    assert_eq!(s["gpu_assignments"]["2"], q2["current_gpu"]);
    for field in ["pending_tasks", "running_tasks", "completed_tasks", "failed_tasks"] {
        assert!(s[field].is_u64() && s["queues"]["1"][field].is_u64(), "{field}: {s:#}");
    }

    // It ends by itself; its jobs succeeded and the run log tells their story.
    d.wait_get("/api/scheduler/single/state?config_index=0", Duration::from_secs(60), |b| b["running"] == false);
    let jobs = d.get(&format!("/api/v1/jobs?run={pid}"));
    assert!(jobs["jobs"].as_array().expect("jobs").iter().all(|j| j["state"] == "succeeded"), "{jobs:#}");
    // Lists filter and page.
    let finished = d.get("/api/v1/runs?state=finished");
    assert_eq!(finished.as_array().map(|r| r.iter().filter_map(|r| r["id"].as_u64()).collect::<Vec<_>>()), Some(vec![pid]));
    assert_eq!(d.get("/api/v1/runs?state=running"), json!([]));
    assert_eq!(d.get("/api/v1/runs?offset=1"), json!([]));
    let parsers = d.get("/api/v1/plugins?kind=parser");
    assert!(!parsers.as_array().expect("plugins").is_empty() && parsers.as_array().expect("plugins").iter().all(|p| p["kind"] == "parser"), "{parsers}");
    assert_eq!(d.request("GET", "/api/v1/runs?colour=red", None).0, 400);
    let run_log = std::fs::read_to_string(started["log_file"].as_str().expect("log file")).expect("run log");
    assert!(run_log.contains("succeeded") && run_log.lines().count() >= 6, "{run_log}");

    // Stopped by pid, a run's running job is stopped.
    d.request("PUT", "/api/commands/single?config_index=0", Some(json!({ "queues": [{ "id": 1, "processes": [{ "commands": ["sleep 300"], "memory": 1 }] }] })));
    let pid = d.request("POST", "/api/scheduler/single/start?config_index=0", None).1["pid"].as_u64().expect("pid");
    d.wait_get("/api/scheduler/running", Duration::from_secs(30), |b| b["schedulers"][0]["running_tasks"] == 1);
    let (code, stopped) = d.request("POST", &format!("/api/scheduler/stop/{pid}"), None);
    assert_eq!((code, &stopped["success"]), (200, &json!(true)), "{stopped}");
    let job = d.get(&format!("/api/v1/jobs?run={pid}"))["jobs"][0]["id"].as_u64().expect("job");
    assert_eq!(d.finished(job)["state"], "cancelled");
}

#[test]
fn rules_are_written_keeping_comments_and_apply_at_once_settings_wait_for_a_restart() {
    let g = Gantry::new();
    let config = format!("{FAST}\n[scheduler]\n# keep GPUs for the others\ngpu_left = 0 # none\nmax_gpu = 4\n");
    let d = g.serve(&config, &["--simulate", "2xA100"]);
    let rules = d.get("/api/config");
    for (key, check) in [("check_time", Value::is_null as fn(&Value) -> bool), ("maximize_resource_utilization", Value::is_boolean), ("compete_gpus", Value::is_null), ("use_all_gpus", Value::is_boolean), ("min_gpu", Value::is_u64), ("max_gpu", Value::is_u64), ("gpu_command_file", Value::is_string), ("gpus_command_file", Value::is_string)] {
        assert!(check(&rules[key]), "{key}: {rules:#}");
    }
    assert!(rules["retry_config"]["max_retry_before_backoff"].is_u64() && rules["retry_config"]["backoff_duration"].is_f64(), "{rules:#}");
    assert_eq!(rules, d.get("/api/v1/rules"));

    let (code, put) = d.request("PUT", "/api/config", Some(json!({ "use_all_gpus": false, "compete_gpus": [1], "max_gpu": 2, "retry_config": { "backoff_duration": 5 } })));
    assert_eq!(code, 200, "{put}");
    assert_eq!((put["config"]["max_gpu"].as_u64(), put["config"]["compete_gpus"].clone()), (Some(2), json!([1])));
    let text = std::fs::read_to_string(g.state.path().join("gantry.toml")).expect("config");
    assert!(text.contains("# keep GPUs for the others\ngpu_left = 0 # none") && text.contains("max_gpu = 2") && text.contains("backoff_duration = 5"), "{text}");
    // Applied to the next job at once.
    let id = d.submit(json!({ "commands": ["true"], "memory_mib": 1000 }))[0];
    assert_eq!(d.finished(id)["attempts"][0]["gpus"], json!([1]));

    let (code, err) = d.request("PUT", "/api/config", Some(json!({ "min_gpu": 3 })));
    assert_eq!(code, 422, "{err}");
    assert!(err["detail"].as_str().expect("detail").contains("scheduler.max_gpu"), "{err}");
    let (code, err) = d.request("PUT", "/api/v1/rules", Some(json!({ "min_gpu": "one" })));
    assert!(code == 422 && err["detail"].as_str().expect("detail").contains("`min_gpu`"), "{err}");
    assert_eq!(std::fs::read_to_string(g.state.path().join("gantry.toml")).expect("config"), text);

    let settings = d.get("/api/settings");
    assert_eq!(settings["port"]["requires_restart"], true);
    assert!(settings["port"]["value"].is_u64() && settings["port"]["description"].is_string() && settings["port"]["warning"].is_string(), "{settings:#}");
    assert_eq!(settings["target-yaml-path"]["requires_restart"], false);
    assert_eq!(settings["secret"]["value"], "");
    let (code, saved) = d.request("PUT", "/api/settings", Some(json!({ "port": 29215, "allow-lan": false, "log-level": "debug" })));
    assert_eq!(code, 200, "{saved}");
    assert_eq!(saved["requires_restart"], json!(["allow-lan", "log-level", "port"]));
    assert!(!saved["warnings"].as_array().expect("warnings").is_empty());
    let text = std::fs::read_to_string(g.state.path().join("gantry.toml")).expect("config");
    assert!(text.contains("listen = \"127.0.0.1:29215\"") && text.contains("log_level = \"debug\""), "{text}");
    assert_eq!(d.get("/api/v1/settings")["port"]["value"], 29215);
    let (code, err) = d.request("PUT", "/api/settings", Some(json!({ "colour": "blue" })));
    assert!(code == 422 && err["detail"].as_str().expect("detail").contains("`colour`: not a setting"), "{err}");
}

#[test]
fn logs_are_read_only_inside_their_roots_or_when_bound() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1xA100"]);
    let id = d.submit(json!({ "commands": ["echo from-the-job"] }))[0];
    let job = d.finished(id);
    let job_log = format!("{}/output.log", job["attempts"][0]["dir"].as_str().expect("dir"));
    let read = d.get(&format!("/api/log/read?path={job_log}&lines=5"));
    assert!(read["content"].as_str().expect("content").contains("from-the-job"), "{read}");

    let outside = tempfile::tempdir().expect("dir");
    let private = outside.path().join("train.log");
    std::fs::write(&private, "epoch 1\nepoch 2\nepoch 3\n").expect("write");
    let private = private.to_string_lossy().into_owned();
    let (code, refused) = d.request("GET", &format!("/api/log/read?path={private}"), None);
    assert_eq!(code, 403, "{refused}");
    // A missing file answers as a file outside does: existence is not told (it was 404 vs 403).
    let (code, missing) = d.request("GET", &format!("/api/log/read?path={}/no-such.log", outside.path().display()), None);
    assert_eq!((code, &missing["detail"]), (403, &json!(format!("{}/no-such.log is not a log gantry may read: outside the log roots and not bound, or missing", outside.path().display()))), "{missing}");
    let escape = format!("{}/../../../../../../../etc/passwd", job["attempts"][0]["dir"].as_str().expect("dir"));
    assert_eq!(d.request("GET", &format!("/api/log/read?path={escape}"), None).0, 400);
    let link = g.state.path().join("jobs/escape.log");
    std::os::unix::fs::symlink(&private, &link).expect("symlink");
    assert_eq!(d.request("GET", &format!("/api/log/read?path={}", link.display()), None).0, 403);

    // Bound to a process of a command file, the same file may be read.
    let (code, bound) = d.request("POST", &format!("/api/log/bind?mode=single&config_index=0&queue_id=1&process_index=0&log_path={private}"), None);
    assert_eq!((code, &bound["success"]), (200, &json!(true)), "{bound}");
    let bindings = d.get("/api/log/bindings");
    let entry = &bindings["single_0_1_0"];
    assert_eq!((entry["mode"].as_str(), entry["config_index"].as_u64(), entry["queue_id"].as_u64(), entry["process_index"].as_u64()), (Some("single"), Some(0), Some(1), Some(0)), "{bindings}");
    assert!(entry["log_path"].as_str().is_some_and(|p| p.ends_with("train.log")) && entry["bound_at"].is_string(), "{entry}");
    let content = d.get("/api/log/content?mode=single&config_index=0&queue_id=1&process_index=0&lines=2");
    assert_eq!(content["content"], "epoch 2\nepoch 3");
    assert_eq!(d.get(&format!("/api/log/read?path={private}"))["content"], "epoch 1\nepoch 2\nepoch 3");
    assert_eq!(d.request("DELETE", "/api/log/bind", Some(json!({ "mode": "single", "config_index": 0, "queue_id": 1, "process_index": 0 }))).0, 200);
    assert_eq!(d.request("GET", &format!("/api/log/read?path={private}"), None).0, 403);
    assert_eq!(d.request("GET", "/api/log/content?mode=single&config_index=0&queue_id=1&process_index=0", None).0, 404);
}
