//! Several real daemons on loopback (issue 16, first part): agents report to a master with the
//! tokens it issued; the master knows each node's GPUs and jobs within a second of a change, and
//! tells online from stale from offline.

use crate::{Daemon, Gantry, FAST};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn issue(master: &Daemon, name: &str) -> String {
    let (code, issued) = master.request("POST", "/api/v1/nodes", Some(json!({ "name": name })));
    assert_eq!(code, 201, "{issued}");
    issued["token"].as_str().expect("token").to_string()
}

pub fn agent_config(master: &Daemon, name: &str, token: &str) -> String {
    format!("{FAST}[federation]\nmaster = \"{}\"\nnode_name = \"{name}\"\ntoken = \"{token}\"\nreport_interval_s = 0.5\n", master.url)
}

fn node(master: &Daemon, name: &str) -> Value {
    master.get(&format!("/api/v1/nodes/{name}"))
}

fn wait_node(master: &Daemon, name: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let seen = node(master, name);
        if check(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "node {name} after {limit:?}: {seen:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agents_report_to_their_master_which_tells_online_stale_and_offline() {
    let m = Gantry::new();
    let master = m.serve(&format!("{FAST}[federation]\noffline_after_s = 3\n"), &["--simulate", "1"]);
    let (a1, a2) = (Gantry::new(), Gantry::new());
    let t1 = issue(&master, "a1");
    let t2 = issue(&master, "a2");
    let _agent1 = a1.serve(&agent_config(&master, "a1", &t1), &["--simulate", "2xA100"]);
    let mut agent2 = a2.serve(&agent_config(&master, "a2", &t2), &["--simulate", "4xRTX4090"]);

    for (name, gpus) in [("a1", 2), ("a2", 4)] {
        let seen = wait_node(&master, name, Duration::from_secs(10), |n| n["status"] == "online");
        assert_eq!(seen["report"]["node"]["gpus"].as_array().map(Vec::len), Some(gpus), "{seen:#}");
    }
    // Seed 003's master view of the same.
    let slaves = master.get("/api/slaves");
    assert_eq!(slaves["count"], 2, "{slaves:#}");
    let entry = slaves["slaves"].as_array().and_then(|s| s.iter().find(|e| e["name"] == "a2").cloned()).expect("a2 listed");
    assert_eq!((entry["online"].as_bool(), entry["ip"].as_str()), (Some(true), Some("127.0.0.1")), "{entry:#}");
    assert!(entry["system"]["cpu_cores"].is_u64() && entry["gpus"][3]["memory"]["total"].is_u64() && entry["timestamp"].is_f64(), "{entry:#}");

    // A job that starts on agent 2 shows on the master within a second of its start.
    let id = agent2.submit(json!({ "commands": ["sleep 60"] }))[0];
    let seen = wait_node(&master, "a2", Duration::from_secs(10), |n| n["report"]["jobs"]["running"] == 1);
    let started = agent2.wait_job(id, Duration::from_secs(10), |j| !j["attempts"].as_array().is_none_or(Vec::is_empty))["attempts"][0]["started_ms"].as_u64().expect("started");
    let reported = seen["last_seen_ms"].as_u64().expect("seen");
    assert!(reported.saturating_sub(started) < 1000, "the master heard of the start {} ms after it", reported.saturating_sub(started));
    // Which job, whose and on which GPUs; not what it runs.
    let remote = master.get("/api/v1/nodes/a2/jobs");
    assert_eq!((remote[0]["id"].as_u64(), remote[0]["commands"].as_array().map(Vec::len)), (Some(id), Some(0)), "{remote:#}");
    let out = m.command().args(["--server", &master.url, "--token", master.token.as_deref().expect("token"), "jobs", "--all-nodes"]).output().expect("gantry jobs");
    assert!(crate::stdout(&out).contains(&format!("a2:{id}")), "{}{}", crate::stdout(&out), crate::stderr(&out));

    // Agent 2 dies: stale after two intervals, offline after `offline_after_s`.
    agent2.crash();
    wait_node(&master, "a2", Duration::from_secs(5), |n| n["status"] == "stale");
    wait_node(&master, "a2", Duration::from_secs(8), |n| n["status"] == "offline");
    assert_eq!(node(&master, "a1")["status"], "online", "the other node is not affected");

    // Back, with the job it adopted still running.
    let agent2 = a2.serve(&agent_config(&master, "a2", &t2), &["--simulate", "4xRTX4090"]);
    let back = wait_node(&master, "a2", Duration::from_secs(15), |n| n["status"] == "online" && n["report"]["jobs"]["running"] == 1);
    assert_eq!(back["report"]["jobs"]["running"], 1, "{back:#}");

    // A revoked node is refused: its reports stop counting, and a replayed or forged one too.
    let (code, _) = master.request("DELETE", "/api/v1/nodes/a1", None);
    assert_eq!(code, 204);
    let report = back["report"].clone();
    let (code, _, refused) = master.call("POST", "/api/v1/nodes/a1/report", &[("Authorization", &format!("Bearer {t1}"))], Some(report.clone()), None);
    assert_eq!((code, refused["error"].as_str()), (401, Some("unauthorized")), "{refused}");
    let (code, _, replayed) = master.call("POST", "/api/v1/nodes/a2/report", &[("Authorization", &format!("Bearer {t2}"))], Some(report), None);
    assert_eq!((code, replayed["error"].as_str()), (409, Some("replayed")), "{replayed}");
    assert_eq!(master.request("GET", "/api/v1/nodes/a1", None).0, 404);
    // The CLI's fleet view.
    let out = m.command().args(["--server", &master.url, "--token", master.token.as_deref().expect("token"), "nodes"]).output().expect("gantry nodes");
    let said = crate::stdout(&out);
    assert!(out.status.success() && said.contains("a2") && said.contains("online") && said.contains("RTX 4090"), "{said}{}", crate::stderr(&out));
    agent2.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}
