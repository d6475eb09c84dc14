//! RunPod's REST API v2 as gantry's provider interface: the pod a submission becomes, what a pod
//! and its log say about the job, the GPU catalog as offers and prices. No I/O here, so all of it
//! is tested natively.
//!
//! A pod is not a batch job: when its container's command ends, RunPod starts it again. So the
//! job runs inside a wrapper that prints its exit code on a line of its own ([`EXIT_MARK`]), stops
//! its own pod (`runpodctl`, which RunPod images carry, with the pod's `RUNPOD_POD_ID`) and then
//! idles, never ending; the adapter reads the exit code from the log.

use gantry_provider::{CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, ProviderError};
use serde_json::{json, Value};

/// The wrapper's last line: the job's exit code after it.
pub const EXIT_MARK: &str = "gantry-exit-code: ";

/// The job's script, passed to the wrapper in the environment so it is never quoted into a shell
/// line.
const SCRIPT_VAR: &str = "GANTRY_SCRIPT";
const TIMEOUT_VAR: &str = "GANTRY_TIMEOUT_S";

/// Runs the job (under `timeout` when it has a limit and the image has the tool), reports its
/// exit code, stops the pod, and idles so RunPod does not run it again.
const WRAPPER: &str = r#"if [ -n "$GANTRY_TIMEOUT_S" ] && command -v timeout >/dev/null 2>&1; then timeout "$GANTRY_TIMEOUT_S" sh -c "$GANTRY_SCRIPT"; else sh -c "$GANTRY_SCRIPT"; fi
code=$?
echo "gantry-exit-code: $code"
if command -v runpodctl >/dev/null 2>&1; then runpodctl stop pod "$RUNPOD_POD_ID" >/dev/null 2>&1; fi
while :; do sleep 3600; done"#;

/// What the provider instance configures.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub base_url: String,
    pub api_key: String,
    /// For jobs that name no image.
    pub image: Option<String>,
    /// A RunPod GPU type id (`NVIDIA A100 80GB PCIe`) for every job; otherwise the job's own, or
    /// the cheapest available type with the job's memory.
    pub gpu_type: Option<String>,
    /// `SECURE` or `COMMUNITY`.
    pub cloud: String,
    pub disk_gb: u32,
    /// For jobs that give no timeout.
    pub time_limit_min: Option<u64>,
}

impl Settings {
    pub fn read<F: Fn(&str) -> Option<String>>(instance: &gantry_provider::Settings<F>) -> Result<Settings, ProviderError> {
        let cloud = instance.get("CLOUD").unwrap_or_else(|| "SECURE".into()).to_ascii_uppercase();
        if cloud != "SECURE" && cloud != "COMMUNITY" {
            return Err(ProviderError::InvalidConfig(format!("options.cloud: '{cloud}' is neither SECURE nor COMMUNITY")));
        }
        Ok(Settings {
            base_url: instance.base_url()?,
            api_key: instance.need("TOKEN")?,
            image: instance.get("IMAGE"),
            gpu_type: instance.get("GPU_TYPE"),
            cloud,
            disk_gb: instance.number("DISK_GB", "gigabytes")?.unwrap_or(50),
            time_limit_min: instance.number("TIME_LIMIT_MIN", "minutes")?,
        })
    }
}

/// A pod id as the host gives it back: only what RunPod makes (letters and digits), so it can't
/// reach another path.
pub fn pod_id(id: &str) -> Result<&str, ProviderError> {
    let plain = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if plain { Ok(id) } else { Err(ProviderError::NotFound(format!("'{id}' is not the id of a RunPod pod"))) }
}

/// The body of `POST /v2/pods` for `job` on GPU type `gpu_id`. The pod is named after the
/// attempt's key, which is how a submission repeated after a restart finds it.
pub fn create_body(settings: &Settings, job: &JobConfig, gpu_id: &str) -> Result<Value, ProviderError> {
    if job.command.iter().all(|c| c.trim().is_empty()) {
        return Err(ProviderError::InvalidConfig("command: empty".into()));
    }
    let image = Some(job.image.clone()).filter(|i| !i.is_empty()).or_else(|| settings.image.clone());
    let image = image.ok_or_else(|| ProviderError::InvalidConfig("image: RunPod runs containers; give the job an image, or the instance options.image".into()))?;
    let mut env = serde_json::Map::new();
    for (name, value) in &job.env {
        env.insert(name.clone(), json!(value));
    }
    env.insert(SCRIPT_VAR.into(), json!(job.command.join("\n")));
    if let Some(seconds) = timeout_s(settings, job) {
        env.insert(TIMEOUT_VAR.into(), json!(seconds.to_string()));
    }
    Ok(json!({
        "name": job.key,
        "image": image,
        "gpu": { "id": gpu_id, "count": job.gpu.count.max(1) },
        "cloud": settings.cloud,
        "env": Value::Object(env),
        "args": ["sh", "-c", WRAPPER],
        "disk": settings.disk_gb,
    }))
}

fn timeout_s(settings: &Settings, job: &JobConfig) -> Option<u64> {
    job.timeout_s.or_else(|| settings.time_limit_min.map(|m| m.saturating_mul(60))).filter(|&s| s > 0)
}

/// The exit code the wrapper printed, from the last such line of `log`.
pub fn exit_code(log: &str) -> Option<i32> {
    log.lines().rev().find_map(|line| line.trim_end().strip_prefix(EXIT_MARK)).and_then(|code| code.trim().parse().ok())
}

/// The job's output: the pod's log without the wrapper's line.
pub fn job_output(log: &str) -> String {
    log.split_inclusive('\n').filter(|line| !line.starts_with(EXIT_MARK)).collect()
}

/// The text of a `text/event-stream` answer: each event's `data` lines, each ending in a newline.
/// Comments, `event:`, `id:` and `retry:` lines carry no output.
pub fn event_stream_text(stream: &str) -> String {
    let mut text = String::new();
    for line in stream.lines() {
        if let Some(data) = line.strip_prefix("data:") {
            text.push_str(data.strip_prefix(' ').unwrap_or(data));
            text.push('\n');
        }
    }
    text
}

/// What a pod (`GET /v2/pods/{id}`) and, once its command may have ended, its log say.
pub fn result(pod: &Value, log: Option<&str>) -> JobResult {
    let id = pod["id"].as_str().unwrap_or_default();
    let status = pod["status"].as_str().unwrap_or("UNKNOWN");
    let cost = pod["cost"].as_f64().map(|c| format!(" at {c} USD/h")).unwrap_or_default();
    let code = log.and_then(exit_code);
    let (state, message) = match (status, code) {
        (_, Some(0)) => (JobState::Succeeded, "exited 0".to_string()),
        (_, Some(code)) => (JobState::Failed, format!("exited {code}")),
        ("PROVISIONING" | "STARTING", None) => (JobState::Pending, format!("{status}{cost}")),
        ("RUNNING", None) => (JobState::Running, format!("RUNNING{cost}")),
        ("EXITED", None) => (JobState::Failed, "the pod stopped before its command reported an exit code (stopped outside gantry?)".to_string()),
        ("TERMINATED", None) => (JobState::Failed, "the pod was terminated outside gantry".to_string()),
        ("ERROR", None) => (JobState::Failed, format!("ERROR: {}", pod["error"].as_str().or(pod["message"].as_str()).unwrap_or("no reason given"))),
        (other, None) => (JobState::Unknown, format!("RunPod says {other}")),
    };
    JobResult { message, exit_code: code, ..gantry_provider::result(id, state) }
}

/// Whether the pod's command may have ended, so its log is worth reading for the exit code.
pub fn may_have_ended(pod: &Value) -> bool {
    matches!(pod["status"].as_str(), Some("RUNNING" | "EXITED"))
}

/// The API's error: `application/problem+json` (`title`, `detail`) or whatever text came.
pub fn error(status: u16, body: &[u8], retry_after_s: Option<u64>) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| parsed.as_ref().and_then(|v| v[name].as_str()).unwrap_or_default().to_string();
    let message = match (field("title"), field("detail")) {
        (title, detail) if !title.is_empty() && !detail.is_empty() => format!("{title}: {detail}"),
        (title, detail) if detail.is_empty() && !title.is_empty() => title,
        (_, detail) if !detail.is_empty() => detail,
        _ => String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string(),
    };
    let wait = retry_after_s.map(|s| format!(" (retry after {s} s)")).unwrap_or_default();
    let text = format!("RunPod answered HTTP {status}: {message}{wait}");
    match status {
        404 => ProviderError::NotFound(text),
        // The key is wrong, RunPod throttles, or it is away: not the job's fault, so it waits.
        401 | 403 | 429 | 500..=504 => ProviderError::Transport(text),
        _ => ProviderError::Remote(text),
    }
}

/// One GPU type of `GET /v2/catalog/gpus`: its id, memory, and per cloud its price per GPU-hour
/// and whether any is free now.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuType {
    pub id: String,
    pub display_name: String,
    pub memory_gib: u32,
    pub price: Option<f64>,
    pub available: bool,
}

/// The catalog's GPU types as seen from `cloud`. Availability is `NONE`, `LOW`, `MEDIUM` or
/// `HIGH`, per cloud or for the type as a whole; anything but `NONE` can be rented.
pub fn catalog(answer: &Value, cloud: &str) -> Vec<GpuType> {
    let items = answer.as_array().or_else(|| answer["data"].as_array()).or_else(|| answer["items"].as_array());
    let price_key = if cloud == "COMMUNITY" { "communityPrice" } else { "securePrice" };
    items
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let id = item["id"].as_str()?.to_string();
            let availability = &item["availability"];
            let level = availability.as_str().or_else(|| availability[cloud].as_str()).unwrap_or("NONE");
            Some(GpuType {
                display_name: item["displayName"].as_str().unwrap_or_default().to_string(),
                id,
                memory_gib: item["memoryInGb"].as_u64().and_then(|m| u32::try_from(m).ok()).unwrap_or(0),
                price: item[price_key].as_f64().filter(|p| p.is_finite() && *p >= 0.0),
                available: level != "NONE",
            })
        })
        .collect()
}

/// The GPU type a job runs on: the instance's, as given; else the cheapest available type with
/// at least the job's memory per GPU, among those the job's `gpu_type` names (a RunPod id, or
/// part of one or of its display name: `A100`).
pub fn choose<'a>(settings: &'a Settings, job: &'a JobConfig, types: &'a [GpuType]) -> Result<&'a str, ProviderError> {
    if let Some(id) = settings.gpu_type.as_deref() {
        return Ok(id);
    }
    let wanted = job.gpu.gpu_type.to_ascii_lowercase();
    let named: Vec<&GpuType> = types.iter().filter(|t| t.id == job.gpu.gpu_type || t.id.to_ascii_lowercase().contains(&wanted) || t.display_name.to_ascii_lowercase().contains(&wanted)).collect();
    if named.is_empty() {
        return Err(ProviderError::InvalidConfig(format!("gpu_type: RunPod's catalog has no GPU type '{}'", job.gpu.gpu_type)));
    }
    named
        .into_iter()
        .filter(|t| t.available && t.memory_gib >= job.gpu.memory_gib && t.price.is_some())
        .min_by(|a, b| a.price.partial_cmp(&b.price).unwrap_or(std::cmp::Ordering::Equal))
        .map(|t| t.id.as_str())
        .ok_or_else(|| {
            let kind = if job.gpu.gpu_type.is_empty() { "GPU".to_string() } else { format!("{} GPU", job.gpu.gpu_type) };
            ProviderError::Remote(format!("RunPod has no {} {kind} with {} GiB free now", settings.cloud, job.gpu.memory_gib))
        })
}

/// The price of `job` on `gpu_id`: the catalog's price per GPU-hour, for each GPU, for its time
/// limit if it has one.
pub fn estimate(settings: &Settings, job: &JobConfig, gpu_id: &str, types: &[GpuType]) -> Result<CostEstimate, ProviderError> {
    let rate = types.iter().find(|t| t.id == gpu_id).and_then(|t| t.price).ok_or_else(|| ProviderError::NotFound(format!("the RunPod catalog has no {} price for '{gpu_id}'", settings.cloud)))?;
    let count = job.gpu.count.max(1);
    let per_hour = rate * f64::from(count);
    let total = timeout_s(settings, job).map_or(0.0, |s| per_hour * s as f64 / 3600.0);
    Ok(CostEstimate { currency: "USD".into(), per_hour, total, detail: format!("{count} x {gpu_id} at {rate} USD/h ({} cloud)", settings.cloud) })
}

/// The catalog as offers of `gpu.count` GPUs with at least `gpu.memory_gib` each, cheapest first.
pub fn offers(settings: &Settings, gpu: &GpuSpec, types: &[GpuType]) -> Vec<Offer> {
    let count = gpu.count.max(1);
    let mut offers: Vec<Offer> = types
        .iter()
        .filter(|t| t.memory_gib >= gpu.memory_gib && (gpu.gpu_type.is_empty() || t.id.contains(&gpu.gpu_type)))
        .filter_map(|t| {
            let price = t.price?;
            Some(Offer { gpu: GpuSpec { gpu_type: t.id.clone(), count, memory_gib: t.memory_gib }, region: settings.cloud.clone(), price_per_hour: price * f64::from(count), currency: "USD".into(), available: t.available })
        })
        .collect();
    offers.sort_by(|a, b| a.price_per_hour.partial_cmp(&b.price_per_hour).unwrap_or(std::cmp::Ordering::Equal));
    offers
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_provider::testing;

    fn settings() -> Settings {
        Settings { base_url: "https://api.runpod.io".into(), api_key: "k".into(), image: Some("runpod/base:1".into()), gpu_type: None, cloud: "SECURE".into(), disk_gb: 50, time_limit_min: None }
    }

    fn types() -> Vec<GpuType> {
        catalog(
            &json!({ "data": [
                { "id": "NVIDIA A100 80GB PCIe", "memoryInGb": 80, "securePrice": 1.89, "communityPrice": 1.19, "availability": { "SECURE": "HIGH", "COMMUNITY": "NONE" } },
                { "id": "NVIDIA RTX A6000", "memoryInGb": 48, "securePrice": 0.79, "communityPrice": 0.49, "availability": "LOW" },
                { "id": "NVIDIA L40S", "memoryInGb": 48, "securePrice": 0.86, "availability": { "SECURE": "NONE" } },
                { "memoryInGb": 24 },
            ] }),
            "SECURE",
        )
    }

    #[test]
    fn a_job_becomes_a_pod_named_by_its_key_running_its_script_in_the_wrapper() {
        let body = create_body(&settings(), &testing::job(), "NVIDIA A100 80GB PCIe").expect("body");
        assert_eq!(body["name"], "gantry-7-2");
        assert_eq!(body["image"], "runpod/base:1");
        assert_eq!(body["gpu"], json!({ "id": "NVIDIA A100 80GB PCIe", "count": 2 }));
        assert_eq!(body["env"]["GANTRY_SCRIPT"], "cd src\npython train.py");
        assert_eq!(body["env"]["GANTRY_TIMEOUT_S"], "90");
        assert_eq!(body["env"]["GANTRY_JOB_ID"], "7");
        assert_eq!(body["args"][2], WRAPPER);
        assert!(body.get("cpu").is_none(), "exactly one of gpu and cpu");
        let mut bare = testing::job();
        bare.image.clear();
        let none = Settings { image: None, ..settings() };
        assert!(matches!(create_body(&none, &bare, "x"), Err(ProviderError::InvalidConfig(m)) if m.starts_with("image:")));
    }

    #[test]
    fn the_wrapper_reports_the_exit_code_and_never_ends() {
        let dir = std::env::temp_dir().join(format!("runpod-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // runpodctl here stops the "pod" by ending the wrapper, as stopping a pod ends its container.
        std::fs::write(dir.join("runpodctl"), "#!/bin/sh\necho \"stop $3\" >> \"$STOPS\"\nkill -TERM $PPID\n").expect("stub");
        std::process::Command::new("chmod").arg("+x").arg(dir.join("runpodctl")).status().expect("chmod");
        let out = std::process::Command::new("sh")
            .args(["-c", WRAPPER])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
            .env("GANTRY_SCRIPT", "echo hi; exit 3")
            .env("RUNPOD_POD_ID", "pod1")
            .env("STOPS", dir.join("stops"))
            .output()
            .expect("wrapper runs");
        let log = String::from_utf8_lossy(&out.stdout);
        assert_eq!(exit_code(&log), Some(3), "{log}");
        assert_eq!(job_output(&log), "hi\n");
        assert_eq!(std::fs::read_to_string(dir.join("stops")).expect("stopped"), "stop pod1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pod_and_its_log_say_where_the_job_is() {
        let pod = |status: &str| json!({ "id": "abc123", "status": status, "cost": 1.89 });
        assert_eq!((result(&pod("PROVISIONING"), None).state, result(&pod("STARTING"), None).state), (JobState::Pending, JobState::Pending));
        let running = result(&pod("RUNNING"), Some("step 1\n"));
        assert_eq!((running.state, running.message.as_str()), (JobState::Running, "RUNNING at 1.89 USD/h"));
        let done = result(&pod("RUNNING"), Some("out\ngantry-exit-code: 0\n"));
        assert_eq!((done.state, done.exit_code), (JobState::Succeeded, Some(0)));
        let failed = result(&pod("EXITED"), Some("gantry-exit-code: 137\n"));
        assert_eq!((failed.state, failed.exit_code, failed.provider_job_id.as_str()), (JobState::Failed, Some(137), "abc123"));
        assert_eq!(result(&pod("EXITED"), Some("")).state, JobState::Failed);
        let error = result(&json!({ "id": "x", "status": "ERROR", "error": "image pull failed" }), None);
        assert_eq!(error.message, "ERROR: image pull failed");
        assert_eq!(event_stream_text(": hello\nevent: log\ndata: one\n\ndata:two\nid: 3\n\n"), "one\ntwo\n");
        assert!(pod_id("abc123").is_ok() && pod_id("../pods").is_err() && pod_id("").is_err());
    }

    #[test]
    fn problems_name_their_title_and_detail_and_throttling_waits() {
        let body = br#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"gpu.count must be at least 1"}"#;
        assert_eq!(error(400, body, None), ProviderError::Remote("RunPod answered HTTP 400: Bad Request: gpu.count must be at least 1".into()));
        assert!(matches!(error(429, b"{\"title\":\"Too Many Requests\"}", Some(7)), ProviderError::Transport(m) if m.ends_with("Too Many Requests (retry after 7 s)")));
        assert!(matches!(error(404, b"", None), ProviderError::NotFound(_)));
    }

    #[test]
    fn the_catalog_gives_choices_prices_and_offers() {
        let types = types();
        assert_eq!(types.len(), 3, "an entry without an id is left out");
        let mut job = testing::job();
        assert_eq!(choose(&settings(), &job, &types), Ok("NVIDIA RTX A6000"), "the cheapest available with 40 GiB");
        job.gpu.memory_gib = 60;
        assert_eq!(choose(&settings(), &job, &types), Ok("NVIDIA A100 80GB PCIe"));
        job.gpu.memory_gib = 100;
        assert!(matches!(choose(&settings(), &job, &types), Err(ProviderError::Remote(_))));
        job.gpu.memory_gib = 40;
        job.gpu.gpu_type = "a100".into();
        assert_eq!(choose(&settings(), &job, &types), Ok("NVIDIA A100 80GB PCIe"), "part of a type's name");
        job.gpu.gpu_type = "NVIDIA L40S".into();
        assert!(matches!(choose(&settings(), &job, &types), Err(ProviderError::Remote(m)) if m.contains("no SECURE NVIDIA L40S GPU")), "named, but none free");
        job.gpu.gpu_type = "TPU".into();
        assert!(matches!(choose(&settings(), &job, &types), Err(ProviderError::InvalidConfig(m)) if m.starts_with("gpu_type:")));
        let pinned = Settings { gpu_type: Some("NVIDIA L40S".into()), ..settings() };
        assert_eq!(choose(&pinned, &job, &types), Ok("NVIDIA L40S"), "the instance's own, as given: RunPod says");

        let estimate = estimate(&settings(), &testing::job(), "NVIDIA A100 80GB PCIe", &types).expect("priced");
        assert_eq!((estimate.currency.as_str(), estimate.per_hour), ("USD", 3.78));
        assert!((estimate.total - 3.78 * 90.0 / 3600.0).abs() < 1e-12);

        let offers = offers(&settings(), &GpuSpec { gpu_type: String::new(), count: 2, memory_gib: 40 }, &types);
        let shown: Vec<(&str, f64, bool)> = offers.iter().map(|o| (o.gpu.gpu_type.as_str(), o.price_per_hour, o.available)).collect();
        assert_eq!(shown, vec![("NVIDIA RTX A6000", 1.58, true), ("NVIDIA L40S", 1.72, false), ("NVIDIA A100 80GB PCIe", 3.78, true)]);
        let community = catalog(&json!([{ "id": "NVIDIA A100 80GB PCIe", "memoryInGb": 80, "communityPrice": 1.19, "availability": { "COMMUNITY": "NONE" } }]), "COMMUNITY");
        assert_eq!(community, vec![GpuType { id: "NVIDIA A100 80GB PCIe".into(), display_name: String::new(), memory_gib: 80, price: Some(1.19), available: false }]);
    }
}
