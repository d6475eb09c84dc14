//! A gantry provider adapter for a job service with a small REST API, the shape many in-house
//! job runners have. Keep the plumbing; replace the mapping with your system's:
//!
//! - `POST {base}/jobs` with the job (`body`) answers `{"id": ...}`; the same `key` again answers
//!   the same id, which is how a submission whose answer was lost is found, not made twice;
//! - `GET {base}/jobs/{id}` answers `{"state": "queued" | "running" | "succeeded" | "failed" |
//!   "cancelled", "exit_code": N, "message": "..."}`;
//! - `GET {base}/jobs/{id}/log?tail=N` answers the end of the job's output, as text;
//! - `DELETE {base}/jobs/{id}` cancels it and answers as `GET` does.
//!
//! The instance's token, if it has one (`token_file`), goes as a bearer token.

use gantry_provider::http::{Api, Response};
use gantry_provider::{JobConfig, JobResult, JobState, Provider, ProviderError, Settings};
use serde_json::{json, Value};

/// The end of a job's log that one `logs` call reads, at most.
const LOG_BYTES: usize = 1 << 20;

struct JobsApi;

fn api() -> Result<Api, ProviderError> {
    let settings = Settings::from_host();
    let api = Api::new(&settings.base_url()?);
    Ok(match settings.get("TOKEN") {
        Some(token) => api.bearer(&token),
        None => api,
    })
}

/// What the service is sent for a job.
fn body(job: &JobConfig) -> Value {
    let env: serde_json::Map<String, Value> = job.env.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    json!({
        "key": job.key,
        "name": job.name,
        "user": job.user,
        "command": job.command.join("\n"),
        "gpus": job.gpu.count,
        "memory_gib": job.gpu.memory_gib,
        "env": env,
        "timeout_s": job.timeout_s,
    })
}

/// The service's answer, or the error the host acts on: a busy or failing service
/// (`Transport`) is asked again later; anything else it refuses is `Remote`.
fn answer(response: Response) -> Result<Response, ProviderError> {
    match response.status {
        200..=299 => Ok(response),
        404 => Err(ProviderError::NotFound(response.text(500))),
        429 | 500.. => Err(ProviderError::Transport(format!("HTTP {}: {}", response.status, response.text(500)))),
        status => Err(ProviderError::Remote(format!("HTTP {status}: {}", response.text(500)))),
    }
}

/// What the service says of job `id`, as gantry's result.
fn result(id: &str, said: &Value) -> Result<JobResult, ProviderError> {
    let state = match said["state"].as_str() {
        Some("queued") => JobState::Pending,
        Some("running") => JobState::Running,
        Some("succeeded") => JobState::Succeeded,
        Some("failed") => JobState::Failed,
        Some("cancelled") => JobState::Cancelled,
        other => return Err(ProviderError::Remote(format!("job {id}: unknown state {other:?}"))),
    };
    let mut result = gantry_provider::result(id, state);
    result.exit_code = said["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok());
    result.message = said["message"].as_str().unwrap_or_default().to_string();
    Ok(result)
}

impl Provider for JobsApi {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
        let said = answer(api()?.send_json("POST", "/jobs", &body(job))?)?.json()?;
        let id = said["id"].as_str().ok_or_else(|| ProviderError::Remote(format!("the answer to POST /jobs has no id: {said}")))?;
        Ok(gantry_provider::result(id, JobState::Pending))
    }

    fn status(id: &str) -> Result<JobResult, ProviderError> {
        result(id, &answer(api()?.get(&format!("/jobs/{id}"))?)?.json()?)
    }

    fn logs(id: &str, tail_lines: u32) -> Result<String, ProviderError> {
        Ok(answer(api()?.get(&format!("/jobs/{id}/log?tail={tail_lines}"))?)?.text(LOG_BYTES))
    }

    fn cancel(id: &str) -> Result<JobResult, ProviderError> {
        result(id, &answer(api()?.delete(&format!("/jobs/{id}"))?)?.json()?)
    }
}

gantry_provider::export_provider!(JobsApi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_sent_with_its_key_command_gpus_and_environment() {
        let sent = body(&gantry_provider::testing::job());
        assert_eq!(sent["key"], "gantry-7-2");
        assert_eq!(sent["command"], "cd src\npython train.py");
        assert_eq!((&sent["gpus"], &sent["memory_gib"], &sent["timeout_s"]), (&json!(2), &json!(40), &json!(90)));
        assert_eq!(sent["env"], json!({ "GANTRY_JOB_ID": "7" }));
    }

    #[test]
    fn the_services_states_become_gantrys_and_an_unknown_one_is_an_error() {
        let done = result("j1", &json!({ "state": "failed", "exit_code": 3, "message": "out of memory" })).expect("known");
        assert_eq!((done.state, done.exit_code, done.message.as_str()), (JobState::Failed, Some(3), "out of memory"));
        assert_eq!(result("j1", &json!({ "state": "queued" })).map(|r| r.state), Ok(JobState::Pending));
        assert!(matches!(result("j1", &json!({ "state": "paused" })), Err(ProviderError::Remote(m)) if m.contains("paused")));
    }

    #[test]
    fn a_busy_service_is_asked_again_later_and_a_refusal_is_not() {
        let response = |status| Response { status, headers: Vec::new(), body: b"no".to_vec() };
        assert!(matches!(answer(response(503)), Err(ProviderError::Transport(_))));
        assert!(matches!(answer(response(429)), Err(ProviderError::Transport(_))));
        assert!(matches!(answer(response(400)), Err(ProviderError::Remote(m)) if m == "HTTP 400: no"));
        assert!(matches!(answer(response(404)), Err(ProviderError::NotFound(_))));
    }
}
