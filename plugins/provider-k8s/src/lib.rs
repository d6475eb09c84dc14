//! gantry's Kubernetes adapter. A gantry attempt becomes a batch/v1 Job named after its key, with
//! one pod that is never restarted (gantry owns retries) and `nvidia.com/gpu` limits; its status
//! comes from the Job's conditions and its pod's container; its output from the pod log
//! endpoint; cancel deletes the Job with `propagationPolicy=Background`, which deletes its pod
//! too (the API's default for Jobs orphans it). A submission the host repeats after a restart
//! is answered `AlreadyExists` and adopts the Job the first one made.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL` (the API
//! server), `TOKEN` (a bearer token; none through `kubectl proxy`), and the options `NAMESPACE`,
//! `IMAGE`, `GPU_RESOURCE`, `TIME_LIMIT_MIN`, `TTL_S`.

pub mod k8s;

use gantry_provider::http::{Api, Response};
use gantry_provider::{JobConfig, JobResult, JobState, Provider, ProviderError};
use k8s::Settings;
use serde_json::Value;

struct Kubernetes;

fn connect() -> Result<(Settings, Api), ProviderError> {
    let settings = Settings::read(&gantry_provider::Settings::from_host())?;
    let api = Api::new(&settings.base_url).header("Accept", "application/json");
    let api = match &settings.token {
        Some(token) => api.bearer(token),
        None => api,
    };
    Ok((settings, api))
}

/// The answer's JSON, or the API's error.
fn checked(response: Response) -> Result<Value, ProviderError> {
    if response.ok() { response.json() } else { Err(k8s::error(response.status, &response.body)) }
}

/// A Job name as the host gives it back: only what `job_name` makes, so it can't reach another
/// path.
fn name_of(id: &str) -> Result<&str, ProviderError> {
    let plain = !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain { Ok(id) } else { Err(ProviderError::NotFound(format!("'{id}' is not the name of a Job gantry made"))) }
}

/// The newest pod of the Job, if it has one yet.
fn pod(settings: &Settings, api: &Api, name: &str) -> Result<Option<Value>, ProviderError> {
    let pods = checked(api.get(&format!("{}?labelSelector=job-name%3D{name}", settings.pods_path()))?)?;
    let mut items = pods["items"].as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| a["metadata"]["creationTimestamp"].as_str().cmp(&b["metadata"]["creationTimestamp"].as_str()));
    Ok(items.pop())
}

fn job_status(settings: &Settings, api: &Api, name: &str) -> Result<JobResult, ProviderError> {
    let job = checked(api.get(&format!("{}/{name}", settings.jobs_path()))?)?;
    let pod = pod(settings, api, name)?;
    Ok(k8s::result(name, &job, pod.as_ref()))
}

impl Provider for Kubernetes {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        let manifest = k8s::manifest(&settings, job)?;
        let name = k8s::job_name(&job.key);
        let created = api.send_json("POST", &settings.jobs_path(), &manifest)?;
        match created.status {
            200..=202 => Ok(JobResult { message: "created".into(), ..gantry_provider::result(&name, JobState::Pending) }),
            // Made already, by a submission whose answer a restart lost.
            409 => job_status(&settings, &api, &name),
            status => Err(k8s::error(status, &created.body)),
        }
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        job_status(&settings, &api, name_of(id)?)
    }

    fn logs(id: &str, tail_lines: u32) -> Result<String, ProviderError> {
        let (settings, api) = connect()?;
        let name = name_of(id)?;
        let pod = pod(&settings, &api, name)?.ok_or_else(|| ProviderError::NotFound(format!("Job {name} has no pod yet")))?;
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let tail = if tail_lines > 0 { format!("?tailLines={tail_lines}") } else { String::new() };
        let answer = api.get(&format!("{}/{}/log{tail}", settings.pods_path(), name_of(pod_name)?))?;
        if answer.ok() { Ok(String::from_utf8_lossy(&answer.body).into_owned()) } else { Err(k8s::error(answer.status, &answer.body)) }
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        let (settings, api) = connect()?;
        let name = name_of(id)?;
        checked(api.delete(&format!("{}/{name}?propagationPolicy=Background", settings.jobs_path()))?)?;
        Ok(JobResult { message: "deleted".into(), ..gantry_provider::result(name, JobState::Cancelled) })
    }
}

gantry_provider::export_provider!(Kubernetes);
