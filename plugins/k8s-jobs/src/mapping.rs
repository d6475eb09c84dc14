//! Kubernetes' batch/v1 Job and core/v1 Pod as gantry's provider interface: the Job a
//! submission becomes, and what a Job and its pod say about it. No I/O here, so all of it is
//! tested natively.

use gantry_provider::{JobConfig, JobResult, JobState, ProviderError};
use serde_json::{json, Value};

/// The label every Job and pod gantry makes carries, with the gantry job id as its value.
pub const JOB_LABEL: &str = "gantry.dev/job-id";

/// `options.gpu_resource` for Tencent Cloud TKE's qGPU, whose shares of a card are two resources:
/// compute in percent of a card and memory in GiB.
const QGPU: &str = "qgpu";
const QGPU_CORE: &str = "tke.cloud.tencent.com/qgpu-core";
const QGPU_MEMORY: &str = "tke.cloud.tencent.com/qgpu-memory";

/// What the provider instance configures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub base_url: String,
    pub token: Option<String>,
    pub namespace: String,
    /// For jobs that name no image.
    pub image: Option<String>,
    /// The extended resource GPUs are asked as; `qgpu` for Tencent Cloud TKE's shared GPUs.
    pub gpu_resource: String,
    /// With `qgpu`: the share of each GPU's compute a job gets, in percent (5 to 100, by 5s).
    pub qgpu_core: u32,
    /// For jobs that give no timeout.
    pub time_limit_min: Option<u64>,
    /// How long a finished Job stays before Kubernetes deletes it (and its pod and log).
    pub ttl_s: u64,
}

/// TKE's qGPU hands out compute from 5 % of a card to a whole one, by 5s.
fn qgpu_core(given: Option<u32>) -> Result<u32, ProviderError> {
    match given {
        None => Ok(100),
        Some(core) if (5..=100).contains(&core) && core % 5 == 0 => Ok(core),
        Some(core) => Err(ProviderError::InvalidConfig(format!("options.qgpu_core: {core} is not a share of a GPU's compute TKE's qGPU gives (5 to 100, by 5s)"))),
    }
}

impl Settings {
    pub fn read<F: Fn(&str) -> Option<String>>(instance: &gantry_provider::Settings<F>) -> Result<Settings, ProviderError> {
        let namespace = instance.get("NAMESPACE").unwrap_or_else(|| "default".into());
        if !dns_label(&namespace) {
            return Err(ProviderError::InvalidConfig(format!("options.namespace: '{namespace}' is not a Kubernetes namespace name")));
        }
        Ok(Settings {
            base_url: instance.base_url()?,
            token: instance.get("TOKEN"),
            namespace,
            image: instance.get("IMAGE"),
            gpu_resource: instance.get("GPU_RESOURCE").unwrap_or_else(|| "nvidia.com/gpu".into()),
            qgpu_core: qgpu_core(instance.number("QGPU_CORE", "percent")?)?,
            time_limit_min: instance.number("TIME_LIMIT_MIN", "minutes")?,
            ttl_s: instance.number("TTL_S", "seconds")?.unwrap_or(3600),
        })
    }

    pub fn jobs_path(&self) -> String {
        format!("/apis/batch/v1/namespaces/{}/jobs", self.namespace)
    }

    pub fn pods_path(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.namespace)
    }
}

/// A DNS-1123 label: what namespaces and (here) Job names must be.
fn dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// The Job's name, made from the attempt's key: lowercase, `-` for anything else, at most 63
/// characters. A long key keeps its end, which holds the attempt's random part.
pub fn job_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    let name = name.trim_matches('-');
    let name = if name.len() > 63 { format!("gantry-{}", name[name.len() - 56..].trim_start_matches('-')) } else { name.to_string() };
    if name.is_empty() { "gantry".into() } else { name }
}

/// A label value: at most 63 of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn label_value(text: &str) -> String {
    let kept: String = text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(63).collect();
    kept.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The Job a submission becomes. gantry owns retries, so Kubernetes makes one pod and never
/// restarts it; the deadline is the job's timeout, and the finished Job is deleted after the
/// instance's TTL.
pub fn manifest(settings: &Settings, job: &JobConfig) -> Result<Value, ProviderError> {
    if job.command.iter().all(|c| c.trim().is_empty()) {
        return Err(ProviderError::InvalidConfig("command: empty".into()));
    }
    let image = Some(job.image.clone()).filter(|i| !i.is_empty()).or_else(|| settings.image.clone());
    let image = image.ok_or_else(|| ProviderError::InvalidConfig("image: Kubernetes runs containers; give the job an image, or the instance options.image".into()))?;
    let gantry_id = job.env.iter().find(|(k, _)| k == "GANTRY_JOB_ID").map_or_else(String::new, |(_, v)| label_value(v));
    let labels = json!({ JOB_LABEL: gantry_id, "app.kubernetes.io/managed-by": "gantry" });
    let env: Vec<Value> = job.env.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
    let mut limits = serde_json::Map::new();
    if job.gpu.count > 0 && settings.gpu_resource == QGPU {
        // qGPU asks for compute and memory over all of the job's cards (TKE splits both evenly
        // between them); a job that names no memory gets whole cards, which is N × 100 of compute.
        let core = if job.gpu.memory_gib == 0 { 100 } else { settings.qgpu_core };
        limits.insert(QGPU_CORE.into(), json!(job.gpu.count.saturating_mul(core).to_string()));
        if job.gpu.memory_gib > 0 {
            limits.insert(QGPU_MEMORY.into(), json!(job.gpu.count.saturating_mul(job.gpu.memory_gib).to_string()));
        }
    } else if job.gpu.count > 0 {
        limits.insert(settings.gpu_resource.clone(), json!(job.gpu.count.to_string()));
    }
    if job.cpus > 0 {
        limits.insert("cpu".into(), json!(job.cpus.to_string()));
    }
    if job.ram_gib > 0 {
        limits.insert("memory".into(), json!(format!("{}Gi", job.ram_gib)));
    }
    let mut container = json!({
        "name": "job",
        "image": image,
        "command": ["/bin/sh", "-c", job.command.join("\n")],
        "env": env,
        "resources": { "limits": Value::Object(limits) },
    });
    if job.working_dir.starts_with('/') && !job.image.is_empty() {
        container["workingDir"] = json!(job.working_dir);
    }
    let mut spec = json!({
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": settings.ttl_s,
        "template": {
            "metadata": { "labels": labels.clone() },
            "spec": { "restartPolicy": "Never", "containers": [container] },
        },
    });
    let deadline = job.timeout_s.or_else(|| settings.time_limit_min.map(|m| m.saturating_mul(60)));
    if let Some(seconds) = deadline.filter(|&s| s > 0) {
        spec["activeDeadlineSeconds"] = json!(seconds);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(&job.key),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": { "gantry.dev/key": job.key, "gantry.dev/name": job.name },
        },
        "spec": spec,
    }))
}

/// An error answer's `Status` object as gantry names it: 404 is not-found, anything else the
/// API's message with its reason.
pub fn error(status: u16, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v[name].as_str()).unwrap_or_default().to_string();
    let message = match (field("reason"), field("message")) {
        (reason, message) if !message.is_empty() && !reason.is_empty() => format!("{reason}: {message}"),
        (_, message) if !message.is_empty() => message,
        _ => String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string(),
    };
    let text = format!("Kubernetes answered HTTP {status}: {message}");
    match status {
        404 => ProviderError::NotFound(text),
        // The instance's token or RBAC is wrong, the API throttles, or it is away: the job is
        // not at fault, so it waits and the provider is asked again later.
        401 | 403 | 429 | 502..=504 => ProviderError::Transport(text),
        _ => ProviderError::Remote(text),
    }
}

/// RFC 3339 (`2026-12-03T10:15:00Z`, as the API writes times) to milliseconds since the epoch.
pub fn time_ms(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis: i64 = fraction.chars().chain("000".chars()).take(3).collect::<String>().parse().unwrap_or(0);
    u64::try_from(((days * 24 + h) * 60 + min) * 60 + s).ok().map(|secs| secs * 1000 + u64::try_from(millis).unwrap_or(0))
}

/// What a Job and its pod (if it has one yet) say of a gantry job. The Job's conditions decide
/// whether it is over; the pod's container says how it ended (its exit code) or why it waits.
pub fn result(name: &str, job: &Value, pod: Option<&Value>) -> JobResult {
    let conditions = job["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c["type"] == kind && c["status"] == "True");
    let container = pod.and_then(|p| p["status"]["containerStatuses"].as_array()).and_then(|c| c.first());
    let terminated = container.map(|c| &c["state"]["terminated"]).filter(|t| t.is_object());
    let waiting = container.map(|c| &c["state"]["waiting"]).filter(|w| w.is_object());
    let unschedulable = pod
        .and_then(|p| p["status"]["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled" && c["status"] == "False"))
        .map(|c| format!("{}: {}", c["reason"].as_str().unwrap_or("Unschedulable"), c["message"].as_str().unwrap_or_default()));
    let describe = |c: &Value| format!("{}: {}", c["reason"].as_str().unwrap_or_default(), c["message"].as_str().unwrap_or_default()).trim_end_matches(": ").to_string();
    let (state, message) = if let Some(c) = holds("Complete").or_else(|| holds("SuccessCriteriaMet")) {
        (JobState::Succeeded, describe(c))
    } else if let Some(c) = holds("Failed").or_else(|| holds("FailureTarget")) {
        (JobState::Failed, describe(c))
    } else if job["status"]["active"].as_u64().unwrap_or(0) > 0 && container.is_some_and(|c| c["state"]["running"].is_object()) {
        (JobState::Running, "Running".to_string())
    } else if let Some(w) = waiting {
        (JobState::Pending, format!("Pending ({})", w["reason"].as_str().unwrap_or("waiting")))
    } else if let Some(why) = unschedulable {
        (JobState::Pending, format!("Pending ({why})"))
    } else {
        (JobState::Pending, "Pending".to_string())
    };
    let exit_code = terminated.and_then(|t| t["exitCode"].as_i64()).and_then(|c| i32::try_from(c).ok()).filter(|_| state != JobState::Pending);
    let started = job["status"]["startTime"].as_str().and_then(time_ms);
    let ended = job["status"]["completionTime"].as_str().or_else(|| conditions.iter().find(|c| c["type"] == "Failed").and_then(|c| c["lastTransitionTime"].as_str())).and_then(time_ms);
    JobResult {
        provider_job_id: name.to_string(),
        state,
        message,
        exit_code,
        started_ms: started.filter(|_| state != JobState::Pending),
        ended_ms: ended.filter(|_| matches!(state, JobState::Succeeded | JobState::Failed)),
        log_path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings { base_url: "http://127.0.0.1:8001".into(), namespace: "ml".into(), image: Some("pytorch/pytorch:2.5".into()), gpu_resource: "nvidia.com/gpu".into(), ttl_s: 600, ..Settings::default() }
    }

    fn job() -> JobConfig {
        JobConfig { key: "gantry-GPU_1.lab-7-2-0a1b2c3d".into(), ..gantry_provider::testing::job() }
    }

    #[test]
    fn a_job_becomes_a_batch_job_gantry_retries_itself() {
        let m = manifest(&settings(), &job()).expect("valid");
        assert_eq!((m["apiVersion"].as_str(), m["kind"].as_str()), (Some("batch/v1"), Some("Job")));
        assert_eq!(m["metadata"]["name"], "gantry-gpu-1-lab-7-2-0a1b2c3d");
        assert_eq!(m["metadata"]["namespace"], "ml");
        assert_eq!(m["metadata"]["labels"][JOB_LABEL], "7");
        let spec = &m["spec"];
        assert_eq!((spec["backoffLimit"].as_u64(), spec["activeDeadlineSeconds"].as_u64(), spec["ttlSecondsAfterFinished"].as_u64()), (Some(0), Some(90), Some(600)));
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "pytorch/pytorch:2.5");
        assert_eq!(container["command"], json!(["/bin/sh", "-c", "cd src\npython train.py"]));
        assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "2");
        assert_eq!(container["env"][0], json!({ "name": "GANTRY_JOB_ID", "value": "7" }));
        assert!(container.get("workingDir").is_none(), "the host's directory means nothing in the instance's default image");
    }

    #[test]
    fn on_tke_qgpu_a_job_asks_for_its_share_of_compute_and_its_memory_over_all_its_cards() {
        let qgpu = Settings { gpu_resource: "qgpu".into(), qgpu_core: 50, ..settings() };
        let limits = |job: &JobConfig| manifest(&qgpu, job).expect("valid")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].clone();
        assert_eq!(limits(&job()), json!({ "tke.cloud.tencent.com/qgpu-core": "100", "tke.cloud.tencent.com/qgpu-memory": "80" }), "2 GPUs at 50 % and 40 GiB each");
        let mut whole = job();
        whole.gpu.memory_gib = 0;
        assert_eq!(limits(&whole), json!({ "tke.cloud.tencent.com/qgpu-core": "200" }), "no memory named: two whole cards");
        assert_eq!(qgpu_core(None), Ok(100));
        assert!(matches!(qgpu_core(Some(33)), Err(ProviderError::InvalidConfig(m)) if m.starts_with("options.qgpu_core: 33")));
    }

    #[test]
    fn names_fit_kubernetes_rules() {
        assert_eq!(job_name("Gantry--a_b.c-"), "gantry-a-b-c");
        let long = job_name(&format!("gantry-{}-12-3-deadbeef", "n".repeat(80)));
        assert!(long.len() <= 63 && long.ends_with("-12-3-deadbeef") && dns_label(&long), "{long}");
        let mut no_image = job();
        no_image.image.clear();
        let bare = Settings { image: None, ..settings() };
        assert!(matches!(manifest(&bare, &no_image), Err(ProviderError::InvalidConfig(m)) if m.starts_with("image")));
    }

    #[test]
    fn status_comes_from_job_conditions_and_the_pods_container() {
        let pending = result("j", &json!({ "status": { "active": 1 } }), Some(&json!({ "status": { "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }] } })));
        assert_eq!(pending.state, JobState::Pending);
        assert!(pending.message.contains("Insufficient nvidia.com/gpu"), "{}", pending.message);
        let running = result("j", &json!({ "status": { "active": 1, "startTime": "2026-12-03T10:00:00Z" } }), Some(&json!({ "status": { "containerStatuses": [{ "state": { "running": {} } }] } })));
        assert_eq!((running.state, running.started_ms), (JobState::Running, Some(1_796_292_000_000)));
        let failed_pod = json!({ "status": { "containerStatuses": [{ "state": { "terminated": { "exitCode": 3 } } }] } });
        let failed = result("j", &json!({ "status": { "failed": 1, "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-12-03T10:01:00.250Z" }] } }), Some(&failed_pod));
        assert_eq!((failed.state, failed.exit_code, failed.ended_ms), (JobState::Failed, Some(3), Some(1_796_292_060_250)));
        assert!(failed.message.starts_with("BackoffLimitExceeded"));
        let done = result("j", &json!({ "status": { "succeeded": 1, "completionTime": "2026-12-03T10:02:00Z", "conditions": [{ "type": "Complete", "status": "True" }] } }), None);
        assert_eq!(done.state, JobState::Succeeded);
    }

    #[test]
    fn api_errors_are_named_by_their_status() {
        let conflict = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"jobs.batch \"x\" already exists","reason":"AlreadyExists","code":409}"#;
        assert!(matches!(error(409, conflict), ProviderError::Remote(m) if m.contains("AlreadyExists: jobs.batch")));
        assert!(matches!(error(404, b"{}"), ProviderError::NotFound(_)));
        assert!(matches!(error(503, b"unavailable"), ProviderError::Transport(m) if m.contains("unavailable")));
    }
}
