//! The native `/api/v1` resources beyond jobs and runs: node, GPUs with history, queues, plugins,
//! retry and attempts.

use crate::{Gantry, FAST};
use std::time::{Duration, Instant};
use serde_json::{json, Value};

#[test]
fn node_tells_host_gpus_versions_and_simulation() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "3xA6000"]);
    let node = d.get("/api/v1/node");
    assert_eq!(node["simulated"], true);
    assert_eq!(node["versions"]["wit"], "0.5.0");
    assert!(node["versions"]["gantry"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(node["host"]["cpu_cores"].as_u64().is_some_and(|n| n >= 1), "{node:#}");
    assert!(node["host"]["memory_total_mib"].as_u64().is_some_and(|n| n > 0));
    let gpus = node["gpus"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 3);
    assert_eq!(gpus[2]["reading"]["index"], 2);
    assert_eq!(gpus[2]["reading"]["name"], "NVIDIA RTX A6000");
    assert_eq!(gpus[2]["reading"]["memory_total_mib"], 49_140);
}

#[test]
fn a_gpu_shows_the_memory_a_job_holds_and_keeps_history() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let id = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 3000 }))[0];
    let job = d.wait_job(id, std::time::Duration::from_secs(30), |j| j["state"] == "running");
    let gpu = job["attempts"][0]["gpus"][0].as_u64().expect("gpu");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let detail = loop {
        let detail = d.get(&format!("/api/v1/gpus/{gpu}"));
        if detail["reading"]["memory_used_mib"].as_u64().unwrap_or(0) >= 3000 {
            break detail;
        }
        assert!(std::time::Instant::now() < deadline, "the job's memory never showed: {detail:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let processes = detail["reading"]["processes"].as_array().expect("processes");
    assert!(processes.iter().any(|p| p["used_memory_mib"] == 3000), "{detail:#}");
    let history = detail["history"].as_array().expect("history");
    assert!(history.len() >= 2, "{detail:#}");
    assert!(history.iter().any(|s| s["memory_used_mib"].as_u64() >= Some(3000)));
    // Gantry's own job is not counted as someone else's use.
    assert!(history.iter().all(|s| s["memory_foreign_mib"].as_u64().is_some_and(|mib| mib < 3000)), "{detail:#}");
    let since = history.last().and_then(|s| s["at_ms"].as_u64()).expect("at_ms");
    let recent = d.get(&format!("/api/v1/gpus/{gpu}?since={since}"));
    assert!(recent["history"].as_array().is_some_and(|h| h.len() < history.len() || h.len() == 1));
    let (status, body) = d.request("GET", "/api/v1/gpus/7", None);
    assert_eq!((status, body["detail"].as_str()), (404, Some("GPU 7 does not exist")));
    d.request("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
}

#[test]
fn queues_list_their_jobs_and_parallelism() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let (status, _) = d.request("PUT", "/api/v1/queues/train", Some(json!({ "parallelism": 2 })));
    assert_eq!(status, 200);
    let ids: Vec<u64> = (0..3).flat_map(|_| d.submit(json!({ "commands": ["true"], "queue": "train" }))).collect();
    for id in ids {
        d.finished(id);
    }
    let queues = d.get("/api/v1/queues");
    let train = queues.as_array().and_then(|q| q.iter().find(|q| q["name"] == "train")).expect("queue train");
    assert_eq!(train["parallelism"], 2);
    assert_eq!(train["counts"]["succeeded"], 3);
    let (status, body) = d.request("PUT", "/api/v1/queues/train", Some(json!({ "parallelism": 0 })));
    assert_eq!((status, body["detail"].as_str()), (422, Some("parallelism: must be at least 1")));
}

#[test]
fn a_failed_job_can_be_retried_and_keeps_its_attempts() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let marker = g.state.path().join("second-time");
    let script = format!("if [ -e {m} ]; then echo fixed; else touch {m}; exit 4; fi", m = marker.display());
    let id = d.submit(json!({ "commands": [script] }))[0];
    assert_eq!(d.finished(id)["state"], "failed");
    let (status, body) = d.request("POST", &format!("/api/v1/jobs/{id}/retry"), None);
    assert_eq!(status, 200, "{body}");
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let attempts: Value = d.get(&format!("/api/v1/jobs/{id}/attempts"));
    let codes: Vec<Value> = attempts.as_array().expect("attempts").iter().map(|a| a["exit_code"].clone()).collect();
    assert_eq!(codes, vec![json!(4), json!(0)]);
    let (status, _) = d.request("POST", &format!("/api/v1/jobs/{id}/retry"), None);
    assert_eq!(status, 409, "a job that succeeded is not retried");
}

#[test]
fn plugins_are_listed_and_a_reload_picks_up_the_directory() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let plugins = d.get("/api/v1/plugins");
    let names: Vec<&str> = plugins.as_array().expect("plugins").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"policy-best-fit") && names.contains(&"parser-compete"), "{plugins:#}");
    // A broken component appears as failed after a reload (the watcher may see it first; either
    // way the reload answers with it).
    let dir = g.state.path().join("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::write(dir.join("broken.wasm"), b"not a component").expect("write");
    let (status, listed) = d.request("POST", "/api/v1/plugins/reload", None);
    assert_eq!(status, 200, "{listed}");
    let broken = listed.as_array().and_then(|p| p.iter().find(|p| p["state"] == "failed")).expect("a failed plugin");
    assert!(broken["last_error"].as_str().is_some_and(|e| e.contains("broken.wasm")), "{broken:#}");
}

#[test]
fn metrics_expose_gpus_jobs_latencies_and_plugins() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "2"]);
    let ids: Vec<u64> = (0..3).flat_map(|_| d.submit(json!({ "commands": ["true"], "queue": "m" }))).collect();
    for id in ids {
        d.finished(id);
    }
    let text = d.get_text("/metrics");
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"))
    };
    assert_eq!(text.lines().filter(|l| l.starts_with("DCGM_FI_DEV_FB_USED{gpu=")).count(), 2, "{text}");
    assert_eq!(value("DCGM_FI_DEV_FB_FREE{gpu=\"1\""), 24_564.0);
    assert_eq!(value("gantry_jobs{state=\"succeeded\"}"), 3.0);
    // Three jobs in one queue: two hand-overs.
    assert_eq!(value("gantry_dispatch_latency_seconds_count"), 2.0);
    assert!(value("gantry_scheduling_pass_duration_seconds_count") >= 3.0);
    assert!(value("gantry_plugin_calls_total{plugin=\"policy-best-fit\"}") >= 3.0);
    assert!(text.contains("# TYPE gantry_dispatch_latency_seconds histogram"));
}

#[test]
fn events_stream_job_changes_as_they_happen() {
    use std::io::BufRead;
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1"]);
    let agent = ureq::AgentBuilder::new().timeout_read(std::time::Duration::from_secs(30)).build();
    let response = d.authorized(agent.get(&format!("{}/api/v1/events", d.url))).call().expect("events");
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let mut lines = std::io::BufReader::new(response.into_reader()).lines();
    let id = d.submit(json!({ "commands": ["true"] }))[0];
    let mut states = Vec::new();
    let mut kind = String::new();
    while states.last().map(String::as_str) != Some("succeeded") {
        let line = lines.next().expect("the stream ended").expect("a line");
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ")
            && kind == "job" {
                let event: Value = serde_json::from_str(data).expect("json");
                if event["id"] == id {
                    states.push(event["state"].as_str().unwrap_or_default().to_string());
                }
            }
    }
    assert_eq!(states, vec!["waiting", "running", "succeeded"]);
}

#[test]
fn bad_requests_get_json_errors_with_the_right_status() {
    let g = Gantry::new();
    let d = g.serve(&format!("{FAST}[server]\nmax_body_kib = 1\ncors_origins = [\"https://ui.example\"]\n"), &["--simulate", "1"]);
    let big: Vec<Value> = (0..100).map(|i| json!({ "commands": [format!("echo {i}")] })).collect();
    let (status, body) = d.request("POST", "/api/v1/jobs", Some(json!({ "jobs": big })));
    assert_eq!((status, body["error"].as_str()), (413, Some("body")), "{body}");
    assert_eq!(d.get("/api/v1/jobs")["total"], 0, "nothing of a refused body was kept");
    let (status, body) = d.request("GET", "/api/v1/jobs/abc", None);
    assert_eq!((status, body["error"].as_str()), (400, Some("path")), "{body}");
    let (status, body) = d.request("GET", "/api/v1/nothing-here", None);
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    // CORS for the configured origin only.
    let agent = ureq::agent();
    let preflight = |origin: &str| {
        agent
            .request("OPTIONS", &format!("{}/api/v1/node", d.url))
            .set("Origin", origin)
            .set("Access-Control-Request-Method", "GET")
            .call()
            .map(|r| r.header("access-control-allow-origin").map(String::from))
            .unwrap_or(None)
    };
    assert_eq!(preflight("https://ui.example").as_deref(), Some("https://ui.example"));
    assert_eq!(preflight("https://evil.example"), None);
}

/// The document parses as OpenAPI 3, covers native and seed routes, and every route in it is
/// served: none falls through to the router's "no route" answer.
#[test]
fn the_openapi_document_validates_and_every_route_in_it_is_served() {
    let g = Gantry::new();
    let d = g.serve(FAST, &["--simulate", "1xA100"]);
    let text = d.get_text("/api/openapi.json");
    let document: openapiv3::OpenAPI = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not OpenAPI 3: {e}"));
    assert!(document.openapi.starts_with("3."));
    let paths: Vec<&String> = document.paths.paths.keys().collect();
    for expected in ["/api/v1/jobs", "/api/v1/jobs/{id}/log", "/api/v1/command-files/{mode}/{index}", "/api/v1/rules", "/api/v1/gpu/status", "/api/gpu", "/api/commands/{mode}", "/api/scheduler/running", "/api/log/read", "/api/settings", "/api/info", "/auth/jwt/login", "/metrics", "/api/openapi.json"] {
        assert!(paths.iter().any(|p| p.as_str() == expected), "{expected} is missing from {paths:?}");
    }
    let mut operations = 0;
    for (path, item) in &document.paths.paths {
        let item = item.as_item().expect("inline path item");
        let concrete = path.replace("{mode}", "single").replace("{name}", "q").replace(['{', '}'], "");
        let concrete: String = concrete.split('/').map(|s| if ["id", "index", "pid", "config_index"].contains(&s) { "999" } else { s }).collect::<Vec<_>>().join("/");
        for (method, operation) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete), ("PATCH", &item.patch)] {
            let Some(operation) = operation else { continue };
            operations += 1;
            assert!(operation.summary.as_deref().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
            if path == "/api/v1/shutdown" || path.ends_with("/events") || concrete.ends_with("/log") {
                continue;
            }
            let (status, body) = d.request(method, &concrete, None);
            let fell_through = status == 405 || body["detail"].as_str().is_some_and(|d| d.starts_with("no route for"));
            assert!(!fell_through, "{method} {concrete} is documented but not served");
        }
    }
    assert!(operations >= 60, "only {operations} operations");
}

/// The files of a DCGM HPC job mapping directory: GPU index → its lines.
fn job_map(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    std::fs::read_dir(dir)
        .expect("the mapping directory")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default().lines().map(str::to_string).collect()))
        .collect()
}

#[test]
fn each_running_job_is_mapped_to_its_gpus_for_dcgm_exporter_and_in_the_metrics_and_its_gpu_hours_are_counted() {
    let g = Gantry::new();
    let map = tempfile::tempdir().expect("tempdir");
    let d = g.serve(&format!("{FAST}hpc_job_mapping_dir = \"{}\"\n", map.path().display()), &["--simulate", "3"]);
    let wide = d.submit(json!({ "commands": ["sleep 30"], "gpus": { "min": 2, "max": 2 }, "memory_mib": 3000 }))[0];
    let narrow = d.submit(json!({ "commands": ["sleep 30"], "memory_mib": 2000 }))[0];
    let gpus_of = |id: u64| -> Vec<u64> {
        let job = d.wait_job(id, Duration::from_secs(10), |j| j["state"] == "running");
        job["attempts"][0]["gpus"].as_array().expect("gpus").iter().filter_map(Value::as_u64).collect()
    };
    let (wide_gpus, narrow_gpus) = (gpus_of(wide), gpus_of(narrow));
    let expected = |jobs: &[(u64, &[u64])]| {
        let mut on: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (id, gpus) in jobs {
            for gpu in *gpus {
                on.entry(gpu.to_string()).or_default().push(id.to_string());
            }
        }
        on.values_mut().for_each(|ids| ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(0)));
        on
    };
    let wait_map = |want: std::collections::BTreeMap<String, Vec<String>>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while job_map(map.path()) != want {
            assert!(Instant::now() < deadline, "the mapping files are {:?}, not {want:?}", job_map(map.path()));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_map(expected(&[(wide, &wide_gpus), (narrow, &narrow_gpus)]));
    // The metrics say what each job holds on each of its GPUs, once a sample has seen it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = d.get_text("/metrics");
        let held = |gpu: u64| {
            text.lines()
                .find(|l| l.starts_with(&format!("gantry_job_gpu_memory_used_mib{{job=\"{wide}\"")) && l.contains(&format!("gpu=\"{gpu}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if wide_gpus.iter().all(|&gpu| held(gpu).is_some_and(|mib| mib >= 3000.0)) {
            assert_eq!(text.lines().filter(|l| l.starts_with("gantry_job_gpu_memory_used_mib{")).count(), wide_gpus.len() + narrow_gpus.len(), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "job {wide}'s memory on {wide_gpus:?} is not in:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.request("POST", &format!("/api/v1/jobs/{narrow}/cancel"), None);
    d.finished(narrow);
    wait_map(expected(&[(wide, &wide_gpus)]));
    d.request("POST", &format!("/api/v1/jobs/{wide}/cancel"), None);
    let done = d.finished(wide);
    wait_map(expected(&[]));
    // What it used: two GPUs for as long as it ran, and the memory its processes held.
    let attempt = &done["attempts"][0];
    let held_ms = attempt["ended_ms"].as_u64().expect("ended") - attempt["started_ms"].as_u64().expect("started");
    let hours = done["usage"]["gpu_hours"].as_f64().expect("gpu_hours");
    assert!((hours - 2.0 * held_ms as f64 / 3_600_000.0).abs() < 1e-9, "{done:#}");
    assert!(done["usage"]["gpu_memory_peak_mib"].as_u64().expect("peak") >= 3000, "{done:#}");
}
