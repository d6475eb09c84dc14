//! A gantry attempt as a Kubernetes batch/v1 Job, for every adapter whose jobs run on a cluster:
//! one pod that is never restarted (gantry owns retries), GPUs as an extended resource; its
//! status from the Job's conditions and its pod's container; its output from the pod log
//! endpoint; cancel deletes the Job with `propagationPolicy=Background`, which deletes its pod
//! too (the API's default for Jobs orphans it). A submission the host repeats after a restart
//! is answered `AlreadyExists` and adopts the Job the first one made.
//!
//! - `mapping`: the Job a submission becomes and what a Job and its pod say (no I/O);
//! - this module: the calls to the cluster's API server.

pub mod mapping;

use gantry_provider::http::{Api, Response};
use gantry_provider::{JobConfig, JobResult, JobState, ProviderError};
pub use mapping::Settings;
use serde_json::Value;

/// A cluster's API server, as an instance's settings reach it.
pub struct Cluster {
    pub settings: Settings,
    api: Api,
}

impl Cluster {
    pub fn new(settings: Settings) -> Cluster {
        let api = Api::new(&settings.base_url).header("Accept", "application/json");
        let api = match &settings.token {
            Some(token) => api.bearer(token),
            None => api,
        };
        Cluster { settings, api }
    }

    /// The cluster the host's settings for this instance name.
    pub fn from_host() -> Result<Cluster, ProviderError> {
        Ok(Cluster::new(Settings::read(&gantry_provider::Settings::from_host())?))
    }

    pub fn submit(&self, job: &JobConfig) -> Result<JobResult, ProviderError> {
        let manifest = mapping::manifest(&self.settings, job)?;
        let name = mapping::job_name(&job.key);
        let created = self.api.send_json("POST", &self.settings.jobs_path(), &manifest)?;
        match created.status {
            200..=202 => Ok(JobResult { message: "created".into(), ..gantry_provider::result(&name, JobState::Pending) }),
            // Made already, by a submission whose answer a restart lost.
            409 => self.job_status(&name),
            status => Err(mapping::error(status, &created.body)),
        }
    }

    pub fn status(&self, id: &str) -> Result<JobResult, ProviderError> {
        self.job_status(name_of(id)?)
    }

    pub fn logs(&self, id: &str, tail_lines: u32) -> Result<String, ProviderError> {
        let name = name_of(id)?;
        let pod = self.pod(name)?.ok_or_else(|| ProviderError::NotFound(format!("Job {name} has no pod yet")))?;
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let tail = if tail_lines > 0 { format!("?tailLines={tail_lines}") } else { String::new() };
        let answer = self.api.get(&format!("{}/{}/log{tail}", self.settings.pods_path(), name_of(pod_name)?))?;
        if answer.ok() { Ok(String::from_utf8_lossy(&answer.body).into_owned()) } else { Err(mapping::error(answer.status, &answer.body)) }
    }

    pub fn cancel(&self, id: &str) -> Result<JobResult, ProviderError> {
        let name = name_of(id)?;
        checked(self.api.delete(&format!("{}/{name}?propagationPolicy=Background", self.settings.jobs_path()))?)?;
        Ok(JobResult { message: "deleted".into(), ..gantry_provider::result(name, JobState::Cancelled) })
    }

    /// The newest pod of the Job, if it has one yet.
    fn pod(&self, name: &str) -> Result<Option<Value>, ProviderError> {
        let pods = checked(self.api.get(&format!("{}?labelSelector=job-name%3D{name}", self.settings.pods_path()))?)?;
        let mut items = pods["items"].as_array().cloned().unwrap_or_default();
        items.sort_by(|a, b| a["metadata"]["creationTimestamp"].as_str().cmp(&b["metadata"]["creationTimestamp"].as_str()));
        Ok(items.pop())
    }

    fn job_status(&self, name: &str) -> Result<JobResult, ProviderError> {
        let job = checked(self.api.get(&format!("{}/{name}", self.settings.jobs_path()))?)?;
        let pod = self.pod(name)?;
        Ok(mapping::result(name, &job, pod.as_ref()))
    }
}

/// The answer's JSON, or the API's error.
fn checked(response: Response) -> Result<Value, ProviderError> {
    if response.ok() { response.json() } else { Err(mapping::error(response.status, &response.body)) }
}

/// A Job name as the host gives it back: only what `job_name` makes, so it can't reach another
/// path.
fn name_of(id: &str) -> Result<&str, ProviderError> {
    let plain = !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain { Ok(id) } else { Err(ProviderError::NotFound(format!("'{id}' is not the name of a Job gantry made"))) }
}
