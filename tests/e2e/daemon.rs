//! `gantry serve` and the CLI that drives it: submit, jobs, logs, status, run, stop, cancel.

use crate::{repo, stderr, stdout, Gantry, FAST};
use serde_json::Value;
use std::time::Duration;

#[test]
fn the_cli_submits_lists_and_prints_logs() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let out = g.run(&["submit", "--mem", "1G", "--queue", "cli", "--", "echo", "hello from $GANTRY_JOB_ID"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "submitted job 1");
    let job = d.finished(1);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["memory_mib"], 1024);
    // The job ran in the directory it was submitted from.
    assert_eq!(job["spec"]["cwd"].as_str().map(std::path::PathBuf::from), std::env::current_dir().ok());

    let logs = g.run(&["logs", "1", "--follow"]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert_eq!(stdout(&logs), "hello from 1\n");

    let jobs = g.run(&["jobs"]);
    let table = stdout(&jobs);
    // ID, STATE, OWNER (the daemon's user, who submitted it), QUEUE.
    let owner = job["spec"]["owner"].as_str().expect("an owner");
    assert!(table.lines().any(|l| l.split_whitespace().take(4).collect::<Vec<_>>() == ["1", "succeeded", owner, "cli"]), "{table}");
    let json = g.run(&["jobs", "--json"]);
    let parsed: Value = serde_json::from_str(&stdout(&json)).expect("jobs --json");
    assert_eq!(parsed[0]["id"], 1);

    let status = g.run(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("1 succeeded"), "{}", stdout(&status));
}

#[test]
fn the_cli_cancels_holds_and_says_what_went_wrong() {
    let g = Gantry::new();
    let _d = g.serve(FAST, &["--simulate", "1"]);
    let out = g.run(&["submit", "--hold", "--", "sleep", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = g.run(&["cancel", "1"]);
    assert_eq!(stdout(&out).trim(), "job 1: cancelled");
    let out = g.run(&["release", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim(), "gantry: job 1 is cancelled: release is not possible");
    let out = g.run(&["submit", "--mem", "lots", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'lots' is not a size"), "{}", stderr(&out));
}

#[test]
fn the_cli_without_a_daemon_says_how_to_start_one() {
    let out = Gantry::new().run(&["jobs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("gantry serve"), "{}", stderr(&out));
}

#[test]
fn a_command_file_becomes_a_run_whose_queues_run_in_order() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "4"]);
    let file = g.state.path().join("command_gpu.txt");
    let out_file = g.state.path().join("order");
    let line = |tag: &str| format!("echo {tag} >> {}", out_file.display());
    std::fs::write(&file, format!("1\n{}\nsleep 0.3\n1\n\n1\n{}\n1\n\n2\n{}\n0.5\n", line("1a"), line("1b"), line("2a"))).expect("command file");
    let out = g.run(&["run", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("run 1 started: 3 job(s)"), "{}", stdout(&out));
    for id in 1..=3 {
        assert_eq!(d.finished(id)["state"], "succeeded");
    }
    let order = std::fs::read_to_string(&out_file).expect("order");
    let position = |tag: &str| order.lines().position(|l| l == tag).expect(tag);
    assert!(position("1a") < position("1b"), "{order}");
    let runs = d.get("/api/v1/runs");
    assert_eq!(runs[0]["state"], "finished", "{runs:#}");
    assert_eq!(runs[0]["counts"]["succeeded"], 3);
    assert_eq!(d.job(1)["queue"], "run1/1");
    assert_eq!(d.job(3)["memory_mib"], 512);
}

#[test]
fn stopping_a_run_cancels_what_waits_and_stops_what_runs() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "4"]);
    let file = g.state.path().join("command_gpu.txt");
    std::fs::write(&file, "1\nsleep 300\n1\n\n1\necho never\n1\n").expect("command file");
    let out = g.run(&["run", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_job(1, Duration::from_secs(30), |j| j["state"] == "running");
    let out = g.run(&["stop", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.finished(1)["state"], "cancelled");
    assert_eq!(d.finished(2)["state"], "cancelled");
    assert_eq!(d.get("/api/v1/runs")[0]["state"], "stopped");
}

#[test]
fn a_bad_command_file_is_refused_with_its_lines() {
    let g = Gantry::new();
    let _d = g.serve(FAST, &["--simulate", "1"]);
    let file = g.state.path().join("command_gpu.txt");
    std::fs::write(&file, "x\necho hi\n1\n").expect("command file");
    let out = g.run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:1:1:", file.display())), "{err}");
}

#[test]
fn the_example_command_file_parses_into_a_run() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "4"]);
    let (status, body) = d.request("POST", "/api/v1/runs", Some(serde_json::json!({ "file": repo("command/command_gpus.txt") })));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mode"], "multi");
    assert!(body["counts"]["total"].as_u64().unwrap_or(0) > 0, "{body}");
    let (status, _) = d.request("POST", &format!("/api/v1/runs/{}/stop", body["id"]), None);
    assert_eq!(status, 200);
}

#[test]
fn one_state_directory_has_one_daemon() {
    let g = Gantry::new();
    let _d = g.serve(FAST, &["--simulate", "1"]);
    let out = g.command().args(["serve", "--listen", "127.0.0.1:0", "--simulate", "1"]).output().expect("second serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("another gantry daemon"), "{}", stderr(&out));
}

#[test]
fn a_taken_port_moves_to_the_next_free_one_and_says_so() {
    let g = Gantry::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut child = g
        .command()
        .args(["serve", "--simulate", "1", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let url = g.daemon_url();
    let _ = child.kill();
    let output = child.wait_with_output().expect("stderr");
    assert!(!url.ends_with(&format!(":{port}")), "{url}");
    assert!(stderr(&output).contains(&format!("port {port} is taken")), "{}", stderr(&output));
}

#[test]
fn shutdown_stops_the_daemon_and_its_jobs_carry_on_into_the_next() {
    let g = Gantry::new();
    let mut d = g.serve(FAST, &["--simulate", "1"]);
    let marker = g.state.path().join("done");
    let id = d.submit(serde_json::json!({ "commands": [format!("sleep 1.5; touch {}", marker.display())] }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| j["state"] == "running");
    // Seed 001's files in the log directory: who serves, and what it said.
    let pid_file = g.state.path().join("logs/pid.json");
    let pid: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pid_file).expect("pid.json")).expect("json");
    assert!(pid["pid"].as_u64().is_some_and(|p| p > 0) && pid["url"] == d.url.as_str(), "{pid}");
    let out = g.run(&["shutdown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is stopping"), "{}", stdout(&out));
    assert!(d.exited(Duration::from_secs(30)).success());
    assert!(!g.state.path().join("daemon.json").exists(), "daemon.json outlived the daemon");
    assert!(!pid_file.exists(), "pid.json outlived the daemon");
    let run_log = std::fs::read_to_string(g.state.path().join("logs/run.log")).expect("run.log");
    assert!(run_log.contains(&format!("serving {}", d.url)) && run_log.contains("stopped; running jobs continue"), "{run_log}");
    let restarted = g.serve(FAST, &["--simulate", "1"]);
    // Not dropped: its cleanup would kill the job the new daemon adopts.
    std::mem::forget(std::mem::replace(&mut d, restarted));
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1));
    assert!(marker.exists());
}

#[test]
fn logs_follow_prints_a_running_job_to_its_end() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let id = d.submit(serde_json::json!({ "commands": ["for i in 1 2 3; do echo line $i; sleep 0.3; done"] }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| j["state"] == "running");
    let out = g.run(&["logs", &id.to_string(), "-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "line 1\nline 2\nline 3\n");
    assert_eq!(d.job(id)["state"], "succeeded");
    let out = g.run(&["logs", "999", "-f"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("job 999 does not exist"), "{}", stderr(&out));
}

/// The daemon's children named `gantry-shim` that are alive (not zombies): its spawner.
fn spawners_of(daemon: u32) -> Vec<i32> {
    crate::processes(|dir| {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { return false };
        // `PID (COMM) STATE PPID …`
        let Some((comm, rest)) = stat.split_once(") ") else { return false };
        let mut fields = rest.split(' ');
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        comm.ends_with("(gantry-shim") && ppid == Some(daemon) && state != Some("Z")
    })
}

#[test]
fn the_spawner_starts_with_the_first_job_and_a_killed_one_takes_no_job_with_it_and_is_replaced() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let pid: Value = serde_json::from_str(&std::fs::read_to_string(g.state.path().join("logs/pid.json")).expect("pid.json")).expect("json");
    let daemon = pid["pid"].as_u64().and_then(|p| u32::try_from(p).ok()).expect("the daemon's pid");
    assert_eq!(spawners_of(daemon), Vec::<i32>::new(), "a daemon that has run no job has started no spawner");
    let marker = g.state.path().join("done");
    let running = d.submit(serde_json::json!({ "commands": [format!("sleep 1; touch {}", marker.display())] }))[0];
    d.wait_job(running, Duration::from_secs(30), |j| j["state"] == "running");
    // Running is recorded before the shim is asked for, so the spawner may be a moment behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let found = spawners_of(daemon);
        if !found.is_empty() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(first.len(), 1, "one spawner: {first:?}");
    // SAFETY: signalling the spawner found above.
    unsafe { libc::kill(first[0], libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spawners_of(daemon) == first {
        assert!(std::time::Instant::now() < deadline, "the spawner did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let job = d.finished(running);
    assert_eq!(job["state"], "succeeded", "the job of a killed spawner: {job:#}");
    assert!(marker.exists());
    let next = d.submit(serde_json::json!({ "commands": ["echo after"] }))[0];
    let job = d.finished(next);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(next).trim(), "after");
    let second = spawners_of(daemon);
    assert!(second.len() == 1 && second != first, "a new spawner: {first:?} then {second:?}");
}
