//! gantry's Slurm adapter. A gantry job becomes a batch job submitted to slurmrestd as the job's
//! own user (the instance's token belongs to SlurmUser or root, which may submit for any user);
//! its output goes to a file the host reads with the owner's rights; its record is read by id;
//! cancel is `DELETE`. The job name is the attempt's key, so a submission the host repeats
//! after a restart finds the job it already made instead of making another.
//!
//! Configured through the environment the host gives a provider instance: `BASE_URL`, `TOKEN`,
//! `TOKEN_USER`, and the options `PARTITION`, `TIME_LIMIT_MIN`, `LOG_DIR`, `GRES_TYPE`.

pub mod bindings {
    wit_bindgen::generate!({ path: "../../wit", world: "provider-plugin" });
}

mod http;
pub mod slurm;

use bindings::exports::gantry::plugin::meta::{Guest as MetaGuest, PluginInfo, PluginKind};
use bindings::exports::gantry::plugin::provider::{CostEstimate, GpuSpec, Guest, JobConfig, JobResult, Offer, ProviderError};
use slurm::{Answer, Settings, API};

// Only the component build exports it; native builds exist for unit tests.
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
struct Slurm;

fn settings() -> Result<Settings, ProviderError> {
    Settings::from_env(|name| std::env::var(name).ok())
}

/// One request to slurmrestd, as `user` (the token's user unless Slurm is to act for another).
fn call(settings: &Settings, method: &str, path: &str, user: &str, body: Option<&serde_json::Value>) -> Result<Answer, ProviderError> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let mut headers = vec![("X-SLURM-USER-NAME", user), ("X-SLURM-USER-TOKEN", settings.token.as_str()), ("Accept", "application/json")];
    if bytes.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let url = format!("{}{API}{path}", settings.base_url);
    let response = http::send(method, &url, &headers, bytes.as_deref())?;
    slurm::answer(response.status, &response.body)
}

fn job_by_id(settings: &Settings, id: &str) -> Result<JobResult, ProviderError> {
    let id: u64 = id.parse().map_err(|_| ProviderError::NotFound(format!("'{id}' is not a Slurm job id")))?;
    let answer = call(settings, "GET", &format!("/job/{id}"), &settings.token_user, None)?;
    let job = answer.jobs.iter().find(|j| j.job_id == id).ok_or_else(|| ProviderError::NotFound(format!("Slurm has no job {id}")))?;
    Ok(slurm::result(job))
}

impl MetaGuest for Slurm {
    fn info() -> PluginInfo {
        PluginInfo { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Provider, wit_version: wit_version() }
    }
}

/// The `gantry:plugin` version of `wit/gantry.wit`, read from its package line at build time.
fn wit_version() -> String {
    let wit = include_str!("../../../wit/gantry.wit");
    wit.lines()
        .find_map(|l| l.trim().strip_prefix("package gantry:plugin@"))
        .map(|v| v.trim_end_matches(';').to_string())
        .unwrap_or_default()
}

impl Guest for Slurm {
    fn submit(job: JobConfig) -> Result<JobResult, ProviderError> {
        let settings = settings()?;
        if job.user.is_empty() {
            return Err(ProviderError::InvalidConfig("user: a Slurm job runs as a user; this one has none".into()));
        }
        let body = slurm::submission(&settings, &job)?;
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
            Err(_) => Ok(JobResult {
                provider_job_id: id.to_string(),
                state: bindings::exports::gantry::plugin::provider::JobState::Pending,
                message: "submitted".into(),
                exit_code: None,
                started_ms: None,
                ended_ms: None,
                log_path: slurm::output_path(&settings, &job).ok(),
            }),
        }
    }

    fn status(id: String) -> Result<JobResult, ProviderError> {
        job_by_id(&settings()?, &id)
    }

    fn logs(id: String, _tail_lines: u32) -> Result<String, ProviderError> {
        let job = job_by_id(&settings()?, &id)?;
        Err(ProviderError::InvalidConfig(format!(
            "Slurm serves no logs; job {id} writes them to {}, which the host reads",
            job.log_path.unwrap_or_else(|| "its standard_output".into())
        )))
    }

    fn cancel(id: String) -> Result<JobResult, ProviderError> {
        let settings = settings()?;
        let number: u64 = id.parse().map_err(|_| ProviderError::NotFound(format!("'{id}' is not a Slurm job id")))?;
        call(&settings, "DELETE", &format!("/job/{number}"), &settings.token_user, None)?;
        job_by_id(&settings, &id)
    }

    fn estimate_cost(_job: JobConfig) -> Result<CostEstimate, ProviderError> {
        Ok(CostEstimate { currency: String::new(), per_hour: 0.0, total: 0.0, detail: "a Slurm cluster's own jobs cost nothing per hour here; its accounting is Slurm's".into() })
    }

    fn offers(_gpu: GpuSpec) -> Result<Vec<Offer>, ProviderError> {
        Ok(Vec::new())
    }
}

#[cfg(target_family = "wasm")]
bindings::export!(Slurm with_types_in bindings);
