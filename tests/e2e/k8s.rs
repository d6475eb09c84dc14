//! Jobs handed to Kubernetes through the bundled `provider-k8s`. No API server can be installed
//! on these machines, so each test runs one of its own here that follows the documented
//! batch/v1 and core/v1 behaviour the adapter relies on: 201 on create and `AlreadyExists` 409
//! for a name taken, Job conditions that progress (`Complete`, `Failed`), pods labelled
//! `job-name`, pod logs as text, `propagationPolicy` on delete (the default orphans the pod),
//! `Status` error bodies, bearer tokens. Its "kubelet" runs each pod's command on this machine,
//! so exit codes and output are real. Every manifest the plugin sends is also validated against
//! Kubernetes' own published schemas (`kubernetes-validate` from PyPI, `--strict`).
//! The adapter has not been run against a live cluster.

use super::lab_ca::LabCa;
use super::stub_api::{self, Answer, Request};
use super::{ok, stderr, stdout, Gantry};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// The Kubernetes version whose schemas the manifests must satisfy.
const SCHEMA_VERSION: &str = "1.31.0";
/// GPUs the one fake node has: a pod asking for more is never scheduled.
const NODE_GPUS: u64 = 4;

/// `kubernetes-validate`, installed once into the test target dir: its program and its
/// `PYTHONPATH`.
fn validator() -> &'static (PathBuf, PathBuf) {
    static DEPS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DEPS.get_or_init(|| {
        let deps = super::pip_install(KUBERNETES_VALIDATE, "pydeps-kubernetes-validate");
        (deps.join("bin").join("kubernetes-validate"), deps)
    })
}

fn rfc3339(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    format!("{}Z", gantry::model::iso_time(ms))
}

/// A pod as the fake kubelet runs it.
struct Pod {
    name: String,
    job: String,
    labels: Value,
    created: String,
    /// Why it is not scheduled, if it is not.
    unschedulable: Option<String>,
    child: Option<Child>,
    exit: Option<i32>,
    log: PathBuf,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<String, (Value, String)>,
    pods: Vec<Pod>,
    /// Each DELETE of a Job: its name and its `propagationPolicy`.
    deletes: Vec<(String, Option<String>)>,
    creates: usize,
    manifests: Vec<PathBuf>,
}

/// The API server of one test.
pub(super) struct Cluster {
    url: String,
    token: String,
    /// Where pods write their logs, removed with the cluster.
    _dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code })
}

impl Cluster {
    pub(super) fn start() -> Cluster {
        Cluster::listen(None)
    }

    /// Served over HTTPS with a certificate of the lab's own CA, as a cluster's API server is.
    pub(super) fn start_tls(lab: &LabCa) -> Cluster {
        Cluster::listen(Some(gantry::tls::server_config(&lab.cert, &lab.key).expect("the lab's certificate")))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>) -> Cluster {
        let (state, token, dir): (Arc<Mutex<State>>, String, tempfile::TempDir) = (Arc::default(), "test-token-8c1f".into(), tempfile::tempdir().expect("dir"));
        let (shared, secret, path) = (state.clone(), token.clone(), dir.path().to_path_buf());
        let url = stub_api::serve(tls, Arc::new(move |request: &Request| serve(request, &shared, &secret, &path)));
        Cluster { url, token, _dir: dir, state }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// How many Jobs were created.
    pub(super) fn creates(&self) -> usize {
        self.state.lock().expect("state").creates
    }

    pub(super) fn config(&self, g: &Gantry) -> String {
        self.config_trusting(g, None)
    }

    /// The instance's configuration, its `https` checked against `ca` if given.
    fn config_trusting(&self, g: &Gantry, ca: Option<&std::path::Path>) -> String {
        let token = g.token_file("k8s.token", &self.token);
        let ca = ca.map(|ca| format!("ca_file = \"{}\"\n", ca.display())).unwrap_or_default();
        format!(
            "[providers.k8s]\nplugin = \"provider-k8s\"\nbase_url = \"{}\"\ntoken_file = \"{}\"\n{ca}poll_ms = 200\npoll_max_ms = 1000\n[providers.k8s.options]\nnamespace = \"ml\"\nimage = \"busybox:1.36\"\nttl_s = 600\nprice_per_gpu_hour = 1.5\ncurrency = \"EUR\"\n",
            self.url,
            token.display()
        )
    }

    /// Every manifest the plugin sent passes Kubernetes' schemas, strictly.
    pub(super) fn validate(&self) {
        let manifests = self.state.lock().expect("state").manifests.clone();
        assert!(!manifests.is_empty(), "no manifest was sent");
        let (program, path) = validator();
        let out = Command::new("python3").arg(program).args(["--strict", "-k", SCHEMA_VERSION]).args(&manifests).env("PYTHONPATH", path).output().expect("kubernetes-validate runs");
        assert!(out.status.success(), "kubernetes-validate: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            for pod in &mut state.pods {
                if let Some(child) = pod.child.as_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

fn serve(request: &Request, state: &Mutex<State>, token: &str, dir: &std::path::Path) -> Answer {
    if request.header("authorization") != Some(&format!("Bearer {token}")) {
        return Answer::json(401, &status_body(401, "Unauthorized", "Unauthorized"));
    }
    let mut state = state.lock().expect("state");
    match route(&mut state, request, dir) {
        Ok(Routed::Json(code, body)) => Answer::json(code, &body),
        Ok(Routed::Text(text)) => Answer::text(200, "text/plain", text),
        Err((code, reason, message)) => Answer::json(code, &status_body(code, reason, &message)),
    }
}

enum Routed {
    Json(u16, Value),
    Text(String),
}

type Refusal = (u16, &'static str, String);

fn route(state: &mut State, request: &Request, dir: &std::path::Path) -> Result<Routed, Refusal> {
    state.reap();
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let not_found = |what: &str| (404, "NotFound", format!("{what} not found"));
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["apis", "batch", "v1", "namespaces", ns, "jobs"]) => state.create(ns, &request.body, dir),
        ("GET", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            let (job, _) = state.jobs.get(*name).ok_or_else(|| not_found(&format!("jobs.batch \"{name}\"")))?;
            Ok(Routed::Json(200, state.job_with_status(job)))
        }
        ("DELETE", ["apis", "batch", "v1", "namespaces", _, "jobs", name]) => {
            state.jobs.remove(*name).ok_or_else(|| not_found(&format!("jobs.batch \"{name}\"")))?;
            let policy = request.query.get("propagationPolicy").cloned();
            state.deletes.push((name.to_string(), policy.clone()));
            // batch/v1 Jobs default to orphaning their pods.
            if matches!(policy.as_deref(), Some("Background" | "Foreground")) {
                for pod in state.pods.iter_mut().filter(|p| p.job == *name) {
                    if let Some(child) = pod.child.as_mut() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                state.pods.retain(|p| p.job != *name);
            }
            Ok(Routed::Json(200, json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": { "name": name, "group": "batch", "kind": "jobs" } })))
        }
        ("GET", ["api", "v1", "namespaces", _, "pods"]) => {
            let selector = request.query.get("labelSelector").cloned().unwrap_or_default();
            let (key, value) = selector.split_once('=').ok_or((400, "BadRequest", format!("labelSelector '{selector}' is not key=value")))?;
            let items: Vec<Value> = state.pods.iter().filter(|p| p.labels[key] == value).map(Pod::object).collect();
            Ok(Routed::Json(200, json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items })))
        }
        ("GET", ["api", "v1", "namespaces", _, "pods", name, "log"]) => {
            let pod = state.pods.iter().find(|p| p.name == *name).ok_or_else(|| not_found(&format!("pods \"{name}\"")))?;
            let text = std::fs::read_to_string(&pod.log).unwrap_or_default();
            let text = match request.query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => text.lines().rev().take(n).collect::<Vec<_>>().into_iter().rev().map(|l| format!("{l}\n")).collect(),
                None => text,
            };
            Ok(Routed::Text(text))
        }
        _ => Err((404, "NotFound", format!("the server could not find the requested resource ({} {})", request.method, request.path))),
    }
}

impl State {
    fn create(&mut self, ns: &str, body: &[u8], dir: &std::path::Path) -> Result<Routed, Refusal> {
        let mut job: Value = serde_json::from_slice(body).map_err(|e| (400, "BadRequest", format!("the body is not JSON: {e}")))?;
        let path = dir.join(format!("manifest-{}.json", self.manifests.len()));
        std::fs::write(&path, body).map_err(|e| (500, "InternalError", e.to_string()))?;
        self.manifests.push(path);
        if job["kind"] != "Job" || job["apiVersion"] != "batch/v1" {
            return Err((400, "BadRequest", "not a batch/v1 Job".into()));
        }
        if job["metadata"]["namespace"].as_str().is_some_and(|n| n != ns) {
            return Err((400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request".into()));
        }
        let name = job["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if self.jobs.contains_key(&name) {
            return Err((409, "AlreadyExists", format!("jobs.batch \"{name}\" already exists")));
        }
        self.creates += 1;
        let now = rfc3339(SystemTime::now());
        job["metadata"]["uid"] = json!(format!("uid-{}", self.creates));
        job["metadata"]["creationTimestamp"] = json!(now);
        let template = job["spec"]["template"].clone();
        let mut labels = template["metadata"]["labels"].clone();
        labels["job-name"] = json!(name);
        labels["batch.kubernetes.io/job-name"] = json!(name);
        let container = &template["spec"]["containers"][0];
        let gpus: u64 = container["resources"]["limits"]["nvidia.com/gpu"].as_str().and_then(|g| g.parse().ok()).unwrap_or(0);
        let pod_name = format!("{name}-{:05x}", self.creates * 7919 % 0xfffff);
        let log = dir.join(format!("{pod_name}.log"));
        let mut pod = Pod { name: pod_name, job: name.clone(), labels, created: now.clone(), unschedulable: None, child: None, exit: None, log: log.clone() };
        if gpus > NODE_GPUS {
            pod.unschedulable = Some("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".to_string());
        } else {
            let file = std::fs::File::create(&log).map_err(|e| (500, "InternalError", e.to_string()))?;
            let err = file.try_clone().map_err(|e| (500, "InternalError", e.to_string()))?;
            let command: Vec<String> = container["command"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(String::from)).collect();
            let mut cmd = Command::new(command.first().cloned().unwrap_or_default());
            cmd.args(command.iter().skip(1)).env_clear().env("PATH", "/usr/bin:/bin").stdin(Stdio::null()).stdout(file).stderr(err);
            for var in container["env"].as_array().into_iter().flatten() {
                cmd.env(var["name"].as_str().unwrap_or_default(), var["value"].as_str().unwrap_or_default());
            }
            pod.child = cmd.spawn().ok();
        }
        self.pods.push(pod);
        self.jobs.insert(name, (job.clone(), now));
        Ok(Routed::Json(201, job))
    }

    /// Notes the exit of pods whose process ended.
    fn reap(&mut self) {
        for pod in &mut self.pods {
            if let Some(child) = pod.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                pod.exit = Some(status.code().unwrap_or(137));
                pod.child = None;
            }
        }
    }

    /// The Job as the API shows it: its status from its pod.
    fn job_with_status(&self, job: &Value) -> Value {
        let name = job["metadata"]["name"].as_str().unwrap_or_default();
        let started = self.jobs.get(name).map(|(_, at)| at.clone()).unwrap_or_default();
        let pod = self.pods.iter().find(|p| p.job == name);
        let now = rfc3339(SystemTime::now());
        let status = match pod {
            Some(p) if p.unschedulable.is_some() => json!({ "active": 1, "startTime": started, "ready": 0 }),
            Some(Pod { exit: Some(0), .. }) => json!({ "succeeded": 1, "startTime": started, "completionTime": now, "conditions": [
                { "type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now },
                { "type": "Complete", "status": "True", "lastTransitionTime": now } ] }),
            Some(Pod { exit: Some(_), .. }) => json!({ "failed": 1, "startTime": started, "conditions": [
                { "type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now },
                { "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now } ] }),
            _ => json!({ "active": 1, "startTime": started, "ready": 1 }),
        };
        let mut shown = job.clone();
        shown["status"] = status;
        shown
    }
}

impl Pod {
    fn object(&self) -> Value {
        let status = match (&self.unschedulable, self.exit) {
            (Some(why), _) => json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why }] }),
            (None, Some(code)) => json!({ "phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{ "name": "job", "state": { "terminated": { "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" } } } }] }),
            (None, None) => json!({ "phase": "Running", "containerStatuses": [{ "name": "job", "state": { "running": { "startedAt": self.created } } }] }),
        };
        json!({ "kind": "Pod", "apiVersion": "v1", "metadata": { "name": self.name, "labels": self.labels, "creationTimestamp": self.created }, "status": status })
    }
}

fn remote(job: &Value) -> Value {
    job["attempts"].as_array().and_then(|a| a.last()).map(|a| a["remote"].clone()).unwrap_or_default()
}

#[test]
fn a_job_runs_as_a_kubernetes_job_with_its_exit_code_log_and_retries() {
    let cluster = Cluster::start();
    let g = Gantry::new();
    let d = g.serve(&cluster.config(&g), &[]);
    let work = tempfile::tempdir().expect("work dir");
    let submitted = ok(g.command().current_dir(work.path()).args(["submit", "--provider", "k8s", "--gpus", "2", "--time", "10m", "--", "echo start $GANTRY_ATTEMPT; sleep 1; echo end"]).output().expect("submit"));
    let id: u64 = submitted.trim().strip_prefix("submitted job ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{submitted}"));
    let followed = ok(g.run(&["logs", &id.to_string(), "-f"]));
    assert_eq!(followed, "start 1\nend\n", "the pod's log, through the pod log endpoint");
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let name = remote(&job)["id"].as_str().expect("the Job's name").to_string();
    assert!(name.starts_with("gantry-") && name.len() <= 63, "{name}");
    assert!(ok(g.run(&["jobs"])).contains(&format!("k8s#{name}")));
    // The site's rate for its 2 GPUs, counted while it ran there.
    let cost = &remote(&job)["cost"];
    assert_eq!((cost["currency"].as_str(), cost["per_hour"].as_f64()), (Some("EUR"), Some(3.0)), "{job:#}");
    let attempt = &job["attempts"][0];
    let ran_ms = attempt["ended_ms"].as_u64().unwrap_or(0).saturating_sub(cost["running_since_ms"].as_u64().unwrap_or(u64::MAX));
    let total = cost["total"].as_f64().unwrap_or(-1.0);
    assert!(ran_ms >= 1000 && (total - 3.0 * ran_ms as f64 / 3_600_000.0).abs() < 1e-9, "{ran_ms} ms ran, {total} EUR: {job:#}");

    let failing = d.submit(json!({ "commands": ["echo try $GANTRY_ATTEMPT; exit 3"], "provider": "k8s", "retries": 1 }))[0];
    let job = d.finished(failing);
    assert_eq!(job["state"], "failed", "{job:#}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.iter().map(|a| a["exit_code"].as_i64()).collect::<Vec<_>>(), vec![Some(3), Some(3)], "{job:#}");
    assert_ne!(attempts[0]["remote"]["id"], attempts[1]["remote"]["id"], "the retry is a new Job");
    assert_eq!(d.log(failing), "try 2\n");

    let state = cluster.state.lock().expect("state");
    assert_eq!(state.creates, 3, "one Job per attempt");
    let first: Value = serde_json::from_slice(&std::fs::read(&state.manifests[0]).expect("manifest")).expect("json");
    assert_eq!(first["spec"]["activeDeadlineSeconds"], 600, "--time 10m is the Job's deadline: {first:#}");
    drop(state);
    cluster.validate();
}

#[test]
fn cancel_deletes_the_job_and_its_pod_and_an_unschedulable_job_says_why() {
    let cluster = Cluster::start();
    let g = Gantry::new();
    let d = g.serve(&cluster.config(&g), &[]);
    let id = d.submit(json!({ "commands": ["sleep 300"], "provider": "k8s" }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| remote(j)["state"] == "Running");
    ok(g.run(&["cancel", &id.to_string()]));
    let job = d.finished(id);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    let name = remote(&job)["id"].as_str().unwrap_or_default().to_string();
    {
        let state = cluster.state.lock().expect("state");
        assert_eq!(state.deletes, vec![(name.clone(), Some("Background".to_string()))], "deleted so that its pod goes too");
        assert!(state.pods.iter().all(|p| p.job != name), "no orphaned pod");
    }

    let wide = d.submit(json!({ "commands": ["true"], "provider": "k8s", "gpus": { "min": 5, "max": 5 } }))[0];
    let job = d.wait_job(wide, Duration::from_secs(30), |j| remote(j)["state"].as_str().is_some_and(|s| s.contains("Insufficient nvidia.com/gpu")));
    assert_eq!(job["state"], "running", "Kubernetes keeps it pending, and gantry says why: {job:#}");
    ok(g.run(&["cancel", &wide.to_string()]));
    assert_eq!(d.finished(wide)["state"], "cancelled");
    cluster.validate();
}

#[test]
fn a_restarted_daemon_adopts_its_kubernetes_jobs_and_a_wrong_token_is_refused() {
    let cluster = Cluster::start();
    let g = Gantry::new();
    let mut d = g.serve(&cluster.config(&g), &[]);
    let id = d.submit(json!({ "commands": ["echo before; sleep 3; echo after"], "provider": "k8s" }))[0];
    d.wait_job(id, Duration::from_secs(30), |j| remote(j)["id"].is_string());
    d.crash();
    drop(d);
    let d = g.serve(&cluster.config(&g), &[]);
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(d.log(id), "before\nafter\n", "neither lost nor repeated across the restart");
    assert_eq!(cluster.state.lock().expect("state").creates, 1, "not submitted again");

    drop(d);

    let other = Gantry::new();
    let config = cluster.config(&other);
    std::fs::write(other.state.path().join("k8s.token"), "wrong").expect("token");
    let d = other.serve(&config, &[]);
    let id = d.submit(json!({ "commands": ["true"], "provider": "k8s" }))[0];
    let job = d.wait_job(id, Duration::from_secs(30), |j| j["reason"].as_str().is_some_and(|r| r.contains("401")));
    assert_eq!(job["state"], "waiting", "a token the cluster refuses is the instance's fault, not the job's: {job:#}");
    assert_eq!(cluster.state.lock().expect("state").creates, 1, "nothing was made with it");
    cluster.validate();
}

#[test]
fn a_cluster_with_its_own_ca_is_reached_trusting_that_ca() {
    let lab = LabCa::new();
    let cluster = Cluster::start_tls(&lab);
    let g = Gantry::new();
    let d = g.serve(&cluster.config(&g), &[]);
    let id = d.submit(json!({ "commands": ["true"], "provider": "k8s" }))[0];
    let job = d.wait_job(id, Duration::from_secs(30), |j| j["reason"].as_str().is_some_and(|r| r.contains("provider k8s: unreachable") && r.contains("Tls")));
    assert_eq!(job["state"], "waiting", "the public roots do not know the cluster's CA: {job:#}");
    assert_eq!(cluster.state.lock().expect("state").creates, 0, "nothing was sent to it");
    drop(d);

    let g = Gantry::new();
    let d = g.serve(&cluster.config_trusting(&g, Some(&lab.ca)), &[]);
    let id = d.submit(json!({ "commands": ["echo over https"], "provider": "k8s" }))[0];
    let job = d.finished(id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(d.log(id), "over https\n");
    cluster.validate();
}

#[test]
fn a_command_file_block_names_its_provider_and_a_wrong_one_is_refused_at_its_line() {
    let cluster = Cluster::start();
    let g = Gantry::new();
    let d = g.serve(&cluster.config(&g), &["--simulate", "1"]);
    let file = g.state.path().join("command_gpu.txt");
    std::fs::write(&file, "1\necho here\n1\n\n# the big one goes to the cluster\n#gantry provider k8s\n2\necho there\n1\n").expect("command file");
    let out = g.run(&["run", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (here, there) = (d.finished(1), d.finished(2));
    assert_eq!((here["state"].as_str(), there["state"].as_str()), (Some("succeeded"), Some("succeeded")), "{here:#} {there:#}");
    assert!(remote(&here).is_null(), "the block without a provider line ran here: {here:#}");
    assert_eq!(remote(&there)["provider"], "k8s", "{there:#}");
    assert_eq!(d.log(2), "there\n");

    std::fs::write(&file, "1\necho here\n1\n\n#gantry burst to=k8s,gone\n2\necho there\n1\n").expect("command file");
    let out = g.run(&["run", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:5:1: burst.providers: no provider 'gone'; configured: k8s", file.display())), "{err}");
    assert_eq!(d.get("/api/v1/jobs")["total"], 2, "nothing of the refused file was queued");
    cluster.validate();
}

#[test]
fn a_burst_job_leaves_at_once_when_the_time_limits_here_outlast_its_max_wait_and_a_queue_bursts_by_rule() {
    let cluster = Cluster::start();
    let g = Gantry::new();
    // The queue `big` bursts by rule, after the default 10 minutes.
    let d = g.serve(&format!("{}[scheduler]\nburst_queues = [\"big\"]\n", cluster.config(&g)), &["--simulate", "1"]);
    let blocker = d.submit(json!({ "commands": ["sleep 60"], "time_limit_s": 3600 }))[0];
    d.wait_job(blocker, Duration::from_secs(30), |j| j["state"] == "running");
    let early = d.submit(json!({ "commands": ["echo there"], "queue": "big" }))[0];
    let job = d.finished(early);
    assert_eq!((job["state"].as_str(), remote(&job)["provider"].as_str()), (Some("succeeded"), Some("k8s")), "the GPU here is held for an hour: {job:#}");
    assert_eq!(job["spec"]["burst"], json!({}), "the rule is recorded with the job: {job:#}");
    assert_eq!(d.job(blocker)["state"], "running", "it left without waiting its 10 minutes");
    ok(g.run(&["cancel", &blocker.to_string()]));
    d.finished(blocker);

    // A GPU that frees, by its job's limit, within the max wait: the job waits for it here.
    let short = d.submit(json!({ "commands": ["sleep 60"], "time_limit_s": 3 }))[0];
    d.wait_job(short, Duration::from_secs(30), |j| j["state"] == "running");
    let patient = d.submit(json!({ "commands": ["echo here"], "burst": { "max_wait_ms": 600_000 } }))[0];
    let job = d.finished(patient);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(remote(&job).is_null(), "it waited for the GPU here: {job:#}");
    assert_eq!(d.finished(short)["state"], "failed", "stopped at its limit");
    assert_eq!(cluster.state.lock().expect("state").creates, 1, "only the early one went to the cluster");
    cluster.validate();
}
