//! gantry's RunPod adapter, on RunPod's REST API v2 (`https://api.runpod.io/v2`). An attempt
//! becomes a pod named after its key (`POST /v2/pods`); its state comes from `GET /v2/pods/{id}`
//! and, while the pod runs or once it stopped, the exit code its wrapper printed in the log
//! (`GET /v2/pods/{id}/logs`, an event stream); cancel and release terminate it
//! (`DELETE /v2/pods/{id}`). Prices and availability come from the GPU catalog
//! (`GET /v2/catalog/gpus`). A submission repeated after a restart finds the pod by its name.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL`
//! (`https://api.runpod.io`), `TOKEN` (the API key), and the options `IMAGE`, `GPU_TYPE`,
//! `CLOUD` (`SECURE` or `COMMUNITY`), `DISK_GB`, `TIME_LIMIT_MIN`.

pub mod runpod;

use gantry_provider::http::{Api, Response};
use gantry_provider::{CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, Provider, ProviderError};
use runpod::Settings;
use serde_json::Value;

/// How long a log stream may pause before what came is taken as the whole log: the stream may
/// stay open to follow the pod.
const LOG_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Longest `Retry-After` waited out inside one call; a longer one is the host's to wait.
const PATIENCE_S: u64 = 3;

struct RunPod;

fn connect() -> Result<(Settings, Api), ProviderError> {
    let settings = Settings::read(&gantry_provider::Settings::from_host())?;
    let api = Api::new(&settings.base_url).header("Accept", "application/json").bearer(&settings.api_key);
    Ok((settings, api))
}

/// `send`, once more after a 429 or 503 whose `Retry-After` is short.
fn patiently(send: impl Fn() -> Result<Response, ProviderError>) -> Result<Response, ProviderError> {
    let answer = send()?;
    match answer.retry_after_s() {
        Some(wait) if matches!(answer.status, 429 | 503) && wait <= PATIENCE_S => {
            std::thread::sleep(std::time::Duration::from_secs(wait));
            send()
        }
        _ => Ok(answer),
    }
}

fn checked(answer: Response) -> Result<Value, ProviderError> {
    if answer.ok() { answer.json() } else { Err(runpod::error(answer.status, &answer.body, answer.retry_after_s())) }
}

fn get(api: &Api, path: &str) -> Result<Value, ProviderError> {
    checked(patiently(|| api.get(path))?)
}

fn catalog(settings: &Settings, api: &Api) -> Result<Vec<runpod::GpuType>, ProviderError> {
    Ok(runpod::catalog(&get(api, "/v2/catalog/gpus?include=AVAILABILITY&product=POD")?, &settings.cloud))
}

/// The pod's whole log, as text.
fn log(api: &Api, id: &str, tail_lines: u32) -> Result<String, ProviderError> {
    let tail = if tail_lines > 0 { format!("&tail={tail_lines}") } else { String::new() };
    let path = format!("/v2/pods/{id}/logs?source=container{tail}");
    let answer = patiently(|| api.request_until_idle("GET", &path, &[("Accept", "text/event-stream")], None, Some(LOG_IDLE)))?;
    if answer.ok() { Ok(runpod::event_stream_text(&String::from_utf8_lossy(&answer.body))) } else { Err(runpod::error(answer.status, &answer.body, answer.retry_after_s())) }
}

fn pod_status(api: &Api, id: &str) -> Result<JobResult, ProviderError> {
    let pod = get(api, &format!("/v2/pods/{id}"))?;
    // The exit line is the wrapper's last, so a short tail holds it.
    let log = if runpod::may_have_ended(&pod) { log(api, id, 20).ok() } else { None };
    Ok(runpod::result(&pod, log.as_deref()))
}

/// The pod a submission of `key` made before, if a restart lost RunPod's answer.
fn made_before(api: &Api, key: &str) -> Result<Option<String>, ProviderError> {
    let pods = get(api, &format!("/v2/pods?name={}", gantry_provider::sign::percent_encode(key)))?;
    let items = pods.as_array().or_else(|| pods["data"].as_array()).cloned().unwrap_or_default();
    Ok(items.iter().find(|p| p["name"] == key).and_then(|p| p["id"].as_str()).map(String::from))
}

fn terminate(id: &str) -> Result<(), ProviderError> {
    let (_, api) = connect()?;
    let answer = patiently(|| api.delete(&format!("/v2/pods/{}", runpod::pod_id(id)?)))?;
    // Gone already is what was asked.
    if answer.ok() || answer.status == 404 { Ok(()) } else { Err(runpod::error(answer.status, &answer.body, answer.retry_after_s())) }
}

impl Provider for RunPod {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        if let Some(id) = made_before(&api, &job.key)? {
            return pod_status(&api, &id);
        }
        let types = if settings.gpu_type.is_none() { catalog(&settings, &api)? } else { Vec::new() };
        let gpu = runpod::choose(&settings, job, &types)?;
        let body = runpod::create_body(&settings, job, gpu)?;
        let created = checked(patiently(|| api.send_json("POST", "/v2/pods", &body))?)?;
        let id = created["id"].as_str().ok_or_else(|| ProviderError::Remote("RunPod made a pod but named no id".into()))?;
        Ok(JobResult { message: format!("pod on {gpu}"), ..gantry_provider::result(runpod::pod_id(id)?, JobState::Pending) })
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        let (_, api) = connect()?;
        pod_status(&api, runpod::pod_id(id)?)
    }

    fn logs(id: &str, tail_lines: u32) -> Result<String, ProviderError> {
        let (_, api) = connect()?;
        Ok(runpod::job_output(&log(&api, runpod::pod_id(id)?, tail_lines)?))
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        terminate(id)?;
        Ok(JobResult { message: "terminated".into(), ..gantry_provider::result(id, JobState::Cancelled) })
    }

    fn release(id: &str) -> Result<(), ProviderError> {
        terminate(id)
    }

    fn estimate_cost(job: &JobConfig) -> Result<CostEstimate, ProviderError> {
        let (settings, api) = connect()?;
        let types = catalog(&settings, &api)?;
        let gpu = runpod::choose(&settings, job, &types)?;
        runpod::estimate(&settings, job, gpu, &types)
    }

    fn offers(gpu: &GpuSpec) -> Result<Vec<Offer>, ProviderError> {
        let (settings, api) = connect()?;
        Ok(runpod::offers(&settings, gpu, &catalog(&settings, &api)?))
    }
}

gantry_provider::export_provider!(RunPod);
