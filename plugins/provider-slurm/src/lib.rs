//! gantry's Slurm adapter. A gantry job becomes a batch job submitted to slurmrestd as the job's
//! own user (the instance's token belongs to SlurmUser or root, which may submit for any user);
//! its output goes to a file the host reads with the owner's rights; its record is read by id;
//! cancel is `DELETE`. The job name is the attempt's key, so a submission the host repeats
//! after a restart finds the job it already made instead of making another.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL`, `TOKEN`,
//! `TOKEN_USER`, and the options `PARTITION`, `TIME_LIMIT_MIN`, `LOG_DIR`, `GRES_TYPE`.

pub mod slurm;

use gantry_provider::http::Api;
use gantry_provider::{JobConfig, JobResult, JobState, Provider, ProviderError};
use slurm::{Answer, Settings, API};

struct Slurm;

fn settings() -> Result<Settings, ProviderError> {
    Settings::read(&gantry_provider::Settings::from_host())
}

/// One request to slurmrestd, as `user` (the token's user unless Slurm is to act for another).
fn call(settings: &Settings, method: &str, path: &str, user: &str, body: Option<&serde_json::Value>) -> Result<Answer, ProviderError> {
    let api = Api::new(&format!("{}{API}", settings.base_url)).header("X-SLURM-USER-TOKEN", &settings.token).header("Accept", "application/json");
    let bytes = body.map(|b| b.to_string().into_bytes());
    let mut headers = vec![("X-SLURM-USER-NAME", user)];
    if bytes.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let response = api.request(method, path, &headers, bytes.as_deref())?;
    slurm::answer(response.status, &response.body)
}

fn job_by_id(settings: &Settings, id: &str) -> Result<JobResult, ProviderError> {
    let id: u64 = id.parse().map_err(|_| ProviderError::NotFound(format!("'{id}' is not a Slurm job id")))?;
    let answer = call(settings, "GET", &format!("/job/{id}"), &settings.token_user, None)?;
    let job = answer.jobs.iter().find(|j| j.job_id == id).ok_or_else(|| ProviderError::NotFound(format!("Slurm has no job {id}")))?;
    Ok(slurm::result(job))
}

impl Provider for Slurm {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let settings = settings()?;
        if job.user.is_empty() {
            return Err(ProviderError::InvalidConfig("user: a Slurm job runs as a user; this one has none".into()));
        }
        let body = slurm::submission(&settings, job)?;
        // Submitted already (the host asks again after a restart that lost the answer)?
        let known = call(&settings, "GET", "/jobs", &settings.token_user, None)?;
        if let Some(existing) = known.jobs.iter().find(|j| j.name == job.key) {
            return Ok(slurm::result(existing));
        }
        let answer = call(&settings, "POST", "/job/submit", &job.user, Some(&body))?;
        let id = answer.job_id.ok_or_else(|| ProviderError::Remote("slurmrestd accepted the job but gave no job_id".into()))?;
        match job_by_id(&settings, &id.to_string()) {
            Ok(result) => Ok(result),
            // Submitted, and its record not readable yet: pending, output where it was asked to go.
            Err(_) => Ok(JobResult { message: "submitted".into(), log_path: slurm::output_path(&settings, job).ok(), ..gantry_provider::result(&id.to_string(), JobState::Pending) }),
        }
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        job_by_id(&settings()?, id)
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        let settings = settings()?;
        let number: u64 = id.parse().map_err(|_| ProviderError::NotFound(format!("'{id}' is not a Slurm job id")))?;
        call(&settings, "DELETE", &format!("/job/{number}"), &settings.token_user, None)?;
        job_by_id(&settings, id)
    }
}

gantry_provider::export_provider!(Slurm);
