//! Jobs handed to RunPod through the bundled `provider-runpod`. No test machine reaches RunPod,
//! so each test runs a stand-in of its REST API v2 that follows what the adapter relies on:
//! bearer API keys; `POST /v2/pods` answering 201 with a pod that goes PROVISIONING, STARTING,
//! RUNNING; a container that RunPod starts again whenever its command ends; `POST
//! /v2/pods/{id}/stop` (EXITED) and `DELETE /v2/pods/{id}` (204, terminated and gone); logs as
//! `text/event-stream` that stays open for more, as a follow does; the GPU catalog with prices and availability; errors as
//! `application/problem+json`; 429 with `Retry-After`. Its "host" runs each pod's container
//! command on this machine with `runpodctl` on its PATH, so exit codes, output and the wrapper's
//! stop are real. Every pod body is checked against the facts of RunPod's published v2
//! `CreatePodRequest` that the adapter uses (`name` and `image` required, exactly one of `gpu`
//! and `cpu`, the cloud's two values), and no field the schema lacks.
//! The adapter has not been run against RunPod itself.

use super::stub_api::{self, Answer, Request};
use super::{ok, Gantry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a new pod is PROVISIONING, then STARTING.
const PHASE: Duration = Duration::from_millis(300);

struct Pod {
    id: String,
    name: String,
    body: Value,
    status: &'static str,
    made: Instant,
    child: Option<Child>,
    log: PathBuf,
    /// Times RunPod started its container again because its command ended.
    restarts: u32,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<String, Pod>,
    creates: usize,
    /// Every `POST /v2/pods`, answered or not.
    create_requests: usize,
    /// Answer this many creates with 429 first.
    throttle: u32,
    /// Make the next pod but lose the answer.
    lose_next_create: bool,
    refusals: Vec<String>,
    stops: Vec<String>,
    deletes: Vec<String>,
    /// The body of every pod made.
    bodies: Vec<Value>,
    /// Schema faults found in bodies sent: must stay empty.
    invalid: Vec<String>,
}

pub(super) struct RunPod {
    url: String,
    key: String,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

/// The catalog: one type free in both clouds, a cheaper one free in the secure cloud, one with
/// none free.
fn catalog() -> Value {
    json!({ "data": [
        { "id": "NVIDIA A100 80GB PCIe", "displayName": "A100 PCIe", "memoryInGb": 80, "securePrice": 1.89, "communityPrice": 1.19, "availability": { "SECURE": "HIGH", "COMMUNITY": "MEDIUM" } },
        { "id": "NVIDIA RTX A6000", "displayName": "RTX A6000", "memoryInGb": 48, "securePrice": 0.79, "communityPrice": 0.49, "availability": { "SECURE": "LOW", "COMMUNITY": "NONE" } },
        { "id": "NVIDIA H100 80GB HBM3", "displayName": "H100 SXM", "memoryInGb": 80, "securePrice": 2.99, "communityPrice": 2.69, "availability": { "SECURE": "NONE", "COMMUNITY": "NONE" } },
    ] })
}

fn problem(status: u16, title: &str, detail: &str) -> Answer {
    let body = json!({ "type": "about:blank", "title": title, "status": status, "detail": detail });
    Answer { code: status, content_type: "application/problem+json", headers: Vec::new(), body: body.to_string().into_bytes(), hold_open: None }
}

/// What the published `CreatePodRequest` refuses in `body`, for the fields the adapter sends.
fn schema_faults(body: &Value) -> Vec<String> {
    let Some(object) = body.as_object() else { return vec!["the body is not an object".into()] };
    let mut faults: Vec<String> = object.keys().filter(|k| !["name", "image", "gpu", "cpu", "cloud", "env", "args", "disk"].contains(&k.as_str())).map(|k| format!("unknown field {k}")).collect();
    for required in ["name", "image"] {
        if object.get(required).and_then(Value::as_str).is_none_or(str::is_empty) {
            faults.push(format!("{required}: a non-empty string is required"));
        }
    }
    if object.contains_key("gpu") == object.contains_key("cpu") {
        faults.push("exactly one of gpu and cpu".into());
    }
    if let Some(gpu) = object.get("gpu") {
        let keys_ok = gpu.as_object().is_some_and(|g| g.keys().all(|k| k == "id" || k == "count"));
        if !keys_ok || !gpu["id"].is_string() || !gpu["count"].as_u64().is_some_and(|c| (1..=8).contains(&c)) {
            faults.push(format!("gpu: {{id: string, count: 1..8}}, not {gpu}"));
        }
    }
    if !matches!(object.get("cloud").and_then(Value::as_str), None | Some("SECURE" | "COMMUNITY")) {
        faults.push("cloud: SECURE or COMMUNITY".into());
    }
    if !object.get("env").is_none_or(|e| e.as_object().is_some_and(|m| m.values().all(Value::is_string))) {
        faults.push("env: an object of strings".into());
    }
    if !object.get("args").is_none_or(|a| a.as_array().is_some_and(|l| l.iter().all(Value::is_string))) {
        faults.push("args: an array of strings".into());
    }
    if object.get("disk").is_some_and(|d| d.as_u64().is_none_or(|d| d < 1)) {
        faults.push("disk: whole gigabytes".into());
    }
    faults
}

impl RunPod {
    pub(super) fn start() -> RunPod {
        let dir = tempfile::tempdir().expect("dir");
        // What RunPod images carry: `runpodctl stop pod ID`, with the pod's own key.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        std::fs::write(
            bin.join("runpodctl"),
            "#!/usr/bin/python3\nimport os, sys, urllib.request\nassert sys.argv[1:3] == ['stop', 'pod'], sys.argv\nrequest = urllib.request.Request(os.environ['RUNPOD_STUB_URL'] + '/v2/pods/' + sys.argv[3] + '/stop', method='POST', data=b'', headers={'Authorization': 'Bearer ' + os.environ['RUNPOD_API_KEY']})\nurllib.request.urlopen(request).read()\n",
        )
        .expect("runpodctl");
        ok(Command::new("chmod").arg("+x").arg(bin.join("runpodctl")).output().expect("chmod"));
        let (state, key): (Arc<Mutex<State>>, String) = (Arc::default(), "rpa_TESTKEY0123".into());
        let url_slot: Arc<Mutex<String>> = Arc::default();
        let (shared, secret, root, slot) = (state.clone(), key.clone(), dir.path().to_path_buf(), url_slot.clone());
        let url = stub_api::serve(None, Arc::new(move |request: &Request| {
            if request.header("authorization") != Some(&format!("Bearer {secret}")) {
                return problem(401, "Unauthorized", "a valid API key is required");
            }
            let url = slot.lock().expect("url").clone();
            route(&mut shared.lock().expect("state"), request, &root, &url, &secret)
        }));
        *url_slot.lock().expect("url") = url.clone();
        RunPod { url, key, state, _dir: dir }
    }

    /// A provider instance `name` on this stand-in, with `options` added.
    pub(super) fn config(&self, g: &Gantry, name: &str, options: &str) -> String {
        let token = g.token_file("runpod.key", &self.key);
        format!(
            "[providers.{name}]\nplugin = \"provider-runpod\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\npoll_ms = 200\npoll_max_ms = 1000\n[providers.{name}.options]\nimage = \"runpod/base:0.6.2\"\n{options}",
            self.url,
            token.display()
        )
    }

    fn check(&self) {
        let state = self.state.lock().expect("state");
        assert!(state.invalid.is_empty(), "bodies the schema refuses: {:?}", state.invalid);
    }
}

impl Drop for RunPod {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            for pod in state.pods.values_mut() {
                pod.stop();
            }
        }
    }
}

impl Pod {
    fn stop(&mut self) {
        stub_api::stop_group(self.child.take());
    }

    fn start_container(&mut self, url: &str, key: &str, bin: &Path) {
        let args: Vec<String> = self.body["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(String::from)).collect();
        let Some(program) = args.first() else { return };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("pod log");
        let mut command = Command::new(program);
        command.args(&args[1..]).env_clear().env("PATH", format!("{}:/usr/bin:/bin", bin.display())).stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).process_group(0);
        for (name, value) in self.body["env"].as_object().into_iter().flatten() {
            command.env(name, value.as_str().unwrap_or_default());
        }
        command.env("RUNPOD_POD_ID", &self.id).env("RUNPOD_API_KEY", key).env("RUNPOD_STUB_URL", url);
        self.child = command.spawn().ok();
    }

    /// Moves the pod along: its phases by time, and its container started again if its command
    /// ended while the pod runs.
    fn advance(&mut self, url: &str, key: &str, bin: &Path) {
        let age = self.made.elapsed();
        match self.status {
            "PROVISIONING" if age >= PHASE => self.status = "STARTING",
            "STARTING" if age >= PHASE * 2 => {
                self.status = "RUNNING";
                self.start_container(url, key, bin);
            }
            "RUNNING" => {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    self.restarts += 1;
                    self.start_container(url, key, bin);
                }
            }
            _ => {}
        }
    }

    fn object(&self) -> Value {
        let price = catalog()["data"].as_array().into_iter().flatten().find(|t| t["id"] == self.body["gpu"]["id"]).and_then(|t| t["securePrice"].as_f64()).unwrap_or(0.0);
        json!({ "id": self.id, "name": self.name, "status": self.status, "image": self.body["image"], "gpu": self.body["gpu"], "cost": price * self.body["gpu"]["count"].as_f64().unwrap_or(1.0) })
    }
}

fn route(state: &mut State, request: &Request, dir: &Path, url: &str, key: &str) -> Answer {
    let bin = dir.join("bin");
    for pod in state.pods.values_mut() {
        pod.advance(url, key, &bin);
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let gone = |id: &str| problem(404, "Not Found", &format!("pod {id} not found"));
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["v2", "catalog", "gpus"]) => Answer::json(200, &catalog()),
        ("POST", ["v2", "pods"]) => state.create(request, dir),
        ("GET", ["v2", "pods"]) => {
            let name = request.query.get("name");
            Answer::json(200, &Value::Array(state.pods.values().filter(|p| name.is_none_or(|n| &p.name == n)).map(Pod::object).collect()))
        }
        ("GET", ["v2", "pods", id]) => state.pods.get(*id).map_or_else(|| gone(id), |p| Answer::json(200, &p.object())),
        ("GET", ["v2", "pods", id, "logs"]) => {
            let Some(pod) = state.pods.get(*id) else { return gone(id) };
            let text = std::fs::read_to_string(&pod.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = request.query.get("tail").and_then(|t| t.parse::<usize>().ok()).unwrap_or(lines.len());
            let events: String = lines[lines.len().saturating_sub(tail)..].iter().map(|l| format!("data: {l}\n\n")).collect();
            // A log stream stays open for what the pod writes next.
            Answer { hold_open: Some(Duration::from_secs(5)), ..Answer::text(200, "text/event-stream", events) }
        }
        ("POST", ["v2", "pods", id, "stop"]) => {
            let Some(pod) = state.pods.get_mut(*id) else { return gone(id) };
            pod.stop();
            pod.status = "EXITED";
            state.stops.push(id.to_string());
            Answer::json(200, &pod.object())
        }
        ("DELETE", ["v2", "pods", id]) => {
            let Some(mut pod) = state.pods.remove(*id) else { return gone(id) };
            pod.stop();
            state.deletes.push(id.to_string());
            Answer { code: 204, content_type: "application/json", headers: Vec::new(), body: Vec::new(), hold_open: None }
        }
        _ => problem(404, "Not Found", &format!("no route {} {}", request.method, request.path)),
    }
}

impl State {
    fn create(&mut self, request: &Request, dir: &Path) -> Answer {
        self.create_requests += 1;
        if self.throttle > 0 {
            self.throttle -= 1;
            let mut answer = problem(429, "Too Many Requests", "rate limit exceeded");
            answer.headers.push(("Retry-After", "1".into()));
            return answer;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else { return problem(400, "Bad Request", "the body is not JSON") };
        let faults = schema_faults(&body);
        if !faults.is_empty() {
            self.invalid.extend(faults.iter().cloned());
            return problem(400, "Bad Request", &faults.join("; "));
        }
        let gpu = body["gpu"]["id"].as_str().unwrap_or_default();
        let cloud = body["cloud"].as_str().unwrap_or("SECURE");
        let Some(kind) = catalog()["data"].as_array().into_iter().flatten().find(|t| t["id"] == gpu).cloned() else { return problem(400, "Bad Request", &format!("unknown GPU type {gpu}")) };
        if kind["availability"][cloud] == "NONE" {
            self.refusals.push(gpu.to_string());
            return problem(409, "Conflict", "There are no longer any instances available with the requested specifications. Please refresh and try again.");
        }
        self.creates += 1;
        self.bodies.push(body.clone());
        let id = format!("pod{:04}x{}", self.creates, std::process::id() % 10_000);
        let pod = Pod { id: id.clone(), name: body["name"].as_str().unwrap_or_default().to_string(), body, status: "PROVISIONING", made: Instant::now(), child: None, log: dir.join(format!("{id}.log")), restarts: 0 };
        let shown = pod.object();
        self.pods.insert(id, pod);
        if std::mem::take(&mut self.lose_next_create) {
            return Answer::lost();
        }
        Answer::json(201, &shown)
    }
}

fn remote(job: &Value) -> Value {
    job["attempts"].as_array().and_then(|a| a.last()).map(|a| a["remote"].clone()).unwrap_or_default()
}

#[test]
fn a_job_runs_as_a_runpod_pod_with_its_exit_code_log_and_price_and_the_pod_is_deleted_after() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", ""), &[]);
    let submitted = ok(g.run(&["submit", "--provider", "runpod", "--gpus", "2", "--time", "10m", "--", "echo start $GANTRY_ATTEMPT; sleep 1; echo end"]));
    let id: u64 = submitted.trim().strip_prefix("submitted job ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{submitted}"));
    let followed = ok(g.run(&["logs", &id.to_string(), "-f"]));
    assert_eq!(followed, "start 1\nend\n", "the pod's log stream, without the wrapper's exit line");
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"][0]["exit_code"], 0);
    let pod = remote(&job)["id"].as_str().expect("the pod's id").to_string();
    // The cheapest type free in the secure cloud, for its 2 GPUs.
    let cost = &remote(&job)["cost"];
    assert_eq!((cost["currency"].as_str(), cost["per_hour"].as_f64()), (Some("USD"), Some(1.58)), "{job:#}");

    let failing = d.submit(json!({ "commands": ["echo try $GANTRY_ATTEMPT; exit 3"], "provider": "runpod", "retries": 1 }))[0];
    let job = d.finished(failing);
    assert_eq!(job["state"], "failed", "{job:#}");
    let codes: Vec<Option<i64>> = job["attempts"].as_array().into_iter().flatten().map(|a| a["exit_code"].as_i64()).collect();
    assert_eq!(codes, vec![Some(3), Some(3)], "the exit code the wrapper printed: {job:#}");
    assert_eq!(d.log(failing), "try 2\n");

    d.wait_job(failing, Duration::from_secs(10), |_| runpod.state.lock().expect("state").pods.is_empty());
    let state = runpod.state.lock().expect("state");
    assert_eq!(state.creates, 3, "one pod per attempt");
    assert!(state.pods.is_empty(), "every finished pod is deleted, so none is billed on");
    assert!(state.deletes.contains(&pod), "{:?}", state.deletes);
    drop(state);
    runpod.check();
}

#[test]
fn a_pod_whose_answer_was_lost_is_found_by_its_name_and_not_made_twice() {
    let runpod = RunPod::start();
    runpod.state.lock().expect("state").lose_next_create = true;
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", ""), &[]);
    let id = d.submit(json!({ "commands": ["echo once"], "provider": "runpod" }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(id), "once\n");
    let state = runpod.state.lock().expect("state");
    assert_eq!((state.creates, state.create_requests), (1, 1), "asked again, the adapter found the pod by its name");
    drop(state);
    runpod.check();
}

#[test]
fn cancel_terminates_the_pod_and_a_throttled_create_is_sent_again_after_retry_after() {
    let runpod = RunPod::start();
    runpod.state.lock().expect("state").throttle = 1;
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", "cloud = \"community\"\n"), &[]);
    let id = d.submit(json!({ "commands": ["sleep 300"], "provider": "runpod" }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| remote(j)["state"].as_str().is_some_and(|s| s.starts_with("RUNNING")));
    {
        let state = runpod.state.lock().expect("state");
        assert_eq!((state.create_requests, state.creates), (2, 1), "answered 429 with Retry-After: 1, sent again once");
        let pod = state.pods.values().next().expect("a pod");
        assert_eq!((pod.body["cloud"].as_str(), pod.body["gpu"]["id"].as_str()), (Some("COMMUNITY"), Some("NVIDIA A100 80GB PCIe")), "the only type free in the community cloud");
    }
    ok(g.run(&["cancel", &id.to_string()]));
    let job = d.finished(id);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    let state = runpod.state.lock().expect("state");
    assert_eq!(state.deletes.len(), 1, "{:?}", state.deletes);
    assert!(state.pods.is_empty());
    drop(state);
    runpod.check();
}

#[test]
fn a_restarted_daemon_adopts_its_pod_and_a_launch_runpod_refuses_goes_to_the_next_provider() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let config = format!("{}{}", runpod.config(&g, "runpod-h100", "gpu_type = \"NVIDIA H100 80GB HBM3\"\n"), runpod.config(&g, "runpod", ""));
    let mut d = g.serve(&config, &["--simulate", "1"]);
    let id = d.submit(json!({ "commands": ["echo before; sleep 3; echo after"], "provider": "runpod" }))[0];
    let pod = d.wait_job(id, Duration::from_secs(30), |j| remote(j)["state"].as_str().is_some_and(|s| s.starts_with("RUNNING")));
    let pod = remote(&pod)["id"].as_str().unwrap_or_default().to_string();
    d.crash();
    drop(d);
    // With no gantry to see it end, the wrapper stops its own pod, so RunPod bills no GPU.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !runpod.state.lock().expect("state").stops.contains(&pod) {
        assert!(Instant::now() < deadline, "the pod was not stopped by its wrapper");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(runpod.state.lock().expect("state").pods.get(&pod).map(|p| p.status), Some("EXITED"));
    let d = g.serve(&config, &["--simulate", "1"]);
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(d.log(id), "before\nafter\n", "neither lost nor repeated across the restart");
    assert_eq!(runpod.state.lock().expect("state").creates, 1, "not submitted again");
    assert!(!runpod.state.lock().expect("state").pods.contains_key(&pod), "the stopped pod is deleted once its output is copied");

    // Two GPUs never fit on this node's one, so the job bursts at once: RunPod has no H100
    // free, so the first instance's launch is refused and the next one runs it.
    let wide = d.submit(json!({ "commands": ["echo elsewhere"], "gpus": { "min": 2, "max": 2 }, "burst": { "providers": ["runpod-h100", "runpod"] } }))[0];
    let job = d.finished(wide);
    assert_eq!((job["state"].as_str(), remote(&job)["provider"].as_str()), (Some("succeeded"), Some("runpod")), "{job:#}");
    assert_eq!(d.log(wide), "elsewhere\n");
    let state = runpod.state.lock().expect("state");
    assert_eq!(state.refusals, vec!["NVIDIA H100 80GB HBM3".to_string()]);
    assert!(state.pods.values().all(|p| p.restarts == 0), "the wrapper never let a container end");
    drop(state);
    runpod.check();
}

#[test]
fn offers_and_a_dry_run_set_the_wait_here_beside_the_price_there() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", ""), &["--simulate", "1"]);
    let blocker = d.submit(json!({ "commands": ["sleep 60"], "time_limit_s": 3600 }))[0];
    let started = d.wait_job(blocker, Duration::from_secs(30), |j| j["state"] == "running")["attempts"][0]["started_ms"].as_u64().expect("started");

    // Waiting behind it: the new job would wait for both.
    let next = d.submit(json!({ "commands": ["sleep 60"], "time_limit_s": 1800 }))[0];
    let answer: Value = serde_json::from_str(&ok(g.run(&["offers", "--mem", "20G", "--json"]))).expect("json");
    let start = answer["here"]["start_ms"].as_u64().unwrap_or_else(|| panic!("a start, by the time limits: {answer:#}"));
    assert!(start.abs_diff(started + 3_600_000 + 1_800_000) < 2_000, "the blocker's hour, then the next job's half hour: {answer:#}");
    assert_eq!((&answer["here"]["ahead"], &answer["here"]["from_history"]), (&json!(1), &json!(0)), "{answer:#}");
    let rows: Vec<(&str, f64, bool)> = answer["offers"].as_array().into_iter().flatten().map(|o| (o["gpu_type"].as_str().unwrap_or(""), o["price_per_hour"].as_f64().unwrap_or(-1.0), o["available"] == true)).collect();
    assert_eq!(rows, vec![("NVIDIA RTX A6000", 0.79, true), ("NVIDIA A100 80GB PCIe", 1.89, true), ("NVIDIA H100 80GB HBM3", 2.99, false)], "cheapest first, each as free as the catalog says");
    assert!(answer["offers"].as_array().into_iter().flatten().all(|o| o["provider"] == "runpod" && o["currency"] == "USD"));

    let table = ok(g.run(&["offers", "--gpu", "A100"]));
    assert!(table.contains("here: in about 90 min, after the jobs running here and 1 waiting ahead, by their time limits\n"), "{table}");
    assert!(table.contains("NVIDIA A100 80GB PCIe") && table.contains("1.89 USD") && !table.contains("A6000"), "{table}");
    let two = ok(g.run(&["offers", "--gpu", "A100", "--count", "2"]));
    assert!(two.contains("3.78 USD"), "{two}");
    let never = ok(g.run(&["offers", "--count", "2"]));
    assert!(never.contains("here: never: needs 2 GPUs; this node has 1 eligible"), "{never}");

    let dry = ok(g.run(&["submit", "--dry-run", "--time", "2h", "--", "python train.py"]));
    assert!(dry.contains("FOR --time") && dry.contains("1.58 USD") && dry.ends_with("nothing submitted (--dry-run)\n"), "0.79 USD/h for 2 h: {dry}");
    assert_eq!(d.get("/api/v1/jobs")["total"], 2, "a dry run queues nothing");
    let refused = g.run(&["api", "GET", "/api/v1/offers?count=65"]);
    assert!(super::stderr(&refused).starts_with("HTTP 422") && super::stderr(&refused).contains("count"), "{}", super::stderr(&refused));
    ok(g.run(&["cancel", &next.to_string()]));
    ok(g.run(&["cancel", &blocker.to_string()]));
    runpod.check();
}

#[test]
fn seed_002s_job_config_runs_on_runpod_with_its_image_gpu_type_and_timeout() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", ""), &[]);
    // Seed 002's example, as its clients send it, with the provider instance named.
    let body = json!({
        "name": "pytorch-training",
        "image": "nvcr.io/nvidia/pytorch:24.02-py3",
        "command": ["printf", "%s|%s|%s\\n", "it's", "a b", "$HOME"],
        "gpu_spec": { "gpu_type": "A100", "gpu_count": 1, "memory_gb": 40, "vcpus": 12, "ram_gb": 48 },
        "environment": { "NVIDIA_VISIBLE_DEVICES": "all" },
        "timeout_minutes": 30,
        "provider": "runpod",
    });
    let id = d.submit(body.clone())[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(id), "it's|a b|$HOME\n", "argv quoted for the shell, word for word, nothing expanded");
    assert_eq!((job["spec"]["labels"]["name"].as_str(), job["spec"]["time_limit_s"].as_u64()), (Some("pytorch-training"), Some(1800)), "{job:#}");
    let pod = runpod.state.lock().expect("state").bodies.first().cloned().unwrap_or_default();
    assert_eq!((pod["image"].as_str(), pod["gpu"]["id"].as_str()), (Some("nvcr.io/nvidia/pytorch:24.02-py3"), Some("NVIDIA A100 80GB PCIe")), "{pod:#}");
    assert_eq!((pod["env"]["GANTRY_TIMEOUT_S"].as_str(), pod["env"]["NVIDIA_VISIBLE_DEVICES"].as_str()), (Some("1800"), Some("all")));

    let mut local = body;
    local.as_object_mut().map(|b| b.remove("provider"));
    let refused = d.request("POST", "/api/v1/jobs", Some(local));
    assert_eq!(refused.0, 422, "{:?}", refused.1);
    assert!(refused.1["detail"].as_str().is_some_and(|m| m.contains("image")), "{:?}", refused.1);
    runpod.check();
}

#[test]
fn a_spent_monthly_budget_blocks_paid_bursting_with_its_reason() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let config = format!("{}[quotas]\nbudget_currency = \"USD\"\n[quotas.default]\nmonthly_budget = 0.002\n", runpod.config(&g, "runpod", ""));
    let d = g.serve(&config, &["--simulate", "1"]);
    // Eight A100s at 1.89 USD an hour each spend the 0.002 USD in half a second.
    let paid = d.submit(json!({ "commands": ["sleep 2"], "provider": "runpod", "gpus": { "min": 8, "max": 8 }, "gpu_type": "A100" }))[0];
    let job = d.finished(paid);
    assert_eq!(job["state"], "succeeded", "the budget was not spent when it started: {job:#}");
    assert!(remote(&job)["cost"]["total"].as_f64().is_some_and(|t| t > 0.002), "{job:#}");

    let over = d.submit(json!({ "commands": ["true"], "provider": "runpod" }))[0];
    let job = d.finished(over);
    assert_eq!(job["state"], "failed", "{job:#}");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("provider runpod refused it") || reason.starts_with("provider runpod: "), "{reason}");
    assert!(reason.contains("'s monthly budget is spent") && reason.contains("of 0.0020 USD this month ([quotas] monthly_budget)"), "{reason}");

    // A job that may burst is refused there too, and runs here instead.
    let burst = d.submit(json!({ "commands": ["echo here"], "burst": { "max_wait_ms": 0, "providers": ["runpod"] } }))[0];
    let job = d.finished(burst);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(remote(&job).is_null(), "it ran on this node's GPU: {job:#}");
    assert_eq!(runpod.state.lock().expect("state").creates, 1, "nothing was rented past the budget");
    runpod.check();
}

#[test]
fn a_bursting_job_passes_over_a_provider_dearer_than_burst_max_price_per_hour() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let config = format!("[scheduler]\nburst_max_price_per_hour = 3.0\n{}{}", runpod.config(&g, "secure", ""), runpod.config(&g, "community", "cloud = \"COMMUNITY\"\n"));
    let d = g.serve(&config, &["--simulate", "1"]);
    // Two A100s never fit on this node's one GPU: 3.78 USD an hour in the secure cloud, 2.38 in the community one.
    let id = d.submit(json!({ "commands": ["echo cheaper"], "gpus": { "min": 2, "max": 2 }, "gpu_type": "A100", "burst": { "providers": ["secure", "community"] } }))[0];
    let job = d.finished(id);
    assert_eq!((job["state"].as_str(), remote(&job)["provider"].as_str()), (Some("succeeded"), Some("community")), "{job:#}");
    assert_eq!(remote(&job)["cost"]["per_hour"].as_f64(), Some(2.38));
    assert_eq!(runpod.state.lock().expect("state").creates, 1, "nothing was rented in the dearer cloud");

    // A job that names its provider chose its price.
    let named = d.submit(json!({ "commands": ["echo chosen"], "provider": "secure", "gpus": { "min": 2, "max": 2 }, "gpu_type": "A100" }))[0];
    assert_eq!(d.finished(named)["state"], "succeeded");
    runpod.check();
}

#[test]
fn without_live_prices_the_catalog_stands_in_and_live_ones_become_the_owners_catalog() {
    let runpod = RunPod::start();
    let g = Gantry::new();
    let config = runpod.config(&g, "runpod", "");
    g.token_file("runpod.key", "rpa_WRONG");
    let d = g.serve(&config, &["--simulate", "1"]);
    let answer: Value = serde_json::from_str(&ok(g.run(&["offers", "--gpu", "A100", "--json"]))).expect("json");
    let rows: Vec<(&str, &str, f64)> = answer["offers"].as_array().into_iter().flatten().map(|o| (o["gpu_type"].as_str().unwrap_or(""), o["region"].as_str().unwrap_or(""), o["price_per_hour"].as_f64().unwrap_or(-1.0))).collect();
    assert_eq!(
        rows,
        vec![("NVIDIA A100 80GB PCIe", "COMMUNITY", 1.19), ("NVIDIA A100-SXM4-80GB", "COMMUNITY", 1.39), ("NVIDIA A100 80GB PCIe", "SECURE", 1.79), ("NVIDIA A100-SXM4-80GB", "SECURE", 1.79)],
        "the shipped catalog's A100 rows, cheapest first: {answer:#}"
    );
    for o in answer["offers"].as_array().into_iter().flatten() {
        assert_eq!((&o["provider"], &o["plugin"], &o["available"]), (&json!("runpod"), &json!("provider-runpod"), &json!(false)), "{o:#}");
        assert!(o["source"].as_str().is_some_and(|s| s.starts_with("catalog, as of 2026-11-09: https://www.runpod.io/pricing")), "{o:#}");
    }
    assert!(answer["unanswered"][0]["provider"] == "runpod" && answer["unanswered"][0]["reason"].as_str().is_some_and(|r| r.contains("401") || r.to_lowercase().contains("key")), "why the live answer is missing: {answer:#}");
    let table = ok(g.run(&["offers", "--gpu", "H100", "--count", "2"]));
    assert!(table.contains("NVIDIA H100 80GB HBM3") && table.contains("5.38 USD") && table.contains("catalog 2026-11-09"), "2 x 2.69 USD in the community cloud: {table}");
    drop(d);

    // With the right key the prices are live, and saved they are the owner's catalog.
    g.token_file("runpod.key", &runpod.key);
    let d = g.serve(&config, &["--simulate", "1"]);
    let saved = g.state.path().join("prices.toml");
    let out = g.run(&["offers", "--gpu", "A100", "--save-catalog", saved.to_str().expect("utf-8")]);
    assert!(out.status.success() && super::stderr(&out).contains("wrote 1 live offer(s)"), "{}", super::stderr(&out));
    assert!(super::stdout(&out).contains("1.89 USD") && super::stdout(&out).contains(" live"), "{}", super::stdout(&out));
    let text = std::fs::read_to_string(&saved).expect("saved");
    assert!(text.contains("gpu_type = \"NVIDIA A100 80GB PCIe\"") && text.contains("on_demand = 1.89") && text.contains("region = \"SECURE\""), "{text}");
    drop(d);
    g.token_file("runpod.key", "rpa_WRONG");
    let d = g.serve(&format!("[prices]\nfile = \"{}\"\n{config}", saved.display()), &["--simulate", "1"]);
    let answer: Value = serde_json::from_str(&ok(g.run(&["offers", "--gpu", "A100 80GB PCIe", "--json"]))).expect("json");
    let rows: Vec<(&str, f64)> = answer["offers"].as_array().into_iter().flatten().map(|o| (o["region"].as_str().unwrap_or(""), o["price_per_hour"].as_f64().unwrap_or(-1.0))).collect();
    assert_eq!(rows, vec![("COMMUNITY", 1.19), ("SECURE", 1.89)], "the saved row replaces the shipped one of its cloud: {answer:#}");
    // Spoilt while the daemon runs: the shipped rows stand in, and readers aren't told the file.
    std::fs::write(&saved, "[[price]]\nplugin = \"provider-runpod\"\n").expect("spoil");
    let answer: Value = serde_json::from_str(&ok(g.run(&["offers", "--gpu", "A100 80GB PCIe", "--json"]))).expect("json");
    let rows: Vec<(&str, f64)> = answer["offers"].as_array().into_iter().flatten().map(|o| (o["region"].as_str().unwrap_or(""), o["price_per_hour"].as_f64().unwrap_or(-1.0))).collect();
    assert_eq!(rows, vec![("COMMUNITY", 1.19), ("SECURE", 1.79)], "{answer:#}");
    let why = answer["unanswered"].as_array().into_iter().flatten().find(|u| u["provider"] == "price catalog").unwrap_or_else(|| panic!("{answer:#}"));
    assert!(!why["reason"].as_str().unwrap_or_default().contains(saved.to_str().expect("utf-8")), "{why:#}");
    drop(d);

    // A daemon does not start on a catalog it can't read, and says where it is wrong.
    std::fs::write(&saved, "[[price]]\nplugin = \"provider-runpod\"\ngpu_type = \"A100\"\nmemory_gib = 80\non_demand = \"cheap\"\n").expect("bad catalog");
    let path = g.state.path().join("bad.toml");
    std::fs::write(&path, format!("[prices]\nfile = \"{}\"\n", saved.display())).expect("config");
    let mut serve = g.command().args(["--config", path.to_str().expect("utf-8"), "serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while serve.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("the daemon started on a catalog it can't read");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = serve.wait_with_output().expect("output");
    assert!(!refused.status.success() && super::stderr(&refused).contains(&format!("[prices] file: {}:5:13: invalid type", saved.display())), "{}", super::stderr(&refused));
    runpod.check();
}

#[test]
fn a_bursting_job_whose_submission_went_unanswered_asks_there_again_before_it_runs_here() {
    let runpod = RunPod::start();
    runpod.state.lock().expect("state").lose_next_create = true;
    let g = Gantry::new();
    let d = g.serve(&runpod.config(&g, "runpod", ""), &["--simulate", "1"]);
    // The one GPU is held for an hour by its limit: the bursting job goes to RunPod at once.
    let blocker = d.submit(json!({ "commands": ["sleep 600"], "time_limit_s": 3600 }))[0];
    d.wait_job(blocker, Duration::from_secs(30), |j| j["state"] == "running");
    let id = d.submit(json!({ "commands": ["echo where"], "burst": { "providers": ["runpod"], "max_wait_ms": 60000 } }))[0];
    let job = d.wait_job(id, Duration::from_secs(30), |j| j["unanswered"]["provider"] == "runpod");
    assert_eq!(job["state"], "waiting", "the lost answer took the attempt back: {job:#}");
    // Now the GPU here is free; but RunPod may have made the pod, so the job asks there first.
    ok(g.run(&["cancel", &blocker.to_string()]));
    let job = d.finished(id);
    assert_eq!((job["state"].as_str(), remote(&job)["provider"].as_str()), (Some("succeeded"), Some("runpod")), "{job:#}");
    assert!(job["attempts"].as_array().is_some_and(|a| a.iter().all(|a| a["gpus"] == json!([]))), "never ran here: {job:#}");
    assert_eq!(d.log(id), "where\n");
    let state = runpod.state.lock().expect("state");
    assert_eq!((state.creates, state.create_requests), (1, 1), "found by its name, not made twice");
    drop(state);
    runpod.check();
}
