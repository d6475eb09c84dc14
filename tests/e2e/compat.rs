//! The seed systems' own endpoints, called as their documents show, answering with the fields
//! and types those documents give.

use crate::{Gantry, FAST};
use serde_json::json;

#[test]
fn seed_000_gpu_endpoints_answer_in_their_envelope() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xRTX4090"]);
    let status = d.get("/api/v1/gpu/status");
    assert_eq!((status["code"].as_u64(), status["message"].as_str()), (Some(200), Some("success")));
    let gpu = &status["data"]["gpus"][0];
    assert_eq!(gpu["gpu_id"], 0);
    assert_eq!(gpu["name"], "NVIDIA GeForce RTX 4090");
    assert_eq!(gpu["memory"]["total"], 24_564);
    assert_eq!(gpu["memory"]["total_gb"], 24.0);
    assert!(gpu["memory"]["free_gb"].is_f64() && gpu["utilization_gpu"].is_u64() && gpu["power_limit"].is_f64(), "{gpu:#}");
    assert!(gpu["temperature"]["gpu"].is_u64() && gpu["temperature"]["memory"].is_u64(), "{gpu:#}");
    assert_eq!(gpu["status"], "available");
    assert!(gpu["current_task"].is_null());
    let summary = &status["data"]["summary"];
    assert_eq!((summary["total_gpus"].as_u64(), summary["available_gpus"].as_u64(), summary["busy_gpus"].as_u64()), (Some(2), Some(2), Some(0)));
    assert_eq!(summary["total_memory"], 2 * 24_564);

    // A job on a GPU makes it busy with that job as its current task.
    let id = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 10_000 }))[0];
    let job = d.wait_job(id, std::time::Duration::from_secs(30), |j| j["state"] == "running");
    let busy = job["attempts"][0]["gpus"][0].as_u64().expect("gpu");
    let details = d.get(&format!("/api/v1/gpu/{busy}/details"));
    assert_eq!(details["data"]["status"], "busy");
    assert_eq!(details["data"]["current_task"], id);
    let available = d.get("/api/v1/gpu/available?min_memory=10000&task_type=training");
    let ids: Vec<u64> = available["data"]["gpus"].as_array().expect("gpus").iter().filter_map(|g| g["gpu_id"].as_u64()).collect();
    assert_eq!(ids, vec![1 - busy]);
    let none = d.get("/api/v1/gpu/available?min_memory=30000");
    assert_eq!(none["data"]["count"], 0);
    let summary = d.get("/api/v1/gpu/summary");
    assert_eq!(summary["data"]["busy_gpus"], 1);
    let (code, missing) = d.request("GET", "/api/v1/gpu/9/details", None);
    assert_eq!((code, missing["code"].as_u64()), (404, Some(404)));
    let (code, bad) = d.request("GET", "/api/v1/gpu/available?min_memory=lots", None);
    assert_eq!((code, bad["code"].as_u64()), (400, Some(400)));
    d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}

#[test]
fn seed_003_agent_info_and_health() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xRTX3090"]);
    let info = d.get("/api/info");
    assert!(info["timestamp"].is_f64(), "{info:#}");
    let system = &info["system"];
    assert!(system["hostname"].is_string() && system["cpu_cores"].as_u64().is_some_and(|n| n >= 1), "{system:#}");
    assert!(system["memory"]["total"].as_f64().is_some_and(|gb| gb > 0.0) && system["memory"]["percent"].is_f64());
    assert!(system["swap"]["total"].is_f64());
    let gpu = &info["gpus"][1];
    assert_eq!(gpu["id"], 1);
    assert_eq!(gpu["name"], "NVIDIA GeForce RTX 3090");
    assert_eq!(gpu["memory"]["total"], 24_576);
    assert!(gpu["power"]["max"].is_f64() && gpu["processes"].is_array(), "{gpu:#}");
    assert_eq!(d.get("/api/health")["status"], "healthy");
}

#[test]
fn seed_001_gpu_monitoring_shows_users_and_human_sizes() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xA100"]);
    let id = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 10_240 }))[0];
    let job = d.wait_job(id, std::time::Duration::from_secs(30), |j| j["state"] == "running");
    let busy = job["attempts"][0]["gpus"][0].as_u64().expect("gpu") as usize;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let gpu = loop {
        let gpu = d.get("/api/gpu");
        if gpu["total_processes"].as_u64() >= Some(1) {
            break gpu;
        }
        assert!(std::time::Instant::now() < deadline, "the job never showed: {gpu:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(gpu["available"], true);
    assert_eq!(gpu["gpu_count"], 2);
    assert!(gpu["timestamp"].as_str().is_some_and(|t| t.len() == 19 && t.as_bytes()[10] == b'T'), "{gpu:#}");
    let user = String::from_utf8(std::process::Command::new("id").arg("-un").output().expect("id").stdout).expect("utf-8");
    assert_eq!(gpu["active_users"], json!([user.trim()]));
    assert_eq!(gpu["active_user_count"], 1);
    assert!(gpu["host"]["memory"]["total_human"].as_str().is_some_and(|h| h.ends_with("GB")));
    let card = &gpu["gpus"][busy];
    assert_eq!(card["memory"]["total_human"], "80GB");
    assert_eq!(card["power"]["limit_human"], "400W");
    assert_eq!(card["processes"][0]["gpu_memory_human"], "10GB");
    assert_eq!(card["processes"][0]["username"], user.trim());
    let processes = d.get("/api/gpu/processes");
    assert_eq!(processes["count"], 1);
    assert_eq!(processes["processes"][0]["gpu_index"], busy as u64);
    let state = d.get("/api/gpu/state");
    assert_eq!((state["running"].as_bool(), state["interval"].as_f64()), (Some(true), Some(0.1)));
    d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}

#[test]
fn seed_000_a_training_task_registers_and_its_progress_shows_on_its_gpu() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2xRTX4090"]);
    let id = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 1000 }))[0];
    let job = d.wait_job(id, std::time::Duration::from_secs(30), |j| j["state"] == "running");
    let gpu = job["attempts"][0]["gpus"][0].as_u64().expect("gpu");
    // Registered by the training process's pid: gantry finds its job.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = loop {
        match crate::processes_with_env(&format!("GANTRY_JOB_ID={id}")).first() {
            Some(&pid) => break pid,
            None if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
            None => panic!("no process of job {id}"),
        }
    };
    let (code, registered) = d.request("POST", "/api/v1/tasks", Some(json!({ "name": "lora", "pid": pid, "total_steps": 200 })));
    assert_eq!((code, registered["code"].as_u64()), (201, Some(201)), "{registered}");
    let task = &registered["data"];
    assert_eq!((task["task_id"].as_u64(), task["job_id"].as_u64(), task["name"].as_str()), (Some(id), Some(id), Some("lora")));
    assert_eq!(task["gpu_ids"], json!([gpu]));
    let (code, reported) = d.request("POST", &format!("/api/v1/tasks/{id}/progress"), Some(json!({ "step": 50, "epoch": 1, "loss": 0.42, "metrics": { "lr": 0.0001 } })));
    assert_eq!(code, 200, "{reported}");
    assert_eq!((reported["data"]["progress"].as_f64(), reported["data"]["loss"].as_f64()), (Some(25.0), Some(0.42)));
    let details = d.get(&format!("/api/v1/gpu/{gpu}/details"));
    assert_eq!((details["data"]["current_task"].as_u64(), details["data"]["task_progress"].as_f64()), (Some(id), Some(25.0)), "{details}");
    assert_eq!(d.get("/api/v1/tasks")["data"]["count"], 1);
    let (code, bad) = d.request("POST", &format!("/api/v1/tasks/{id}/progress"), Some(json!({ "progress": 140 })));
    assert_eq!((code, bad["code"].as_u64()), (422, Some(422)), "{bad}");
    assert_eq!(d.request("POST", "/api/v1/tasks/77/progress", Some(json!({ "step": 1 }))).0, 404);
}

#[test]
fn seed_001_keeps_a_lost_gpu_in_its_list() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let config = g.sim_dir().join("nvml-sim.json");
    let mut sim: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    sim["gpus"] = json!([{}, { "error": "gpu_lost" }]);
    // Written aside and renamed, so the stand-in never reads half a file.
    std::fs::write(config.with_extension("tmp"), sim.to_string()).expect("write");
    std::fs::rename(config.with_extension("tmp"), &config).expect("rename");
    let gpu = d.wait_get("/api/gpu", std::time::Duration::from_secs(30), |b| b["gpus"][1]["status"] == "unavailable");
    assert_eq!(gpu["gpu_count"], 2);
    assert_eq!(gpu["gpus"].as_array().map(Vec::len), Some(2), "{gpu:#}");
    assert_eq!((gpu["gpus"][0]["status"].as_str(), gpu["gpus"][1]["index"].as_u64()), (Some("available"), Some(1)));
    assert!(gpu["gpus"][1]["error"].is_string(), "{gpu:#}");
}
